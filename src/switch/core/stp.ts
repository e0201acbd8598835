/**
 * A spanning tree over one network's trunks (switch-to-switch ports), so
 * that trunks may form loops (A-B-C-A, for redundancy) without a storm.
 *
 * It is 802.1D's algorithm cut down to what trunks between switchd need:
 * every link is point to point and costs 1, so a bridge's priority vector is
 * (root id, hops to the root, bridge id, port id), and on each link the side
 * with the better vector is designated. The root port and designated ports
 * forward; the rest (alternates) discard, which leaves exactly one path
 * between any two switches. Ports that are not trunks (agents, browser VMs,
 * QEMU) never take part: they always forward, and loops through them are the
 * flap detector's (protection.ts).
 *
 * BPDUs are tapswitch.v1 control messages (JSON text), not frames: they never
 * mix with guest traffic and cannot be spoofed by a guest. They go out every
 * HELLO_MS and at once when this bridge's view changes.
 *
 * A port that may forward waits FORWARD_DELAY_MS first (802.1D's
 * listening+learning), so a link that closes a loop is seen and blocked before
 * it carries anything; a port that must discard discards at once. A change in
 * what forwards is a topology change: each switch that learns of it forgets
 * the MACs it learned on trunks, so traffic relearns along the new tree
 * instead of waiting out the ageing time. Topology changes travel in the
 * BPDUs as (origin, sequence) pairs, each acted on once per switch.
 *
 * A trunk peer may be hostile, so everything a BPDU can make us do is
 * bounded (issue 12, finding 7: 700 BPDUs with fresh origins once stalled
 * the event loop for seconds and grew our BPDUs past the 4096 characters a
 * receiver reads, so the tree failed open). A port's BPDUs are accepted at
 * BPDU_RATE a second (burst BPDU_BURST), the rest counted and ignored; a
 * BPDU's list of changes is read up to TC_ADVERTISE_MAX and ours carries at
 * most that many, the newest (our own first), so our BPDU always fits; the
 * origins remembered are TC_MEMORY; and the trunks' MACs are flushed at
 * most once per TC_FLUSH_MS, however many changes arrive (802.1D acts on a
 * topology change by shortening ageing for a while, not once per notice).
 *
 * Trunks are opt-in (a token or profile with `trunk: true`), and a trunk
 * peer that is trusted to carry frames is not thereby trusted to be our way
 * to the root: with ROOT GUARD (`rootGuard: true`, Cisco's `spanning-tree
 * guard root`) a port that hears a better root than we have never becomes
 * the root port; it is root-inconsistent and discards until such BPDUs stop
 * for max age. Otherwise one client dialling two switchd as a trunk and
 * claiming root 0000000000000001 takes their trunk to alternate and carries
 * their traffic (issue 12, finding 8). BPDU guard, for ports that are not
 * trunks, is in ports.ts.
 *
 * Pure policy: no sockets, no timers. The Switch calls tick() with its clock
 * and hands in received BPDUs; ports send what sendControl() is given.
 */

import { randomBytes } from 'node:crypto'
import { BLOCK_STP, type Port } from './port'
import { StpPort, BPDU_BURST, type StpRole, type Vector } from './stp-port'
import type { Network } from './network'
import { parseControl } from '../../common/protocol'
import { logger } from '../../common/log'

const log = logger('stp')

export const HELLO_MS = 1000
/** Information from a port that has sent no BPDU for this long is discarded (802.1D max age, scaled down). */
export const MAX_AGE_MS = 4 * HELLO_MS
export const FORWARD_DELAY_MS = 2 * HELLO_MS
/** How long a topology change is repeated in our BPDUs. */
const TC_ADVERTISE_MS = 3 * HELLO_MS
/** Topology-change origins remembered (origins are bridges; a restarted switchd is a new one). */
const TC_MEMORY = 256
/** Topology changes one BPDU carries (and we read from one): 8 x ~25 characters keeps a BPDU far below 4096. */
export const TC_ADVERTISE_MAX = 8
/** The trunks' MACs are flushed at most this often for topology changes; later ones wait for the next tick. */
export const TC_FLUSH_MS = HELLO_MS
/** BPDUs accepted from one port per second, and the burst: a neighbour sends one a hello plus one per change it sees. */
export const BPDU_RATE = 10
export const DEFAULT_BRIDGE_PRIORITY = 32768

