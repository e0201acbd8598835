/**
 * switchd's configuration: a JSON file (docs/CONFIGURATION.md), merged over
 * defaults, validated with errors that name the offending key, then frozen.
 * Command-line flags override the file's common settings.
 *
 * One job per file: reader.ts (the typed reader and its errors), network.ts
 * (networks and their settings), profiles.ts (port policies, profiles, what a
 * hello may be granted), tokens.ts (client tokens and the token rule),
 * endpoints.ts (QEMU listeners, trunks). This file holds the configuration's
 * type, its defaults and buildConfig / loadConfig, which put them together.
 */

import * as os from 'node:os'
import * as path from 'node:path'
import { Reader, readList, readJsonFile, type Obj } from './reader'
import { readNetwork, readStatics, readGuards, NETWORK_NAME, DEFAULT_NETWORK, type NetworkSettings } from './network'
import { readPolicy, readProfiles, unreachableProfiles, type Profile } from './profiles'
import { readTokenLists, TOKEN_PATTERN } from './tokens'
import { readQemu, readTaps, readTrunks, MAX_BUSY_POLL, type QemuSpec, type TapSpec, type TrunkSpec } from './endpoints'
import type { TokenGrant } from '../auth'
import { DEFAULT_MAX_FRAME_SIZE } from '../../../common/protocol'
import { DEFAULT_AGEING_TIME, DEFAULT_MAX_ENTRIES, DEFAULT_LOOP_MOVES, DEFAULT_LOOP_WINDOW_MS, DEFAULT_MOVE_HOLD_MS } from '../../core/fdb'
import { DEFAULT_LOOP_HOLD_DOWN, DEFAULT_GROUP_FWD_MASK } from '../../core/switch'
import { DEFAULT_POLICY, type PortPolicy } from '../../core/port'
import { DEFAULT_HIGH_WATER_MARK } from '../../../common/defaults'
import { DEFAULT_BRIDGE_PRIORITY } from '../../core/stp'
import { DEFAULT_HELD_TOTAL, DEFAULT_HELD_PER_CLIENT, MAX_HELD_BYTES } from '../../core/held-queue'
import { readGateway, checkHostPortsPublished, type GatewaySpec } from './gateway'
import { defaultPendingPerAddress } from '../admission'
import { logger } from '../../../common/log'

export { NETWORK_NAME, DEFAULT_NETWORK, networkSettings, type NetworkSettings } from './network'
export { profileFor, claimableName, grantPolicy, trunkPolicy, unreachableProfiles, isReservedName, type Profile } from './profiles'
export { TOKEN_PATTERN } from './tokens'
export { MAX_BUSY_POLL, TAP_NAME, type TapSpec } from './endpoints'
export type { QemuSpec, TrunkSpec, ListenAddress } from './endpoints'

const log = logger('config')

