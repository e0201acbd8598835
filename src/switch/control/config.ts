/**
 * switchd's configuration: a JSON file (see README "Configuration"), merged
 * over defaults, validated with errors that name the offending key, then
 * frozen. Command-line flags override the file's common settings.
 *
 * Also here: resolving a port's policy from the port profiles, and granting
 * what an agent asks for in its hello only within what its profile allows,
 * so a client cannot put itself into a VLAN it was not given.
 */

import { readFileSync } from 'node:fs'
import * as path from 'node:path'
import { sha256Hex, type TokenGrant } from './auth'
import type { ListenAddress } from '../io/qemu-listener'
import { isLoopback } from '../../common/address'
import { TapswitchError, ERR_CONFIG } from '../../common/errors'
import { parseMac, macAt } from '../../common/ethernet'
import { VID_MIN, VID_MAX } from '../../common/vlan'
import { DEFAULT_MAX_FRAME_SIZE, MAX_FRAME_SIZE_LIMIT, NAME_PATTERN, type VlanRequest } from '../../common/protocol'
import { DEFAULT_AGEING_TIME, DEFAULT_MAX_ENTRIES, DEFAULT_LOOP_MOVES, DEFAULT_LOOP_WINDOW_MS, DEFAULT_MOVE_HOLD_MS, MAX_STATIC_ENTRIES } from '../core/fdb'
import { DEFAULT_LOOP_HOLD_DOWN } from '../core/switch'
import type { StaticEntry } from '../core/statics'
import { DEFAULT_POLICY, MODE_ACCESS, MODE_TRUNK, type PortPolicy } from '../core/port'
import { DEFAULT_HIGH_WATER_MARK } from './defaults'
import { DEFAULT_BRIDGE_PRIORITY } from '../core/stp'
import { logger } from '../../common/log'

const log = logger('config')

export const NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
export const DEFAULT_NETWORK = 'default'
/** Largest busyPoll, µs: longer than any idle gap worth bridging by spinning. */
export const MAX_BUSY_POLL = 100_000

export interface NetworkSettings {
  name: string
  maxFrameSize: number
  ageingTime: number
  fdbMax: number
  loopMoves: number
  /** ms */
  loopWindow: number
  /** s */
  loopHoldDown: number
  /** ms a MAC's port must have been quiet before another port may take the MAC (fdb.ts) */
  moveHold: number
  statics: readonly StaticEntry[]
}

export interface Profile {
  /** The glob as written, for messages. */
  match: string
  pattern: RegExp
  network: string | undefined
  policy: PortPolicy
  /**
   * Whether a port that merely names itself (a hello name: a claim) gets it.
   * Otherwise only names switchd or the configuration gives (token pins,
   * QEMU names, names switchd makes up) do: see README "Port profiles".
   */
  claimable: boolean
}

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
}

/** A trunk to another switchd: like an agent's uplink, for one of our networks. */
export interface TrunkSpec {
  /** ws:// or wss:// URL of the other switch's network (`/net/NAME`, or `/` for default). */
  url: string
  /** Our network it joins; by default the one the URL path names. */
  network: string
  /** Port name to ask the other switch for; default `trunk-<hostname>`. */
  name: string | undefined
  token: string | undefined
  /** PEM file of the CA to trust for wss:// instead of the system's. */
  ca: string | undefined
  /**
   * VLANs we carry on it, whatever the other switch grants (we take the
   * intersection); undefined = what our own profile for the trunk's port
   * name allows. The other switch must not choose our VLANs for us.
   */
  vlans: readonly number[] | undefined
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
  /** Live captures at once (each copies every frame of its network). */
  maxCaptures: number
  /** Seconds a port may read nothing while switchd holds more than portBuffer for it, before it is closed (4004). */
  notReadingTimeout: number
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
}

type Obj = Record<string, unknown>

class Reader {
  constructor (readonly source: string) {}

  fail (key: string, expected: string): never {
    throw new TapswitchError(ERR_CONFIG, `${this.source}: ${key}: ${expected}`)
  }

  object (v: unknown, key: string, allowed: readonly string[]): Obj {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(key, 'expected an object')
    for (const k of Object.keys(v)) {
      if (!allowed.includes(k)) this.fail(key === '' ? k : `${key}.${k}`, `unknown key (expected one of ${allowed.join(', ')})`)
    }
    return v as Obj
  }

