/**
 * The readers of the drop counters: a port's and a network's drops by
 * reason, as the metrics, the admin API and switchctl show them. The table
 * itself (reason names, R_* indexes) is reasons.ts; the writer is one
 * Switch.drop() per dropped frame (switch.ts), which bumps Port.drops and
 * SwitchStats.drops at the same index, logs the frame and tells the
 * observer. Read at scrape and request time only.
 */

import type { Port } from './port'
import type { SwitchStats } from './stats'
import {
  DROP_REASONS, R_BACKPRESSURE, R_STORM, R_RUNT, R_OVERSIZE, R_BAD_SOURCE, R_HAIRPIN, R_VLAN, R_PORT_SECURITY, R_LOOP, R_DISABLED, R_RATE,
  R_MALFORMED, R_EGRESS_BLOCKED, R_CONDITION, R_CONDITION_QUEUE, R_LINK_DOWN, R_LINK_LOCAL, R_BAD_OFFLOAD, R_DHCP_SNOOPING, R_ARP_INSPECTION,
  R_IP_SOURCE_GUARD, R_DISCONNECTED
} from './reasons'

export * from './reasons'

/**
 * Port counters that are not frame drops of the switch's, and why they are
 * left out of the table (its test checks every per-reason slot is named).
 */
export const NOT_FRAME_DROPS: Readonly<Record<string, string>> = Object.freeze({
  dropControl: 'control messages (BPDUs), counted in switchd_replies_dropped_total'
})

/** What the readers need of a port. */
export type PortDropCounters = Pick<Port, 'drops' | 'stormDrops'>

/** A port's drops by reason (metrics). */
export function portDrops (p: Readonly<PortDropCounters>): Record<string, number> {
  const out: Record<string, number> = {}
  for (let i = 0; i < DROP_REASONS.length; i++) out[(DROP_REASONS[i] as { reason: string }).reason] = i === R_STORM ? stormTotal(p) : p.drops[i] as number
  return out
}

/** Storm drops are counted by kind (storm.ts); their sum is the reason's. */
function stormTotal (p: Readonly<PortDropCounters>): number {
  return (p.stormDrops[0] as number) + (p.stormDrops[1] as number) + (p.stormDrops[2] as number)
}

/** A port's drops by counter, as the admin API shows them (`port_security` as `portSecurity`, storm by kind). */
export function portDropDetail (p: Readonly<PortDropCounters>): Record<string, number> {
  const out: Record<string, number> = {}
  for (let i = 0; i < DROP_REASONS.length; i++) {
    const names = (DROP_REASONS[i] as { detail: readonly string[] }).detail
    if (i === R_STORM) for (let k = 0; k < names.length; k++) out[names[k] as string] = p.stormDrops[k] as number
    else out[names[0] as string] = p.drops[i] as number
  }
  return out
}

/** A network's drops by reason: its own counters, plus backpressure of the ports still in it. */
export function networkDrops (stats: Pick<SwitchStats, 'drops'>, ports: readonly PortDropCounters[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (let i = 0; i < DROP_REASONS.length; i++) out[(DROP_REASONS[i] as { reason: string }).reason] = stats.drops[i] as number
  for (const p of ports) out.backpressure = (out.backpressure ?? 0) + (p.drops[R_BACKPRESSURE])
  return out
}

/** The network counters' names in the admin API (`counters`), in the order it has always shown them; a number is a drop reason. */
const NETWORK_COUNTERS: ReadonlyArray<readonly [string, keyof SwitchStats | number]> = [
  ['forwarded', 'forwarded'], ['floodedBroadcast', 'floodedBroadcast'], ['floodedMulticast', 'floodedMulticast'], ['floodedUnknown', 'floodedUnknown'],
  ['dropRunt', R_RUNT], ['dropOversize', R_OVERSIZE], ['dropBadSource', R_BAD_SOURCE], ['dropHairpin', R_HAIRPIN], ['dropVlan', R_VLAN],
  ['dropPortSecurity', R_PORT_SECURITY], ['dropStorm', R_STORM], ['dropLoop', R_LOOP], ['dropDisabled', R_DISABLED], ['dropRate', R_RATE],
  ['dropMalformed', R_MALFORMED], ['dropEgressBlocked', R_EGRESS_BLOCKED], ['dropCondition', R_CONDITION], ['dropConditionQueue', R_CONDITION_QUEUE],
  ['dropLinkDown', R_LINK_DOWN], ['dropLinkLocal', R_LINK_LOCAL], ['dropBadOffload', R_BAD_OFFLOAD], ['dropDhcpSnooping', R_DHCP_SNOOPING],
  ['dropArpInspection', R_ARP_INSPECTION], ['dropIpSourceGuard', R_IP_SOURCE_GUARD], ['offloadSegmented', 'offloadSegmented'],
  ['offloadChecksummed', 'offloadChecksummed'], ['controlDropped', 'controlDropped'], ['dropDisconnected', R_DISCONNECTED],
  ['dropBackpressureRetired', R_BACKPRESSURE], ['loopsDetected', 'loopsDetected'], ['portsAdded', 'portsAdded'], ['portsRemoved', 'portsRemoved']
]

/** A network's counters as the admin API shows them (`counters`): plain fields and drops by reason, by name. */
export function networkCounters (stats: SwitchStats): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [name, field] of NETWORK_COUNTERS) out[name] = typeof field === 'number' ? stats.drops[field] as number : stats[field] as number
  return out
}
