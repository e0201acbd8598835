/**
 * A switch port as the forwarding logic sees it: an id, a name, its VLAN
 * membership, its limits, counters and an egress. The WebSocket wiring
 * (ws-port.ts) subclasses it; unit tests use a fake that records what it is
 * given. Nothing here does I/O.
 *
 * Counters are plain number fields, initialised in the constructor so every
 * Port has one hidden class, and read at scrape time (never prom-client calls
 * per frame).
 */

import { VLAN_COUNT } from '../../common/vlan'
import type { StpPort } from './stp-port'
import type { LinkCondition, ConditionParams } from './condition'
import { dropCounts } from './reasons'

export { DIR_IN, DIR_OUT } from './condition'

export const MODE_ACCESS = 0
export const MODE_TRUNK = 1

/** What a port may carry and how much: resolved from the configuration's port profile. */
export interface PortPolicy {
  /** MODE_ACCESS (untagged, one VLAN) or MODE_TRUNK (tagged, a list). */
  mode: number
  /** Access VLAN, or the trunk's native VLAN (untagged on the wire); 0 = none. */
  pvid: number
  /** VLANs the port is a member of (for access: just pvid). */
  vlans: readonly number[]
  /** Most MACs the port may have learned at once. */
  maxMacs: number
  /** What a new MAC over maxMacs does: drop its frames, or shut the port. */
  violation: 'drop' | 'shutdown'
  /** Storm control, frames per second; 0 = unlimited. */
  stormBroadcast: number
  stormMulticast: number
  stormUnknownUnicast: number
  /**
   * May take part in the spanning tree as a trunk from another switch (a
   * hello with the "trunk" capability); a profile's `trunk: true`. Tokens
   * say it with their own `trunk` (auth.ts). Absent = no: trunks are opt-in.
   */
  trunk?: boolean
  /** Root guard on that trunk: a BPDU claiming a better root blocks the port instead of making it the root port (stp.ts). */
  rootGuard?: boolean
  /** Link conditions from the configuration (`condition`), per direction; absent = none. */
  condition?: { in: ConditionParams | null, out: ConditionParams | null }
}

export const DEFAULT_MAX_MACS = 256

/** Port.horizon of a fleet's mesh links: one replica never relays between two others (a full mesh is one hop). */
export const HORIZON_MESH = 1
/** The first horizon other groups (a VNI's VXLAN ports) are given. */
export const HORIZON_FIRST_FREE = 2

/** Access port in VLAN 1, 256 MACs, no storm limit: a plain unmanaged switch port. */
export const DEFAULT_POLICY: PortPolicy = Object.freeze({
  mode: MODE_ACCESS,
  pvid: 1,
  vlans: Object.freeze([1]),
  maxMacs: DEFAULT_MAX_MACS,
  violation: 'drop',
  stormBroadcast: 0,
  stormMulticast: 0,
  stormUnknownUnicast: 0
})

/**
 * Why a port forwards nothing: the bits of `Port.blocked`, 0 = forwarding. One field for every
 * reason, so each path asks one question and the reasons never overwrite each other (an operator's
 * enable does not end a spanning-tree block, a loop hold-down ending does not enable a disabled port).
 */
export const BLOCK_OPERATOR = 1
/** The spanning tree has the port discarding. */
export const BLOCK_STP = 2
/** Loop protection, until `Port.loopUntil`. */
export const BLOCK_LOOP = 4
/**
 * A failure drill took the link down in both directions (`switchctl link
 * down`, or a flap): as a pulled cable, both ways at once, its MACs forgotten.
 * One direction alone is LinkCondition.down (condition.ts).
 */
export const BLOCK_LINK = 8

/** The port's state as an operator reads it, the strongest reason first. */
export type PortState = 'disabled' | 'down' | 'discarding' | 'blocked' | 'forwarding'

export function portState (p: Readonly<Pick<Port, 'blocked'>>): PortState {
  const b = p.blocked
  return (b & BLOCK_OPERATOR) !== 0 ? 'disabled' : (b & BLOCK_LINK) !== 0 ? 'down' : (b & BLOCK_STP) !== 0 ? 'discarding' : (b & BLOCK_LOOP) !== 0 ? 'blocked' : 'forwarding'
}

/**
 * The one egress check every path makes (forward, flood, static entries,
 * trunks, captures), as Linux br_forward.c should_deliver() is: the port is a
 * member of `vid` and nothing blocks it. A static fdb entry must not be a way
 * around it (issue 12).
 */
export function canEgress (p: Port, vid: number): boolean {
  return p.member[vid] === 1 && p.blocked === 0
}

