/**
 * switchd's configuration: a JSON file (docs/CONFIGURATION.md), merged over
 * defaults, validated with errors that name the offending key, then frozen.
 * Command-line flags override the file's common settings.
 *
 * The one entry: callers outside this folder import from here. One job per
 * file: types.ts (the configuration's shapes and shared names: a leaf),
 * reader.ts (the typed reader and its errors), network.ts (networks and their
 * settings), gateway.ts (a network's gateway), profiles.ts (port policies,
 * profiles, what a hello may be granted), tokens.ts (client tokens and the
 * token rule), access.ts (TLS, admin token, allowed hosts and origins),
 * service.ts (listeners, limits, metrics, state directory), endpoints.ts
 * (QEMU listeners, local TAPs, trunks), vxlan.ts (VXLAN and GENEVE
 * listeners). This file puts them together.
 */

import { Reader, readJsonFile } from './reader'
import { readNetworks } from './network'
import { readPolicy, readProfiles, unreachableProfiles } from './profiles'
import { readAccess } from './access'
import { readService, readLimits } from './service'
import { readEndpoints, checkGatewayNames } from './endpoints'
import { readFleet, readReplica } from './fleet'
import { readVxlan, checkVxlanNames } from './vxlan'
import type { SwitchdConfig, ConfigOverrides } from './types'
import { DEFAULT_POLICY } from '../../core/port'
import { logger } from '../../../common/log'

export { NETWORK_NAME, DEFAULT_NETWORK } from './types'
export type { SwitchdConfig, ConfigOverrides, Limits, TlsFiles, NetworkSettings, Profile, TapSpec, QemuSpec, TrunkSpec, ListenAddress } from './types'
export { networkSettings } from './network'
export { profileFor, claimableName, grantPolicy, trunkPolicy, unreachableProfiles, isReservedName } from './profiles'
export { TOKEN_PATTERN } from './tokens'
export { MAX_BUSY_POLL, TAP_NAME } from './endpoints'
export { isVxlanName, vtepPolicy } from './vxlan'
export { defaultStateDir } from './service'

const log = logger('config')

const TOP_KEYS = ['listen', 'pingInterval', 'portBuffer', 'dynamicNetworks', 'maxNetworks', 'network', 'networks', 'port', 'profiles',
  'adminToken', 'api', 'allowedHosts', 'allowedOrigins', 'trustedProxies', 'metricsListen', 'metrics', 'tokens', 'tokensFile', 'allowAnonymous', 'limits', 'tls', 'resumeGrace', 'qemu', 'taps', 'trunks', 'bridgePriority', 'busyPoll', 'fastPath', 'stateDir', 'vxlan']

/** Validate `raw` (parsed JSON, or {} for no file) and apply `overrides`; throws TSW_ERR_CONFIG naming the key. */
export function buildConfig (raw: unknown, source: string, overrides: ConfigOverrides = {}): SwitchdConfig {
  const r = new Reader(source)
  const top = r.object(raw, '', TOP_KEYS)
  const { networkDefaults, networks, gateways } = readNetworks(r, top, overrides)
  const defaultPolicy = readPolicy(r, top.port, 'port', DEFAULT_POLICY)
  const profiles = readProfiles(r, top.profiles, defaultPolicy)
  const config: SwitchdConfig = Object.freeze({
    ...readAccess(r, top, overrides, defaultPolicy),
    ...readService(r, top, overrides),
    limits: readLimits(r, top.limits),
    ...readEndpoints(r, top, overrides, gateways),
    vxlan: Object.freeze(readVxlan(r, top.vxlan, overrides)),
    gateways: Object.freeze(gateways),
    networkDefaults,
    networks,
    defaultPolicy,
    profiles: Object.freeze(profiles),
    replica: readReplica(overrides.replica),
    fleet: readFleet(overrides)
  })
  checkGatewayNames(r, config)
  checkVxlanNames(r, config)
  for (const p of unreachableProfiles(config)) {
    log.warn('profile_unreachable', {
      source,
      match: p.match,
      fix: 'no port can get it: a hello name is a claim. Pin the name in a token ("name"), or add "claimable": true to let any client that names itself take it'
    })
  }
  return config
}

/** Read and validate a config file; errors name the file, and the key or the JSON problem. */
export function loadConfig (path: string | undefined, overrides: ConfigOverrides = {}): SwitchdConfig {
  if (path === undefined) return buildConfig({}, '(defaults)', overrides)
  return buildConfig(readJsonFile(path, undefined, path), path, overrides)
}