export interface SwitchdConfig {
  listen: string
  pingInterval: number
  portBuffer: number
  /** Whether /net/<name> not listed in `networks` is created on first use. */
  dynamicNetworks: boolean
  /** Most networks at once (bounds memory when dynamic). */
  maxNetworks: number
  /** Settings of networks not listed (dynamic ones, and the default). */
  networkDefaults: Omit<NetworkSettings, 'name' | 'statics'>
  networks: ReadonlyMap<string, NetworkSettings>
  defaultPolicy: PortPolicy
  profiles: readonly Profile[]
  /** Bearer token the admin API and /metrics require; undefined = open, allowed only on loopback without client tokens (exposure.ts). */
  adminToken: string | undefined
  /** Serve the admin API (/api) at all; false = /api answers 404. */
  api: boolean
  /** Host header names (besides IP literals and localhost) requests may carry: DNS-rebinding guard. "*" = any, ".example.org" = it and its subdomains. */
  allowedHosts: readonly string[]
  /** Origins (`scheme://host[:port]`, or "*") from which browsers may open ports and call the API; requests without Origin are not browsers. */
  allowedOrigins: readonly string[]
  /** Serve /metrics on its own address instead of `listen`. */
  metricsListen: string | undefined
  /** Per-port metric series, and the port count beyond which they are left out. */
  perPortMetrics: boolean
  maxPortSeries: number
  /** Client tokens by SHA-256 digest; empty = no authentication. */
  tokens: ReadonlyMap<string, TokenGrant>
  /** Listen on a non-loopback address without tokens. */
  allowAnonymous: boolean
  limits: Limits
  /** TLS certificate and key (PEM files); undefined = plain ws:// and http://. */
  tls: TlsFiles | undefined
  /** Seconds a disconnected tapswitch-mode port is kept for its agent to resume; 0 = off. */
  resumeGrace: number
  /** QEMU VMs connecting straight to switchd: one listening socket (and port) each. */
  qemu: readonly QemuSpec[]
  /** TAPs on switchd's own host that switchd serves itself (no agent): one port each (docs/LOCAL-TAPS.md). */
  taps: readonly TapSpec[]
  /** Trunks this switchd dials to other switchd (`--uplink`). */
  trunks: readonly TrunkSpec[]
  /** Spanning-tree priority of this switchd: the lowest priority (then id) is the root. */
  bridgePriority: number
  /**
   * µs the event loop keeps polling after traffic from a local TAP, instead of
   * sleeping (native/busy_poll.h); 0 = off. Spins a core while traffic flows.
   */
  busyPoll: number
  /**
   * Local TAPs of a network are read by a native thread that forwards known
   * unicast between them by itself (native/fastpath.cc, docs/LOCAL-TAPS.md);
   * false: they are read on the event loop as every other port.
   */
  fastPath: boolean
  /** Gateways (DHCP, DNS, NAT, published ports) of listed networks: `networks.NAME.gateway` (docs/GATEWAY.md). */
  gateways: readonly GatewaySpec[]
  /** switchd's state directory (absolute): the gateways' leases live in `<stateDir>/leases/<network>.json`. */
  stateDir: string
}

export interface Limits {
  /** Ports on the whole switchd. */
  maxPorts: number
  /** Ports per client IP address. */
  maxPortsPerAddress: number
  /** Seconds from the upgrade to a valid hello; also the time an HTTP request has to arrive whole. */
  handshakeTimeout: number
  /** Connections not yet upgraded (nor closed) at once; beyond, new ones are closed at once. */
  maxPending: number
  /** Of them, from one client address (addressKey); below maxPending, so one address never takes the pool. */
  maxPendingPerAddress: number
  /** Live captures at once (each copies every frame of its network). */
  maxCaptures: number
  /** Seconds a port may read nothing while switchd holds more than portBuffer for it, before it is closed (4004). */
  notReadingTimeout: number
  /** Bytes all link-condition queues may hold together (core/held-queue.ts). */
  conditionBytes: number
  /** Bytes the link-condition queues of one client address's ports may hold together. */
  conditionBytesPerAddress: number
}

export interface TlsFiles {
  cert: string
  key: string
  /** CA bundle to verify client certificates against (optional mutual TLS). */
  clientCa: string | undefined
}

/** Flags that override the file. */
export interface ConfigOverrides {
  listen?: string
  maxFrameSize?: number
  ageingTime?: number
  fdbMax?: number
  portBuffer?: number
  pingInterval?: number
  adminToken?: string
  metricsListen?: string
  allowAnonymous?: boolean
  /** false = no admin API (--no-api). */
  api?: boolean
  /** Comma-separated (--allowed-hosts). */
  allowedHosts?: string
  /** Comma-separated (--allowed-origins). */
  allowedOrigins?: string
  tlsCert?: string
  tlsKey?: string
  tokensFile?: string
  /** `NAME=unix:PATH` or `NAME=tcp:HOST:PORT`, comma-separated. */
  qemuListen?: string
  /** `--tap NAME,…`: TAPs switchd opens and serves itself, in the default network (replaces the file's `taps`). */
  taps?: string
  /** Trunk URLs, comma-separated; each is one trunk (added to the file's `trunks`). */
  uplink?: string
  uplinkToken?: string
  uplinkCa?: string
  bridgePriority?: number
  busyPoll?: number
  fastPath?: boolean
  /** --state-dir, absolute. */
  stateDir?: string
}

