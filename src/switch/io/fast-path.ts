/**
 * A network's native fast path (issue 14; docs/LOCAL-TAPS.md): the io side of
 * native/fastpath.cc. One native thread per network reads that network's
 * TAPs; frames it has a flow for go straight to the egress TAP, the rest come
 * back here as misses and reach the switch exactly as TapPort's own reader
 * would hand them over (receiveBatch). This is Open vSwitch's datapath flow
 * cache with upcalls; the rule of when a flow may exist is core/fastpath.ts.
 *
 * Flows are installed only from Switch.handleFrame's known-unicast decision
 * (offer), flushed by Switch.invalidate() on any event that may change a
 * decision, and revalidated each tick (sync: the same decision run dry on
 * each flow's key, core/fastpath.ts revalidate), which also folds the native
 * counters into the ports' own and refreshes the fdb age of each MAC whose
 * frames only the fast path carried (ageing goes on working).
 */

import type * as Native from '../../../native'
import type { Switch } from '../core/switch'
import type { Port } from '../core/port'
import { mayShortcut, revalidate, type FastPathHooks, type FastPathStats } from '../core/fastpath'
import { R_BACKPRESSURE } from '../core/reasons'
import { logger } from '../../common/log'

const log = logger('fast-path')

/** Most flows per network: beyond, the slow path carries the rest (refused, not evicted: a flush empties it often enough). */
export const MAX_FLOWS = 4096
/** Misses queued for the main thread, bytes: a burst of floods while JS is busy; beyond, counted drops. */
export const MISS_BYTES = 4 << 20

/** What this needs of the addon (tests pass a fake). */
export interface FastPathBinding {
  FastPath: new (onMiss: (slot: number, slab: Buffer, start: number, end: number) => void, maxFlows: number, missBytes: number) => Native.FastPath
  PORT_STAT_COUNT: number
  FASTPATH_STAT_COUNT: number
}

/** A port the fast path reads: a TapPort (tap-port.ts), seen through what this needs. */
export interface FastPathPort extends Port {
  /** The misses of this port: one burst of records, as its own reader gives them. */
  receiveMisses: (slab: Buffer, start: number, end: number) => void
}

interface Flow { ingress: Port, egress: Port, vid: number, dst: number, src: number }

const P_RX_FRAMES = 0
const P_RX_BYTES = 1
const P_TX_FRAMES = 2
const P_TX_BYTES = 3
const P_TX_DROPPED = 4

export class FastPath implements FastPathHooks {
  private readonly native: Native.FastPath
  /** By slot, and each port's native counters as last folded in. */
  private readonly ports: Array<FastPathPort | undefined> = []
  private readonly seen: Float64Array[] = []
  /** By native flow index: the decision each flow copies. */
  private readonly flows: Array<Flow | undefined> = []
  private flowCount = 0
  private readonly hits = new Float64Array(MAX_FLOWS)
  private readonly hitsSeen = new Float64Array(MAX_FLOWS)
  private readonly stat: Float64Array
  /** Totals folded in so far (tests, logs): frames the native thread forwarded. */
  forwarded = 0
  private closed = false

  constructor (binding: FastPathBinding, private readonly sw: Switch) {
    this.native = new binding.FastPath((slot, slab, start, end) => { this.ports[slot]?.receiveMisses(slab, start, end) }, MAX_FLOWS, MISS_BYTES)
    this.stat = new Float64Array(Math.max(5, binding.PORT_STAT_COUNT))
    sw.fastPath = this
  }

  /** Read `port`'s TAP fd in the native thread from now on; returns its slot. */
  add (port: FastPathPort, fd: number, vnet: boolean): number {
    const slot = this.native.addPort(fd, vnet)
    this.ports[slot] = port
    this.seen[slot] = new Float64Array(this.stat.length)
    port.fastPath = this
    this.flush()
    return slot
  }

  /** Stop reading it (before its fd is closed); its counters are folded in first. */
  remove (port: FastPathPort, slot: number): void {
    if (this.ports[slot] !== port) return
    this.fold(slot, port)
    this.native.removePort(slot)
    this.ports[slot] = undefined
    port.fastPath = null
    this.flush()
  }

