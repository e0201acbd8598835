/**
 * The fleet's membership loop (issue 25, docs/FLEET.md): find the peers
 * (`--fleet` URLs, or every address of a `dns://NAME:PORT`, resolved again
 * every RESOLVE_INTERVAL_MS), ask each what it holds (GET /fleet/v1/state
 * with the fleet credential, about once a second, one request in flight per
 * peer, each bounded in time and size), and open or close mesh links as the
 * pure plan (core/fleet-plan.ts) says. The links themselves are
 * io/mesh-link.ts; what the daemon provides (the networks with local ports,
 * the registry) comes through FleetHost.
 *
 * A peer's answer is untrusted input even with the credential: at most
 * MAX_STATE_BYTES are read, the JSON is checked (parsePeerState), and only
 * networks we also have are ever dialled.
 */

import * as http from 'node:http'
import * as https from 'node:https'
import { promises as dns } from 'node:dns'
import { readFileSync } from 'node:fs'
import {
  MeshPlan, AwaitWatch, meshKey, nameClashes, parsePeerState, peerBases, MAX_PEERS, FLEET_TIMING, POLL_TIMEOUT_MS, type FleetTiming,
  type FleetSpec, type PeerState, type PeerView, type MeshWant
} from '../core/fleet-plan'
import { MeshLink, type MeshHost } from './mesh-link'
import { logger } from '../../common/log'
import { TapswitchError, ERR_CONFIG } from '../../common/errors'

const log = logger('fleet')

/** The path every replica answers its state on (daemon/admit.ts FLEET_STATE_PATH). */
const STATE_PATH = '/fleet/v1/state'
/** The most of a peer's answer we read: a replica with maxNetworks names fits many times over. */
export const MAX_STATE_BYTES = 1024 * 1024

export interface FleetHost extends MeshHost {
  /** The networks with at least one local port that is not a mesh port (what /fleet/v1/state says). */
  localNetworks (): ReadonlySet<string>
  allocateId (): number
  readonly portBuffer: number
  /** Mesh links peers dialled to us, by meshKey(peer, network). */
  answeredLinks (): ReadonlySet<string>
  /** This switchd process's random id, as /fleet/v1/state gives it. */
  readonly instance: string
}

/** Every address of a name (getaddrinfo's, as a Kubernetes headless Service's records); tests set their own (setFleetLookup). */
type Lookup = (name: string) => Promise<string[]>
let lookup: Lookup = async (name) => (await dns.lookup(name, { all: true })).map((a) => a.address)

/** Replace how dns:// peer names are resolved (tests: a name for two loopback addresses); returns the one it replaces. */
export function setFleetLookup (fn: Lookup): Lookup {
  const was = lookup
  lookup = fn
  return was
}

let timing: FleetTiming = FLEET_TIMING

/**
 * Replace the fleet's periods for the Fleets made from now on (tests: polls,
 * grace, await and staleness in seconds, not tens of them; the same rules);
 * returns the ones it replaces.
 */
export function setFleetTiming (t: FleetTiming): FleetTiming {
  const was = timing
  timing = t
  return was
}

/** A peer's base URL for an address DNS gave: IPv6 in brackets. */
export function baseOf (scheme: 'http' | 'https', address: string, port: number): string {
  return `${scheme}://${address.includes(':') ? `[${address}]` : address}:${port}`
}

/** GET /fleet/v1/state of `base`: its state, or why not (a word for the log). Bounded by `timeoutMs` and MAX_STATE_BYTES. */
export function fetchState (base: string, token: string, ca: Buffer | undefined, timeoutMs = POLL_TIMEOUT_MS): Promise<PeerState | string> {
  return new Promise((resolve) => {
    const get = base.startsWith('https:') ? https.get : http.get
    let done = false
    const finish = (v: PeerState | string): void => { if (!done) { done = true; clearTimeout(timer); resolve(v) } }
    const req = get(base + STATE_PATH, { headers: { authorization: `Bearer ${token}` }, agent: false, ...(ca !== undefined ? { ca } : {}) }, (res) => {
      if (res.statusCode !== 200) { res.resume(); finish(`HTTP ${res.statusCode ?? 0}`); return }
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (c: Buffer) => {
        size += c.length
        if (size > MAX_STATE_BYTES) { req.destroy(); finish('answer too large'); return }
        chunks.push(c)
      })
      res.on('end', () => { finish(parsePeerState(Buffer.concat(chunks).toString('utf8')) ?? 'not a fleet state') })
      res.on('error', (err) => { finish(err.message) })
    })
    // The whole request, not only an idle socket: a peer dripping bytes is cut too.
    const timer = setTimeout(() => { req.destroy(); finish('timeout') }, timeoutMs)
    req.on('error', (err) => { finish((err as NodeJS.ErrnoException).code ?? err.message) })
  })
}

/** What the fixes for a refused poll are, by status. */
function pollHint (why: string): string | undefined {
  if (why === 'HTTP 401') return 'the peer has another fleet credential: give every replica the same --fleet-token-file'
  if (why === 'HTTP 404') return 'the peer runs without --fleet, or is not switchd'
  return undefined
}

