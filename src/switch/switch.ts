/**
 * One Ethernet segment: its ports, its fdb and the forwarding decision.
 *
 * handleFrame() is the whole per-frame policy, in Linux br_handle_frame order:
 * validate (runt, oversize, group or zero source), learn the source, look up
 * the destination, then forward to exactly one egress port or flood to every
 * port except ingress. A frame is never sent back out its ingress port: a
 * known destination on the ingress port is a hairpin and is dropped.
 *
 * Output is batched per ingress message: output() queues on the egress port,
 * which is marked dirty, and flushDirty() sends each dirty port's queue once
 * at the end of the message. A batch of 32 frames from one agent so leaves as
 * at most one message per egress port, not 32.
 *
 * Per-frame problems are counters, never exceptions, and this file allocates
 * nothing per frame and imports no I/O.
 */

import { debuglog } from 'node:util'
import { ETH_HLEN, ETH_SOURCE, isBroadcast, isGroup, macAt, formatMac } from '../common/ethernet'
import { DEFAULT_MAX_FRAME_SIZE, RECORD_HEADER, countRecords } from '../common/protocol'
import { Fdb, type FdbOptions } from './fdb'
import type { Port } from './port'

const trace = debuglog('tapswitch:switch')

export interface SwitchOptions extends FdbOptions {
  /** Largest frame forwarded, Ethernet header included (default 1518). */
  maxFrameSize?: number
}

/** Segment-wide counters (per-port ones live on Port). */
export class SwitchStats {
  forwarded = 0
  floodedBroadcast = 0
  floodedMulticast = 0
  floodedUnknown = 0
  dropRunt = 0
  dropOversize = 0
  dropBadSource = 0
  dropHairpin = 0
  dropMalformed = 0
  portsAdded = 0
  portsRemoved = 0
}

export class Switch {
  readonly fdb: Fdb
  readonly maxFrameSize: number
  readonly stats = new SwitchStats()
  /** Dense, swap-removed on leave: flood walks it without allocating. */
  readonly ports: Port[] = []
  /** Ports with queued output; reused, never shrunk, so marking allocates nothing. */
  private readonly dirty: Port[] = []
  private dirtyCount = 0

  constructor (opts: SwitchOptions = {}, now = 0) {
    this.fdb = new Fdb(opts, now)
    this.maxFrameSize = opts.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE
  }

  addPort (port: Port): void {
    this.ports.push(port)
    this.stats.portsAdded++
  }

  /** Detach `port` and forget its MACs; returns how many fdb entries went. */
  removePort (port: Port): number {
    const i = this.ports.indexOf(port)
    if (i < 0) return 0
    const last = this.ports.pop() as Port
    if (last !== port) this.ports[i] = last
    this.stats.portsRemoved++
    return this.fdb.deletePort(port)
  }

  /** Advance the coarse clock (seconds) and expire idle fdb entries. */
  tick (now: number): void {
    this.fdb.tick(now)
    this.fdb.expire()
  }

  /** Raw mode ingress: the message is one frame. */
  receiveFrame (ingress: Port, frame: Buffer): void {
    this.handleFrame(ingress, frame, 0, frame.length)
    this.flushDirty()
  }

  /**
   * tapswitch-mode ingress: the message is a batch of `[u32 len][frame]`
   * records. The framing is checked before any frame is acted on; false
   * means it was broken (counted) and the caller should close the port.
   */
  receiveBatch (ingress: Port, msg: Buffer): boolean {
    if (countRecords(msg) < 0) {
      ingress.dropMalformed++
      this.stats.dropMalformed++
      return false
    }
    let off = 0
    const end = msg.length
    while (off < end) {
      const len = msg.readUInt32BE(off)
      this.handleFrame(ingress, msg, off + RECORD_HEADER, len)
      off += RECORD_HEADER + len
    }
    this.flushDirty()
    return true
  }

  /** The forwarding decision for buf[off, off + len) arriving on `ingress`. */
  handleFrame (ingress: Port, buf: Buffer, off: number, len: number): void {
    const s = this.stats
    ingress.rxFrames++
    ingress.rxBytes += len
    if (len < ETH_HLEN) { ingress.dropRunt++; s.dropRunt++; return }
    if (len > this.maxFrameSize) { ingress.dropOversize++; s.dropOversize++; return }
    const src = macAt(buf, off + ETH_SOURCE)
    // is_valid_ether_addr(h_source): a group or all-zero source is never learned or forwarded.
    if (src === 0 || isGroup(buf, off + ETH_SOURCE)) { ingress.dropBadSource++; s.dropBadSource++; return }
    this.fdb.learn(src, ingress)
    if (!isGroup(buf, off)) {
      const egress = this.fdb.lookup(macAt(buf, off))
      if (egress !== undefined) {
        if (egress === ingress) { ingress.dropHairpin++; s.dropHairpin++; return }
        if (trace.enabled) trace('forward %s port=%s', formatMac(macAt(buf, off)), egress.name)
        this.output(egress, buf, off, len)
        s.forwarded++
        return
      }
      s.floodedUnknown++
    } else if (isBroadcast(buf, off)) {
      s.floodedBroadcast++
    } else {
      s.floodedMulticast++
    }
    this.flood(ingress, buf, off, len)
  }

  private flood (ingress: Port, buf: Buffer, off: number, len: number): void {
    const ports = this.ports
    for (let i = 0; i < ports.length; i++) {
      const p = ports[i] as Port
      if (p !== ingress) this.output(p, buf, off, len)
    }
  }

  private output (egress: Port, buf: Buffer, off: number, len: number): void {
    egress.output(buf, off, len)
    if (!egress.dirty) {
      egress.dirty = true
      this.dirty[this.dirtyCount++] = egress
    }
  }

  private flushDirty (): void {
    const d = this.dirty
    const n = this.dirtyCount
    this.dirtyCount = 0
    for (let i = 0; i < n; i++) {
      const p = d[i] as Port
      p.dirty = false
      p.flush()
    }
  }
}
