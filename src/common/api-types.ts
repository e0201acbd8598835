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
  kind: 'raw' | 'tapswitch' | 'qemu' | 'trunk' | 'tap'
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
