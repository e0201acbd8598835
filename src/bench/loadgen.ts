/**
 * The synthetic load generator: a child process (forked by synthetic.ts) that
 * holds both ends of a switchd forwarding test, so that neither shares
 * switchd's process.
 *
 * It speaks WebSocket below the `ws` library, on plain TCP sockets, so that it
 * costs next to nothing and switchd is what gets measured:
 *  - the sender (MAC A) writes pre-built chunks of ~64 KiB, each holding
 *    many complete client frames, each with its own random mask as RFC 6455
 *    asks (switchd unmasks every message, as it does for real agents). A
 *    message is one Ethernet frame (raw mode) or a batch of up to 64 frames
 *    within 64 KiB (tapswitch.v1, after hello/welcome). It writes as fast as
 *    switchd reads (TCP backpressure), yielding between chunks so that the
 *    receiver keeps up;
 *  - the receiver (MAC B) parses only the WebSocket frame headers and counts
 *    payload bytes: every frame of a test has the same size.
 * Both answer switchd's keepalive pings.
 *
 * IPC: the parent sends a LoadgenJob; we answer {ev:'ready'} once both are
 * connected and B is learned, {ev:'measuring'} when the warm-up ends, and
 * {ev:'result', ...} after the measured window. Then we exit.
 */

import * as net from 'node:net'
import { randomBytes } from 'node:crypto'
import { SUBPROTOCOL_V1, RECORD_HEADER } from '../common/protocol'

export interface LoadgenJob {
  url: string
  mode: 'raw' | 'batched'
  frameBytes: number
  /** Most frames per batch message (batched mode); a batch also stays within 64 KiB. */
  batchFrames: number
  warmupMs: number
  measureMs: number
  /** Distinct per run, so a MAC never looks like it moved. */
  macA: number
  macB: number
}

export interface LoadgenResult {
  ev: 'result'
  seconds: number
  /** Frames and frame bytes the receiver got in the measured window. */
  rxFrames: number
  rxBytes: number
  /** Frames the sender handed to the kernel in the window. */
  txFrames: number
  /** CPU seconds of this process in the window (both ends). */
  cpuSeconds: number
}

const BATCH_LIMIT = 64 * 1024
const CHUNK_TARGET = 64 * 1024
/** Chunks written per event-loop turn before yielding to the receiver. */
const WRITES_PER_TURN = 8

const OP_TEXT = 0x1
const OP_BINARY = 0x2
const OP_CLOSE = 0x8
const OP_PING = 0x9
const OP_PONG = 0xa

/** One masked client frame (FIN set). */
function clientFrame (opcode: number, payload: Buffer): Buffer {
  const len = payload.length
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8
  const out = Buffer.allocUnsafe(2 + ext + 4 + len)
  out[0] = 0x80 | opcode
  if (ext === 0) out[1] = 0x80 | len
  else if (ext === 2) { out[1] = 0x80 | 126; out.writeUInt16BE(len, 2) } else { out[1] = 0x80 | 127; out.writeBigUInt64BE(BigInt(len), 2) }
  const m = 2 + ext
  randomBytes(4).copy(out, m)
  for (let i = 0; i < len; i++) out[m + 4 + i] = (payload[i] as number) ^ (out[m + (i & 3)] as number)
  return out
}

/** Incoming (unmasked, server) frames: calls onPayload(opcode, bytes of this piece, piece) as data arrives. */
export class FrameParser {
  private hdr = Buffer.alloc(0)
  private remaining = 0
  private opcode = 0
  /** Small control/text payloads are collected whole; data payloads are only counted. */
  private small: Buffer[] = []

  constructor (private readonly onData: (opcode: number, bytes: number, fin: boolean) => void,
    private readonly onSmall: (opcode: number, payload: Buffer) => void) {}

