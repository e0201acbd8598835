/**
 * The far end of a length-prefixed frame stream, written independently of
 * src/common/framing.ts so the tests check the wire format rather than
 * re-use the code under test: QEMU `-netdev stream` (4-byte big-endian
 * lengths) and VDE stream cables (2-byte big-endian lengths).
 */

import type { Readable, Writable } from 'node:stream'
import { sleep } from './net'

/** Frames with `width`-byte big-endian length prefixes, concatenated. */
export function prefixed (frames: Buffer[], width: 2 | 4): Buffer {
  return Buffer.concat(frames.flatMap((f) => {
    const h = Buffer.alloc(width)
    if (width === 4) h.writeUInt32BE(f.length, 0)
    else h.writeUInt16BE(f.length, 0)
    return [h, f]
  }))
}

/**
 * Write `buf` in pieces cut at `cuts` (offsets into buf), waiting between
 * pieces so they leave as separate writes (a record split mid-prefix,
 * mid-frame and across records).
 */
export async function writeSplit (out: Writable, buf: Buffer, cuts: number[], gapMs = 15): Promise<void> {
  const points = [0, ...cuts.filter((c) => c > 0 && c < buf.length).sort((x, y) => x - y), buf.length]
  for (let i = 0; i + 1 < points.length; i++) {
    const piece = buf.subarray(points[i], points[i + 1])
    await new Promise<void>((resolve, reject) => { out.write(piece, (err) => { if (err) reject(err); else resolve() }) })
    await sleep(gapMs)
  }
}

/** Collects the frames of a `width`-prefixed byte stream; `leftover` is an unfinished record. */
export class FrameReader {
  readonly frames: Buffer[] = []
  bytes = 0
  private buf = Buffer.alloc(0)
  ended = false

  constructor (input: Readable, readonly width: 2 | 4) {
    input.on('data', (chunk: Buffer) => { this.push(chunk) })
    input.on('end', () => { this.ended = true })
    input.on('close', () => { this.ended = true })
  }

  get leftover (): number { return this.buf.length }

  take (): Buffer[] { return this.frames.splice(0) }

  private push (chunk: Buffer): void {
    this.bytes += chunk.length
    this.buf = Buffer.concat([this.buf, chunk])
    const w = this.width
    while (this.buf.length >= w) {
      const len = w === 4 ? this.buf.readUInt32BE(0) : this.buf.readUInt16BE(0)
      if (this.buf.length < w + len) break
      this.frames.push(Buffer.from(this.buf.subarray(w, w + len)))
      this.buf = this.buf.subarray(w + len)
    }
  }
}