  int (v: unknown, key: string, min: number, max: number, def: number): number {
    if (v === undefined) return def
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) this.fail(key, `expected an integer from ${min} to ${max}`)
    return v
  }

  num (v: unknown, key: string, min: number, max: number, def: number): number {
    if (v === undefined) return def
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) this.fail(key, `expected a number from ${min} to ${max}`)
    return v
  }

  bool (v: unknown, key: string, def: boolean): boolean {
    if (v === undefined) return def
    if (typeof v !== 'boolean') this.fail(key, 'expected true or false')
    return v
  }

  str (v: unknown, key: string, pattern: RegExp, def: string | undefined, what: string): string | undefined {
    if (v === undefined) return def
    if (typeof v !== 'string' || !pattern.test(v)) this.fail(key, `expected ${what}`)
    return v
  }

  vid (v: unknown, key: string): number {
    return this.int(v, key, VID_MIN, VID_MAX, 0)
  }

  vids (v: unknown, key: string): number[] {
    if (!Array.isArray(v) || v.length === 0) this.fail(key, `expected a non-empty list of VLAN ids ${VID_MIN}-${VID_MAX}`)
    const out = v.map((x, i) => this.vid(x, `${key}[${i}]`))
    return [...new Set(out)].sort((a, b) => a - b)
  }
}

const LOOP_KEYS = ['moves', 'window', 'holdDown', 'moveHold']
const NETWORK_KEYS = ['maxFrameSize', 'ageingTime', 'fdbMax', 'loop']
const PORT_KEYS = ['mode', 'vlan', 'vlans', 'native', 'maxMacs', 'violation', 'storm']
const STORM_KEYS = ['broadcast', 'multicast', 'unknownUnicast']
const TOP_KEYS = ['listen', 'pingInterval', 'portBuffer', 'dynamicNetworks', 'maxNetworks', 'network', 'networks', 'port', 'profiles',
  'adminToken', 'api', 'allowedHosts', 'allowedOrigins', 'metricsListen', 'metrics', 'tokens', 'tokensFile', 'allowAnonymous', 'limits', 'tls', 'resumeGrace', 'qemu', 'taps', 'trunks', 'bridgePriority', 'busyPoll']
const TOKEN_KEYS = ['id', 'token', 'sha256', 'network', 'name', 'macs', 'rate', 'trunk', 'rootGuard', ...PORT_KEYS]
const TRUNK_KEYS = ['url', 'network', 'name', 'token', 'ca', 'vlans']
/** Keys of a profile beyond the port policy's: claims (finding 2) and trunk participation (finding 8) are opt-in per profile. */
const PROFILE_KEYS = ['match', 'network', 'claimable', 'trunk', 'rootGuard']

function readNetwork (r: Reader, v: unknown, key: string, base: Omit<NetworkSettings, 'name' | 'statics'>, extraKeys: string[] = []): Omit<NetworkSettings, 'name' | 'statics'> {
  const o = r.object(v ?? {}, key, [...NETWORK_KEYS, ...extraKeys])
  const loop = r.object(o.loop ?? {}, `${key}.loop`, LOOP_KEYS)
  return {
    maxFrameSize: r.int(o.maxFrameSize, `${key}.maxFrameSize`, 64, MAX_FRAME_SIZE_LIMIT, base.maxFrameSize),
    ageingTime: r.int(o.ageingTime, `${key}.ageingTime`, 1, 1_000_000, base.ageingTime),
    fdbMax: r.int(o.fdbMax, `${key}.fdbMax`, 1, 10_000_000, base.fdbMax),
    loopMoves: r.int(loop.moves, `${key}.loop.moves`, 2, 1_000_000, base.loopMoves),
    loopWindow: r.num(loop.window, `${key}.loop.window`, 0.01, 3600, base.loopWindow / 1000) * 1000,
    loopHoldDown: r.num(loop.holdDown, `${key}.loop.holdDown`, 0.1, 86_400, base.loopHoldDown),
    moveHold: r.num(loop.moveHold, `${key}.loop.moveHold`, 0, 3600, base.moveHold / 1000) * 1000
  }
}

