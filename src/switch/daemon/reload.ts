/**
 * A configuration reload (SIGHUP), in two phases: checkReload() does
 * everything that can fail (keys only a restart can change, exposure, the
 * TLS files and their secure context) and applies nothing; switchd.ts then
 * applies it, and each port's token is granted again (regrant()).
 *
 * A key that cannot change on reload is one row of RESTART_KEYS (or of an
 * endpoint kind's `keys`, endpoints.ts).
 */

import * as tls from 'node:tls'
import type { SwitchdConfig } from '../control/config'
import type { Networks } from '../control/networks'
import { checkExposure } from '../control/exposure'
import type { NetPort } from '../io/net-port'
import { ENDPOINT_KINDS } from './endpoints'
import { tlsOptions } from './http'
import { TapswitchError, ERR_CONFIG } from '../../common/errors'

type Key = readonly [string, (c: SwitchdConfig) => unknown]

/** The keys a reload may not change (besides TLS's presence and networks' own, below), in the order a refusal names them. */
const RESTART_KEYS: readonly Key[] = [
  ['listen', (c) => c.listen],
  ['metricsListen', (c) => c.metricsListen],
  ...ENDPOINT_KINDS.flatMap((k) => k.keys),
  ['stateDir', (c) => c.stateDir],
  ['bridgePriority', (c) => c.bridgePriority],
  ['replica', (c) => c.replica],
  ['fleet', (c) => c.fleet]
]

/** The keys whose value differs between `now` and `next` and that only a restart may change. */
export function restartNeeded (now: SwitchdConfig, next: SwitchdConfig, networks: Networks): string[] {
  const restart: string[] = []
  if ((next.tls === undefined) !== (now.tls === undefined)) restart.push(next.tls === undefined ? 'tls (removed)' : 'tls (added)')
  else if ((next.tls?.clientCa === undefined) !== (now.tls?.clientCa === undefined)) restart.push('tls.clientCa')
  for (const [key, read] of RESTART_KEYS) if (JSON.stringify(read(next)) !== JSON.stringify(read(now))) restart.push(key)
  restart.push(...networks.restartNeeded(next))
  return restart
}

/**
 * Phase one of a reload: throws TSW_ERR_CONFIG, naming the cause, if
 * `config` cannot be applied as a whole; returns the TLS options to install.
 */
export function checkReload (now: SwitchdConfig, config: SwitchdConfig, networks: Networks, listenHost: string): tls.SecureContextOptions | undefined {
  const restart = restartNeeded(now, config, networks)
  if (restart.length > 0) {
    throw new TapswitchError(ERR_CONFIG, `${restart.join(', ')} change only on restart: restart switchd to apply them, or put them back (nothing was applied)`)
  }
  // e.g. removing the admin token while client tokens remain would open the API.
  checkExposure(config, listenHost)
  if (config.tls === undefined) return undefined
  const opts = tlsOptions(config)
  const secure = { cert: opts.cert, key: opts.key, ...(opts.ca !== undefined ? { ca: opts.ca } : {}) }
  try {
    tls.createSecureContext(secure)
  } catch (err) {
    throw new TapswitchError(ERR_CONFIG, `TLS ${config.tls.cert} / ${config.tls.key}: ${(err as Error).message} (a certificate and its own key are needed; nothing was applied)`)
  }
  return secure
}

/**
 * Re-apply a port's token on reload; returns why the port must close, if it
 * must. The token is found by its digest: one whose digest is gone is
 * revoked (so rotating a token's sha256 under the same id disconnects the old
 * holder). A token that stays may not move its port to another network or
 * name; its MACs, rate and id are re-applied here, its VLAN policy by
 * networks.reload. With tokens newly required, a port that has none goes.
 */
export function regrant (p: NetPort, before: SwitchdConfig, config: SwitchdConfig): string | undefined {
  if (p.grantDigest === undefined) {
    return config.tokens.size > 0 && (p.kind === 'raw' || p.kind === 'tapswitch') ? 'a token is now required' : undefined
  }
  const g = config.tokens.get(p.grantDigest)
  if (g === undefined) return 'token revoked'
  if (g.network !== undefined && g.network !== p.network.name) return `token now for network "${g.network}"`
  if (g.name !== before.tokens.get(p.grantDigest)?.name) return 'token now gives another port name; reconnect'
  if (p.stp !== null && !g.trunk) return 'token may no longer connect a trunk'
  const macsChanged = [...(p.allowedMacs ?? [])].join() !== [...(g.macs ?? [])].join()
  p.grantId = g.id
  p.allowedMacs = g.macs ?? null
  if (p.rateBps !== g.rate) { p.rateBps = g.rate; p.rateTokens = Math.min(p.rateTokens, g.rate) }
  // MACs it may no longer use must not keep their fdb entries.
  if (macsChanged) p.network.fdb.deletePort(p)
  return undefined
}
