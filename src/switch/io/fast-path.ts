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
 *
 * WebSocket ports (issue 24; docs/NATIVE-PATH.md): once a tapswitch.v1 port
 * is welcomed, its connection may be handed to the same thread (addWs), which
 * parses its frames, forwards the records its flows cover, and hands the rest
 * back here: misses as the port's own batches, text, pings, pongs and the
 * close as events on the port's `ws`, now a NativeSocket over the slot, so
 * the session's logic (ws-session.ts) is unchanged.
 */

import type * as Native from '../../../native'
import type { Switch } from '../core/switch'
import type { Port } from '../core/port'
import { mayShortcut, revalidate, type FastPathHooks, type FastPathStats } from '../core/fastpath'
import { R_BACKPRESSURE } from '../core/reasons'
import { logger } from '../../common/log'
import { NativeSocket, type NativeBackend } from '../../common/native-socket'
import { ClientIndex } from './client-index'
import { MAX_MESSAGE_SIZE, SUBPROTOCOL_V1 } from '../../common/protocol'

const log = logger('fast-path')

/** Most flows per network: beyond, the slow path carries the rest (refused, not evicted: a flush empties it often enough). */
export const MAX_FLOWS = 4096
/** Misses queued for the main thread, bytes: a burst of floods while JS is busy; beyond, counted drops. */
export const MISS_BYTES = 4 << 20

/** What this needs of the addon (tests pass a fake). */
export interface FastPathBinding {
  FastPath: new (onMiss: (slot: number, slab: Buffer, start: number, end: number) => void, maxFlows: number, missBytes: number,
    onEvent?: (slot: number, kind: number, slab: Buffer, start: number, end: number, code: number) => void, maxMessage?: number) => Native.FastPath
  PORT_STAT_COUNT: number
  FASTPATH_STAT_COUNT: number
}

/** A port the fast path reads: a TapPort (tap-port.ts), seen through what this needs. */
export interface FastPathPort extends Port {
  /** The misses of this port: one burst of records, as its own reader gives them. */
  receiveMisses: (slab: Buffer, start: number, end: number) => void
  /** The thread forwarded frames from it since the last fold (a WebSocket port's peer is alive). */
  heard?: () => void
  /** The thread dropped `n` frames to it, its peer not reading: counted, and logged as the slow path's drops are. */
  dropForBackpressure?: (n: number) => void
}

interface Flow { ingress: Port, egress: Port, vid: number, dst: number, src: number }

/** What a WebSocket port's peer sent that JS must see (native/index.d.ts FASTPATH_EVENT_*). */
const EV_TEXT = 1
const EV_PING = 2
const EV_PONG = 3
const EV_MALFORMED = 4
const EV_CLOSED = 5
const EV_CLOSED_LOCAL = 6
/** A WebSocket port's connection as the thread took it (common/ws-takeover.ts). */
export interface WsHandover { fd: number, prefill: Buffer | null, socket: { destroy: () => void } }

const P_RX_FRAMES = 0
const P_RX_BYTES = 1
const P_TX_FRAMES = 2
const P_TX_BYTES = 3
const P_TX_DROPPED = 4

export class FastPath implements FastPathHooks {
  private readonly native: Native.FastPath
  /** By slot, and each port's native counters as last folded in. */
  private readonly ports: Array<FastPathPort | undefined> = []
  /** By slot: a WebSocket port's socket as its session sees it. */
  private readonly sockets: Array<NativeSocket | undefined> = []
  /** The clients of the WebSocket ports carried: one share of the miss queue each. */
  private readonly clients = new ClientIndex()
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
    this.native = new binding.FastPath((slot, slab, start, end) => { this.ports[slot]?.receiveMisses(slab, start, end) }, MAX_FLOWS, MISS_BYTES,
      (slot, kind, slab, start, end, code) => { this.event(slot, kind, slab.subarray(start, end), code) }, MAX_MESSAGE_SIZE)
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

