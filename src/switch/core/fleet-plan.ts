/**
 * The fleet's mesh, as a policy (issue 25, docs/FLEET.md): given our replica
 * name, the networks we have local ports in and what each peer last said
 * (GET /fleet/v1/state), which mesh links this replica dials and which it
 * closes. No I/O and no clock of its own (the time is passed in), so the
 * whole policy is unit-tested with literals (test/unit/fleet-plan.test.ts);
 * io/fleet.ts polls, resolves and dials around it.
 *
 * The rules:
 *  - a link joins one network between two replicas that both have a local
 *    port (not a mesh port) in it: the networks a peer reports, intersected
 *    with ours;
 *  - exactly one side dials: the replica whose name sorts lower, so two
 *    replicas never open two links for one network;
 *  - a peer that answers with our own name is ourselves (the same list is
 *    given to every replica) and is skipped; a draining peer is not dialled;
 *  - a link no longer needed closes after GRACE_MS, so a port that
 *    reconnects (an agent's resume, a rollout) does not tear the mesh down
 *    and up again;
 *  - a peer that stops answering is forgotten after PEER_STALE_MS: its links
 *    are then unneeded (the socket's own death usually closes them first,
 *    and the link redials only while it is still needed).
 */

/** A replica's name: a DNS label, as a Kubernetes pod's or a systemd instance's. */
export const REPLICA_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/
/** Poll each peer this often (ms), each poll bounded by POLL_TIMEOUT_MS. */
export const POLL_INTERVAL_MS = 1000
export const POLL_TIMEOUT_MS = 2000
/** Resolve a dns:// peer name again this often (ms): a headless Service's records follow its pods. */
export const RESOLVE_INTERVAL_MS = 5000
/** A link unneeded for this long (ms) is closed. */
export const GRACE_MS = 10_000
/** A link a peer should have dialled to us and has not, for this long (ms), is said (the dialler retries within 2 s). */
export const AWAIT_MS = 15_000
/** A peer whose last answer is older than this (ms) is forgotten. */
export const PEER_STALE_MS = 5000

/** The fleet's periods (ms), together: FLEET_TIMING in service; a test shortens them all (io/fleet.ts setFleetTiming), not one. */
export interface FleetTiming {
  readonly pollMs: number
  readonly pollTimeoutMs: number
  readonly resolveMs: number
  readonly graceMs: number
  readonly awaitMs: number
  readonly staleMs: number
}
export const FLEET_TIMING: FleetTiming = Object.freeze({
  pollMs: POLL_INTERVAL_MS, pollTimeoutMs: POLL_TIMEOUT_MS, resolveMs: RESOLVE_INTERVAL_MS, graceMs: GRACE_MS, awaitMs: AWAIT_MS, staleMs: PEER_STALE_MS
})
/**
 * The most peer addresses asked: every one is a request a second and, when
 * shared networks exist, a mesh link each. A DNS answer (a `dns://` name's
 * records) is not ours to trust with a number of sockets: beyond this, the
 * lowest addresses are kept and the rest left out, logged.
 */
export const MAX_PEERS = 64
/** The fleet credential's least length: a shared secret no one guesses (e.g. `openssl rand -hex 32`). */
export const MIN_FLEET_TOKEN = 32

/** Where the fleet's peers are: base URLs, or a DNS name every address of which is a peer. */
export type FleetPeerSpec = { readonly kind: 'url', readonly url: string } | { readonly kind: 'dns', readonly name: string, readonly port: number }

/** `--fleet`, `--fleet-token-file`, `--fleet-vlans`: read by control/config/fleet.ts, used by io/fleet.ts and the daemon. */
export interface FleetSpec {
  readonly peers: readonly FleetPeerSpec[]
  /** The fleet credential: the bearer token of /fleet/v1/state and of mesh links, compared in constant time. */
  readonly token: string
  /** VLANs a mesh link carries tagged, besides VLAN 1 untagged. */
  readonly vlans: readonly number[]
  /** PEM CA to verify https:// peers with (--uplink-ca), else the system's. */
  readonly ca: string | undefined
}

/** What a peer said of itself (GET /fleet/v1/state). */
export interface PeerState {
  readonly replica: string
  readonly draining: boolean
  readonly networks: readonly string[]
  /** A random id of the switchd process: two answers with one name and two ids are two replicas (nameClashes). */
  readonly instance?: string
}

/** A peer as the poller knows it: its base URL and its last answer, with when it came. */
export interface PeerView {
  readonly base: string
  readonly state: PeerState
  readonly atMs: number
}

/** One mesh link: to which replica, for which network, at which base URL. */
export interface MeshWant {
  readonly peer: string
  readonly network: string
  readonly base: string
}

export interface PlanStep {
  /** Links to open now (we are the lower name, both sides have local ports, none is held). */
  readonly dial: MeshWant[]
  /** Keys (meshKey) of held links to close now: unneeded for GRACE_MS. */
  readonly close: string[]
}

/** A link's key: the peer's replica name and the network (neither holds a newline). */
export function meshKey (peer: string, network: string): string { return `${peer}\n${network}` }

/** The peers' base URLs to ask: each once, at most MAX_PEERS of them (the lowest, so every replica keeps the same ones); `left` says how many were left out. */
export function peerBases (bases: Iterable<string>): { bases: string[], left: number } {
  const all = [...new Set(bases)].sort()
  return { bases: all.slice(0, MAX_PEERS), left: Math.max(0, all.length - MAX_PEERS) }
}

