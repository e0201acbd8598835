/**
 * Length-prefixed framing, the one parser and encoder for every framed
 * transport we speak:
 *   - 4-byte big-endian prefixes: tapswitch batches, QEMU `-netdev stream`
 *     and `-netdev socket` (and so a QEMU stream is a run of batch records);
 *   - 2-byte big-endian prefixes: VDE stream cables (vde_plug over dpipe/ssh);
 *   - one frame per datagram: QEMU `-netdev dgram`.
 *
 * The Deframer takes a byte stream in arbitrary chunks (a record may be split
 * at any byte) and hands out complete records as tapswitch batches: with
 * 4-byte input those are views of the input, no copy; 2-byte input is
 * re-encoded. A length over `maxLen` desynchronises the stream for good: the
 * Deframer reports it and the caller closes that stream. A zero or short
 * length is a frame like any other (the switch counts it as a runt).
 */

/** Prefix widths. */
export const PREFIX_U16 = 2
export const PREFIX_U32 = 4
/** tapswitch batch records use 4-byte prefixes. */
const RECORD_HEADER = PREFIX_U32
/** The largest frame any framing carries (the protocol's jumbo ceiling, protocol.ts). */
export const DEFAULT_MAX_LEN = 65535 + 18
/** Batches are cut at this many bytes: half the protocol's 256 KiB, so re-encoding 2-byte records always fits. */
export const BATCH_LIMIT = 128 * 1024

/** Read a `width`-byte big-endian length at `off`. */
export function readLength (buf: Buffer, off: number, width: number): number {
  return width === PREFIX_U32 ? buf.readUInt32BE(off) : buf.readUInt16BE(off)
}

/** Write a `width`-byte big-endian length at `off`. */
export function writeLength (buf: Buffer, off: number, width: number, len: number): void {
  if (width === PREFIX_U32) buf.writeUInt32BE(len, off)
  else buf.writeUInt16BE(len, off)
}

/**
 * The end of the last complete record in buf[start, end), walking `width`-prefixed
 * records; -1 if a length exceeds `maxLen`. `counts[0]` gets the number of complete records.
 */
export function completeRecords (buf: Buffer, start: number, end: number, width: number, maxLen: number, counts: Uint32Array): number {
  let off = start
  let n = 0
  while (end - off >= width) {
    const len = readLength(buf, off, width)
    if (len > maxLen) { counts[0] = n; return -1 }
    if (off + width + len > end) break
    off += width + len
    n++
  }
  counts[0] = n
  return off
}

/**
 * Re-encode the `width`-prefixed records of src[start, end) with `toWidth`
 * prefixes into `out` at `outOff`; returns the offset after them.
 */
export function reframe (src: Buffer, start: number, end: number, width: number, out: Buffer, outOff: number, toWidth: number): number {
  let off = start
  let o = outOff
  while (off < end) {
    const len = readLength(src, off, width)
    writeLength(out, o, toWidth, len)
    src.copy(out, o + toWidth, off + width, off + width + len)
    off += width + len
    o += toWidth + len
  }
  return o
}

/** Bytes `reframe` needs for `count` records of src[start, end) going from `width` to `toWidth`. */
export function reframedSize (start: number, end: number, count: number, width: number, toWidth: number): number {
  return end - start + count * (toWidth - width)
}

/** Called with each batch of complete records, in tapswitch format ([u32 len][frame]…). */
export type OnBatch = (batch: Buffer, count: number) => void

/** A stream of `width`-prefixed frames in, tapswitch batches out. */
export class Deframer {
  /** Bytes of an unfinished record carried to the next chunk. */
  private pending: Buffer
  private pendingLen = 0
  /** Set once a length over maxLen was seen: the stream is unusable. */
  failed = false

  constructor (readonly width: number, private readonly onBatch: OnBatch, readonly maxLen = DEFAULT_MAX_LEN) {
    this.pending = Buffer.allocUnsafe(width + maxLen)
  }

  /** Bytes of an unfinished record held back. */
  get buffered (): number { return this.pendingLen }