  /**
   * Carry a WebSocket port's connection in the native thread from now on:
   * returns the socket its session uses instead (send, ping, close... go
   * through the slot). `vnet`: its records carry virtio-net headers.
   * Throws (the addon's error) when the thread cannot take it.
   */
  addWs (port: FastPathPort, h: WsHandover, vnet: boolean, highWaterMark: number): NativeSocket {
    if (this.closed) throw new Error('the fast path is closed')
    const client = this.clients.take(port.clientKey)
    let slot: number
    try {
      slot = this.native.addWsPort(h.fd, vnet, h.prefill, highWaterMark, client)
    } catch (err) {
      this.clients.give(port.clientKey)
      throw err
    }
    const native = this.native
    let ended = false
    const backend: NativeBackend = {
      send: (opcode, data) => native.sendWs(slot, opcode, data, 0, data.length),
      buffered: () => ended ? 0 : native.wsBuffered(slot),
      end: () => {
        if (ended) return
        ended = true
        this.remove(port, slot)
        this.clients.give(port.clientKey)
        this.sockets[slot] = undefined
        h.socket.destroy()
      }
    }
    const socket = new NativeSocket(backend, SUBPROTOCOL_V1)
    this.ports[slot] = port
    this.sockets[slot] = socket
    this.seen[slot] = new Float64Array(this.stat.length)
    port.fastPath = this
    this.flush()
    return socket
  }

  /** Ports (TAPs and WebSocket ports) the thread carries now. */
  get portCount (): number { return this.ports.reduce((n, p) => p !== undefined ? n + 1 : n, 0) }

  /** Bytes the WebSocket ports' buffers hold (tests: no growth per port). */
  wsFootprint (): number { return this.closed ? 0 : this.native.wsFootprint() }

  /** What a WebSocket port's peer sent, to its socket (a malformed rest as a batch: the session closes it with 1002). */
  private event (slot: number, kind: number, data: Buffer, code: number): void {
    const ws = this.sockets[slot]
    if (ws === undefined) return
    if (kind === EV_TEXT) ws.receiveText(data)
    else if (kind === EV_PING) ws.receivePing(data)
    else if (kind === EV_PONG) ws.receivePong(data)
    else if (kind === EV_MALFORMED) ws.receiveBinary(data)
    else if (kind === EV_CLOSED && code === 1006) ws.receiveEnd()
    else if (kind === EV_CLOSED || kind === EV_CLOSED_LOCAL) ws.receiveClose(code, data, kind === EV_CLOSED_LOCAL)
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
    // WebSocket ports end first (their sockets close, their sessions hear it), then the thread.
    for (const ws of this.sockets) ws?.terminate()
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
  private fold (slot: number, p: FastPathPort): void {
    const st = this.stat
    const seen = this.seen[slot] as Float64Array
    this.native.portStats(slot, st)
    const rx = (st[P_RX_FRAMES] as number) - (seen[P_RX_FRAMES] as number)
    const txDropped = (st[P_TX_DROPPED] as number) - (seen[P_TX_DROPPED] as number)
    if (rx !== 0) {
      p.heard?.()
      p.rxFrames += rx
      p.rxBytes += (st[P_RX_BYTES] as number) - (seen[P_RX_BYTES] as number)
      this.sw.stats.forwarded += rx
      this.forwarded += rx
    }
    p.txFrames += (st[P_TX_FRAMES] as number) - (seen[P_TX_FRAMES] as number)
    p.txBytes += (st[P_TX_BYTES] as number) - (seen[P_TX_BYTES] as number)
    // The egress TAP's queue was full or its link down: as the slow path counts a refused write.
    if (txDropped !== 0) {
      if (p.dropForBackpressure !== undefined) p.dropForBackpressure(txDropped)
      else p.addDrops(R_BACKPRESSURE, txDropped)
    }
    seen.set(st)
  }
}
