/**
 * The admin API's JSON, as switchd sends it (src/switch/control/api.ts) and switchctl
 * reads it (src/ctl/): one definition, so the two cannot drift apart.
 * Types only: nothing here runs.
 */

/** GET /api/v1/ports: one port. */
export interface PortJson {
  id: number
  name: string
  network: string
  kind: 'raw' | 'tapswitch' | 'qemu' | 'trunk'
  remote: string
  connectedAt: string
  mode: 'access' | 'trunk'
  pvid: number
  vlans: readonly number[]
  /** disabled by an operator, discarding for the spanning tree, blocked by loop protection (blockedSeconds left). */
  state: 'forwarding' | 'blocked' | 'discarding' | 'disabled'
  blockedSeconds: number
  fdbEntries: number
  maxMacs: number
  offload: boolean
  /** Trunks to other switches only. */
  stp?: { role: string, forwarding: boolean, neighbour: string | undefined, bpdusIn: number, bpdusOut: number, badBpdus: number }
  counters: { rxFrames: number, rxBytes: number, txFrames: number, txBytes: number, loopBlocks: number, securityViolations: number }
  /** Frames dropped, by counter (src/switch/core/drops.ts: `dropPortSecurity` as `portSecurity`). */
  drops: Record<string, number>
}

/** GET /api/v1/networks: one network. */
export interface NetworkJson {
  name: string
  ports: number
  maxFrameSize: number
  fdb: Record<string, number>
  stp: { bridge: string, root: string, rootCost: number, rootPort: string | undefined, trunks: number, topologyChanges: number }
  counters: Record<string, number>
}

/** GET /api/v1/fdb: one entry. */
export interface FdbJson {
  network: string
  vlan: number
  mac: string
  port: string
  /** Seconds since the MAC was last seen. */
  age: number
  static: boolean
}

/** POST /api/v1/trace: the request. `frame` is a frame spec (common/framespec.ts) or hex bytes. */
export interface TraceRequestJson {
  network?: string
  in: string
  frame: string
}

/** One step of a frame trace: what the switch checked, its verdict, and why. */
export interface TraceStepJson {
  step: 'ingress' | 'condition' | 'rate' | 'validate' | 'vlan' | 'learn' | 'lookup' | 'link_local' | 'storm' | 'egress'
  verdict: 'pass' | 'drop' | 'forward' | 'flood' | 'note'
  detail: string
}

/** One egress port of a trace, and how the frame leaves it. */
export interface TraceEgressJson {
  port: string
  vlan: number
  tagging: 'untagged' | 'tagged'
}

/** POST /api/v1/trace: the forwarding decision for a frame as the switch would take it now (nothing changed). */
export interface TraceJson {
  network: string
  ingress: string
  frame: { dst: string, src: string, vlan: number | null, ethertype: string, length: number }
  steps: TraceStepJson[]
  action: 'forward' | 'flood' | 'drop'
  /** drops.ts reason when action is drop. */
  dropReason?: string
  egress: TraceEgressJson[]
}

/** GET /api/v1/drops: one dropped frame. */
export interface DropJson {
  seq: number
  time: string
  network: string
  port: string
  /** null when the frame was too short to have them. */
  src: string | null
  dst: string | null
  /** null when the frame was dropped before VLAN classification. */
  vlan: number | null
  reason: string
}

/** GET /api/v1/drops?since=SEQ: drops after `since`, oldest first. */
export interface DropsJson {
  /** Pass as `since` to get only newer ones (switchctl drops --follow). */
  last: number
  /** Drops after `since` that the ring no longer holds (it keeps `size`). */
  lost: number
  size: number
  drops: DropJson[]
}