export { StpPort, BPDU_BURST, type StpRole, type Vector }

export interface Bpdu extends Vector {
  type: 'bpdu'
  /** Recent topology changes: [origin bridge id, sequence]. */
  tc: Array<[string, number]>
}

/** A bridge id: 4 hex digits of priority, then 12 random hex digits (where 802.1D has a MAC). */
export function makeBridgeId (priority = DEFAULT_BRIDGE_PRIORITY): string {
  return priority.toString(16).padStart(4, '0') + randomBytes(6).toString('hex')
}

export const BRIDGE_ID = /^[0-9a-f]{16}$/

export function compareVectors (a: Vector, b: Vector): number {
  if (a.root !== b.root) return a.root < b.root ? -1 : 1
  if (a.cost !== b.cost) return a.cost - b.cost
  if (a.bridge !== b.bridge) return a.bridge < b.bridge ? -1 : 1
  return a.port - b.port
}

/** Validate a BPDU from the wire; undefined if it is not one (the caller counts it). */
export function parseBpdu (o: Record<string, unknown>): Bpdu | undefined {
  const { root, cost, bridge, port, tc } = o
  if (typeof root !== 'string' || !BRIDGE_ID.test(root) || typeof bridge !== 'string' || !BRIDGE_ID.test(bridge)) return undefined
  if (typeof cost !== 'number' || !Number.isInteger(cost) || cost < 0 || cost > 65535) return undefined
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0) return undefined
  const changes: Array<[string, number]> = []
  if (Array.isArray(tc)) {
    for (const t of tc.slice(0, TC_ADVERTISE_MAX)) {
      if (Array.isArray(t) && typeof t[0] === 'string' && BRIDGE_ID.test(t[0]) && Number.isInteger(t[1])) changes.push([t[0], t[1] as number])
    }
  }
  return { type: 'bpdu', root, cost, bridge, port, tc: changes }
}

export class SpanningTree {
  rootId: string
  rootCost = 0
  rootPort: Port | undefined
  /** Times what forwards changed (here or announced by another switch and acted on). */
  topologyChanges = 0
  /** Times the trunks' MACs were flushed for topology changes (at most one a TC_FLUSH_MS). */
  tcFlushes = 0
  /** BPDUs ignored for coming faster than BPDU_RATE, and root-guard blocks, on any trunk (for metrics: ports come and go). */
  bpdusDropped = 0
  rootGuardBlocks = 0
  private readonly trunks: Port[] = []
  private lastHello = -Infinity
  private helloDue = false
  private tcSeq = 0
  /** Topology changes seen, by origin: the highest sequence acted on. */
  private readonly tcSeen = new Map<string, number>()
  /** Changes we repeat in our BPDUs, with when we stop. */
  private tcAdvertise: Array<[string, number, number]> = []
  private lastFlush = -Infinity
  /** A topology change arrived within TC_FLUSH_MS of the last flush: flush on a later tick. */
  private flushPending = false
  private flushWhy = ''
  private flushOrigin = ''

  constructor (private readonly sw: Network, readonly bridgeId: string) {
    this.rootId = bridgeId
  }

  get ports (): readonly Port[] { return this.trunks }

  /**
   * A trunk joined: it discards until the tree says otherwise. It hears from
   * us on the next tick, not now: the far side's first control message must
   * be the welcome, which the caller sends after adding the port.
   */
  addPort (port: Port): void {
    port.stp = new StpPort(this.sw.nowMs)
    this.sw.setBlocked(port, BLOCK_STP, true)
    this.trunks.push(port)
    this.recompute()
    this.helloDue = true
  }

  removePort (port: Port): void {
    const i = this.trunks.indexOf(port)
    if (i < 0) return
    this.trunks.splice(i, 1)
    if (port.stp?.forwarding === true) this.topologyChange(`${port.name} down`)
    this.recompute()
    this.hello()
  }