/**
 * switchd's state directory when none is configured: systemd's
 * $STATE_DIRECTORY (StateDirectory=), else /var/lib/tapswitch for root,
 * else $XDG_STATE_HOME/tapswitch or ~/.local/state/tapswitch.
 */
export function defaultStateDir (env: NodeJS.ProcessEnv = process.env, uid: number = process.getuid?.() ?? -1): string {
  const systemd = env.STATE_DIRECTORY?.split(':')[0]
  if (systemd !== undefined && path.isAbsolute(systemd)) return systemd
  if (uid === 0) return '/var/lib/tapswitch'
  const xdg = env.XDG_STATE_HOME
  const base = xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(env.HOME ?? os.homedir(), '.local', 'state')
  return path.join(base, 'tapswitch')
}

const TOP_KEYS = ['listen', 'pingInterval', 'portBuffer', 'dynamicNetworks', 'maxNetworks', 'network', 'networks', 'port', 'profiles',
  'adminToken', 'api', 'allowedHosts', 'allowedOrigins', 'metricsListen', 'metrics', 'tokens', 'tokensFile', 'allowAnonymous', 'limits', 'tls', 'resumeGrace', 'qemu', 'taps', 'trunks', 'bridgePriority', 'busyPoll', 'fastPath', 'stateDir']

