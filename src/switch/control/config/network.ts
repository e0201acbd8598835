/**
 * Networks: their names, their settings (the file's `network` defaults,
 * `networks.<name>` overrides, static fdb entries) and the settings of a
 * network that is not listed (a dynamic one).
 */

import type { Reader } from './reader'
import type { SwitchdConfig } from './index'
import { parseMac, macAt } from '../../../common/ethernet'
import { NAME_PATTERN, MAX_FRAME_SIZE_LIMIT } from '../../../common/protocol'
import { MAX_STATIC_ENTRIES } from '../../core/fdb'
import type { StaticEntry } from '../../core/statics'
import { LINK_LOCAL_GROUPS } from '../../core/classify'
import type { GuardSpec } from '../../core/guard'
import { GATEWAY_PORT_NAME, type GatewaySpec } from './gateway'

export const NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
export const DEFAULT_NETWORK = 'default'

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
  /** Bit X: flood 01:80:c2:00:00:0X (`forwardGroups`; core/classify.ts forwardsGroup) */
  groupFwdMask: number
  statics: readonly StaticEntry[]
  /** DHCP snooping, ARP inspection, IP source guard (`guards`, core/guard.ts); absent: off. Listed networks only. */
  guards?: GuardSpec
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
