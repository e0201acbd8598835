/**
 * Every reason the switch drops a frame, as small integers: the index into
 * the per-reason counter arrays (Port.drops, SwitchStats.drops, both a
 * Float64Array of DROP_COUNT slots), the drop log's reason column and the
 * observer's drop step. A leaf: it imports nothing, so the port, the stats
 * and the decision can all use it without a circle.
 *
 * A new drop reason is one row here (and its R_ constant below); the
 * readers in drops.ts, the metrics, the admin API and switchctl follow.
 */

export interface DropReason {
  /** The `reason` label (snake_case). */
  readonly reason: string
  /**
   * Its counters as the admin API names them (`port_security`: `portSecurity`).
   * Storm keeps one per kind (Port.stormDrops), in KIND_* order.
   */
  readonly detail: readonly string[]
}

export const DROP_REASONS: readonly DropReason[] = Object.freeze([
  { reason: 'runt', detail: ['runt'] },
  { reason: 'oversize', detail: ['oversize'] },
  { reason: 'bad_source', detail: ['badSource'] },
  { reason: 'hairpin', detail: ['hairpin'] },
  { reason: 'vlan', detail: ['vlan'] },
  { reason: 'port_security', detail: ['portSecurity'] },
  { reason: 'storm', detail: ['stormBroadcast', 'stormMulticast', 'stormUnknownUnicast'] },
  { reason: 'loop', detail: ['loop'] },
  { reason: 'disabled', detail: ['disabled'] },
  { reason: 'rate', detail: ['rate'] },
  { reason: 'malformed', detail: ['malformed'] },
  { reason: 'bad_offload', detail: ['badOffload'] },
  { reason: 'egress_blocked', detail: ['egressBlocked'] },
  { reason: 'condition', detail: ['condition'] },
  { reason: 'condition_queue', detail: ['conditionQueue'] },
  { reason: 'link_down', detail: ['linkDown'] },
  // IEEE 802.1D link-local groups 01:80:c2:00:00:0X the network does not forward (Switch.groupFwdMask).
  { reason: 'link_local', detail: ['linkLocal'] },
  // The managed-switch guards (guard.ts): DHCP snooping, dynamic ARP inspection, IP source guard.
  { reason: 'dhcp_snooping', detail: ['dhcpSnooping'] },
  { reason: 'arp_inspection', detail: ['arpInspection'] },
  { reason: 'ip_source_guard', detail: ['ipSourceGuard'] },
  // Egress: a live port keeps its own count; the network keeps those of ports that left.
  { reason: 'backpressure', detail: ['backpressure'] },
  // Egress to a port whose peer is away: parked, no QEMU or gateway child connected, a trunk or TAP link down.
  { reason: 'disconnected', detail: ['disconnected'] },
  // Split horizon: known unicast from one mesh link to another (a fleet's replicas are a full mesh: one hop).
  { reason: 'split_horizon', detail: ['splitHorizon'] },
  // Egress to a VXLAN or GENEVE port: the frame and its headers would not fit one datagram on the underlay's MTU (io/vxlan.ts).
  { reason: 'underlay_mtu', detail: ['underlayMtu'] }
] as const)

/** Slots in a per-reason counter array. */
export const DROP_COUNT = DROP_REASONS.length

/** Index of `reason` in DROP_REASONS; throws at load for a name not in it (a typo cannot ship). */
export function reasonIndex (reason: string): number {
  const i = DROP_REASONS.findIndex((d) => d.reason === reason)
  if (i < 0) throw new Error(`no drop reason "${reason}"`)
  return i
}

/**
 * Reasons as small integers (literal types, so a counter array indexed by
 * one reads as a number): checked against the table at load below.
 */
export const R_RUNT = 0
export const R_OVERSIZE = 1
export const R_BAD_SOURCE = 2
export const R_HAIRPIN = 3
export const R_VLAN = 4
export const R_PORT_SECURITY = 5
export const R_STORM = 6
export const R_LOOP = 7
export const R_DISABLED = 8
export const R_RATE = 9
export const R_MALFORMED = 10
export const R_BAD_OFFLOAD = 11
export const R_EGRESS_BLOCKED = 12
export const R_LINK_LOCAL = 16
export const R_CONDITION = 13
export const R_CONDITION_QUEUE = 14
export const R_LINK_DOWN = 15
export const R_DHCP_SNOOPING = 17
export const R_ARP_INSPECTION = 18
export const R_IP_SOURCE_GUARD = 19
export const R_BACKPRESSURE = 20
export const R_DISCONNECTED = 21
export const R_SPLIT_HORIZON = 22
export const R_UNDERLAY_MTU = 23

/** A drop reason's index. */
export type ReasonIndex = typeof R_RUNT | typeof R_OVERSIZE | typeof R_BAD_SOURCE | typeof R_HAIRPIN | typeof R_VLAN | typeof R_PORT_SECURITY | typeof R_STORM | typeof R_LOOP | typeof R_DISABLED | typeof R_RATE | typeof R_MALFORMED | typeof R_BAD_OFFLOAD | typeof R_EGRESS_BLOCKED | typeof R_LINK_LOCAL | typeof R_CONDITION | typeof R_CONDITION_QUEUE | typeof R_LINK_DOWN | typeof R_DHCP_SNOOPING | typeof R_ARP_INSPECTION | typeof R_IP_SOURCE_GUARD | typeof R_BACKPRESSURE | typeof R_DISCONNECTED | typeof R_SPLIT_HORIZON | typeof R_UNDERLAY_MTU

/** A per-reason counter array (Port.drops, SwitchStats.drops): indexed by an R_* constant it reads as a number. */
export type DropCounts = Float64Array & { [R in ReasonIndex]: number }

/** A new per-reason counter array. */
export function dropCounts (): DropCounts { return new Float64Array(DROP_COUNT) as DropCounts }

// The constants are the table's order: a row moved without its constant fails at load.
for (const [r, name] of [[R_RUNT, 'runt'], [R_OVERSIZE, 'oversize'], [R_BAD_SOURCE, 'bad_source'], [R_HAIRPIN, 'hairpin'], [R_VLAN, 'vlan'], [R_PORT_SECURITY, 'port_security'], [R_STORM, 'storm'], [R_LOOP, 'loop'], [R_DISABLED, 'disabled'], [R_RATE, 'rate'], [R_MALFORMED, 'malformed'], [R_BAD_OFFLOAD, 'bad_offload'], [R_EGRESS_BLOCKED, 'egress_blocked'], [R_LINK_LOCAL, 'link_local'], [R_CONDITION, 'condition'], [R_CONDITION_QUEUE, 'condition_queue'], [R_LINK_DOWN, 'link_down'], [R_DHCP_SNOOPING, 'dhcp_snooping'], [R_ARP_INSPECTION, 'arp_inspection'], [R_IP_SOURCE_GUARD, 'ip_source_guard'], [R_BACKPRESSURE, 'backpressure'], [R_DISCONNECTED, 'disconnected'], [R_SPLIT_HORIZON, 'split_horizon'], [R_UNDERLAY_MTU, 'underlay_mtu']] as const) {
  if (reasonIndex(name) !== r) throw new Error(`drop reason ${name} is not at index ${r}`)
}
