/**
 * Networks: their names, their settings (the file's `network` defaults,
 * `networks.<name>` overrides, static fdb entries, guards, gateways) and the
 * settings of a network that is not listed (a dynamic one).
 */

import type { Reader, Obj } from './reader'
import { NETWORK_NAME, DEFAULT_NETWORK, type SwitchdConfig, type NetworkSettings, type ConfigOverrides } from './types'
import { parseMac, macAt } from '../../../common/ethernet'
import { NAME_PATTERN, MAX_FRAME_SIZE_LIMIT, DEFAULT_MAX_FRAME_SIZE } from '../../../common/protocol'
import { MAX_STATIC_ENTRIES, DEFAULT_AGEING_TIME, DEFAULT_MAX_ENTRIES, DEFAULT_LOOP_MOVES, DEFAULT_LOOP_WINDOW_MS, DEFAULT_MOVE_HOLD_MS } from '../../core/fdb'
import { DEFAULT_LOOP_HOLD_DOWN, DEFAULT_GROUP_FWD_MASK } from '../../core/switch'
import type { StaticEntry } from '../../core/statics'
import { LINK_LOCAL_GROUPS } from '../../core/classify'
import type { GuardSpec } from '../../core/guard'
import { GATEWAY_PORT_NAME, readGateway, checkHostPortsPublished, type GatewaySpec } from './gateway'

/** The networks part of a configuration. */
export interface Networks {
  networkDefaults: SwitchdConfig['networkDefaults']
  networks: Map<string, NetworkSettings>
  gateways: GatewaySpec[]
}

/**
 * `network` (the defaults, under the flags that override them) and
 * `networks` (each listed network with its statics, gateway and guards), and
 * the default network if the file does not list it.
 */
export function readNetworks (r: Reader, top: Obj, overrides: ConfigOverrides): Networks {
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
  const listed = r.object(top.networks ?? {}, 'networks', Object.keys(top.networks ?? {}))
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
  checkPublishedOnce(r, gateways)
  checkHostPortsPublished((k, e) => r.fail(k, e), gateways)
  if (!networks.has(DEFAULT_NETWORK)) networks.set(DEFAULT_NETWORK, Object.freeze({ name: DEFAULT_NETWORK, ...networkDefaults, statics: [] }))
  return { networkDefaults, networks, gateways }
}

/** One host address and port, one published port: two gateways cannot both listen there. */
function checkPublishedOnce (r: Reader, gateways: readonly GatewaySpec[]): void {
  const published = new Map<string, string>()
  for (const g of gateways) {
    for (const [i, p] of g.publish.entries()) {
      const id = `${p.proto} ${p.hostAddress}:${p.hostPort}`
      const other = published.get(id)
      if (other !== undefined) r.fail(`networks.${g.network}.gateway.publish[${i}].host`, `${id} is published by ${other} too`)
      published.set(id, `networks.${g.network}.gateway.publish[${i}]`)
    }
  }
}

export const LOOP_KEYS = ['moves', 'window', 'holdDown', 'moveHold']
export const NETWORK_KEYS = ['maxFrameSize', 'ageingTime', 'fdbMax', 'loop', 'forwardGroups']

export function readNetwork (r: Reader, v: unknown, key: string, base: Omit<NetworkSettings, 'name' | 'statics'>, extraKeys: string[] = []): Omit<NetworkSettings, 'name' | 'statics'> {
  const o = r.object(v ?? {}, key, [...NETWORK_KEYS, ...extraKeys])
  const loop = r.object(o.loop ?? {}, `${key}.loop`, LOOP_KEYS)
  return {
    maxFrameSize: r.int(o.maxFrameSize, `${key}.maxFrameSize`, 64, MAX_FRAME_SIZE_LIMIT, base.maxFrameSize),
    ageingTime: r.int(o.ageingTime, `${key}.ageingTime`, 1, 1_000_000, base.ageingTime),
    fdbMax: r.int(o.fdbMax, `${key}.fdbMax`, 1, 10_000_000, base.fdbMax),
    loopMoves: r.int(loop.moves, `${key}.loop.moves`, 2, 1_000_000, base.loopMoves),
    loopWindow: r.num(loop.window, `${key}.loop.window`, 0.01, 3600, base.loopWindow / 1000) * 1000,
    loopHoldDown: r.num(loop.holdDown, `${key}.loop.holdDown`, 0.1, 86_400, base.loopHoldDown),
    moveHold: r.num(loop.moveHold, `${key}.loop.moveHold`, 0, 3600, base.moveHold / 1000) * 1000,
    groupFwdMask: readForwardGroups(r, o.forwardGroups, `${key}.forwardGroups`, base.groupFwdMask)
  }
}