/** Parse a /fleet/v1/state answer; undefined if it is not one (a peer's bytes are untrusted input). */
export function parsePeerState (text: string): PeerState | undefined {
  let v: unknown
  try { v = JSON.parse(text) } catch { return undefined }
  if (typeof v !== 'object' || v === null) return undefined
  const o = v as Record<string, unknown>
  if (typeof o.replica !== 'string' || !REPLICA_NAME.test(o.replica) || !Array.isArray(o.networks)) return undefined
  const networks = o.networks.filter((n): n is string => typeof n === 'string' && n.length > 0 && n.length <= 64 && !n.includes('\n'))
  const instance = typeof o.instance === 'string' && /^[0-9a-f]{1,64}$/.test(o.instance) ? o.instance : undefined
  return instance === undefined ? { replica: o.replica, draining: o.draining === true, networks } : { replica: o.replica, draining: o.draining === true, networks, instance }
}

/**
 * Replica names that two switchd processes answer to: our own name from
 * another process, or one name from two. Each would be skipped (ours) or
 * reached at one address only (peersByName), silently splitting the
 * networks both hold: a host name cut at its first dot (sw.lab1, sw.lab2),
 * a --replica copied, or a peer claiming another's name.
 */
export function nameClashes (self: string, instance: string, views: Iterable<PeerView>, nowMs: number, staleMs = PEER_STALE_MS): string[] {
  const seen = new Map<string, string>([[self, instance]])
  const out = new Set<string>()
  for (const v of views) {
    const id = v.state.instance
    if (id === undefined || nowMs - v.atMs > staleMs) continue
    const had = seen.get(v.state.replica)
    if (had === undefined) seen.set(v.state.replica, id)
    else if (had !== id) out.add(v.state.replica)
  }
  return [...out].sort()
}

/**
 * The peers by replica name: ourselves skipped, stale answers dropped, and
 * one base per replica (the lowest URL, so every round picks the same one).
 */
export function peersByName (self: string, views: Iterable<PeerView>, nowMs: number, staleMs = PEER_STALE_MS): Map<string, PeerView> {
  const out = new Map<string, PeerView>()
  for (const v of views) {
    if (v.state.replica === self || nowMs - v.atMs > staleMs) continue
    const had = out.get(v.state.replica)
    if (had === undefined || v.base < had.base) out.set(v.state.replica, v)
  }
  return out
}

/** The links this replica should hold as the dialler: with each live peer named above us, every network both have. */
export function wantedLinks (self: string, local: ReadonlySet<string>, peers: ReadonlyMap<string, PeerView>): Map<string, MeshWant> {
  const out = new Map<string, MeshWant>()
  for (const [peer, v] of peers) {
    if (!(self < peer)) continue
    for (const network of v.state.networks) {
      if (local.has(network)) out.set(meshKey(peer, network), { peer, network, base: v.base })
    }
  }
  return out
}

/** The links this replica should be dialled: with each live peer named below us, every network both have. */
export function awaitedLinks (self: string, local: ReadonlySet<string>, peers: ReadonlyMap<string, PeerView>): string[] {
  const out: string[] = []
  for (const [peer, v] of peers) {
    if (!(peer < self) || v.state.draining) continue
    for (const network of v.state.networks) if (local.has(network)) out.push(meshKey(peer, network))
  }
  return out
}

/**
 * The answering side's watch: links a peer should have dialled (its name
 * sorts lower, both have local ports) and that have been missing for
 * AWAIT_MS. The dialler decides alone, from what it sees: a peer that cannot
 * reach or ask us (a one-way firewall, a --fleet list or a DNS answer that
 * leaves us out) would otherwise split the network in silence.
 */
export class AwaitWatch {
  private readonly missingSince = new Map<string, number>()

  constructor (private readonly timing: FleetTiming = FLEET_TIMING) {}

  /** One round: `present` are the keys of the links peers dialled to us. Returns the keys missing for AWAIT_MS. */
  step (self: string, local: ReadonlySet<string>, views: Iterable<PeerView>, present: ReadonlySet<string>, nowMs: number): string[] {
    const awaited = new Set(awaitedLinks(self, local, peersByName(self, views, nowMs, this.timing.staleMs)))
    const late: string[] = []
    for (const key of awaited) {
      if (present.has(key)) { this.missingSince.delete(key); continue }
      const since = this.missingSince.get(key)
      if (since === undefined) this.missingSince.set(key, nowMs)
      else if (nowMs - since >= this.timing.awaitMs) late.push(key)
    }
    for (const key of this.missingSince.keys()) if (!awaited.has(key)) this.missingSince.delete(key)
    return late.sort()
  }
}

/** The dialler's plan across rounds: it remembers since when each held link has been unneeded. */
export class MeshPlan {
  private readonly unneededSince = new Map<string, number>()

  constructor (private readonly timing: FleetTiming = FLEET_TIMING) {}

  /**
   * One round: `held` are the keys of the links we dialled (up or
   * redialling). Returns what to dial and what to close now.
   */
  step (self: string, local: ReadonlySet<string>, views: Iterable<PeerView>, held: ReadonlySet<string>, nowMs: number): PlanStep {
    const peers = peersByName(self, views, nowMs, this.timing.staleMs)
    const wanted = wantedLinks(self, local, peers)
    const dial: MeshWant[] = []
    for (const [key, want] of wanted) {
      if (!held.has(key) && peers.get(want.peer)?.state.draining !== true) dial.push(want)
    }
    const close: string[] = []
    for (const key of held) {
      if (wanted.has(key)) { this.unneededSince.delete(key); continue }
      const since = this.unneededSince.get(key)
      if (since === undefined) this.unneededSince.set(key, nowMs)
      else if (nowMs - since >= this.timing.graceMs) { close.push(key); this.unneededSince.delete(key) }
    }
    for (const key of this.unneededSince.keys()) if (!held.has(key)) this.unneededSince.delete(key)
    return { dial, close }
  }
}
