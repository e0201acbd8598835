/**
 * Egress of offload frames to ports that did not negotiate offload.
 *
 * A frame from an offload port may be a 64 KiB GSO frame or carry a partial
 * checksum (common/gso.ts). Offload ports get it as it is; any other port
 * must get what a wire would carry: the segments, or the frame with its
 * checksum finished. That conversion allocates (the frames it makes may sit
 * in a port's queue), so it is the slow path, counted per frame converted in
 * switchd_offload_fallback_frames_total. A flood converts once: the result
 * is kept for the rest of the ingress message and given to every plain port.
 */

import { toPlainFrames } from '../../common/gso'
import { R_BAD_OFFLOAD } from './reasons'

/** The counters this module keeps (SwitchStats has them). */
export interface OffloadStats {
  /** GSO frames cut into segments for ports without offload. */
  offloadSegmented: number
  /** Frames whose partial checksum was finished for ports without offload. */
  offloadChecksummed: number
  /** Dropped frames by reason (reasons.ts): bad_offload when the header or the headers it describes were malformed. */
  readonly drops: Float64Array
}

const NONE: readonly Buffer[] = []

export class SoftwareOffload {
  /** The frame last converted, by its buffer and header offset: unique within one ingress message. */
  private buf: Buffer | undefined
  private hdrOff = -1
  private frames: readonly Buffer[] = NONE

  constructor (private readonly stats: OffloadStats) {}

  /** Plain frames for the offload frame buf[off, off + len) with its header at buf[hdrOff]; [] if it cannot be done (counted). */
  plainFrames (buf: Buffer, hdrOff: number, off: number, len: number): readonly Buffer[] {
    if (buf === this.buf && hdrOff === this.hdrOff) return this.frames
    const frames = toPlainFrames(buf, hdrOff, off, len)
    if (frames.length === 0) this.stats.drops[R_BAD_OFFLOAD] = (this.stats.drops[R_BAD_OFFLOAD] as number) + 1
    else if (buf[hdrOff + 1] !== 0) this.stats.offloadSegmented++
    else this.stats.offloadChecksummed++
    this.buf = buf
    this.hdrOff = hdrOff
    this.frames = frames
    return frames
  }

  /** End of the ingress message: forget the last conversion (and let its memory go). */
  clear (): void {
    if (this.buf === undefined) return
    this.buf = undefined
    this.frames = NONE
  }
}