function readPolicy (r: Reader, v: unknown, key: string, base: PortPolicy, extraKeys: string[] = []): PortPolicy {
  const o = r.object(v ?? {}, key, [...PORT_KEYS, ...extraKeys])
  const mode = r.str(o.mode, `${key}.mode`, /^(access|trunk)$/, base.mode === MODE_TRUNK ? 'trunk' : 'access', '"access" or "trunk"')
  const storm = r.object(o.storm ?? {}, `${key}.storm`, STORM_KEYS)
  const common = {
    maxMacs: r.int(o.maxMacs, `${key}.maxMacs`, 1, 1_000_000, base.maxMacs),
    violation: r.str(o.violation, `${key}.violation`, /^(drop|shutdown)$/, base.violation, '"drop" or "shutdown"') as 'drop' | 'shutdown',
    stormBroadcast: r.int(storm.broadcast, `${key}.storm.broadcast`, 0, 100_000_000, base.stormBroadcast),
    stormMulticast: r.int(storm.multicast, `${key}.storm.multicast`, 0, 100_000_000, base.stormMulticast),
    stormUnknownUnicast: r.int(storm.unknownUnicast, `${key}.storm.unknownUnicast`, 0, 100_000_000, base.stormUnknownUnicast)
  }
  if (mode === 'access') {
    if (o.vlans !== undefined) r.fail(`${key}.vlans`, 'only for mode "trunk" (use vlan for an access port)')
    if (o.native !== undefined) r.fail(`${key}.native`, 'only for mode "trunk"')
    const vid = o.vlan === undefined ? (base.mode === MODE_ACCESS ? base.pvid : 1) : r.vid(o.vlan, `${key}.vlan`)
    return Object.freeze({ mode: MODE_ACCESS, pvid: vid, vlans: Object.freeze([vid]), ...common })
  }
  if (o.vlan !== undefined) r.fail(`${key}.vlan`, 'only for mode "access" (use vlans and native for a trunk)')
  const vlans = o.vlans === undefined ? (base.mode === MODE_TRUNK ? [...base.vlans] : r.fail(`${key}.vlans`, 'a trunk needs its list of VLANs')) : r.vids(o.vlans, `${key}.vlans`)
  const native = o.native === undefined ? 0 : r.vid(o.native, `${key}.native`)
  const all = native !== 0 && !vlans.includes(native) ? [...vlans, native].sort((a, b) => a - b) : vlans
  return Object.freeze({ mode: MODE_TRUNK, pvid: native, vlans: Object.freeze(all), ...common })
}

function globToRegExp (glob: string): RegExp {
  return new RegExp('^' + glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + '$')
}

function readTokens (r: Reader, v: unknown, key: string, defaultPolicy: PortPolicy, into: Map<string, TokenGrant>, ids: Map<string, string>): void {
  if (v === undefined) return
  if (!Array.isArray(v)) r.fail(key, 'expected a list of {id, token | sha256, network?, name?, macs?, rate?, …port policy}')
  v.forEach((t: unknown, i: number) => {
    const k = `${key}[${i}]`
    const o = r.object(t, k, TOKEN_KEYS)
    let digest: string
    if (o.token !== undefined) {
      digest = sha256Hex(r.str(o.token, `${k}.token`, /^\S{16,}$/, undefined, 'at least 16 characters without spaces (e.g. openssl rand -hex 32)') as string)
    } else if (o.sha256 !== undefined) {
      digest = (r.str(o.sha256, `${k}.sha256`, /^[0-9a-fA-F]{64}$/, undefined, 'the token\'s SHA-256 as 64 hex digits') as string).toLowerCase()
    } else {
      r.fail(k, 'needs token or sha256')
    }
    if (into.has(digest)) r.fail(k, 'the same token twice')
    // Not the list position: removing an earlier token must not hand this one's id (and logs, resume) to another.
    const id = r.str(o.id, `${k}.id`, /^[A-Za-z0-9._:@-]{1,64}$/, `sha256:${digest.slice(0, 12)}`, 'a short name for logs') as string
    const where = `${r.source}: ${k}`
    const other = ids.get(id)
    if (other !== undefined) r.fail(`${k}.id`, `"${id}" is also the id of ${other}: give each token its own id`)
    ids.set(id, where)
    const hasPolicy = PORT_KEYS.some((pk) => o[pk] !== undefined)
    const policyFields: Obj = {}
    for (const pk of PORT_KEYS) if (o[pk] !== undefined) policyFields[pk] = o[pk]
    let macs: Set<number> | undefined
    if (o.macs !== undefined) {
      if (!Array.isArray(o.macs) || o.macs.length === 0) r.fail(`${k}.macs`, 'expected a non-empty list of MACs')
      macs = new Set((o.macs as unknown[]).map((m, j) => {
        const b = typeof m === 'string' ? parseMac(m) : undefined
        if (b === undefined) r.fail(`${k}.macs[${j}]`, 'expected a MAC like 02:00:00:00:00:01')
        return macAt(b, 0)
      }))
    }
    into.set(digest, Object.freeze({
      id,
      digest,
      network: r.str(o.network, `${k}.network`, NETWORK_NAME, undefined, 'a network name'),
      name: r.str(o.name, `${k}.name`, NAME_PATTERN, undefined, 'a port name'),
      policy: hasPolicy ? readPolicy(r, policyFields, k, defaultPolicy) : undefined,
      macs,
      rate: r.int(o.rate, `${k}.rate`, 0, 100_000_000_000, 0),
      trunk: r.bool(o.trunk, `${k}.trunk`, false),
      rootGuard: r.bool(o.rootGuard, `${k}.rootGuard`, false)
    }))
  })
}

