/**
 * Endpoints that need no TAP and no privilege: a QEMU NIC, or a VDE switch.
 *
 *  - StreamEndpoint: QEMU `-netdev stream` / `-netdev socket` (4-byte
 *    big-endian length + frame) or a VDE stream cable (2-byte), over a Unix
 *    or TCP socket or stdio. A QEMU stream is already a run of tapswitch
 *    batch records: what QEMU sends goes up as views of what was read, and
 *    what the switch sends goes to QEMU as it came.
 *  - DatagramEndpoint: QEMU `-netdev dgram` over UDP, one frame per datagram.
 *
 * An endpoint outlives its connections: when QEMU restarts and reconnects it
 * gets the same endpoint, so the same uplink and the same port on switchd.
 * While nothing is attached, frames from the switch are dropped (counted).
 */

import * as dgram from 'node:dgram'
import { isIP } from 'node:net'
import type { Duplex, Writable } from 'node:stream'
import type { Endpoint, EndpointStats } from './endpoint'
import { Deframer, encodeStream, datagramToBatch } from '../common/framing'
import { RECORD_HEADER } from '../common/protocol'
import { TapswitchError, ERR_CONFIG } from '../common/errors'
import { logger } from '../common/log'

const log = logger('endpoint')

/** Bytes we let queue toward QEMU/VDE before dropping: the socket equivalent of a TAP's queue. */
const MAX_QUEUED = 1024 * 1024

function emptyStats (): EndpointStats {
  return { rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, txDropped: 0, txErrors: 0, txMalformed: 0, rxErrors: 0 }
}

/** Frames and frame bytes in a batch (slow enough for per-message use, not per frame). */
function measure (batch: Buffer): [number, number] {
  let off = 0
  let n = 0
  while (off < batch.length) { off += RECORD_HEADER + batch.readUInt32BE(off); n++ }
  return [n, batch.length - n * RECORD_HEADER]
}

export class StreamEndpoint implements Endpoint {
  private readonly s = emptyStats()
  private onBatch: ((batch: Buffer, count: number) => void) | undefined
  private input: Duplex | NodeJS.ReadableStream | undefined
  private output: Writable | undefined
  private deframer: Deframer | undefined
  private readonly dropped = new Uint32Array(1)
  /** Connections attached so far (a reconnecting QEMU counts again). */
  attachments = 0

  constructor (readonly name: string, readonly width: number) {}

  get attached (): boolean { return this.output !== undefined }

  start (onBatch: (batch: Buffer, count: number) => void): void { this.onBatch = onBatch }

  /**
   * Carry frames over `input`/`output` (one Duplex for a socket, or stdin and
   * stdout) until they end; `onDetach` is called then. A previous connection
   * is dropped.
   */
  attach (input: Duplex | NodeJS.ReadableStream, output: Writable, onDetach: () => void): void {
    this.detach()
    this.attachments++
    this.input = input
    this.output = output
    const deframer = new Deframer(this.width, (batch, count) => {
      this.s.rxFrames += count
      this.s.rxBytes += batch.length - count * RECORD_HEADER
      this.onBatch?.(batch, count)
    })
    this.deframer = deframer
    let done = false
    const end = (why: string): void => {
      if (done) return
      done = true
      if (this.input === input) { this.input = undefined; this.output = undefined; this.deframer = undefined }
      log.info('endpoint_detached', { endpoint: this.name, reason: why })
      onDetach()
    }
    input.on('data', (chunk: Buffer) => {
      if (!deframer.push(chunk)) {
        this.s.rxErrors++
        log.warn('endpoint_framing_error', { endpoint: this.name, reason: 'a frame length over the maximum: the stream is out of step' })
        ;(input as Duplex).destroy?.()
        end('framing error')
      }
    })
    input.on('end', () => { end('closed') })
    input.on('close', () => { end('closed') })
    input.on('error', (err: Error) => { end(err.message) })
    output.on('error', (err: Error) => { end(err.message) })
    log.info('endpoint_attached', { endpoint: this.name, attachment: this.attachments })
  }

  detach (): void {
    const input = this.input
    if (input === undefined) return
    this.input = undefined
    this.output = undefined
    ;(input as Duplex).destroy?.()
  }

