/**
 * Every reason the switch drops a frame, in one table: the `reason` label of
 * the metrics, the Port counters it sums, and the network-wide SwitchStats
 * counter that survives ports leaving. Metrics, the admin API and switchctl
 * are derived from it, so a new drop reason is one row here plus its counter
 * fields on Port and SwitchStats (issue 13).
 *
 * The counters themselves stay plain number fields, incremented on the frame
 * path; this table is read only at scrape and request time.
 */

import type { Port } from './port'
import type { SwitchStats } from './switch'

/** Port fields that count dropped frames. */
export type PortDropField = {
  [K in keyof Port]: K extends `drop${string}` ? (Port[K] extends number ? K : never) : never
}[keyof Port]

/** SwitchStats fields that count dropped frames. */
export type NetworkDropField = {
  [K in keyof SwitchStats]: K extends `drop${string}` ? K : never
}[keyof SwitchStats]

export interface DropReason {
  /** The `reason` label (snake_case). */
  readonly reason: string
  /** Port counters summed for it; each also appears in the admin API as its name without `drop` (dropBadSource: badSource). */
  readonly port: readonly PortDropField[]
  /** The network's counter: kept when ports leave. */
  readonly network: NetworkDropField
}

export const DROP_REASONS: readonly DropReason[] = Object.freeze([
  { reason: 'runt', port: ['dropRunt'], network: 'dropRunt' },
  { reason: 'oversize', port: ['dropOversize'], network: 'dropOversize' },
  { reason: 'bad_source', port: ['dropBadSource'], network: 'dropBadSource' },
  { reason: 'hairpin', port: ['dropHairpin'], network: 'dropHairpin' },
  { reason: 'vlan', port: ['dropVlan'], network: 'dropVlan' },
  { reason: 'port_security', port: ['dropPortSecurity'], network: 'dropPortSecurity' },
  { reason: 'storm', port: ['dropStormBroadcast', 'dropStormMulticast', 'dropStormUnknownUnicast'], network: 'dropStorm' },
  { reason: 'loop', port: ['dropLoop'], network: 'dropLoop' },
  { reason: 'disabled', port: ['dropDisabled'], network: 'dropDisabled' },
  { reason: 'rate', port: ['dropRate'], network: 'dropRate' },
  { reason: 'malformed', port: ['dropMalformed'], network: 'dropMalformed' },
  { reason: 'bad_offload', port: ['dropBadOffload'], network: 'dropBadOffload' },
  { reason: 'egress_blocked', port: ['dropEgressBlocked'], network: 'dropEgressBlocked' },
  { reason: 'condition', port: ['dropCondition'], network: 'dropCondition' },
  { reason: 'condition_queue', port: ['dropConditionQueue'], network: 'dropConditionQueue' },
  { reason: 'link_down', port: ['dropLinkDown'], network: 'dropLinkDown' },
  // IEEE 802.1D link-local groups 01:80:c2:00:00:0X the network does not forward (Switch.groupFwdMask).
  { reason: 'link_local', port: ['dropLinkLocal'], network: 'dropLinkLocal' },
  // The managed-switch guards (guard.ts): DHCP snooping, dynamic ARP inspection, IP source guard.
  { reason: 'dhcp_snooping', port: ['dropDhcpSnooping'], network: 'dropDhcpSnooping' },
  { reason: 'arp_inspection', port: ['dropArpInspection'], network: 'dropArpInspection' },
  { reason: 'ip_source_guard', port: ['dropIpSourceGuard'], network: 'dropIpSourceGuard' },
  // Egress: a live port keeps its own count; the network keeps those of ports that left.
  { reason: 'backpressure', port: ['dropBackpressure'], network: 'dropBackpressureRetired' },
  // Egress to a port whose peer is away: parked, no QEMU or gateway child connected, a trunk or TAP link down.
  { reason: 'disconnected', port: ['dropDisconnected'], network: 'dropDisconnected' }
] as const)

/** Index of `reason` in DROP_REASONS; throws at load for a name not in it (a typo cannot ship). */
export function reasonIndex (reason: string): number {
  const i = DROP_REASONS.findIndex((d) => d.reason === reason)
  if (i < 0) throw new Error(`no drop reason "${reason}"`)
  return i
}

/**
 * Reasons as small integers, for the drop log (droplog.ts) on the frame
 * path: a number into this table, never a string per frame.
 */
export const R_RUNT = reasonIndex('runt')
export const R_OVERSIZE = reasonIndex('oversize')
export const R_BAD_SOURCE = reasonIndex('bad_source')
export const R_HAIRPIN = reasonIndex('hairpin')
export const R_VLAN = reasonIndex('vlan')
export const R_PORT_SECURITY = reasonIndex('port_security')
export const R_STORM = reasonIndex('storm')
export const R_LOOP = reasonIndex('loop')
export const R_DISABLED = reasonIndex('disabled')
export const R_RATE = reasonIndex('rate')
export const R_MALFORMED = reasonIndex('malformed')
export const R_BAD_OFFLOAD = reasonIndex('bad_offload')
export const R_EGRESS_BLOCKED = reasonIndex('egress_blocked')
export const R_LINK_LOCAL = reasonIndex('link_local')
export const R_CONDITION = reasonIndex('condition')
export const R_CONDITION_QUEUE = reasonIndex('condition_queue')
export const R_LINK_DOWN = reasonIndex('link_down')
export const R_DHCP_SNOOPING = reasonIndex('dhcp_snooping')
export const R_ARP_INSPECTION = reasonIndex('arp_inspection')
export const R_IP_SOURCE_GUARD = reasonIndex('ip_source_guard')
export const R_DISCONNECTED = reasonIndex('disconnected')

/**
 * Port counters that are not frame drops of the switch's, and why they are
 * left out: the table's test checks that every other `drop*` field is in it.
 */
export const NOT_FRAME_DROPS: Readonly<Record<string, string>> = Object.freeze({
  dropControl: 'control messages (BPDUs), counted in switchd_replies_dropped_total'
})

/** A port's drops by reason (metrics). */
export function portDrops (p: Readonly<Pick<Port, PortDropField>>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const d of DROP_REASONS) {
    let n = 0
    for (const f of d.port) n += p[f]
    out[d.reason] = n
  }
  return out
}

/** A port's drops by counter, as the admin API shows them (`dropPortSecurity` as `portSecurity`). */
export function portDropDetail (p: Readonly<Pick<Port, PortDropField>>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const d of DROP_REASONS) for (const f of d.port) out[apiName(f)] = p[f]
  return out
}

/** A network's drops by reason: its own counters, plus backpressure of the ports still in it. */
export function networkDrops (stats: SwitchStats, ports: readonly Port[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const d of DROP_REASONS) out[d.reason] = stats[d.network]
  for (const p of ports) out.backpressure = (out.backpressure ?? 0) + p.dropBackpressure
  return out
}

function apiName (field: string): string {
  return field.charAt(4).toLowerCase() + field.slice(5)
}
