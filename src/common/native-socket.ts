/**
 * A WebSocket whose connection a native thread carries (issue 24), seen
 * through the part of `ws`'s WebSocket API that tapswitch uses, so the code
 * around a port or an uplink (hello and welcome, keepalive, pongs within the
 * high-water mark, close codes, resume) keeps its logic unchanged whichever
 * path carries the frames.
 *
 * The backend is the native side (the agent's link, a fast-path slot): it
 * sends whole messages (never interleaved with its own), counts what it
 * holds unsent, and reports what arrives; binary data normally never comes
 * up here (the thread forwards it), only what the native side could not
 * (misses) does, as 'message' events.
 *
 * Closing follows RFC 6455 7.1 as `ws` does: close() sends a close frame and
 * waits (at most CLOSE_TIMEOUT_MS) for the peer's; a close frame from the
 * peer is answered with one, then the connection ends; an end without a
 * close frame is 1006. 'close' is emitted exactly once.
 */

import { EventEmitter } from 'node:events'
import { isUtf8 } from 'node:buffer'

export const OP_TEXT = 1
export const OP_BINARY = 2
export const OP_CLOSE = 8
export const OP_PING = 9
export const OP_PONG = 10

/** What a backend's send answered (native/ws_output.h Output::Result). */
export const SEND_SENT = 0
export const SEND_QUEUED = 1
export const SEND_REFUSED = 2
export const SEND_BROKEN = 3

/** As `ws`: how long a close waits for the peer's close frame. */
const CLOSE_TIMEOUT_MS = 30_000

export interface NativeBackend {
  /** Send one whole message (opcode OP_*): SEND_*. */
  send: (opcode: number, data: Buffer) => number
  /** Bytes held unsent (ws's bufferedAmount). */
  buffered: () => number
  /**
   * Stop carrying the connection: write what is queued if the socket takes it
   * now (one non-blocking try: a close frame owed), then shut the connection
   * down and close the fd. No more events after this.
   */
  end: () => void
}

const EMPTY = Buffer.alloc(0)

function closePayload (code: number | undefined, reason: string | Buffer | undefined): Buffer {
  if (code === undefined) return EMPTY
  const r = reason === undefined ? EMPTY : Buffer.isBuffer(reason) ? reason : Buffer.from(reason)
  const out = Buffer.alloc(2 + Math.min(r.length, 123))
  out.writeUInt16BE(code, 0)
  r.copy(out, 2, 0, 123)
  return out
}

export class NativeSocket extends EventEmitter {
  static readonly CONNECTING = 0
  static readonly OPEN = 1
  static readonly CLOSING = 2
  static readonly CLOSED = 3
  readonly CONNECTING = 0
  readonly OPEN = 1
  readonly CLOSING = 2
  readonly CLOSED = 3
  readyState = 1
  /** Which path carries it (logs, the API). */
  readonly path = 'native'
  private closeTimer: NodeJS.Timeout | undefined
  private closeSent = false

  constructor (private readonly backend: NativeBackend, readonly protocol = '') { super() }

  get bufferedAmount (): number { return this.readyState === this.CLOSED ? 0 : this.backend.buffered() }

  /** ws.send: a string is a text message, a Buffer binary (unless `binary: false`). */
  send (data: string | Buffer, opts?: { binary?: boolean } | ((err?: Error) => void), cb?: (err?: Error) => void): void {
    const done = typeof opts === 'function' ? opts : cb
    const binary = typeof data !== 'string' && (typeof opts !== 'object' || opts.binary !== false)
    if (this.readyState !== this.OPEN) { done?.(new Error('WebSocket is not open')); return }
    const r = this.backend.send(binary ? OP_BINARY : OP_TEXT, typeof data === 'string' ? Buffer.from(data) : data)
    if (r === SEND_BROKEN) { done?.(new Error('the connection broke')); return }
    done?.()
  }

  ping (data?: Buffer): void { if (this.readyState === this.OPEN) this.backend.send(OP_PING, (data ?? EMPTY).subarray(0, 125)) }
  pong (data?: Buffer): void { if (this.readyState === this.OPEN) this.backend.send(OP_PONG, (data ?? EMPTY).subarray(0, 125)) }

  close (code?: number, reason?: string | Buffer): void {
    if (this.readyState !== this.OPEN) return
    this.readyState = this.CLOSING
    this.closeSent = true
    this.backend.send(OP_CLOSE, closePayload(code, reason))
    this.closeTimer = setTimeout(() => { this.finish(1006, EMPTY) }, CLOSE_TIMEOUT_MS)
    this.closeTimer.unref?.()
  }

  terminate (): void { this.finish(1006, EMPTY) }

  // --- what the native side reports (its owner calls these) ---

  /** A text message: checked for UTF-8 as ws does (1007 otherwise). */
  receiveText (data: Buffer): void {
    if (this.readyState !== this.OPEN) return
    if (!isUtf8(data)) { this.close(1007, 'invalid UTF-8'); return }
    this.emit('message', data, false)
  }

  receiveBinary (data: Buffer): void { if (this.readyState === this.OPEN) this.emit('message', data, true) }
  receivePing (data: Buffer): void { if (this.readyState === this.OPEN) this.emit('ping', data) }
  receivePong (data: Buffer): void { if (this.readyState === this.OPEN) this.emit('pong', data) }

  /**
   * The peer's close frame (`code` 1005 when it had none), or a failure the
   * native side closed with itself (`local`: it already sent its close frame).
   */
  receiveClose (code: number, reason: Buffer, local = false): void {
    if (this.readyState === this.CLOSED) return
    if (!this.closeSent && !local) {
      this.closeSent = true
      this.backend.send(OP_CLOSE, closePayload(code === 1005 ? undefined : code, undefined))
    }
    this.finish(code, reason)
  }

  /** The connection ended without a close frame (EOF, reset). */
  receiveEnd (): void { this.finish(1006, EMPTY) }

  private finish (code: number, reason: Buffer): void {
    if (this.readyState === this.CLOSED) return
    this.readyState = this.CLOSED
    clearTimeout(this.closeTimer)
    this.backend.end()
    this.emit('close', code, reason)
  }
}