  /**
   * A control message arrived on `port`, as either end of a trunk receives
   * it; false if it is not a valid BPDU on a trunk (a malformed BPDU is
   * counted here, the caller counts the rest).
   */
  receive (port: Port, text: string): boolean {
    const st = port.stp
    if (st === null) return false
    const msg = parseControl(text)
    if (msg?.type !== 'bpdu') return false
    if (!admitBpdu(st, this.sw.nowMs)) { st.bpdusDropped++; this.bpdusDropped++; return true }
    const bpdu = parseBpdu(msg)
    if (bpdu === undefined) { st.badBpdus++; return false }
    st.bpdusIn++
    if (bpdu.bridge === this.bridgeId) st.looped = true
    else st.info = { root: bpdu.root, cost: bpdu.cost, bridge: bpdu.bridge, port: bpdu.port }
    st.infoAt = this.sw.nowMs
    for (const [origin, seq] of bpdu.tc) this.learnTopologyChange(origin, seq)
    if (this.recompute()) this.hello()
    return true
  }

  /** Advance: expire silent neighbours, let waiting ports forward, send hellos. */
  tick (now: number): void {
    if (this.trunks.length === 0) return
    let changed = false
    for (const p of this.trunks) {
      const st = p.stp as StpPort
      if (st.info !== undefined && now - st.infoAt > MAX_AGE_MS) {
        st.info = undefined
        changed = true
        log.info('stp_info_expired', { network: this.sw.name, port: p.name })
      }
    }
    if (changed) changed = this.recompute()
    for (const p of this.trunks) {
      const st = p.stp as StpPort
      if (!st.forwarding && st.role !== 'alternate' && now - st.since >= FORWARD_DELAY_MS) {
        st.forwarding = true
        this.sw.setBlocked(p, BLOCK_STP, false)
        log.info('stp_forwarding', { network: this.sw.name, port: p.name, role: st.role })
        this.topologyChange(`${p.name} forwarding`)
        changed = true
      }
    }
    this.tcAdvertise = this.tcAdvertise.filter((t) => t[2] > now)
    if (this.flushPending && now - this.lastFlush >= TC_FLUSH_MS) this.flushTrunks(this.flushWhy, this.flushOrigin)
    if (changed || this.helloDue || now - this.lastHello >= HELLO_MS) this.hello()
  }

  /** The BPDU for `port`: our root, our cost to it, us, and the port's id. */
  bpduFor (port: Port): Bpdu {
    return { type: 'bpdu', root: this.rootId, cost: this.rootCost, bridge: this.bridgeId, port: port.id, tc: this.tcAdvertise.map((t) => [t[0], t[1]]) }
  }

  /** Roles from the vectors; returns true if any role changed. */
  private recompute (): boolean {
    let best: Vector | undefined
    let bestPort: Port | undefined
    for (const p of this.trunks) {
      const info = (p.stp as StpPort).info
      if (info === undefined || (p.stp as StpPort).rootGuard) continue
      const via = { root: info.root, cost: info.cost + 1, bridge: info.bridge, port: info.port }
      if (best === undefined || compareVectors(via, best) < 0 || (compareVectors(via, best) === 0 && p.id < (bestPort as Port).id)) {
        best = via
        bestPort = p
      }
    }
    if (best === undefined || best.root >= this.bridgeId) {
      this.rootId = this.bridgeId
      this.rootCost = 0
      this.rootPort = undefined
    } else {
      this.rootId = best.root
      this.rootCost = best.cost
      this.rootPort = bestPort
    }
    let changed = false
    for (const p of this.trunks) {
      const st = p.stp as StpPort
      let role: StpRole
      const inconsistent = st.rootGuard && st.info !== undefined && superior(st.info, this.rootId, this.rootCost)
      if (inconsistent !== st.rootInconsistent) {
        st.rootInconsistent = inconsistent
        if (inconsistent) { st.rootGuardBlocks++; this.rootGuardBlocks++ }
        log.limited('warn', inconsistent ? 'stp_root_guard_blocked' : 'stp_root_guard_cleared', { network: this.sw.name, port: p.name, claimed_root: st.info?.root, root: this.rootId })
      }
      if (st.looped || inconsistent) role = 'alternate'
      else if (p === this.rootPort) role = 'root'
      else if (st.info === undefined) role = 'designated'
      else {
        const ours: Vector = { root: this.rootId, cost: this.rootCost, bridge: this.bridgeId, port: p.id }
        role = compareVectors(ours, st.info) < 0 ? 'designated' : 'alternate'
      }
      if (role === st.role) continue
      changed = true
      const was = st.role
      st.role = role
      if (role === 'alternate') {
        if (st.forwarding) this.topologyChange(`${p.name} blocked`)
        st.forwarding = false
        this.sw.setBlocked(p, BLOCK_STP, true)
        this.sw.fdb.deletePort(p)
      } else if (was === 'alternate' || !st.forwarding) {
        st.since = this.sw.nowMs
      }
      log.info('stp_role', { network: this.sw.name, port: p.name, role, was, root: this.rootId, root_cost: this.rootCost })
    }
    return changed
  }