  write (batch: Buffer): number {
    const out = this.output
    const [n, bytes] = measure(batch)
    if (out === undefined || out.writableLength > MAX_QUEUED) { this.s.txDropped += n; return 0 }
    const before = this.dropped[0] as number
    out.write(encodeStream(batch, this.width, this.dropped))
    const tooLong = (this.dropped[0] as number) - before
    this.s.txMalformed += tooLong
    this.s.txFrames += n - tooLong
    this.s.txBytes += bytes
    return n - tooLong
  }

  stats (): EndpointStats { return { ...this.s } }

  close (): void { this.detach() }
}

/** QEMU `-netdev dgram` over UDP: one frame per datagram, both ways. */
export class DatagramEndpoint implements Endpoint {
  private readonly s = emptyStats()
  private readonly socket: dgram.Socket

  constructor (readonly name: string, private readonly local: { host: string, port: number }, private readonly remote: { host: string, port: number }) {
    this.socket = dgram.createSocket(local.host.includes(':') ? 'udp6' : 'udp4')
  }

  /** Bind the local address; resolves once bound. */
  async bind (): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.socket.once('error', reject)
      this.socket.bind(this.local.port, this.local.host, () => { this.socket.off('error', reject); resolve() })
    })
    this.socket.on('error', (err) => { this.s.rxErrors++; log.limited('warn', 'endpoint_error', { endpoint: this.name, error: err.message }) })
  }

  start (onBatch: (batch: Buffer, count: number) => void): void {
    // Only our QEMU: its port, and its address when it is given as one (a name cannot be compared).
    const checkAddress = isIP(this.remote.host) !== 0
    this.socket.on('message', (msg, from) => {
      if (from.port !== this.remote.port || (checkAddress && from.address !== this.remote.host)) { this.s.rxErrors++; return }
      const batch = datagramToBatch(msg)
      if (batch === undefined) { this.s.rxErrors++; return }
      this.s.rxFrames++
      this.s.rxBytes += msg.length
      onBatch(batch, 1)
    })
  }

  write (batch: Buffer): number {
    let off = 0
    let n = 0
    while (off < batch.length) {
      const len = batch.readUInt32BE(off)
      this.socket.send(batch.subarray(off + RECORD_HEADER, off + RECORD_HEADER + len), this.remote.port, this.remote.host)
      this.s.txFrames++
      this.s.txBytes += len
      off += RECORD_HEADER + len
      n++
    }
    return n
  }

  stats (): EndpointStats { return { ...this.s } }

  close (): void { this.socket.close() }
}

/** `unix:/path`, `tcp:host:port`, or a bare path: where a QEMU socket is. */
export type SocketAddress = { kind: 'unix', path: string } | { kind: 'tcp', host: string, port: number }

export function parseSocketAddress (flag: string, text: string): SocketAddress {
  if (text.startsWith('unix:')) return { kind: 'unix', path: text.slice(5) }
  if (text.startsWith('/') || text.startsWith('./')) return { kind: 'unix', path: text }
  const m = /^tcp:(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text)
  if (m === null || Number(m[3]) > 65535) throw new TapswitchError(ERR_CONFIG, `--${flag} ${text}: expected unix:/path/to.sock or tcp:HOST:PORT`)
  return { kind: 'tcp', host: (m[1] ?? m[2]) as string, port: Number(m[3]) }
}

/** `local=HOST:PORT,remote=HOST:PORT` for -netdev dgram over UDP. */
export function parseDgramSpec (text: string): { local: { host: string, port: number }, remote: { host: string, port: number } } {
  const parts = Object.fromEntries(text.split(',').map((p) => p.split('=') as [string, string]))
  const hp = (key: string): { host: string, port: number } => {
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(parts[key] ?? '')
    if (m === null || Number(m[3]) > 65535) throw new TapswitchError(ERR_CONFIG, `--qemu-dgram ${text}: expected local=HOST:PORT,remote=HOST:PORT (UDP)`)
    return { host: (m[1] ?? m[2]) as string, port: Number(m[3]) }
  }
  return { local: hp('local'), remote: hp('remote') }
}