/** Validate `raw` (parsed JSON, or {} for no file) and apply `overrides`; throws TSW_ERR_CONFIG naming the key. */
export function buildConfig (raw: unknown, source: string, overrides: ConfigOverrides = {}): SwitchdConfig {
  const r = new Reader(source)
  const top = r.object(raw, '', TOP_KEYS)
  const builtIn = {
    maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
    ageingTime: DEFAULT_AGEING_TIME,
    fdbMax: DEFAULT_MAX_ENTRIES,
    loopMoves: DEFAULT_LOOP_MOVES,
    loopWindow: DEFAULT_LOOP_WINDOW_MS,
    loopHoldDown: DEFAULT_LOOP_HOLD_DOWN,
    groupFwdMask: DEFAULT_GROUP_FWD_MASK,
    moveHold: DEFAULT_MOVE_HOLD_MS
  }
  const fileDefaults = readNetwork(r, top.network, 'network', builtIn)
  const networkDefaults = Object.freeze({
    ...fileDefaults,
    maxFrameSize: overrides.maxFrameSize ?? fileDefaults.maxFrameSize,
    ageingTime: overrides.ageingTime ?? fileDefaults.ageingTime,
    fdbMax: overrides.fdbMax ?? fileDefaults.fdbMax
  })
  const networks = new Map<string, NetworkSettings>()
  const gateways: GatewaySpec[] = []
  const listed = r.object(top.networks ?? {}, 'networks', Object.keys((top.networks ?? {}) as Obj))
  for (const [name, v] of Object.entries(listed)) {
    const key = `networks.${name}`
    if (!NETWORK_NAME.test(name)) r.fail(key, 'network names are 1-64 letters, digits, . _ -')
    const settings = readNetwork(r, v, key, networkDefaults, ['static', 'gateway', 'guards'])
    const statics = readStatics(r, (v as Obj | undefined)?.static, `${key}.static`)
    const gatewayRaw = (v as Obj | undefined)?.gateway
    const gateway = gatewayRaw === undefined ? undefined : readGateway((k, e) => r.fail(k, e), gatewayRaw, `${key}.gateway`, name)
    if (gateway !== undefined) gateways.push(gateway)
    const guards = readGuards(r, (v as Obj | undefined)?.guards, `${key}.guards`, gateway)
    networks.set(name, Object.freeze({ name, ...settings, statics, ...(guards !== undefined ? { guards } : {}) }))
  }
  const published = new Map<string, string>()
  for (const g of gateways) {
    for (const [i, p] of g.publish.entries()) {
      const id = `${p.proto} ${p.hostAddress}:${p.hostPort}`
      const other = published.get(id)
      if (other !== undefined) r.fail(`networks.${g.network}.gateway.publish[${i}].host`, `${id} is published by ${other} too`)
      published.set(id, `networks.${g.network}.gateway.publish[${i}]`)
    }
  }
  checkHostPortsPublished((k, e) => r.fail(k, e), gateways)
  if (!networks.has(DEFAULT_NETWORK)) networks.set(DEFAULT_NETWORK, Object.freeze({ name: DEFAULT_NETWORK, ...networkDefaults, statics: [] }))
  const defaultPolicy = readPolicy(r, top.port, 'port', DEFAULT_POLICY)
  const profiles = readProfiles(r, top.profiles, defaultPolicy)
  const metrics = r.object(top.metrics ?? {}, 'metrics', ['perPort', 'maxPortSeries'])
  const tokensFile = overrides.tokensFile ?? r.str(top.tokensFile, 'tokensFile', /^.+$/, undefined, 'a path')
  const tokens = readTokenLists(r, top.tokens, tokensFile, defaultPolicy)
  const limits = r.object(top.limits ?? {}, 'limits', ['maxPorts', 'maxPortsPerAddress', 'handshakeTimeout', 'maxPending', 'maxPendingPerAddress', 'maxCaptures', 'notReadingTimeout', 'conditionBytes', 'conditionBytesPerAddress'])
  const tlsRaw = top.tls === undefined ? undefined : r.object(top.tls, 'tls', ['cert', 'key', 'clientCa'])
  const tlsCert = overrides.tlsCert ?? r.str(tlsRaw?.cert, 'tls.cert', /^.+$/, undefined, 'a PEM file')
  const tlsKey = overrides.tlsKey ?? r.str(tlsRaw?.key, 'tls.key', /^.+$/, undefined, 'a PEM file')
  if ((tlsCert === undefined) !== (tlsKey === undefined)) r.fail('tls', 'needs both cert and key')
  const maxPending = r.int(limits.maxPending, 'limits.maxPending', 1, 1_000_000, 1024)
  // Below the pool (but at least 1): one address may never take all of it.
  const maxPendingPerAddress = r.int(limits.maxPendingPerAddress, 'limits.maxPendingPerAddress', 1, Math.max(1, maxPending - 1), defaultPendingPerAddress(maxPending))
  const adminToken = overrides.adminToken ?? r.str(top.adminToken, 'adminToken', TOKEN_PATTERN, undefined, 'a token of at least 16 characters without spaces')
  if (overrides.adminToken !== undefined && !TOKEN_PATTERN.test(overrides.adminToken)) r.fail('admin token', 'at least 16 characters without spaces')
  const config: SwitchdConfig = Object.freeze({
    adminToken,
    api: overrides.api ?? r.bool(top.api, 'api', true),
    allowedHosts: readList(r, top.allowedHosts, overrides.allowedHosts, 'allowedHosts', /^(\*|\.?[A-Za-z0-9]([A-Za-z0-9.-]{0,252}))$/, 'host names like "switch.example.org", ".example.org" (and subdomains) or "*"'),
    allowedOrigins: readList(r, top.allowedOrigins, overrides.allowedOrigins, 'allowedOrigins', /^(\*|https?:\/\/[^/\s]+)$/, 'origins like "http://localhost:8000" (scheme://host[:port], no path) or "*"'),
    metricsListen: overrides.metricsListen ?? r.str(top.metricsListen, 'metricsListen', /^.+:\d+$/, undefined, 'HOST:PORT'),
    perPortMetrics: r.bool(metrics.perPort, 'metrics.perPort', true),
    maxPortSeries: r.int(metrics.maxPortSeries, 'metrics.maxPortSeries', 0, 1_000_000, 1000),
    tokens,
    allowAnonymous: overrides.allowAnonymous ?? r.bool(top.allowAnonymous, 'allowAnonymous', false),
    limits: Object.freeze({
      maxPorts: r.int(limits.maxPorts, 'limits.maxPorts', 1, 1_000_000, 10_000),
      maxPortsPerAddress: r.int(limits.maxPortsPerAddress, 'limits.maxPortsPerAddress', 1, 1_000_000, 1000),
      handshakeTimeout: r.num(limits.handshakeTimeout, 'limits.handshakeTimeout', 0.1, 3600, 10),
      maxPending,
      maxPendingPerAddress,
      maxCaptures: r.int(limits.maxCaptures, 'limits.maxCaptures', 0, 1000, 4),
      notReadingTimeout: r.num(limits.notReadingTimeout, 'limits.notReadingTimeout', 1, 86_400, 30),
      conditionBytes: r.int(limits.conditionBytes, 'limits.conditionBytes', 0, MAX_HELD_BYTES, DEFAULT_HELD_TOTAL),
      conditionBytesPerAddress: r.int(limits.conditionBytesPerAddress, 'limits.conditionBytesPerAddress', 0, MAX_HELD_BYTES, DEFAULT_HELD_PER_CLIENT)
    }),
    tls: tlsCert === undefined ? undefined : Object.freeze({ cert: tlsCert, key: tlsKey as string, clientCa: r.str(tlsRaw?.clientCa, 'tls.clientCa', /^.+$/, undefined, 'a PEM file') }),
    resumeGrace: r.num(top.resumeGrace, 'resumeGrace', 0, 3600, 30),
    qemu: Object.freeze(readQemu(r, top.qemu, overrides.qemuListen)),
    taps: Object.freeze(readTaps(r, top.taps, overrides.taps)),
    trunks: Object.freeze(readTrunks(r, top.trunks, overrides)),
    bridgePriority: overrides.bridgePriority ?? r.int(top.bridgePriority, 'bridgePriority', 0, 65535, DEFAULT_BRIDGE_PRIORITY),
    gateways: Object.freeze(gateways),
    stateDir: overrides.stateDir ?? r.str(top.stateDir, 'stateDir', /^\//, undefined, 'an absolute path (switchd\'s state directory)') ?? defaultStateDir(),
    busyPoll: overrides.busyPoll ?? r.int(top.busyPoll, 'busyPoll', 0, MAX_BUSY_POLL, 0),
    fastPath: overrides.fastPath ?? r.bool(top.fastPath, 'fastPath', true),
    listen: overrides.listen ?? r.str(top.listen, 'listen', /^.+:\d+$/, '127.0.0.1:8080', 'HOST:PORT') as string,
    pingInterval: overrides.pingInterval ?? r.int(top.pingInterval, 'pingInterval', 1, 3600, 3),
    portBuffer: overrides.portBuffer ?? r.int(top.portBuffer, 'portBuffer', 16 * 1024, 1024 * 1024 * 1024, DEFAULT_HIGH_WATER_MARK),
    dynamicNetworks: r.bool(top.dynamicNetworks, 'dynamicNetworks', true),
    maxNetworks: r.int(top.maxNetworks, 'maxNetworks', 1, 100_000, 256),
    networkDefaults,
    networks,
    defaultPolicy,
    profiles: Object.freeze(profiles)
  })
  // One name, one port: a TAP named like a QEMU listener or a gateway would make static entries and profiles ambiguous.
  config.taps.forEach((t, i) => {
    if (config.qemu.some((q) => q.name === t.name)) r.fail(`taps[${i}].name`, `"${t.name}" is also a qemu port's name`)
    if (config.gateways.some((g) => g.name === t.name && g.network === t.network)) r.fail(`taps[${i}].name`, `"${t.name}" is the name of network ${t.network}'s gateway port`)
  })
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
