/**
 * The admin API's JSON, as switchd sends it (src/switch/control/api/) and switchctl
 * reads it (src/ctl/): one definition, so the two cannot drift apart.
 * Types only: nothing here runs.
 */

/** GET /api/v1/ports: one port. */
export interface PortJson {
  id: number
  name: string
  network: string
  kind: 'raw' | 'tapswitch' | 'qemu' | 'trunk' | 'gateway' | 'tap' | 'mesh' | 'vxlan' | 'geneve'
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
  /** What carries its frames: the network's native fast path (docs/NATIVE-PATH.md) or switchd's event loop. */
  path: 'native' | 'js'
  /** Trunks to other switches only. */
  stp?: {
    role: string
    forwarding: boolean
    /** The far switch's bridge id, from its BPDUs (undefined until one is current). */
    neighbour: string | undefined
    /** The far switch's name as this switch knows it: the host of the URL it dialled (a trunk it dialled), or the name the far switch asked for (one it accepted). */
    peer: string
    /** The root and the cost to it the far switch advertises (the web console draws the links it implies between other switches). */
    neighbourRoot: string | undefined
    neighbourCost: number | undefined
    bpdusIn: number
    bpdusOut: number
    badBpdus: number
  }
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
  /** The native fast path of its local TAPs (docs/LOCAL-TAPS.md), when it has one. */
  fastPath?: { flows: number, forwarded: number, misses: number, missDropped: number }
  /** Its gateway (docs/GATEWAY.md), when it has one. */
  gateway?: GatewayJson
}

/** A network's gateway: its child, the host sockets (flows) it holds for the stations, what it refused by reason. */
export interface GatewayJson {
  up: boolean
  starts: number
  /** How its child is confined: `landlock`, or `weak` (no Landlock; `sandboxWhy` says what is missing); `starting` before its first start. */
  sandbox: 'landlock' | 'weak' | 'starting'
  sandboxWhy?: string
  /** The child's RLIMIT_NOFILE. */
  fdLimit: number
  flows: number
  maxFlows: number
  flowsPerClient: number
  /** Clients holding flows now. */
  clients: number
  filtered: Record<string, number>
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

/** GET /api/v1/leases: one lease of a network's gateway (docs/GATEWAY.md). */
export interface LeaseJson {
  network: string
  mac: string
  ip: string
  /** dynamic: from the pool; static: from the configuration (staticLeases). */
  kind: 'dynamic' | 'static'
  /** offered (held for a REQUEST), bound, expired (free, remembered as the MAC's previous address); static leases are always bound. */
  state: 'offered' | 'bound' | 'expired'
  /** When it expires (or expired), ISO 8601; null for a static lease. */
  expires: string | null
  /** The port it is bound to (the one the MAC is on, for a static lease); null until the station is seen again after a restart. */
  port: string | null
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

/** One line of the event log the web console shows (a log event at info or above). */
export interface LogEntryJson {
  /** Increases by one per entry: a client that reconnects knows what it has seen. */
  seq: number
  time: string
  level: 'info' | 'warn' | 'error'
  component: string
  event: string
  fields: Record<string, string | number | boolean | null>
}

/** The subprotocol of GET /api/v1/events; the upgrade answers with it alone. */
export type CONSOLE_SUBPROTOCOL_NAME = 'tapswitch.console'
/** The admin token, offered as a second subprotocol: this prefix and the token in base64url (no padding). */
export type BEARER_SUBPROTOCOL_PREFIX = 'bearer.'

/**
 * GET /api/v1/events (a WebSocket): what switchd sends the web console.
 * The upgrade offers the subprotocols `tapswitch.console` and
 * `bearer.<base64url of the admin token>` (or sends `Authorization: Bearer`;
 * never the URL) and is refused with 401 without the token; then `welcome`
 * with the recent log (in order), a `tick` every second and `log` as events
 * happen.
 */
export type ConsoleMessage =
  | { type: 'welcome', log: LogEntryJson[], actions: string[] }
  | {
    type: 'tick'
    /** Milliseconds since the epoch, on switchd's clock: rates are deltas over this. */
    time: number
    networks: NetworkJson[]
    /** The first TICK_PORTS (256) ports of `portsTotal` (switchctl ports lists them all). */
    ports: PortJson[]
    portsTotal: number
    captures: number
    /** Every other tick: the fdb, at most `limit` rows of `total`. */
    fdb?: { rows: FdbJson[], total: number, limit: number }
  }
  | { type: 'log', entries: LogEntryJson[] }

/** POST /api/v1/trace: the request. `frame` is a frame spec (common/framespec.ts) or hex bytes. */
export interface TraceRequestJson {
  network?: string
  in: string
  frame: string
}

/** One step of a frame trace: what the switch checked, its verdict, and why. */
export interface TraceStepJson {
  step: 'ingress' | 'condition' | 'rate' | 'validate' | 'vlan' | 'guard' | 'learn' | 'lookup' | 'link_local' | 'storm' | 'split_horizon' | 'egress'
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

/**
 * An admin API error: `error` is one line for a person; `code` (common/errors.ts)
 * is for programs. A name that does not exist (TSW_ERR_NOT_FOUND, 404) adds
 * its kind, the name asked for, the names there are, and the near miss.
 */
export interface ApiErrorJson {
  error: string
  code?: string
  kind?: 'network' | 'port' | 'vlan' | 'static' | 'gateway'
  name?: string
  known?: string[]
  suggestion?: string
}

/** POST /api/v1/drain's body: `{}` or `{"drain": true}` drains this replica, `{"drain": false}` takes it back. */
export interface DrainRequestJson {
  drain?: boolean
}

/** POST /api/v1/drain's answer, once the ports it closed are gone (or cut after the close timeout). */
export interface DrainJson {
  /** Whether this replica drains now: not ready, upgrades refused with 503, no port kept. */
  draining: boolean
  /** WebSocket ports (and handshakes) this request closed with 4006: 0 when already drained, or undrained. */
  closed: number
}

/** GET /fleet/v1/state, with the fleet credential: what a replica holds, for its peers (docs/FLEET.md). */
export interface FleetStateJson {
  replica: string
  /** Shutting down (or draining): its peers dial it no new mesh link. */
  draining: boolean
  /** Networks with at least one local port that is not a mesh link (nor a gateway). */
  networks: string[]
  /** A random id of this switchd process: a peer answering with our name and another id is another replica. */
  instance: string
}

/** GET /api/v1/status: this switchd as a replica of its fleet. */
export interface StatusJson {
  /** Its name (--replica, default the host's name). */
  replica: string
  /** Whether it runs with --fleet, and its fleet's peers answering now and mesh links up. */
  fleet: boolean
  peers: number
  meshLinks: number
}
