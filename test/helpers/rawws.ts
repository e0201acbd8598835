/**
 * WebSocket below the `ws` library, for robustness tests: a plain TCP socket
 * that performs the upgrade by hand and then writes whatever bytes the test
 * wants (unmasked frames, reserved opcodes, lying lengths, half a frame),
 * while reading back the server's close frame to learn the close code.
 *
 * Also a small seeded PRNG, so that random input is reproducible from a seed.
 */

import * as net from 'node:net'
import { randomBytes } from 'node:crypto'

/** mulberry32: a tiny, fast, seeded 32-bit PRNG. Deterministic for a given seed. */
export class Rng {
  private s: number
  constructor (seed: number) { this.s = seed >>> 0 }

  /** Uniform 32-bit unsigned integer. */
  u32 (): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }

  /** Uniform float in [0, 1). */
  float (): number { return this.u32() / 4294967296 }

  /** Integer in [min, max] (inclusive). */
  int (min: number, max: number): number { return min + Math.floor(this.float() * (max - min + 1)) }

  bool (p = 0.5): boolean { return this.float() < p }

  pick<T> (items: readonly T[]): T { return items[Math.floor(this.float() * items.length)] as T }

  /** `n` random bytes. */
  bytes (n: number): Buffer {
    const b = Buffer.allocUnsafe(n)
    let i = 0
    for (; i + 4 <= n; i += 4) b.writeUInt32LE(this.u32(), i)
    for (; i < n; i++) b[i] = this.u32() & 0xff
    return b
  }

  /** A length skewed towards small values but reaching `max`: most inputs small, some huge. */
  length (max: number): number {
    const r = this.float()
    if (r < 0.5) return this.int(0, Math.min(max, 64))
    if (r < 0.8) return this.int(0, Math.min(max, 2048))
    return this.int(0, max)
  }
}

/** A seed derived from several integers (seed, lane, case), well mixed. */
export function mixSeed (...parts: number[]): number {
  let h = 0x811c9dc5
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x01000193) >>> 0
    h = Math.imul(h ^ (h >>> 13), 0x5bd1e995) >>> 0
  }
  return (h ^ (h >>> 15)) >>> 0
}

export const OP_CONT = 0x0
export const OP_TEXT = 0x1
export const OP_BINARY = 0x2
export const OP_CLOSE = 0x8
export const OP_PING = 0x9
export const OP_PONG = 0xa

export interface FrameOptions {
  fin?: boolean
  /** RSV1..3 as a 3-bit number (RSV1 = 4). */
  rsv?: number
  /** Clients must mask; false sends an unmasked (illegal) client frame. */
  mask?: boolean
  /** Payload length to claim in the header instead of the real one. */
  declaredLength?: bigint
}

/** One WebSocket frame as a client would write it (RFC 6455 §5.2), optionally broken on purpose. */
export function encodeFrame (opcode: number, payload: Buffer, o: FrameOptions = {}): Buffer {
  const fin = o.fin ?? true
  const mask = o.mask ?? true
  const len = o.declaredLength ?? BigInt(payload.length)
  let header: Buffer
  if (len < 126n) {
    header = Buffer.alloc(2)
    header[1] = Number(len)
  } else if (len < 65536n) {
    header = Buffer.alloc(4)
    header[1] = 126
    header.writeUInt16BE(Number(len), 2)
  } else {
    header = Buffer.alloc(10)
    header[1] = 127
    header.writeBigUInt64BE(len, 2)
  }
  header[0] = (fin ? 0x80 : 0) | (((o.rsv ?? 0) & 7) << 4) | (opcode & 0x0f)
  if (!mask) return Buffer.concat([header, payload])
  header[1] = header[1] | 0x80
  const key = randomBytes(4)
  const body = Buffer.allocUnsafe(payload.length)
  for (let i = 0; i < payload.length; i++) body[i] = (payload[i] as number) ^ (key[i & 3] as number)
  return Buffer.concat([header, key, body])
}

export interface UpgradeOptions {
  path?: string
  /** Sec-WebSocket-Protocol to offer; undefined offers none (raw mode). */
  protocol?: string
  /** Replace the request line and headers entirely (for malformed requests). */
  rawRequest?: string
  timeoutMs?: number
}

