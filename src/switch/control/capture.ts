/**
 * Live capture: a stream of the frames a network forwards or floods, in
 * libpcap format (readable by tcpdump -r, tshark, Wireshark), filtered by
 * port and VLAN and bounded by count, bytes and duration.
 *
 * A capture is a FrameTap on its Switch, so the frame path pays nothing when
 * no one captures. Each captured frame is copied (the caller's buffer is not
 * ours to keep). A reader that does not keep up loses capture frames, counted,
 * once a megabyte is waiting: capture never slows a port.
 *
 * Frames are captured as they entered the switch (with the ingress port's
 * tag, if any). A port filter matches frames that entered by the port, were
 * forwarded to it, or were flooded while it was a forwarding member of the VLAN.
 */

import type { Switch, FrameTap } from '../core/switch'
import { canEgress, type Port } from '../core/port'
import { logger } from '../../common/log'

const log = logger('capture')

/** What a capture is allowed to hold back before it drops. */
const MAX_QUEUED = 1024 * 1024
const PCAP_SNAPLEN = 262144
const LINKTYPE_ETHERNET = 1

/** The writable end of a capture (an HTTP response, or a test's sink). */
export interface CaptureSink {
  write (chunk: Buffer): boolean
  readonly writableLength: number
  end (): void
}

export interface CaptureFilter {
  port?: string
  vlan?: number
}

export interface CaptureLimits {
  /** Frames (default 10,000). */
  count: number
  /** Bytes of frames (default 100 MB). */
  bytes: number
  /** Seconds (default 60). */
  duration: number
}

export const DEFAULT_LIMITS: CaptureLimits = { count: 10_000, bytes: 100_000_000, duration: 60 }

export class CaptureStats {
  frames = 0
  dropped = 0
  started = 0
}

/** The libpcap global header: microsecond timestamps, Ethernet link type. */
export function pcapHeader (): Buffer {
  const h = Buffer.alloc(24)
  h.writeUInt32LE(0xa1b2c3d4, 0)
  h.writeUInt16LE(2, 4)
  h.writeUInt16LE(4, 6)
  h.writeInt32LE(0, 8)
  h.writeUInt32LE(0, 12)
  h.writeUInt32LE(PCAP_SNAPLEN, 16)
  h.writeUInt32LE(LINKTYPE_ETHERNET, 20)
  return h
}

class Capture implements FrameTap {
  frames = 0
  bytes = 0
  dropped = 0
  private timer: NodeJS.Timeout | undefined
  private ended = false

  constructor (
    private readonly sw: Switch,
    private readonly filter: CaptureFilter,
    private readonly limits: CaptureLimits,
    private readonly sink: CaptureSink,
    private readonly stats: CaptureStats,
    private readonly onEnd: () => void
  ) {}

  start (): void {
    this.sink.write(pcapHeader())
    this.timer = setTimeout(() => { this.stop('duration') }, this.limits.duration * 1000)
    this.sw.taps.push(this)
    // The fast path's frames would bypass the capture: every flow goes, and none is installed while it runs.
    this.sw.invalidate()
  }

  offer (ingress: Port, egress: Port | undefined, vid: number, buf: Buffer, off: number, len: number): void {
    const f = this.filter
    if (f.vlan !== undefined && f.vlan !== vid) return
    if (f.port !== undefined && ingress.name !== f.port && !this.reaches(egress, vid, ingress)) return
    if (this.sink.writableLength > MAX_QUEUED) { this.dropped++; this.stats.dropped++; return }
    const rec = Buffer.allocUnsafe(16 + len)
    const nowUs = Math.round((performance.timeOrigin + performance.now()) * 1000)
    rec.writeUInt32LE(Math.floor(nowUs / 1e6), 0)
    rec.writeUInt32LE(nowUs % 1e6, 4)
    rec.writeUInt32LE(len, 8)
    rec.writeUInt32LE(len, 12)
    buf.copy(rec, 16, off, off + len)
    this.sink.write(rec)
    this.frames++
    this.bytes += len
    this.stats.frames++
    if (this.frames >= this.limits.count) this.stop('count')
    else if (this.bytes >= this.limits.bytes) this.stop('bytes')
  }

  /** Did this frame leave by the filtered port? */
  private reaches (egress: Port | undefined, vid: number, ingress: Port): boolean {
    const name = this.filter.port as string
    if (egress !== undefined) return egress.name === name
    for (const p of this.sw.ports) if (p.name === name) return p !== ingress && canEgress(p, vid)
    return false
  }

  stop (reason: string): void {
    if (this.ended) return
    this.ended = true
    clearTimeout(this.timer)
    const i = this.sw.taps.indexOf(this)
    if (i >= 0) this.sw.taps.splice(i, 1)
    log.info('capture_stopped', { network: this.sw.name, reason, frames: this.frames, bytes: this.bytes, dropped: this.dropped })
    this.sink.end()
    this.onEnd()
  }
}

/** The captures running on one switchd. */
export class CaptureHub {
  readonly stats = new CaptureStats()
  private readonly active = new Set<Capture>()

  get size (): number { return this.active.size }

  /** Start capturing `sw` into `sink`; returns a function that stops it early (reader gone). */
  start (sw: Switch, filter: CaptureFilter, limits: CaptureLimits, sink: CaptureSink): () => void {
    const c = new Capture(sw, filter, limits, sink, this.stats, () => { this.active.delete(c) })
    this.active.add(c)
    this.stats.started++
    log.info('capture_started', { network: sw.name, port: filter.port, vlan: filter.vlan, ...limits })
    c.start()
    return () => { c.stop('reader_closed') }
  }

  /** End every capture (shutdown). */
  stopAll (): void {
    for (const c of [...this.active]) c.stop('shutdown')
  }
}
