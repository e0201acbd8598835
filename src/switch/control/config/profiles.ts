/**
 * Port policies and the profiles that give them: reading a policy, choosing
 * a port's profile by its name (and whether that name was given or merely
 * claimed), and granting what an agent asks for in its hello only within what
 * its profile allows, so a client cannot put itself into a VLAN it was not
 * given.
 */

import type { Reader } from './reader'
import { NETWORK_NAME, PORT_KEYS, type SwitchdConfig, type Profile } from './types'
import type { VlanRequest } from '../../../common/protocol'
import { MODE_ACCESS, MODE_TRUNK, type PortPolicy } from '../../core/port'
import { readCondition, CONDITION_KEYS, type ConditionParams } from '../../core/condition'
import { TapswitchError, ERR_CONFIG } from '../../../common/errors'
import { isVxlanName } from './vxlan'

export const STORM_KEYS = ['broadcast', 'multicast', 'unknownUnicast']
/** Keys of a profile beyond the port policy's: claims (finding 2) and trunk participation (finding 8) are opt-in per profile. */
export const PROFILE_KEYS = ['match', 'network', 'claimable', 'trunk', 'rootGuard']

export function readPolicy (r: Reader, v: unknown, key: string, base: PortPolicy, extraKeys: string[] = []): PortPolicy {
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
  const condition = o.condition === undefined ? base.condition : readPortCondition(r, o.condition, `${key}.condition`)
  if (condition !== undefined) (common as Partial<PortPolicy>).condition = condition
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

/** The `profiles` list: the first profile whose glob (and network) matches a port is its profile. */
export function readProfiles (r: Reader, v: unknown, defaultPolicy: PortPolicy): Profile[] {
  const profilesRaw: unknown = v ?? []
  if (!Array.isArray(profilesRaw)) r.fail('profiles', 'expected a list')
  return (profilesRaw as unknown[]).map((p: unknown, i: number): Profile => {
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
  for (const g of config.gateways) given.push({ name: g.name, network: g.network })
  for (const name of GENERATED_NAMES) given.push({ name, network: undefined })
  return config.profiles.filter((p) => !p.claimable && !given.some((n) =>
    p.pattern.test(n.name) && (p.network === undefined || n.network === undefined || p.network === n.network)))
}

/**
 * Whether the configuration gives `name` to a port (a token pin, a QEMU name,
 * a VTEP's `<prefix>-…`): a hello may not claim it (the port table names such a claim `name-id`).
 */
export function isReservedName (config: SwitchdConfig, name: string): boolean {
  if (isVxlanName(config, name)) return true
  for (const g of config.tokens.values()) if (g.name === name) return true
  for (const q of config.qemu) if (q.name === name) return true
  for (const t of config.taps) if (t.name === name) return true
  for (const g of config.gateways) if (g.name === name) return true
  return false
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

/**
 * A port's link conditions: `{"in": {...}, "out": {...}}`, or one condition
 * with `"direction": "in" | "out" | "both"` (default both). condition.ts reads each.
 */
function readPortCondition (r: Reader, v: unknown, key: string): PortPolicy['condition'] {
  if (v === null) return undefined
  const o = r.object(v, key, ['in', 'out', 'direction', ...CONDITION_KEYS])
  const read = (x: unknown, k: string): ConditionParams | null => {
    if (x === undefined || x === null) return null
    try { return readCondition(x, k) } catch (err) { throw new TapswitchError(ERR_CONFIG, `${r.source}: ${(err as Error).message}`) }
  }
  if (o.in !== undefined || o.out !== undefined) {
    if (Object.keys(o).some((k) => k !== 'in' && k !== 'out')) r.fail(key, 'give "in" and "out", or one condition with "direction", not both')
    return Object.freeze({ in: read(o.in, `${key}.in`), out: read(o.out, `${key}.out`) })
  }
  const { direction, ...rest } = o
  const dir = r.str(direction, `${key}.direction`, /^(in|out|both)$/, 'both', '"in", "out" or "both"')
  const c = read(rest, key)
  return Object.freeze({ in: dir === 'out' ? null : c, out: dir === 'in' ? null : c })
}