/**
 * What the switch tells the io side that runs a network's native fast path
 * (io/fast-path.ts; the rule is fastpath.ts). Declared here, with the port
 * that carries it, so that neither imports the other.
 */
export interface FastPathHooks {
  /** handleFrame() just forwarded a known-unicast untagged frame from `ingress` to `egress`: install a flow if the rule allows. */
  offer: (ingress: Port, egress: Port, vid: number, dst: number, src: number) => void
  /** Something that may change a decision happened: drop every flow now. */
  flush: () => void
  /** The tick, before fdb expiry: fold native counters in, refresh the ages of MACs that hit, revalidate. */
  sync: () => void
  /** For the API and scrapes: the native counters folded in first (revalidation is the tick's). */
  stats: () => FastPathStats
}

export interface FastPathStats {
  /** Flows in force now. */
  flows: number
  /** Frames the native thread forwarded (also in the ports' and the network's counters). */
  forwarded: number
  /** Frames it handed to the slow path, and those it dropped because the slow path was that far behind. */
  misses: number
  missDropped: number
}

/**
 * The port's edge (edge.ts): what stands between its transport and the
 * switch, as a qdisc stands on a Linux device outside br_forward. Link
 * conditions (delay, loss, a one-way drill) live there; the decision never
 * sees them. Null for a port without one: one null check per message and
 * per output.
 */
export interface PortEdge {
  /** A message of `[u32 len][frame]` records from the port (framing already checked), toward the switch. */
  receiveBatch: (msg: Buffer) => void
  /** One frame from the port (raw mode), toward the switch. */
  receiveFrame: (frame: Buffer) => void
  /** One frame for the port: out now, held for later, or lost on the link. */
  output: (buf: Buffer, off: number, len: number, op: number, vid: number, hdrOff: number) => void
  /** Send what is due by `nowMs` in `dir`; returns when the next held frame is due (Infinity: none). */
  release: (dir: number, nowMs: number) => number
}

export abstract class Port {
  /** Set by the switch while the port has output waiting for flush(). */
  dirty = false
  /** Dynamic fdb entries that point at this port (written by the fdb, which keeps the entries themselves). */
  fdbEntries = 0
  /** When the port joined, ms since the epoch (slow path only). */
  readonly connectedAt = Date.now()

  policy: PortPolicy = DEFAULT_POLICY
  mode = MODE_ACCESS
  pvid = 1
  maxMacs = DEFAULT_MAX_MACS
  shutdownOnViolation = false
  /** member[vid] === 1 if the port carries that VLAN. */
  readonly member = new Uint8Array(VLAN_COUNT)

  /** Storm control token buckets: rate (frames/s, 0 = off) and tokens, per kind. */
  bcRate = 0
  bcTokens = 0
  mcRate = 0
  mcTokens = 0
  uuRate = 0
  uuTokens = 0
  stormRefilledAt = 0

  /** Source MACs this port may use (from its token); null = any. */
  allowedMacs: ReadonlySet<number> | null = null
  /** Ingress byte rate limit (bytes/s, from its token; 0 = none) and its bucket. */
  rateBps = 0
  rateTokens = 0
  rateRefilledAt = 0

  /** Why it forwards nothing (BLOCK_* bits); 0 = forwarding. The one state every path checks; written only by Switch.setBlocked. */
  blocked = 0
  /** When loop protection's hold-down ends (switch ms clock), while BLOCK_LOOP is set. */
  loopUntil = 0
  /**
   * Link conditions toward the switch and toward the endpoint (condition.ts),
   * written by link.ts only; null = none. The edge below applies them.
   */
  condIn: LinkCondition | null = null
  condOut: LinkCondition | null = null
  /** The port's edge (edge.ts), while it has a link condition in either direction; null: none. */
  edge: PortEdge | null = null
  /** Frames a link condition held back (delayed, rate-limited, duplicated or corrupted copies), both directions. */
  framesDelayed = 0
  /** A trunk to another switch: its spanning-tree state (stp.ts); null for every other port. */
  stp: StpPort | null = null
  /**
   * Its name is its own: given by switchd or the configuration (a token's pin,
   * a QEMU listener, a trunk we dialled), or claimed under a claimable
   * profile. Static fdb entries bind only to such a port, else a client that
   * names itself "router" would take the router's static MAC. WebSocket ports
   * start without it (ws-port.ts) and get it when their name is trusted.
   */
  ownsName = true
  /**
   * Its split-horizon group (decision.ts): a frame that came in on a port
   * with a horizon never leaves by another port of the same horizon. 0 =
   * none; HORIZON_MESH for a fleet's mesh links; a VNI's VXLAN ports share
   * one of their own (daemon/endpoints.ts), unless it relays between its VTEPs.
   */
  horizon = 0
  /** Its VLANs are what another switch granted (a trunk we dialled), not our profiles': reload leaves them. */
  policyFromPeer = false
  /**
   * Its records carry a virtio-net header (capability "offload", granted in
   * its welcome): it sends and may receive GSO frames and partial checksums.
   * A port without it is only ever given frames a wire could carry.
   */
  offload = false
  /**
   * The network's native fast path (core/fastpath.ts) if this port is one of
   * its TAPs; null for every other port, which then pays this one null check.
   */
  fastPath: FastPathHooks | null = null
  /**
   * Who its per-client shares count against (the gateway's flows, condition
   * memory, the log's budgets; issue 21): for a WebSocket port its client's
   * address (common/address.ts clientKeyOf: an IPv4 address, an IPv6 /64,
   * all of loopback as one), so that one address with 20 ports has one
   * share; for every other port (a TAP, a QEMU listener, the gateway, a trunk
   * switchd dials) the port itself.
   */
  clientKey: string