  offer (ingress: Port, egress: Port, vid: number, dst: number, src: number): void {
    if (this.closed || !mayShortcut(this.sw, ingress, egress, vid, src)) return
    const inSlot = this.slotOf(ingress)
    const outSlot = this.slotOf(egress)
    if (inSlot < 0 || outSlot < 0) return
    const f = this.native.install(inSlot, dst, src, outSlot, this.sw.maxFrameSize)
    if (f < 0) return
    const old = this.flows[f]
    if (old === undefined) { this.flowCount++; this.flows[f] = { ingress, egress, vid, dst, src }; this.hitsSeen[f] = 0 } else { old.ingress = ingress; old.egress = egress; old.vid = vid; old.dst = dst; old.src = src }
  }

  flush (): void {
    if (this.flowCount === 0 || this.closed) return
    // Counters of what the flows carried are not lost with them. No fdb touch here: this runs
    // inside the fdb's own changes (an lru-cache dispose); the MACs' ages wait for the slow path.
    for (let s = 0; s < this.ports.length; s++) {
      const p = this.ports[s]
      if (p !== undefined) this.fold(s, p)
    }
    this.native.flush()
    this.flows.fill(undefined)
    this.flowCount = 0
  }

  sync (): void {
    if (this.closed) return
    this.foldAll()
    if (this.flowCount === 0) return
    this.native.flowHits(this.hits)
    for (let i = 0; i < this.flows.length; i++) {
      const f = this.flows[i]
      if (f === undefined) continue
      if (this.hits[i] !== this.hitsSeen[i]) {
        this.hitsSeen[i] = this.hits[i] as number
        this.sw.fdb.touch(f.vid, f.src, f.ingress)
      }
      if (!revalidate(this.sw, f.ingress, f.egress, f.vid, f.dst, f.src)) {
        this.native.remove(i)
        this.flows[i] = undefined
        this.flowCount--
      }
    }
  }

  /** Flows in force (tests, API). */
  get size (): number { return this.flowCount }

  /**
   * For the API and each scrape: the counters folded in, without the
   * revalidation (a dry decision per flow), which is the tick's: a scrape
   * asks for this once per metric family.
   */
  stats (): FastPathStats {
    if (!this.closed) this.foldAll()
    const t = new Float64Array(4)
    if (!this.closed) this.native.stats(t)
    return { flows: this.flowCount, forwarded: this.forwarded, misses: t[1] as number, missDropped: t[2] as number }
  }

  close (): void {
    if (this.closed) return
    this.sync()
    this.closed = true
    this.native.close()
    if (this.sw.fastPath === this) this.sw.fastPath = null
    for (const p of this.ports) if (p !== undefined) p.fastPath = null
    log.debug('fast_path_closed', { network: this.sw.name, forwarded: this.forwarded })
  }

  /** Every port's native counters into its own. */
  private foldAll (): void {
    for (let s = 0; s < this.ports.length; s++) {
      const p = this.ports[s]
      if (p !== undefined) this.fold(s, p)
    }
  }

  private slotOf (port: Port): number {
    return this.ports.indexOf(port as FastPathPort)
  }

  /** Add what the native thread counted for the slot since the last fold to the port's counters. */
  private fold (slot: number, p: Port): void {
    const st = this.stat
    const seen = this.seen[slot] as Float64Array
    this.native.portStats(slot, st)
    const rx = (st[P_RX_FRAMES] as number) - (seen[P_RX_FRAMES] as number)
    const txDropped = (st[P_TX_DROPPED] as number) - (seen[P_TX_DROPPED] as number)
    if (rx !== 0) {
      p.rxFrames += rx
      p.rxBytes += (st[P_RX_BYTES] as number) - (seen[P_RX_BYTES] as number)
      this.sw.stats.forwarded += rx
      this.forwarded += rx
    }
    p.txFrames += (st[P_TX_FRAMES] as number) - (seen[P_TX_FRAMES] as number)
    p.txBytes += (st[P_TX_BYTES] as number) - (seen[P_TX_BYTES] as number)
    // The egress TAP's queue was full or its link down: as the slow path counts a refused write.
    if (txDropped !== 0) p.addDrops(R_BACKPRESSURE, txDropped)
    seen.set(st)
  }
}