  push (chunk: Buffer): void {
    let off = 0
    while (off < chunk.length) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - off)
        if (this.opcode === OP_BINARY || this.opcode === 0) this.onData(this.opcode, n, false)
        else this.small.push(chunk.subarray(off, off + n))
        this.remaining -= n
        off += n
        if (this.remaining === 0) this.endFrame()
        continue
      }
      if (this.hdr.length === 0 && chunk.length - off >= 2) {
        // Fast path: the whole header is in this chunk (server frames are not masked).
        const l = (chunk[off + 1] as number) & 0x7f
        const hl = 2 + (l === 126 ? 2 : l === 127 ? 8 : 0) + (((chunk[off + 1] as number) & 0x80) !== 0 ? 4 : 0)
        if (chunk.length - off >= hl) {
          this.opcode = (chunk[off] as number) & 0x0f
          this.remaining = l === 126 ? chunk.readUInt16BE(off + 2) : l === 127 ? Number(chunk.readBigUInt64BE(off + 2)) : l
          off += hl
          if (this.remaining === 0) this.endFrame()
          continue
        }
      }
      // Header split across chunks: gather 2 bytes, then the extended length.
      const need = (h: Buffer): number => {
        if (h.length < 2) return 2
        const l = (h[1] as number) & 0x7f
        return 2 + (l === 126 ? 2 : l === 127 ? 8 : 0) + (((h[1] as number) & 0x80) !== 0 ? 4 : 0)
      }
      let take = need(this.hdr) - this.hdr.length
      this.hdr = Buffer.concat([this.hdr, chunk.subarray(off, off + take)])
      off += Math.min(take, chunk.length - off)
      take = need(this.hdr) - this.hdr.length
      if (take > 0) {
        if (off < chunk.length) continue
        return
      }
      const h = this.hdr
      this.hdr = Buffer.alloc(0)
      this.opcode = (h[0] as number) & 0x0f
      const l = (h[1] as number) & 0x7f
      this.remaining = l === 126 ? h.readUInt16BE(2) : l === 127 ? Number(h.readBigUInt64BE(2)) : l
      if (this.remaining === 0) this.endFrame()
    }
  }

  private endFrame (): void {
    if (this.opcode === OP_BINARY || this.opcode === 0) this.onData(this.opcode, 0, true)
    else this.onSmall(this.opcode, Buffer.concat(this.small))
    this.small = []
    this.remaining = 0
  }
}

interface Conn { socket: net.Socket, parser: FrameParser }

/** Upgrade a TCP connection by hand; resolves once switchd said 101 (and, batched, sent its welcome). */
async function connect (url: string, batched: boolean, name: string, onData: (bytes: number, fin: boolean) => void): Promise<Conn> {
  const u = new URL(url)
  const socket = net.connect({ host: u.hostname, port: Number(u.port) })
  socket.setNoDelay(true)
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  socket.on('error', () => {})
  const key = randomBytes(16).toString('base64')
  socket.write(`GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${batched ? `Sec-WebSocket-Protocol: ${SUBPROTOCOL_V1}\r\n` : ''}\r\n`)
  let welcomed: () => void = () => {}
  const welcome = new Promise<void>((resolve) => { welcomed = resolve })
  const parser = new FrameParser((_op, bytes, fin) => { onData(bytes, fin) }, (op, payload) => {
    if (op === OP_PING) socket.write(clientFrame(OP_PONG, payload))
    else if (op === OP_TEXT) welcomed()
    else if (op === OP_CLOSE) socket.destroy()
  })
  await new Promise<void>((resolve, reject) => {
    let head = Buffer.alloc(0)
    const onHead = (d: Buffer): void => {
      head = Buffer.concat([head, d])
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) return
      socket.off('data', onHead)
      const status = head.subarray(0, head.indexOf('\r\n')).toString()
      if (!/^HTTP\/1\.1 101/.test(status)) { reject(new Error(`upgrade refused: ${status}`)); return }
      socket.on('data', (c: Buffer) => { parser.push(c) })
      if (end + 4 < head.length) parser.push(head.subarray(end + 4))
      resolve()
    }
    socket.on('data', onHead)
    socket.once('close', () => { reject(new Error('closed during the upgrade')) })
  })
  if (batched) {
    socket.write(clientFrame(OP_TEXT, Buffer.from(JSON.stringify({ type: 'hello', version: 1, name }))))
    await Promise.race([welcome, sleep(5000).then(() => { throw new Error('no welcome within 5 s') })])
  }
  return { socket, parser }
}

