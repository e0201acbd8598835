/**
 * PairTap: a TAP without root for the native link's tests. One end of an
 * AF_UNIX SOCK_SEQPACKET pair (the addon's socketPair) is the agent's "TAP"
 * (one read is one frame, as on a TAP), the other the test's: inject() writes
 * frames the agent will read, received collects what the agent wrote. The
 * agent's own reader (used while no link runs) polls its end on a timer.
 */

import * as fs from 'node:fs'
import type { Endpoint, EndpointStats } from '../../src/agent/endpoint'
import { decodeBatch, encodeBatch } from '../../src/common/protocol'
import { loadNative } from '../../src/common/native'
import { waitFor } from './net'

const READ_MAX = 65536 + 64

function readAll (fd: number, out: Buffer[]): void {
  const buf = Buffer.allocUnsafe(READ_MAX)
  for (;;) {
    let n: number
    try {
      n = fs.readSync(fd, buf, 0, READ_MAX, null)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return
      throw err
    }
    if (n <= 0) return
    out.push(Buffer.from(buf.subarray(0, n)))
  }
}

export class PairTap implements Endpoint {
  readonly fd: number
  /** The test's end. */
  readonly peer: number
  readonly vnetHdr = false
  readonly vnetRecords = false
  /** Frames the agent wrote to its "TAP" (read off the test's end by pump()). */
  readonly received: Buffer[] = []
  private timer: NodeJS.Timeout | undefined
  private peerTimer: NodeJS.Timeout | undefined
  private readonly counts = { rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, txDropped: 0, txErrors: 0, txMalformed: 0, rxErrors: 0 }
  private closed = false

  constructor (readonly name = 'pairtap0') {
    const [a, b] = loadNative('tests').socketPair()
    this.fd = a
    this.peer = b
    // The test's end is drained on a timer: what the agent wrote collects in `received`.
    this.peerTimer = setInterval(() => { if (!this.closed) readAll(this.peer, this.received) }, 2)
  }

  /** Frames "from the host": the agent reads them off its end. */
  inject (frames: Buffer[]): void {
    for (const f of frames) fs.writeSync(this.peer, f)
  }

  /** inject(), waiting while the pair's queue is full (EAGAIN): the agent reads it meanwhile. */
  async feed (frames: Buffer[], ms = 30_000): Promise<void> {
    const deadline = Date.now() + ms
    for (const f of frames) {
      for (;;) {
        try { fs.writeSync(this.peer, f); break } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || Date.now() > deadline) throw err
          await new Promise((resolve) => setTimeout(resolve, 1))
        }
      }
    }
  }

  async waitReceived (n: number, what = 'frames on the TAP'): Promise<void> {
    await waitFor(() => this.received.length >= n, undefined, what)
  }

  // --- Endpoint: the agent's own reader and writer, while no link runs ---
  start (onBatch: (batch: Buffer, count: number) => void): void {
    if (this.timer !== undefined) throw new Error('already started')
    this.timer = setInterval(() => {
      if (this.closed) return
      const frames: Buffer[] = []
      readAll(this.fd, frames)
      if (frames.length === 0) return
      this.counts.rxFrames += frames.length
      for (const f of frames) this.counts.rxBytes += f.length
      onBatch(encodeBatch(frames), frames.length)
    }, 2)
  }

  stop (): void { clearInterval(this.timer); this.timer = undefined }

  /** Is the agent's own reader running (no link)? */
  get reading (): boolean { return this.timer !== undefined }

  write (batch: Buffer): number {
    let n = 0
    for (const f of decodeBatch(batch)) {
      fs.writeSync(this.fd, f)
      this.counts.txFrames++
      this.counts.txBytes += f.length
      n++
    }
    return n
  }

  stats (): EndpointStats { return { ...this.counts } }

  close (): void {
    if (this.closed) return
    this.closed = true
    this.stop()
    clearInterval(this.peerTimer)
    fs.closeSync(this.fd)
    fs.closeSync(this.peer)
  }
}