  private hello (): void {
    this.lastHello = this.sw.nowMs
    this.helloDue = false
    for (const p of this.trunks) this.send(p)
  }

  private send (p: Port): void {
    (p.stp as StpPort).bpdusOut++
    p.sendControl(JSON.stringify(this.bpduFor(p)))
  }

  /** What forwards changed here: forget trunk-learned MACs, and tell the other switches. */
  private topologyChange (why: string): void {
    this.tcSeq++
    this.tcSeen.set(this.bridgeId, this.tcSeq)
    this.advertise(this.bridgeId, this.tcSeq)
    this.topologyChanges++
    this.flushTrunks(why, this.bridgeId)
  }

  private learnTopologyChange (origin: string, seq: number): void {
    if (origin === this.bridgeId || seq <= (this.tcSeen.get(origin) ?? 0)) return
    if (!this.tcSeen.has(origin) && this.tcSeen.size >= TC_MEMORY) this.tcSeen.delete(this.tcSeen.keys().next().value as string)
    this.tcSeen.set(origin, seq)
    this.advertise(origin, seq)
    this.topologyChanges++
    this.flushTrunks('announced', origin)
  }

  /** Repeat (origin, seq) in our BPDUs: at most TC_ADVERTISE_MAX, the newest, our own kept first. */
  private advertise (origin: string, seq: number): void {
    const list = this.tcAdvertise.filter((t) => t[0] !== origin)
    list.push([origin, seq, this.sw.nowMs + TC_ADVERTISE_MS])
    while (list.length > TC_ADVERTISE_MAX) {
      const i = list.findIndex((t) => t[0] !== this.bridgeId)
      list.splice(i < 0 ? 0 : i, 1)
    }
    // Ours first: a receiver that reads only the first TC_ADVERTISE_MAX still hears them.
    list.sort((a, b) => (a[0] === this.bridgeId ? 0 : 1) - (b[0] === this.bridgeId ? 0 : 1))
    this.tcAdvertise = list
  }

  /** Forget trunk-learned MACs now, or on a later tick if that was done less than TC_FLUSH_MS ago. */
  private flushTrunks (why: string, origin: string): void {
    const now = this.sw.nowMs
    if (now - this.lastFlush < TC_FLUSH_MS) {
      this.flushPending = true
      this.flushWhy = why
      this.flushOrigin = origin
      return
    }
    this.flushPending = false
    this.lastFlush = now
    this.tcFlushes++
    let flushed = 0
    for (const p of this.trunks) flushed += this.sw.fdb.deletePort(p)
    log.limited('info', 'stp_topology_change', { network: this.sw.name, why, origin, fdb_flushed: flushed })
  }
}

/** Would `info`, one hop away, be a better path to the root than (root, cost)? Then it would make its port the root port. */
function superior (info: Vector, root: string, cost: number): boolean {
  return info.root < root || (info.root === root && info.cost + 1 < cost)
}

/** Take one BPDU from the port's bucket (BPDU_RATE a second, BPDU_BURST deep); false: over the rate. */
function admitBpdu (st: StpPort, now: number): boolean {
  const elapsed = now - st.bpduRefilledAt
  if (elapsed > 0) {
    st.bpduTokens = Math.min(BPDU_BURST, st.bpduTokens + elapsed * BPDU_RATE / 1000)
    st.bpduRefilledAt = now
  }
  if (st.bpduTokens < 1) return false
  st.bpduTokens--
  return true
}
