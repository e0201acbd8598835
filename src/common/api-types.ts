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
  /** disabled by an operator, down (a failure drill), discarding for the spanning tree, blocked by loop protection (blockedSeconds left). */
  state: 'forwarding' | 'blocked' | 'discarding' | 'disabled' | 'down'
  blockedSeconds: number
  fdbEntries: number
  maxMacs: number
  offload: boolean
  /** Trunks to other switches only. */
  stp?: { role: string, forwarding: boolean, neighbour: string | undefined, bpdusIn: number, bpdusOut: number, badBpdus: number }
  counters: { rxFrames: number, rxBytes: number, txFrames: number, txBytes: number, loopBlocks: number, securityViolations: number }
  /** Link conditions and failure drills (docs/CONDITIONS.md); absent when the port has none. */
  condition?: PortConditionJson
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

/** One direction of a port's link condition, in ms, percent and bits/s (src/switch/core/condition.ts conditionJson). */
export interface ConditionJson {
  delay?: number
  jitter?: number
  jitterReorders?: boolean
  loss?: number
  burst?: { p: number, r: number, lossBad: number, lossGood: number }
  duplicate?: number
  corrupt?: number
  reorder?: number
  rate?: number
  backlog?: number
  queueFrames: number
  queueBytes: number
  seed?: number
  /** This direction alone is down (switchctl link down PORT --direction). */
  down: boolean
  /** Frames and bytes held now. */
  queuedFrames: number
  queuedBytes: number
}

/** GET /api/v1/conditions, and a port's `condition`: "in" toward the switch, "out" toward the endpoint. */
export interface PortConditionJson {
  port: string
  network: string
  in?: ConditionJson
  out?: ConditionJson
  /** Frames held back by a condition (delayed, rate-limited, copies), both directions. */
  framesDelayed: number
  /** A scheduled flap: down `down` seconds every `every` seconds. */
  flap?: { down: number, every: number }
}