/** `unix:/path`, a bare absolute path, or `tcp:HOST:PORT`. */
function readListenAddress (r: Reader, v: unknown, key: string): ListenAddress {
  if (typeof v !== 'string') r.fail(key, 'expected unix:/path/to.sock or tcp:HOST:PORT')
  if (v.startsWith('unix:') && v.length > 5) return { kind: 'unix', path: v.slice(5) }
  if (v.startsWith('/')) return { kind: 'unix', path: v }
  const m = /^tcp:(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(v)
  if (m === null || Number(m[3]) > 65535) r.fail(key, 'expected unix:/path/to.sock or tcp:HOST:PORT')
  return { kind: 'tcp', host: (m[1] ?? m[2]) as string, port: Number(m[3]) }
}

/** One QEMU listener of `qemu` (or `--qemu-listen`). */
export interface QemuSpec {
  name: string
  network: string
  address: ListenAddress
  /** A tcp: address beyond loopback was asked for on purpose (`"allowRemote": true`). */
  allowRemote: boolean
  /** Mode of a unix: socket file: 0o600 (default, switchd's user only) or 0o660 (and its group). */
  socketMode: number
}

function readQemu (r: Reader, v: unknown, overrides: string | undefined): QemuSpec[] {
  const list: unknown[] = overrides !== undefined
    ? overrides.split(',').filter((x) => x !== '').map((x) => { const i = x.indexOf('='); return { name: x.slice(0, i), listen: x.slice(i + 1) } })
    : v === undefined ? [] : Array.isArray(v) ? v : r.fail('qemu', 'expected a list of {name, listen, network?}')
  const names = new Set<string>()
  return list.map((e, i) => {
    const k = `qemu[${i}]`
    const o = r.object(e, k, ['name', 'listen', 'network', 'allowRemote', 'socketMode'])
    const name = r.str(o.name, `${k}.name`, NAME_PATTERN, undefined, 'the port name (NAME=unix:/path with --qemu-listen)') ?? r.fail(`${k}.name`, 'required')
    if (names.has(name)) r.fail(`${k}.name`, `"${name}" twice`)
    names.add(name)
    const address = readListenAddress(r, o.listen, `${k}.listen`)
    const allowRemote = r.bool(o.allowRemote, `${k}.allowRemote`, false)
    // QEMU's -netdev stream has no authentication: whoever connects first is
    // the VM. Beyond loopback that is anyone who can reach the port, so it
    // takes an explicit opt-in, as listening without tokens does.
    if (address.kind === 'tcp' && !isLoopback(address.host) && !allowRemote) {
      r.fail(`${k}.listen`, `tcp:${address.host} is beyond loopback, and QEMU's stream has no authentication: anyone who reaches it ` +
        'could become this VM. Listen on 127.0.0.1 or a unix: socket, or set "allowRemote": true on this entry (config file)')
    }
    // Like a TAP's /dev/net/tun (0600) or libvirt's sockets: the socket file's
    // mode is who may be the VM. Never "other".
    const mode = r.str(o.socketMode, `${k}.socketMode`, /^0?6[06]0$/, '0600', '"0600" (owner only) or "0660" (owner and group)') as string
    return { name, network: r.str(o.network, `${k}.network`, NETWORK_NAME, DEFAULT_NETWORK, 'a network name') as string, address, allowRemote, socketMode: parseInt(mode, 8) }
  })
}

/** One TAP of `taps` (or `--tap`): switchd opens it and is its port, with no agent in between. */
export interface TapSpec {
  /** The interface name, and the port's name. */
  name: string
  network: string
  /** IFF_VNET_HDR and TSO: 'auto' when the kernel can, 'on' or fail, 'off' never (as tap-agent's --offload). */
  offload: 'auto' | 'on' | 'off'
  /** Bring the link up once opened (default true; false leaves it to whoever moves it into a namespace). */
  up: boolean
}

/**
 * A Linux interface name (IFNAMSIZ: 15 bytes), that is also a port name: no
 * '/', ':', '%' (the kernel's tap%d template) or white space, not '.' or '..'.
 */
export const TAP_NAME = /^(?!\.\.?$)[A-Za-z0-9][A-Za-z0-9._-]{0,14}$/

function readTaps (r: Reader, v: unknown, flag: string | undefined): TapSpec[] {
  const list: unknown[] = flag !== undefined
    ? flag.split(',').map((x) => x.trim()).filter((x) => x !== '').map((name) => ({ name }))
    : v === undefined ? [] : Array.isArray(v) ? v : r.fail('taps', 'expected a list of {name, network?, offload?, up?}')
  const names = new Set<string>()
  return list.map((e, i) => {
    const k = `taps[${i}]`
    const o = r.object(e, k, ['name', 'network', 'offload', 'up'])
    const name = r.str(o.name, `${k}.name`, TAP_NAME, undefined,
      'an interface name of 1-15 letters, digits, ".", "_" or "-" (--tap NAME,…)') ?? r.fail(`${k}.name`, 'required')
    if (names.has(name)) r.fail(`${k}.name`, `"${name}" twice`)
    names.add(name)
    const offload = r.str(o.offload, `${k}.offload`, /^(auto|on|off)$/, 'auto', '"auto", "on" or "off"') as TapSpec['offload']
    return { name, network: r.str(o.network, `${k}.network`, NETWORK_NAME, DEFAULT_NETWORK, 'a network name') as string, offload, up: r.bool(o.up, `${k}.up`, true) }
  })
}

function readTrunks (r: Reader, v: unknown, o: ConfigOverrides): TrunkSpec[] {
  const list: unknown[] = v === undefined ? [] : Array.isArray(v) ? [...v] : r.fail('trunks', 'expected a list of {url, network?, name?, token?, ca?, vlans?}')
  for (const url of (o.uplink ?? '').split(',').map((x) => x.trim()).filter((x) => x !== '')) {
    list.push({ url, ...(o.uplinkToken !== undefined ? { token: o.uplinkToken } : {}), ...(o.uplinkCa !== undefined ? { ca: o.uplinkCa } : {}) })
  }
  return list.map((e, i) => {
    const k = `trunks[${i}]`
    const t = r.object(e, k, TRUNK_KEYS)
    if (typeof t.url !== 'string') r.fail(`${k}.url`, 'required: ws://HOST:PORT/net/NAME or wss://…')
    let u: URL
    try { u = new URL(t.url) } catch { r.fail(`${k}.url`, `not a URL: ${t.url}`) }
    if (u.protocol !== 'ws:' && u.protocol !== 'wss:') r.fail(`${k}.url`, `expected ws:// or wss://, not ${u.protocol}`)
    const m = /^\/(?:net\/([^/]+)\/?)?$/.exec(u.pathname)
    if (m === null) r.fail(`${k}.url`, `the path must be / or /net/NAME, not ${u.pathname}`)
    const network = r.str(t.network, `${k}.network`, NETWORK_NAME, m[1] ?? DEFAULT_NETWORK, 'a network name') as string
    if (!NETWORK_NAME.test(network)) r.fail(`${k}.url`, `"${network}" is not a network name`)
    return Object.freeze({
      url: t.url,
      network,
      name: r.str(t.name, `${k}.name`, NAME_PATTERN, undefined, 'a port name'),
      token: r.str(t.token, `${k}.token`, /^\S+$/, undefined, 'a token without spaces'),
      ca: r.str(t.ca, `${k}.ca`, /^.+$/, undefined, 'a PEM file'),
      vlans: t.vlans === undefined ? undefined : Object.freeze(r.vids(t.vlans, `${k}.vlans`))
    })
  })
}

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
  const listed = r.object(top.networks ?? {}, 'networks', Object.keys((top.networks ?? {}) as Obj))
  for (const [name, v] of Object.entries(listed)) {
    const key = `networks.${name}`
    if (!NETWORK_NAME.test(name)) r.fail(key, 'network names are 1-64 letters, digits, . _ -')
    const settings = readNetwork(r, v, key, networkDefaults, ['static'])
    const statics = readStatics(r, (v as Obj | undefined)?.static, `${key}.static`)
    networks.set(name, Object.freeze({ name, ...settings, statics }))
  }
  if (!networks.has(DEFAULT_NETWORK)) networks.set(DEFAULT_NETWORK, Object.freeze({ name: DEFAULT_NETWORK, ...networkDefaults, statics: [] }))
  const defaultPolicy = readPolicy(r, top.port, 'port', DEFAULT_POLICY)
  const profilesRaw: unknown = top.profiles ?? []
  if (!Array.isArray(profilesRaw)) r.fail('profiles', 'expected a list')
  const profiles = (profilesRaw as unknown[]).map((p: unknown, i: number): Profile => {
    const key = `profiles[${i}]`
    const o = r.object(p, key, [...PORT_KEYS, ...PROFILE_KEYS])
    const match = r.str(o.match, `${key}.match`, /^[A-Za-z0-9._:@*?-]{1,64}$/, undefined, 'a port name glob, e.g. "lab-host-*"') ??
      r.fail(`${key}.match`, 'required: the port names this profile applies to')
    const network = r.str(o.network, `${key}.network`, NETWORK_NAME, undefined, 'a network name')
    const claimable = r.bool(o.claimable, `${key}.claimable`, false)
    const policy = readPolicy(r, o, key, defaultPolicy, PROFILE_KEYS)
    const trunk = r.bool(o.trunk, `${key}.trunk`, false)
    const rootGuard = r.bool(o.rootGuard, `${key}.rootGuard`, false)
    return Object.freeze({ match, pattern: globToRegExp(match), network, claimable, policy: trunk || rootGuard ? Object.freeze({ ...policy, trunk, rootGuard }) : policy })
  })
  const metrics = r.object(top.metrics ?? {}, 'metrics', ['perPort', 'maxPortSeries'])
  const tokens = new Map<string, TokenGrant>()
  const tokenIds = new Map<string, string>()
  readTokens(r, top.tokens, 'tokens', defaultPolicy, tokens, tokenIds)
  const tokensFile = overrides.tokensFile ?? r.str(top.tokensFile, 'tokensFile', /^.+$/, undefined, 'a path')
  if (tokensFile !== undefined) {
    const file = path.resolve(path.dirname(source.startsWith('(') ? '.' : source), tokensFile)
    let text = ''
    try { text = readFileSync(file, 'utf8') } catch (err) { r.fail('tokensFile', `${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`) }
    let list: unknown
    try { list = JSON.parse(text) } catch (err) { r.fail('tokensFile', `${file}: not valid JSON: ${(err as Error).message}`) }
    readTokens(new Reader(file), list, 'tokens', defaultPolicy, tokens, tokenIds)
  }
  const limits = r.object(top.limits ?? {}, 'limits', ['maxPorts', 'maxPortsPerAddress', 'handshakeTimeout', 'maxPending', 'maxCaptures', 'notReadingTimeout'])
  const tlsRaw = top.tls === undefined ? undefined : r.object(top.tls, 'tls', ['cert', 'key', 'clientCa'])
  const tlsCert = overrides.tlsCert ?? r.str(tlsRaw?.cert, 'tls.cert', /^.+$/, undefined, 'a PEM file')
  const tlsKey = overrides.tlsKey ?? r.str(tlsRaw?.key, 'tls.key', /^.+$/, undefined, 'a PEM file')
  if ((tlsCert === undefined) !== (tlsKey === undefined)) r.fail('tls', 'needs both cert and key')
  const adminToken = overrides.adminToken ?? r.str(top.adminToken, 'adminToken', /^\S{16,}$/, undefined, 'a token of at least 16 characters without spaces')
  if (overrides.adminToken !== undefined && !/^\S{16,}$/.test(overrides.adminToken)) r.fail('admin token', 'at least 16 characters without spaces')
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
      maxPending: r.int(limits.maxPending, 'limits.maxPending', 1, 1_000_000, 1024),
      maxCaptures: r.int(limits.maxCaptures, 'limits.maxCaptures', 0, 1000, 4),
      notReadingTimeout: r.num(limits.notReadingTimeout, 'limits.notReadingTimeout', 1, 86_400, 30)
    }),
    tls: tlsCert === undefined ? undefined : Object.freeze({ cert: tlsCert, key: tlsKey as string, clientCa: r.str(tlsRaw?.clientCa, 'tls.clientCa', /^.+$/, undefined, 'a PEM file') }),
    resumeGrace: r.num(top.resumeGrace, 'resumeGrace', 0, 3600, 30),
    qemu: Object.freeze(readQemu(r, top.qemu, overrides.qemuListen)),
    taps: Object.freeze(readTaps(r, top.taps, overrides.taps)),
    trunks: Object.freeze(readTrunks(r, top.trunks, overrides)),
    bridgePriority: overrides.bridgePriority ?? r.int(top.bridgePriority, 'bridgePriority', 0, 65535, DEFAULT_BRIDGE_PRIORITY),
    busyPoll: overrides.busyPoll ?? r.int(top.busyPoll, 'busyPoll', 0, MAX_BUSY_POLL, 0),
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
  // One name, one port: a TAP named like a QEMU listener would make static entries and profiles ambiguous.
  config.taps.forEach((t, i) => { if (config.qemu.some((q) => q.name === t.name)) r.fail(`taps[${i}].name`, `"${t.name}" is also a qemu port's name`) })
  for (const p of unreachableProfiles(config)) {
    log.warn('profile_unreachable', {
      source,
      match: p.match,
      fix: 'no port can get it: a hello name is a claim. Pin the name in a token ("name"), or add "claimable": true to let any client that names itself take it'
    })
  }
  return config
}