/** `forwardGroups`: the IEEE link-local groups 01:80:c2:00:00:0X a network floods, by name or X (0-15); [] = none. */
function readForwardGroups (r: Reader, v: unknown, key: string, def: number): number {
  if (v === undefined) return def
  const what = `a list of ${Object.keys(LINK_LOCAL_GROUPS).join(', ')}, "all" or numbers 0-15 (the X of 01:80:c2:00:00:0X)`
  if (!Array.isArray(v) || v.length > 32) r.fail(key, what)
  let mask = 0
  for (const [i, g] of (v as unknown[]).entries()) {
    if (g === 'all') { mask = 0xffff; continue }
    const x = typeof g === 'string' ? LINK_LOCAL_GROUPS[g.toLowerCase()] : g
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 15) r.fail(`${key}[${i}]`, what)
    mask |= 1 << x
  }
  return mask
}

export const GUARD_KEYS = ['dhcpSnooping', 'arpInspection', 'ipSourceGuard', 'trusted']
/** Most names in `guards.trusted`. */
export const MAX_TRUSTED = 64

/**
 * `networks.NAME.guards`: true, false, or {dhcpSnooping, arpInspection,
 * ipSourceGuard, trusted}. On by default where the network has a gateway
 * (DHCP snooping and ARP inspection; IP source guard is opt-in), off
 * elsewhere. Without a gateway there is no binding table: only DHCP snooping.
 */
export function readGuards (r: Reader, v: unknown, key: string, gateway: GatewaySpec | undefined): GuardSpec | undefined {
  if (v === false || (v === undefined && gateway === undefined)) return undefined
  const o = v === undefined || v === true ? {} : r.object(v, key, GUARD_KEYS)
  const arpInspection = r.bool(o.arpInspection, `${key}.arpInspection`, gateway !== undefined)
  const ipSourceGuard = r.bool(o.ipSourceGuard, `${key}.ipSourceGuard`, false)
  if (gateway === undefined && (arpInspection || ipSourceGuard)) {
    r.fail(`${key}.${arpInspection ? 'arpInspection' : 'ipSourceGuard'}`, 'needs a gateway on this network (its leases are the binding table); without one, guards give DHCP snooping only')
  }
  if (ipSourceGuard && gateway?.dhcp === false) r.fail(`${key}.ipSourceGuard`, 'needs the gateway to serve DHCP (its leases are the binding table): set gateway.dhcp true, or turn ipSourceGuard off')
  const trustedRaw = o.trusted ?? []
  if (!Array.isArray(trustedRaw) || trustedRaw.length > MAX_TRUSTED) r.fail(`${key}.trusted`, `expected a list of at most ${MAX_TRUSTED} port names`)
  const trusted = (trustedRaw as unknown[]).map((n, i) => r.str(n, `${key}.trusted[${i}]`, NAME_PATTERN, undefined, 'a port name') as string)
  if (gateway !== undefined) trusted.push(GATEWAY_PORT_NAME)
  return Object.freeze({
    dhcpSnooping: r.bool(o.dhcpSnooping, `${key}.dhcpSnooping`, true),
    arpInspection,
    ipSourceGuard,
    trusted: Object.freeze([...new Set(trusted)]),
    leases: gateway?.dhcp === true,
    subnet: gateway?.subnet ?? 0,
    mask: gateway?.mask ?? 0,
    gateway: gateway?.address ?? 0,
    dns: gateway?.dns ?? 0
  })
}

export function readStatics (r: Reader, v: unknown, key: string): StaticEntry[] {
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

/** Settings for network `name`: listed, or the defaults if dynamic networks are allowed; undefined if refused. */
export function networkSettings (config: SwitchdConfig, name: string): NetworkSettings | undefined {
  const listed = config.networks.get(name)
  if (listed !== undefined) return listed
  if (!config.dynamicNetworks || !NETWORK_NAME.test(name)) return undefined
  return { name, ...config.networkDefaults, statics: [] }
}