function ethernet (dst: number, src: number, size: number): Buffer {
  const f = Buffer.alloc(size)
  f.writeUIntBE(dst, 0, 6)
  f.writeUIntBE(src, 6, 6)
  f.writeUInt16BE(0x88b5, 12) // IEEE local experimental EtherType
  return f
}

function record (f: Buffer): Buffer {
  const r = Buffer.allocUnsafe(RECORD_HEADER + f.length)
  r.writeUInt32BE(f.length, 0)
  f.copy(r, RECORD_HEADER)
  return r
}

async function runJob (job: LoadgenJob): Promise<LoadgenResult> {
  const batched = job.mode === 'batched'
  const f = ethernet(job.macB, job.macA, job.frameBytes)
  const framesPerMsg = batched ? Math.max(1, Math.min(job.batchFrames, Math.floor(BATCH_LIMIT / (RECORD_HEADER + f.length)))) : 1
  const bytesPerFrame = batched ? RECORD_HEADER + f.length : f.length

  let rxPayload = 0
  const rx = await connect(job.url, batched, 'bench-rx', (bytes) => { rxPayload += bytes })
  const tx = await connect(job.url, batched, 'bench-tx', () => {})

  // B speaks first so switchd learns it: A's frames are then known unicast to B.
  const hi = ethernet(0xffffffffffff, job.macB, 64)
  rx.socket.write(clientFrame(OP_BINARY, batched ? record(hi) : hi))
  await sleep(200)
  rxPayload = 0 // anything before this was not ours

  // Pre-built chunks of whole messages, each message with its own mask; a few chunks rotate.
  const payload = batched ? Buffer.concat(Array.from({ length: framesPerMsg }, () => record(f))) : f
  const msgLen = clientFrame(OP_BINARY, payload).length
  const msgsPerChunk = Math.max(1, Math.floor(CHUNK_TARGET / msgLen))
  const chunks = Array.from({ length: 4 }, () => Buffer.concat(Array.from({ length: msgsPerChunk }, () => clientFrame(OP_BINARY, payload))))
  const framesPerChunk = msgsPerChunk * framesPerMsg

  let running = true
  let txFrames = 0
  let next = 0
  const pump = (): void => {
    for (let i = 0; running && i < WRITES_PER_TURN; i++) {
      const ok = tx.socket.write(chunks[next++ & 3] as Buffer)
      txFrames += framesPerChunk
      if (!ok) { tx.socket.once('drain', pump); return }
    }
    if (running) setImmediate(pump)
  }
  pump()
  await sleep(job.warmupMs)
  const start = { rxPayload, txFrames, t: performance.now(), cpu: process.cpuUsage() }
  process.send?.({ ev: 'measuring' })
  await sleep(job.measureMs)
  const seconds = (performance.now() - start.t) / 1000
  const cpu = process.cpuUsage(start.cpu)
  const rxFrames = Math.floor((rxPayload - start.rxPayload) / bytesPerFrame)
  running = false
  tx.socket.destroy()
  rx.socket.destroy()
  return {
    ev: 'result',
    seconds,
    rxFrames,
    rxBytes: rxFrames * f.length,
    txFrames: txFrames - start.txFrames,
    cpuSeconds: (cpu.user + cpu.system) / 1e6
  }
}

function sleep (ms: number): Promise<void> { return new Promise((resolve) => setTimeout(resolve, ms)) }

if (require.main === module) {
  // The parent going away (Ctrl-C, crash) ends us too.
  process.on('disconnect', () => { process.exit(0) })
  process.once('message', (job: LoadgenJob) => {
    runJob(job).then((r) => {
      process.send?.(r, () => { process.exit(0) })
    }, (err: Error) => {
      process.send?.({ ev: 'error', message: err.message }, () => { process.exit(1) })
    })
  })
}