/** Names switchd makes up for ports that give none: trusted, as switchd chose them. */
const GENERATED_NAMES = ['raw-1', 'agent-1', 'trunk-1']

/**
 * Profiles no port can ever get: not claimable, and no name the
 * configuration gives (token pins, QEMU names) or switchd makes up matches.
 */
export function unreachableProfiles (config: SwitchdConfig): Profile[] {
  const given: Array<{ name: string, network: string | undefined }> = []
  for (const g of config.tokens.values()) if (g.name !== undefined) given.push({ name: g.name, network: g.network })
  for (const q of config.qemu) given.push({ name: q.name, network: q.network })
  for (const t of config.taps) given.push({ name: t.name, network: t.network })
  for (const name of GENERATED_NAMES) given.push({ name, network: undefined })
  return config.profiles.filter((p) => !p.claimable && !given.some((n) =>
    p.pattern.test(n.name) && (p.network === undefined || n.network === undefined || p.network === n.network)))
}

/** Whether the configuration gives `name` to a port (a token pin, a QEMU name): a hello may not claim it. */
export function isReservedName (config: SwitchdConfig, name: string): boolean {
  for (const g of config.tokens.values()) if (g.name === name) return true
  for (const q of config.qemu) if (q.name === name) return true
  for (const t of config.taps) if (t.name === name) return true
  return false
}

