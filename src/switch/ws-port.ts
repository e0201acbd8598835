/**
 * Ports over a WebSocket: the only switch-side code that sends on a socket.
 *
 * Egress never queues without bound. ws buffers whatever it is given
 * (a sender ignoring bufferedAmount reached 5 GB in 9 s), so output() drops
 * and counts a frame once `bufferedAmount` passes the port's high-water mark
 * (1 MiB by default: enough for bursts, small enough that the queue adds no
 * more than a few ms of latency). A slow port so loses its own frames and
 * never stalls the ingress port's traffic to anyone else. backpressure_start /
 * backpressure_end are logged on the edges, not per drop.
 */

import type { WebSocket } from 'ws'
import { Port } from './port'
import type { Switch } from './switch'
import { MAX_MESSAGE_SIZE, RECORD_HEADER } from '../common/protocol'
import { OP_ASIS, egressLength, writeEgress } from '../common/vlan'
import { logger } from '../common/log'

const log = logger('port')

/** Hoisted: ws reads these per send, so one object serves every frame. */
const SEND_OPTS = { binary: true, compress: false, fin: true } as const

export const DEFAULT_HIGH_WATER_MARK = 1024 * 1024

/** Slab for batched egress: several messages' worth, never rewritten while ws may hold a view. */
const SLAB_SIZE = 1024 * 1024

export abstract class WsPort extends Port {
  /** Cleared by the keepalive timer, set by any pong or message. */
  alive = true
  /** Between backpressure_start and backpressure_end. */
  congested = false
  /** Its link dropped; kept (fdb entries and all) for its agent to resume. Frames to it are dropped. */
  parked = false
  /** Closed on purpose (policy, protocol error, operator, shutdown): never parked. */
  noResume = false
  /** Keepalive found it silent: the link, not the agent, went away (only such ports are parked). */
  timedOut = false
  /** Frames that arrived for it while parked. */
  dropDisconnected = 0
  /** The token it authenticated with (its id), so only the same token can resume it. */
  grantId: string | undefined

  constructor (id: number, name: string, public ws: WebSocket, public remote: string, readonly highWaterMark: number, readonly network: Switch) {
    super(id, name)
  }

  abstract readonly kind: 'raw' | 'tapswitch'

  shutdown (code: number, reason: string): void {
    log.warn('port_shutdown', { port: this.name, id: this.id, code, reason })
    this.noResume = true
    this.ws.close(code, reason)
  }

  /** Count a drop; log only the transition into congestion. */
  protected dropForBackpressure (): void {
    this.dropBackpressure++
    if (!this.congested) {
      this.congested = true
      log.limited('warn', 'backpressure_start', { port: this.name, id: this.id, buffered_bytes: this.ws.bufferedAmount })
    }
  }

  /** Leave congestion once the peer has drained to half the mark (hysteresis). */
  protected checkDrained (): void {
    if (this.ws.bufferedAmount < this.highWaterMark / 2) {
      this.congested = false
      log.limited('info', 'backpressure_end', { port: this.name, id: this.id, dropped_total: this.dropBackpressure })
    }
  }
}

/** Raw mode: one frame per binary message (v86 / jor1k / JSLinux). */
export class RawPort extends WsPort {
  readonly kind = 'raw'

  output (buf: Buffer, off: number, len: number, op: number, vid: number): void {
    if (this.ws.bufferedAmount > this.highWaterMark) { this.dropForBackpressure(); return }
    if (this.congested) this.checkDrained()
    let frame: Buffer
    if (op === OP_ASIS) {
      // ws needs a Buffer per message; a view (not a copy) when the frame is part of a batch.
      frame = off === 0 && len === buf.length ? buf : buf.subarray(off, off + len)
    } else {
      // A tag to add or remove: the one case where a raw port costs a copy.
      frame = Buffer.allocUnsafe(egressLength(len, op))
      writeEgress(frame, 0, buf, off, len, op, vid)
    }
    this.ws.send(frame, SEND_OPTS)
    this.txFrames++
    this.txBytes += frame.length
  }

  flush (): void {}
}

/**
 * tapswitch mode: frames queued by output() are copied as records into a slab
 * and leave as one batch message per flush() (once per ingress message).
 */
export class BatchPort extends WsPort {
  readonly kind = 'tapswitch'
  /** The token its agent can resume it with (the latest welcome's). */
  resumeToken: string | undefined
  private slab = Buffer.allocUnsafe(SLAB_SIZE)
  /** Start of the batch being built, and the end of what is written so far. */
  private start = 0
  private end = 0

  output (buf: Buffer, off: number, len: number, op: number, vid: number): void {
    if (this.parked) { this.dropDisconnected++; return }
    const queued = this.end - this.start
    if (this.ws.bufferedAmount + queued > this.highWaterMark) { this.dropForBackpressure(); return }
    if (this.congested) this.checkDrained()
    const outLen = egressLength(len, op)
    const need = RECORD_HEADER + outLen
    if (queued + need > MAX_MESSAGE_SIZE) this.flush()
    if (this.slab.length - this.end < need) this.newSlab()
    this.slab.writeUInt32BE(outLen, this.end)
    this.end += RECORD_HEADER + writeEgress(this.slab, this.end + RECORD_HEADER, buf, off, len, op, vid)
    this.txFrames++
    this.txBytes += outLen
  }

  flush (): void {
    if (this.end === this.start) return
    this.ws.send(this.slab.subarray(this.start, this.end), SEND_OPTS)
    this.start = this.end
  }

  /** Its agent is back (resume): carry on over `ws`. */
  reattach (ws: WebSocket, remote: string): void {
    this.ws = ws
    this.remote = remote
    this.parked = false
    this.timedOut = false
    this.alive = true
    this.congested = false
    this.start = this.end
  }

  /** ws may still hold views of the old slab in its queue: never rewind, take a new one. */
  private newSlab (): void {
    const pending = this.end - this.start
    const next = Buffer.allocUnsafe(SLAB_SIZE)
    this.slab.copy(next, 0, this.start, this.end)
    this.slab = next
    this.start = 0
    this.end = pending
  }
}
