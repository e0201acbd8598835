/**
 * What every port with a peer at the far end shares, whatever carries it
 * (a WebSocket in ws-port.ts, a QEMU socket in stream-port.ts): its network,
 * its remote address, and egress that never queues without bound.
 *
 * output() drops and counts a frame once the transport's buffered bytes pass
 * the port's high-water mark (1 MiB by default: enough for bursts, small
 * enough that the queue adds no more than a few ms of latency). A slow port so
 * loses its own frames and never stalls the ingress port's traffic to anyone
 * else. backpressure_start / backpressure_end are logged on the edges only.
 *
 * BatchSlab is the egress batching of ports whose wire format is batch
 * records (tapswitch mode, QEMU streams): frames queued by output() are copied
 * as records into a slab and leave as one message per flush(). For an
 * offload port each record starts with the frame's virtio-net header, or a
 * zero one for a frame that had none: written in the same copy, so offload
 * costs the fast path no extra pass.
 */

import { Port, DIR_IN } from '../core/port'
import { setLinkDown } from '../core/link'
import { R_DISCONNECTED, R_BACKPRESSURE } from '../core/reasons'
import type { Switch } from '../core/switch'
import { MAX_MESSAGE_SIZE, RECORD_HEADER, VNET_HDR_LEN } from '../../common/protocol'
import { egressLength, writeEgress, OP_PUSH, OP_STRIP } from '../../common/vlan'
import { shiftHeader } from '../../common/gso'
import { logger } from '../../common/log'

const log = logger('port')

export { DEFAULT_HIGH_WATER_MARK } from '../../common/defaults'

/** Slab for batched egress: several messages' worth, never rewritten while the transport may hold a view. */
const SLAB_SIZE = 1024 * 1024
const EMPTY = Buffer.alloc(0)
/** How early a held frame may leave: the timers' resolution (wakeCondition). */
const TIMER_SLACK_MS = 1

export abstract class NetPort extends Port {
  /** Between backpressure_start and backpressure_end. */
  congested = false
  /** The token it authenticated with (its id, for logs and the API), if any. */
  grantId: string | undefined
  /** That token's SHA-256: what reload and resume match on (ids are only labels). */
  grantDigest: string | undefined
  /** Its name was given by switchd or the configuration, not claimed in a hello: all profiles apply to it. */
  nameTrusted = true

  /** Timers releasing what the port's link conditions hold (in, out); created on first use. */
  private condTimers: Array<NodeJS.Timeout | undefined> | undefined
  /** A scheduled flap (`switchctl link flap`): down `down` s every `every` s, until `link up`. */
  flap: { down: number, every: number, timer: NodeJS.Timeout } | undefined

  constructor (id: number, name: string, public remote: string, readonly highWaterMark: number, readonly network: Switch) {
    super(id, name)
  }

  /**
   * One timer per direction, at the earliest held frame; the release sets the
   * next one. Timers have 1 ms resolution (libuv's loop clock is in whole ms
   * and can fire up to 1 ms before the precise clock's due time), so a frame
   * due within TIMER_SLACK_MS leaves now rather than a whole tick late.
   */
  override wakeCondition (dir: number, dueMs: number): void {
    const timers = this.condTimers ?? (this.condTimers = [undefined, undefined])
    clearTimeout(timers[dir])
    const fire = (): void => {
      timers[dir] = undefined
      const next = this.network.releaseHeld(this, dir, this.network.preciseClock() + TIMER_SLACK_MS)
      if (next !== Infinity) this.wakeCondition(dir, next)
    }
    const t = setTimeout(fire, Math.max(0, Math.ceil(dueMs - TIMER_SLACK_MS - this.network.preciseClock())))
    t.unref()
    timers[dir] = t
  }

  /**
   * Flap the link: down for `down` seconds every `every` seconds (the first
   * time at once), until stopFlap() or the port leaves.
   */
  startFlap (down: number, every: number): void {
    this.stopFlap()
    const cycle = (): void => {
      if (!this.network.ports.includes(this)) { this.stopFlap(); return }
      setLinkDown(this.network, this, 'both', true)
      // Only this flap's own up: after `link up` and a new flap, a late timer of the old one does nothing.
      const up = setTimeout(() => { if (this.flap === flap) setLinkDown(this.network, this, 'both', false) }, down * 1000)
      up.unref()
    }
    const timer = setInterval(cycle, every * 1000)
    timer.unref()
    const flap = { down, every, timer }
    this.flap = flap
    cycle()
  }

  stopFlap (): void {
    if (this.flap === undefined) return
    clearInterval(this.flap.timer)
    this.flap = undefined
  }

  /** Timers of the port's conditions and flap end with it. */
  stopConditionTimers (): void {
    this.stopFlap()
    if (this.condTimers !== undefined) for (let d = DIR_IN; d < this.condTimers.length; d++) clearTimeout(this.condTimers[d])
  }

  abstract readonly kind: 'raw' | 'tapswitch' | 'qemu' | 'trunk' | 'gateway' | 'tap' | 'mesh' | 'vxlan' | 'geneve'

