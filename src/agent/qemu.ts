/**
 * Endpoints that need no TAP and no privilege: a QEMU NIC, or a VDE switch.
 *
 *  - StreamEndpoint: QEMU `-netdev stream` / `-netdev socket` (4-byte
 *    big-endian length + frame) or a VDE stream cable (2-byte), over a Unix
 *    or TCP socket or stdio. A QEMU stream is already a run of tapswitch
 *    batch records: what QEMU sends goes up as views of what was read, and
 *    what the switch sends goes to QEMU as it came.
 *  - DatagramEndpoint: QEMU `-netdev dgram` over UDP, one frame per datagram.
 *  - UnixDatagramEndpoint: the same over Unix datagram sockets
 *    (`local.type=unix`), through the native addon's UnixDgram: Node's dgram
 *    module cannot open AF_UNIX datagram sockets.
 *
 * An endpoint outlives its connections: when QEMU restarts and reconnects it
 * gets the same endpoint, so the same uplink and the same port on switchd.
 * While nothing is attached, frames from the switch are dropped (counted).
 */

import * as dgram from 'node:dgram'
import { isIP } from 'node:net'
import type { Duplex, Writable } from 'node:stream'
import type * as Native from '../../native'
import { statsFrom } from '../common/native'
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

/** What UnixDatagramEndpoint needs of a binding: the native addon satisfies it (loaded lazily by the caller, so UDP and stream modes never need it). */
export interface UnixDgramBinding {
  UnixDgram: new (localPath: string) => Native.UnixDgram
  STAT_COUNT: number
}

/**
 * QEMU `-netdev dgram,local.type=unix,…,remote.type=unix,…`: one frame per
 * datagram, both ways. We bind `local` (QEMU's remote.path) and send to
 * `remote` (QEMU's local.path) with sendto, so a QEMU that restarts and
 * re-binds its path is reached again; only datagrams sent from exactly that
 * path are heard. While QEMU is not running, frames to it are counted drops.
 */
export class UnixDatagramEndpoint implements Endpoint {
  private readonly sock: Native.UnixDgram
  private readonly statBuf: Float64Array

  /** Binds `local` now; throws the binding's system error (e.g. EADDRINUSE, EACCES, ENOENT). */
  constructor (readonly name: string, readonly local: string, readonly remote: string, binding: UnixDgramBinding) {
    this.sock = new binding.UnixDgram(local)
    try {
      this.sock.connect(remote)
    } catch (err) {
      this.sock.close()
      throw err
    }
    this.statBuf = new Float64Array(binding.STAT_COUNT)
  }

  /** One batch per receive burst: a view of the binding's slab, no copy. */
  start (onBatch: (batch: Buffer, count: number) => void): void {
    this.sock.start((slab, start, end, count) => { onBatch(slab.subarray(start, end), count) })
  }

  /** One sendto per record, in one native call; returns frames sent (drops are counted in stats()). */
  write (batch: Buffer): number {
    return this.sock.sendBatch(batch, 0, batch.length)
  }

  /** The binding uses the Tap's STAT_* layout. */
  stats (): EndpointStats {
    this.sock.stats(this.statBuf)
    return statsFrom(this.statBuf)
  }

  /** Idempotent; removes our socket file. */
  close (): void { this.sock.close() }
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

export interface UdpDgramSpec { kind?: 'udp', local: { host: string, port: number }, remote: { host: string, port: number } }
export interface UnixDgramSpec { kind: 'unix', local: string, remote: string }
/** Where tap-agent and QEMU's -netdev dgram exchange datagrams: both UDP, or both Unix paths (QEMU does not mix them either). */
export type DgramSpec = UdpDgramSpec | UnixDgramSpec

/** The longest sun_path the kernel takes (108 bytes with the NUL). */
const MAX_UNIX_PATH = 107

/**
 * `local=HOST:PORT,remote=HOST:PORT` (UDP) or `local=unix:PATH,remote=unix:PATH`
 * (Unix datagrams) for -netdev dgram. `local` is ours, `remote` is QEMU's local
 * address. A remote path must be spelled as QEMU binds it (the sender's path is compared as given).
 */
export function parseDgramSpec (text: string): DgramSpec {
  const usage = `--qemu-dgram ${text}: expected local=HOST:PORT,remote=HOST:PORT (UDP) or local=unix:PATH,remote=unix:PATH (Unix datagrams)`
  const parts = new Map<string, string>()
  for (const p of text.split(',')) {
    const eq = p.indexOf('=')
    if (eq > 0) parts.set(p.slice(0, eq), p.slice(eq + 1))
  }
  const local = parts.get('local') ?? ''
  const remote = parts.get('remote') ?? ''
  const unix = [local, remote].filter((a) => a.startsWith('unix:')).length
  if (unix === 1) throw new TapswitchError(ERR_CONFIG, `--qemu-dgram ${text}: local and remote must both be unix:PATH or both HOST:PORT (QEMU does not mix them either)`)
  if (unix === 2) {
    const [l, r] = [local.slice(5), remote.slice(5)]
    for (const p of [l, r]) {
      if (p === '' || p.includes('\0')) throw new TapswitchError(ERR_CONFIG, usage)
      if (Buffer.byteLength(p) > MAX_UNIX_PATH) throw new TapswitchError(ERR_CONFIG, `--qemu-dgram ${text}: unix:${p}: a Unix socket path is at most ${MAX_UNIX_PATH} bytes`)
    }
    if (l === r) throw new TapswitchError(ERR_CONFIG, `--qemu-dgram ${text}: local and remote are the same path; QEMU binds remote, tap-agent binds local`)
    return { kind: 'unix', local: l, remote: r }
  }
  const hp = (a: string): { host: string, port: number } => {
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(a)
    if (m === null || Number(m[3]) > 65535) throw new TapswitchError(ERR_CONFIG, usage)
    return { host: (m[1] ?? m[2]) as string, port: Number(m[3]) }
  }
  return { kind: 'udp', local: hp(local), remote: hp(remote) }
}