/** A list of strings from the file, or comma-separated from a flag (which wins); each must match `pattern`. */
function readList (r: Reader, v: unknown, flag: string | undefined, key: string, pattern: RegExp, what: string): readonly string[] {
  const list: unknown = flag !== undefined ? flag.split(',').map((x) => x.trim()).filter((x) => x !== '') : v ?? []
  if (!Array.isArray(list)) r.fail(key, `expected a list of ${what}`)
  return Object.freeze(list.map((x: unknown, i: number) => {
    if (typeof x !== 'string' || !pattern.test(x)) r.fail(`${key}[${i}]`, `expected ${what}`)
    return x.toLowerCase()
  }))
}

function readStatics (r: Reader, v: unknown, key: string): StaticEntry[] {
  if (v === undefined) return []
  if (!Array.isArray(v)) r.fail(key, 'expected a list of {mac, vlan, port}')
  if (v.length > MAX_STATIC_ENTRIES) r.fail(key, `at most ${MAX_STATIC_ENTRIES} entries`)
  return v.map((e: unknown, i: number) => {
    const k = `${key}[${i}]`
    const o = r.object(e, k, ['mac', 'vlan', 'port'])
    const mac = typeof o.mac === 'string' ? parseMac(o.mac) : undefined
    if (mac === undefined) r.fail(`${k}.mac`, 'expected a MAC like 02:00:00:00:00:01')
    if (((mac[0] as number) & 1) === 1) r.fail(`${k}.mac`, 'a group (multicast) address cannot be a station')
    const port = r.str(o.port, `${k}.port`, NAME_PATTERN, undefined, 'the name of the port the MAC lives behind') ??
      r.fail(`${k}.port`, 'required')
    return Object.freeze({ vid: o.vlan === undefined ? 1 : r.vid(o.vlan, `${k}.vlan`), mac: macAt(mac, 0), port })
  })
}