  /** Bytes the transport holds that the peer has not taken yet. */
  abstract bufferedBytes (): number

  /**
   * Queue one frame as a record in `batch`, for ports whose wire format is
   * batch records: drop it (counted) once the transport and the batch hold
   * more than the high-water mark, flush first if one message would overflow.
   * `hdrOff`: the frame's virtio-net header in `buf`, for an offload port (-1: none).
   */
  protected enqueue (batch: BatchSlab, buf: Buffer, off: number, len: number, op: number, vid: number, hdrOff: number): void {
    if (this.bufferedBytes() + batch.queued > this.highWaterMark) { this.dropForBackpressure(); return }
    if (this.congested) this.checkDrained()
    if (batch.full(len, op, this.offload)) this.flush()
    this.txBytes += batch.append(buf, off, len, op, vid, this.offload, hdrOff)
    this.txFrames++
  }

  /**
   * The frame buf[off, off + len) (egress VID `vid`) arrived while the peer is
   * away: counted (`disconnected`, on the port and its network) and recorded
   * in the drop log. Stores only, as every drop on the frame path.
   */
  protected dropAway (buf: Buffer, off: number, len: number, vid: number): void {
    this.network.drop(this, R_DISCONNECTED, buf, off, len, vid)
  }

  /** Count `n` drops (1: the frame in hand; more: what the native fast path dropped); log only the transition into congestion. */
  dropForBackpressure (n = 1): void {
    this.addDrops(R_BACKPRESSURE, n)
    if (!this.congested) {
      this.congested = true
      log.limited('warn', 'backpressure_start', { port: this.name, id: this.id, buffered_bytes: this.bufferedBytes() })
    }
  }

  /** Leave congestion once the peer has drained to half the mark (hysteresis). */
  protected checkDrained (): void {
    if (this.bufferedBytes() < this.highWaterMark / 2) {
      this.congested = false
      log.limited('info', 'backpressure_end', { port: this.name, id: this.id, dropped_total: this.drops[R_BACKPRESSURE] })
    }
  }
}

/** Batch records accumulated for one port, taken once per flush. */
export class BatchSlab {
  /** Allocated on the first frame: an idle port (most of 1,000 connected ones) costs no slab. */
  private slab = EMPTY
  /** Start of the batch being built, and the end of what is written so far. */
  private start = 0
  private end = 0
  /** Records appended since the last take(), and how many the last take() returned. */
  private count = 0
  taken = 0

  get queued (): number { return this.end - this.start }

  /** Would a record for this frame (with a virtio-net header if `vnet`) overflow one message? Then take() first. */
  full (len: number, op: number, vnet: boolean): boolean {
    return this.queued + RECORD_HEADER + (vnet ? VNET_HDR_LEN : 0) + egressLength(len, op) > MAX_MESSAGE_SIZE
  }

  /**
   * Append buf[off, off+len) transformed by `op` as one record; returns the
   * frame's bytes on the wire. With `vnet` the record starts with the header
   * at buf[hdrOff] (its offsets moved with the tag), or zeros for -1.
   */
  append (buf: Buffer, off: number, len: number, op: number, vid: number, vnet: boolean, hdrOff: number): number {
    const outLen = egressLength(len, op)
    const hdr = vnet ? VNET_HDR_LEN : 0
    if (this.slab.length - this.end < RECORD_HEADER + hdr + outLen) this.newSlab()
    const slab = this.slab
    const at = this.end + RECORD_HEADER
    slab.writeUInt32BE(hdr + outLen, this.end)
    if (vnet) {
      if (hdrOff < 0) slab.fill(0, at, at + VNET_HDR_LEN)
      else {
        buf.copy(slab, at, hdrOff, hdrOff + VNET_HDR_LEN)
        if (op === OP_PUSH || op === OP_STRIP) shiftHeader(slab, at, op === OP_PUSH ? 4 : -4)
      }
    }
    this.end = at + hdr + writeEgress(slab, at + hdr, buf, off, len, op, vid)
    this.count++
    return outLen
  }

  /** The records since the last take(), as one view; undefined if none. */
  take (): Buffer | undefined {
    if (this.end === this.start) return undefined
    const batch = this.slab.subarray(this.start, this.end)
    this.start = this.end
    this.taken = this.count
    this.count = 0
    return batch
  }

  /** Forget what was queued (the peer went away). */
  discard (): void { this.start = this.end; this.count = 0 }

  /**
   * Start again at the slab's beginning: only for a transport that wrote the
   * last take() synchronously and keeps no view of it (a TAP's writeBatch).
   * The slab then stays the same few cache-warm KiB instead of a new MiB each MiB.
   */
  rewind (): void { if (this.start === this.end) { this.start = 0; this.end = 0 } }

  /** The transport may still hold views of the old slab: never rewind, take a new one. */
  private newSlab (): void {
    const pending = this.end - this.start
    const next = Buffer.allocUnsafe(SLAB_SIZE)
    this.slab.copy(next, 0, this.start, this.end)
    this.slab = next
    this.start = 0
    this.end = pending
  }
}