  rxFrames = 0
  rxBytes = 0
  txFrames = 0
  txBytes = 0
  /**
   * Dropped frames by reason (reasons.ts R_*), ingress and egress, bumped by
   * Switch.drop() (transports bump backpressure and disconnected here
   * themselves). Read at scrape time (drops.ts).
   */
  readonly drops = dropCounts()
  /** The storm drops (drops[R_STORM]) by kind (storm.ts KIND_*): the admin API shows them apart. */
  readonly stormDrops = new Float64Array(3)
  /** Control messages (BPDUs) not sent: the peer was not reading. */
  dropControl = 0
  /** Times loop protection blocked this port; port-security violations. */
  loopBlocks = 0
  securityViolations = 0

  /**
   * A mesh link to another replica of the fleet (docs/FLEET.md): its horizon
   * is HORIZON_MESH, so split horizon (decision.ts) never sends a frame from
   * one mesh port out of another; and it runs no spanning tree.
   */
  get mesh (): boolean { return this.horizon === HORIZON_MESH }
  set mesh (on: boolean) { if (on) this.horizon = HORIZON_MESH; else if (this.horizon === HORIZON_MESH) this.horizon = 0 }

  /** Count `n` frames dropped for `reason` on this port only (the network's count is Switch.drop's or countDrops'). */
  addDrops (reason: number, n: number): void {
    this.drops[reason] = (this.drops[reason] as number) + n
  }

  constructor (readonly id: number, public name: string) {
    this.clientKey = `port ${id}`
    this.member[1] = 1
  }

  /** Apply a policy (at join, or on configuration reload). */
  applyPolicy (policy: PortPolicy): void {
    this.policy = policy
    this.mode = policy.mode
    this.pvid = policy.pvid
    this.maxMacs = policy.maxMacs
    this.shutdownOnViolation = policy.violation === 'shutdown'
    this.member.fill(0)
    for (const vid of policy.vlans) this.member[vid] = 1
    this.bcRate = policy.stormBroadcast
    this.mcRate = policy.stormMulticast
    this.uuRate = policy.stormUnknownUnicast
    this.bcTokens = this.bcRate
    this.mcTokens = this.mcRate
    this.uuTokens = this.uuRate
  }

  /**
   * Queue one frame, buf[off, off + len), for this port, transformed by the
   * egress `op` (common/vlan.ts) with `vid`. Must not keep `buf` beyond what
   * the transport needs, nor any view of it while the switch is `releasing`
   * (a condition's queue reuses those bytes), must never throw, and drops (counting
   * drops[R_BACKPRESSURE]) rather than queue without bound. `hdrOff` is where the
   * frame's virtio-net header is in `buf`, or -1: only a port with `offload`
   * is ever given one, and it sends a zero header for -1.
   */
  abstract output (buf: Buffer, off: number, len: number, op: number, vid: number, hdrOff: number): void

  /** Send whatever output() queued; called once per ingress message. */
  abstract flush (): void

  /** Take the port down (port-security shutdown, policy change): the transport closes it. */
  abstract shutdown (code: number, reason: string): void

  /** Send a control message (a BPDU) to the switch at the far end; only trunks carry them. */
  sendControl (_text: string): void {}

  /**
   * A link condition of this port holds a frame due at `dueMs` (the switch's
   * precise clock) earlier than any wake-up asked for so far: call
   * Switch.releaseHeld(this, dir, now) then. Ports with a transport set a timer (net-port.ts).
   */
  wakeCondition (_dir: number, _dueMs: number): void {}

  /** The link went down or came up (both directions): a port whose far end has a carrier (a TAP) tells it. */
  linkChanged (_up: boolean): void {}
}