/**
 * A TCP connection that has (tried to) upgrade. `status` is the HTTP status
 * of the answer (101 when upgraded). After the upgrade, frames from the
 * server are parsed only far enough to find a close frame.
 */
export class RawWs {
  status = 0
  /** The code of the server's close frame, 1005 if it had none, undefined if none came. */
  closeCode: number | undefined
  /** The TCP connection is gone. */
  ended = false
  /** Every other frame the server sent: opcode and payload (tests that speak the protocol by hand). */
  readonly messages: Array<{ opcode: number, data: Buffer }> = []
  private buf: Buffer = Buffer.alloc(0)
  private upgraded = false
  private waiters: Array<() => void> = []

  private constructor (readonly socket: net.Socket) {
    socket.on('error', () => {})
    socket.on('data', (chunk: Buffer) => { this.onData(chunk) })
    socket.on('close', () => { this.ended = true; this.wake() })
  }

  /** Connect to 127.0.0.1:`port` and send the upgrade; resolves once the answer's status line is in (or the socket closed). */
  static async connect (port: number, o: UpgradeOptions = {}): Promise<RawWs> {
    const socket = net.connect(port, '127.0.0.1')
    const c = new RawWs(socket)
    const request = o.rawRequest ?? [
      `GET ${o.path ?? '/'} HTTP/1.1`,
      `Host: 127.0.0.1:${port}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
      'Sec-WebSocket-Version: 13',
      ...(o.protocol !== undefined ? [`Sec-WebSocket-Protocol: ${o.protocol}`] : []),
      '', ''
    ].join('\r\n')
    socket.write(request)
    await c.until(() => c.status !== 0 || c.ended, o.timeoutMs ?? 30_000)
    return c
  }

  write (b: Buffer): void { if (!this.ended) this.socket.write(b) }

  /** Resolve when `check` holds, or after `ms` (no rejection: callers look at the state). */
  async until (check: () => boolean, ms: number): Promise<void> {
    const deadline = Date.now() + ms
    while (!check() && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()))
        this.waiters.push(() => { clearTimeout(t); resolve() })
      })
    }
  }

  /** Wait for the server's close frame or the end of the connection. */
  async closed (ms = 30_000): Promise<number | undefined> {
    await this.until(() => this.closeCode !== undefined || this.ended, ms)
    return this.closeCode
  }

  destroy (): void { this.socket.destroy() }

  private wake (): void {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }

  private onData (chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
    if (!this.upgraded) {
      const end = this.buf.indexOf('\r\n\r\n')
      const line = this.buf.subarray(0, Math.max(0, this.buf.indexOf('\r\n'))).toString('latin1')
      const m = /^HTTP\/1\.1 (\d{3})/.exec(line)
      if (m !== null && this.status === 0) this.status = Number(m[1])
      if (end < 0) { this.wake(); return }
      this.upgraded = this.status === 101
      this.buf = this.buf.subarray(end + 4)
      if (!this.upgraded) { this.buf = Buffer.alloc(0); this.wake(); return }
    }
    // Server frames are never masked: header, optional extended length, payload.
    while (this.buf.length >= 2) {
      const b0 = this.buf[0] as number
      let len = (this.buf[1] as number) & 0x7f
      let off = 2
      if (len === 126) { if (this.buf.length < 4) break; len = this.buf.readUInt16BE(2); off = 4 }
      else if (len === 127) { if (this.buf.length < 10) break; len = Number(this.buf.readBigUInt64BE(2)); off = 10 }
      if (this.buf.length < off + len) break
      if ((b0 & 0x0f) === OP_CLOSE && this.closeCode === undefined) {
        this.closeCode = len >= 2 ? this.buf.readUInt16BE(off) : 1005
      } else if ((b0 & 0x0f) !== OP_CLOSE) this.messages.push({ opcode: b0 & 0x0f, data: Buffer.from(this.buf.subarray(off, off + len)) })
      this.buf = this.buf.subarray(off + len)
    }
    this.wake()
  }
}