export class Fleet {
  /** Mesh links we dialled, by meshKey(peer, network). */
  readonly links = new Map<string, MeshLink>()
  /** The peers' last answers, by base URL. */
  private readonly views = new Map<string, PeerView>()
  private readonly inFlight = new Set<string>()
  private bases: string[] = []
  /** Each dns:// peer's addresses at its last successful lookup. */
  private readonly resolved = new Map<string, string[]>()
  private readonly timing = timing
  private readonly plan = new MeshPlan(this.timing)
  private readonly watch = new AwaitWatch(this.timing)
  /** Links peers should have dialled to us and have not for AWAIT_MS (meshKey), at the last round. */
  awaited: string[] = []
  private readonly ca: Buffer | undefined
  private pollTimer: NodeJS.Timeout | undefined
  private resolveTimer: NodeJS.Timeout | undefined
  private stopped = false
  /** Replica names two processes answer to (nameClashes), at the last round. */
  clashes: string[] = []
  /** Polls that got no state (unreachable, refused, malformed). */
  pollsFailed = 0

  constructor (readonly self: string, readonly spec: FleetSpec, private readonly tls: boolean, private readonly host: FleetHost) {
    // A configuration error naming the flag (main() would otherwise say it as the listen address's: "listen …: ENOENT").
    try { this.ca = spec.ca === undefined ? undefined : readFileSync(spec.ca) } catch (err) {
      throw new TapswitchError(ERR_CONFIG, `--uplink-ca ${spec.ca ?? ''}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
  }

  /** The peer addresses asked each round (at most MAX_PEERS). */
  get targets (): number { return this.bases.length }

  /** Peers answering now (ourselves left out). */
  get peers (): number {
    let n = 0
    const now = performance.now()
    for (const v of this.views.values()) if (v.state.replica !== this.self && now - v.atMs <= this.timing.staleMs) n++
    return n
  }

  async start (): Promise<void> {
    await this.resolve()
    this.pollTimer = setInterval(() => { this.round() }, this.timing.pollMs)
    if (this.spec.peers.some((p) => p.kind === 'dns')) this.resolveTimer = setInterval(() => { void this.resolve() }, this.timing.resolveMs)
    this.round()
  }

  async close (): Promise<void> {
    this.stopped = true
    clearInterval(this.pollTimer)
    clearInterval(this.resolveTimer)
    const links = [...this.links.values()]
    this.links.clear()
    await Promise.all(links.map(async (l) => { await l.close(true) }))
  }

  /** The peers' base URLs: the URLs as given, and every address of each DNS name (kept as they were if a lookup fails). */
  private async resolve (): Promise<void> {
    const scheme = this.tls ? 'https' : 'http'
    const out: string[] = []
    for (const p of this.spec.peers) {
      if (p.kind === 'url') { out.push(p.url); continue }
      const key = `${p.name}:${p.port}`
      try {
        this.resolved.set(key, (await lookup(p.name)).map((a) => baseOf(scheme, a, p.port)))
      } catch (err) {
        log.limited('warn', 'fleet_dns_failed', { name: p.name, error: (err as NodeJS.ErrnoException).code ?? (err as Error).message })
      }
      out.push(...(this.resolved.get(key) ?? []))
    }
    const { bases, left } = peerBases(out)
    if (left > 0) log.limited('error', 'fleet_too_many_peers', { given: bases.length + left, asked: MAX_PEERS, fix: `a fleet has at most ${MAX_PEERS} replicas: check what the --fleet names resolve to` })
    this.bases = bases
    for (const b of this.views.keys()) if (!this.bases.includes(b)) this.views.delete(b)
  }

  /** One round: poll every peer not still answering the last poll, then apply the plan to what is known. */
  private round (): void {
    if (this.stopped) return
    for (const base of this.bases) if (!this.inFlight.has(base)) void this.poll(base)
    const now = performance.now()
    this.clashes = nameClashes(this.self, this.host.instance, this.views.values(), now, this.timing.staleMs)
    for (const name of this.clashes) {
      log.limited('error', 'fleet_name_clash', { replica: name, self: name === this.self, fix: 'two switchd processes answer to this replica name: give each its own --replica (a host name is cut at its first dot)' })
    }
    const local = this.host.localNetworks()
    this.awaited = this.watch.step(this.self, local, this.views.values(), this.host.answeredLinks(), now)
    for (const key of this.awaited) {
      const [peer, network] = key.split('\n')
      log.limited('warn', 'mesh_link_awaited', { peer, network, fix: `replica ${peer ?? ''} should dial this one for network ${network ?? ''} and has not: check that its --fleet lists this replica (or its dns:// name resolves to it) and that it can reach this replica's address` })
    }
    const step = this.plan.step(this.self, local, this.views.values(), new Set(this.links.keys()), now)
    for (const want of step.dial) this.dial(want)
    for (const key of step.close) {
      const link = this.links.get(key)
      this.links.delete(key)
      if (link !== undefined) {
        log.info('mesh_link_closed', { peer: link.spec.peer, network: link.spec.network, reason: 'no longer needed' })
        void link.close(false)
      }
    }
  }

  private async poll (base: string): Promise<void> {
    this.inFlight.add(base)
    try {
      const got = await fetchState(base, this.spec.token, this.ca, this.timing.pollTimeoutMs)
      if (this.stopped) return
      if (typeof got === 'string') {
        this.pollsFailed++
        log.limited('warn', 'fleet_peer_unanswered', { peer: base, error: got, fix: pollHint(got) })
        return
      }
      if (this.bases.includes(base)) this.views.set(base, { base, state: got, atMs: performance.now() })
    } finally {
      this.inFlight.delete(base)
    }
  }

  private dial (want: MeshWant): void {
    const link = new MeshLink({ self: this.self, peer: want.peer, network: want.network, base: want.base, token: this.spec.token, vlans: this.spec.vlans, ca: this.spec.ca },
      this.host, () => this.host.allocateId(), this.host.portBuffer)
    this.links.set(meshKey(want.peer, want.network), link)
    log.info('mesh_link_dial', { peer: want.peer, network: want.network, url: want.base })
    link.start()
  }
}