  /** Feed one chunk; false if the stream carried a length over maxLen (close it). */
  push (chunk: Buffer): boolean {
    if (this.failed) return false
    let off = 0
    if (this.pendingLen > 0) {
      off = this.fillPending(chunk)
      if (off < 0) return this.fail()
      if (this.pendingLen > 0) return true // still unfinished: the chunk went into it
    }
    const w = this.width
    while (off < chunk.length) {
      // Complete records from `off`, up to BATCH_LIMIT bytes per batch.
      let end = off
      let n = 0
      while (chunk.length - end >= w) {
        const len = readLength(chunk, end, w)
        if (len > this.maxLen) {
          // What came before the bad length was good: deliver it, then give up on the stream.
          if (n > 0) this.emit(chunk, off, end, n)
          return this.fail()
        }
        const next = end + w + len
        if (next > chunk.length || (n > 0 && next - off > BATCH_LIMIT)) break
        end = next
        n++
      }
      if (n === 0) break // what is left is the start of a record
      this.emit(chunk, off, end, n)
      off = end
    }
    if (off < chunk.length) {
      chunk.copy(this.pending, 0, off)
      this.pendingLen = chunk.length - off
    }
    return true
  }

  private fail (): false {
    this.failed = true
    this.pendingLen = 0
    return false
  }

  /** Complete the pending record from `chunk`; returns how much of the chunk it used, or -1. */
  private fillPending (chunk: Buffer): number {
    const w = this.width
    let used = 0
    if (this.pendingLen < w) {
      used = Math.min(w - this.pendingLen, chunk.length)
      chunk.copy(this.pending, this.pendingLen, 0, used)
      this.pendingLen += used
      if (this.pendingLen < w) return used
    }
    const len = readLength(this.pending, 0, w)
    if (len > this.maxLen) return -1
    const want = w + len - this.pendingLen
    const take = Math.min(want, chunk.length - used)
    chunk.copy(this.pending, this.pendingLen, used, used + take)
    this.pendingLen += take
    used += take
    if (this.pendingLen === w + len) {
      // A record split across chunks is copied once; it leaves in a buffer of its own (the pending one is reused).
      this.emit(Buffer.from(this.pending.subarray(0, this.pendingLen)), 0, this.pendingLen, 1)
      this.pendingLen = 0
    }
    return used
  }

  private emit (buf: Buffer, start: number, end: number, count: number): void {
    if (this.width === RECORD_HEADER) {
      this.onBatch(start === 0 && end === buf.length ? buf : buf.subarray(start, end), count)
      return
    }
    const out = Buffer.allocUnsafe(reframedSize(start, end, count, this.width, RECORD_HEADER))
    reframe(buf, start, end, this.width, out, 0, RECORD_HEADER)
    this.onBatch(out, count)
  }
}

/**
 * A tapswitch batch as a `width`-prefixed byte stream: the batch itself for
 * 4-byte prefixes (QEMU), re-encoded for 2-byte ones (VDE). Lengths that do
 * not fit the narrower prefix are dropped and counted in `dropped[0]`.
 */
export function encodeStream (batch: Buffer, width: number, dropped?: Uint32Array): Buffer {
  if (width === RECORD_HEADER) return batch
  let size = 0
  let off = 0
  while (off < batch.length) {
    const len = batch.readUInt32BE(off)
    if (len <= 0xffff) size += width + len
    off += RECORD_HEADER + len
  }
  const out = Buffer.allocUnsafe(size)
  let o = 0
  off = 0
  while (off < batch.length) {
    const len = batch.readUInt32BE(off)
    if (len <= 0xffff) {
      writeLength(out, o, width, len)
      batch.copy(out, o + width, off + RECORD_HEADER, off + RECORD_HEADER + len)
      o += width + len
    } else if (dropped !== undefined) {
      dropped[0] = (dropped[0] as number) + 1
    }
    off += RECORD_HEADER + len
  }
  return out
}

/** One datagram, one frame: as a one-record batch (QEMU `-netdev dgram`). */
export function datagramToBatch (dgram: Buffer, maxLen = DEFAULT_MAX_LEN): Buffer | undefined {
  if (dgram.length > maxLen) return undefined
  const out = Buffer.allocUnsafe(RECORD_HEADER + dgram.length)
  out.writeUInt32BE(dgram.length, 0)
  dgram.copy(out, RECORD_HEADER)
  return out
}