/** Read and validate a config file; errors name the file, and the key or the JSON problem. */
export function loadConfig (path: string | undefined, overrides: ConfigOverrides = {}): SwitchdConfig {
  if (path === undefined) return buildConfig({}, '(defaults)', overrides)
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new TapswitchError(ERR_CONFIG, `${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (cannot read the configuration file)`)
  }
  let raw: unknown
  try { raw = JSON.parse(text) } catch (err) { throw new TapswitchError(ERR_CONFIG, `${path}: not valid JSON: ${(err as Error).message}`) }
  return buildConfig(raw, path, overrides)
}

/** Settings for network `name`: listed, or the defaults if dynamic networks are allowed; undefined if refused. */
export function networkSettings (config: SwitchdConfig, name: string): NetworkSettings | undefined {
  const listed = config.networks.get(name)
  if (listed !== undefined) return listed
  if (!config.dynamicNetworks || !NETWORK_NAME.test(name)) return undefined
  return { name, ...config.networkDefaults, statics: [] }
}

/**
 * The policy for a port: the first profile matching its name (and network),
 * else the default. A `trusted` name (given by switchd or the configuration)
 * gets any matching profile; a claimed one (a hello name) only a claimable
 * profile: otherwise anyone could name itself "core-uplink" and get its VLANs.
 */
export function profileFor (config: SwitchdConfig, portName: string, network: string, trusted: boolean): PortPolicy {
  for (const p of config.profiles) {
    if ((trusted || p.claimable) && p.pattern.test(portName) && (p.network === undefined || p.network === network)) return p.policy
  }
  return config.defaultPolicy
}

/** Whether a claimable profile covers `portName` on `network` (a claim may then bind its static entries). */
export function claimableName (config: SwitchdConfig, portName: string, network: string): boolean {
  return config.profiles.some((p) => p.claimable && p.pattern.test(portName) && (p.network === undefined || p.network === network))
}

/**
 * What the port gets when it asks for `request` under `allowed`: the request
 * narrowed to what the profile allows, or a string saying why it is refused.
 */
export function grantPolicy (allowed: PortPolicy, request: VlanRequest | undefined): PortPolicy | string {
  if (request === undefined) return allowed
  if (request.mode === 'access') {
    const vid = request.vlan
    if (!allowed.vlans.includes(vid)) return `VLAN ${vid} is not allowed on this port (allowed: ${allowed.vlans.join(',')})`
    return Object.freeze({ ...allowed, mode: MODE_ACCESS, pvid: vid, vlans: Object.freeze([vid]) })
  }
  if (allowed.mode !== MODE_TRUNK) return 'this port may not be a trunk'
  const bad = request.vlans.filter((v) => !allowed.vlans.includes(v))
  if (bad.length > 0) return `VLAN ${bad.join(',')} not allowed on this trunk (allowed: ${allowed.vlans.join(',')})`
  const native = request.native ?? (request.vlans.includes(allowed.pvid) ? allowed.pvid : 0)
  if (native !== 0 && !allowed.vlans.includes(native)) return `native VLAN ${native} is not allowed on this trunk`
  const vlans = native !== 0 && !request.vlans.includes(native) ? [...request.vlans, native] : [...request.vlans]
  return Object.freeze({ ...allowed, mode: MODE_TRUNK, pvid: native, vlans: Object.freeze(vlans.sort((a, b) => a - b)) })
}

/**
 * What a trunk from another switch gets: everything its profile (or token)
 * allows, all of it, and no per-port MAC limit beyond the network's: a trunk
 * carries a whole switch's stations.
 */
export function trunkPolicy (allowed: PortPolicy, fdbMax: number): PortPolicy {
  return Object.freeze({ ...allowed, maxMacs: Math.max(allowed.maxMacs, fdbMax) })
}
