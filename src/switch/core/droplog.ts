/**
 * The drop log: the last `size` frames the switch dropped, with when, where
 * and why, so "why did my frame vanish" has an answer (`switchctl drops`).
 *
 * A ring of preallocated columns (typed arrays for numbers, plain arrays of
 * references for the network and port names), written in place on the frame
 * path: a drop costs a few stores and allocates nothing, so a flood of
 * dropped frames cannot make it cost more than its fixed size. Names are
 * stored as references to the strings the Switch and Port already hold (no
 * copy); a port object is never kept, so a port that left is not retained.
 * The reason is an index into drops.ts DROP_REASONS.
 *
 * Every record has a sequence number (`seq`, counting from 1, never reused):
 * readers ask for what came after the last one they saw (`since`), which is
 * how `switchctl drops --follow` polls without any state in switchd; if more
 * than `size` drops happened between two polls, `lost` says how many the
 * reader missed.
 *
 * One DropLog serves every network of a switchd (the Networks pass theirs to
 * each Switch). Nothing here does I/O.
 */

/** Records kept by default: about 50 KiB. */
export const DEFAULT_DROP_LOG_SIZE = 1024
/** Largest drop log configurable. */
export const MAX_DROP_LOG_SIZE = 65536

/** One record, as read (slow path). MACs are -1 when the frame was too short to have them. */
export interface DropRecord {
  seq: number
  /** Switch clock, ms (Switch.nowMs). */
  timeMs: number
  network: string
  port: string
  src: number
  dst: number
  /** 0 when it was not classified yet. */
  vid: number
  /** Index into DROP_REASONS. */
  reason: number
}

export class DropLog {
  readonly size: number
  /** Sequence number of the last record written (0: none yet). */
  seq = 0
  private readonly time: Float64Array
  private readonly src: Float64Array
  private readonly dst: Float64Array
  private readonly vid: Uint16Array
  private readonly reason: Uint8Array
  private readonly network: string[]
  private readonly port: string[]

  constructor (size = DEFAULT_DROP_LOG_SIZE) {
    if (!Number.isInteger(size) || size < 1 || size > MAX_DROP_LOG_SIZE) throw new RangeError(`drop log size ${size}: expected 1..${MAX_DROP_LOG_SIZE}`)
    this.size = size
    this.time = new Float64Array(size)
    this.src = new Float64Array(size)
    this.dst = new Float64Array(size)
    this.vid = new Uint16Array(size)
    this.reason = new Uint8Array(size)
    // Filled now, so the arrays keep one element kind and never grow.
    this.network = new Array<string>(size).fill('')
    this.port = new Array<string>(size).fill('')
  }

  /** Record one drop (frame path: stores only). */
  add (timeMs: number, network: string, port: string, src: number, dst: number, vid: number, reason: number): void {
    const i = this.seq % this.size
    this.seq++
    this.time[i] = timeMs
    this.network[i] = network
    this.port[i] = port
    this.src[i] = src
    this.dst[i] = dst
    this.vid[i] = vid
    this.reason[i] = reason
  }

  /** Sequence number of the oldest record still held (seq + 1 when empty). */
  get oldest (): number { return Math.max(1, this.seq - this.size + 1) }

  /**
   * Records after `since` (a seq), oldest first, at most `limit` of them
   * (the newest ones when there are more), and how many after `since` are
   * no longer held. Slow path.
   */
  read (since = 0, limit = this.size): { records: DropRecord[], lost: number } {
    const from = Math.max(since + 1, this.oldest, this.seq - limit + 1)
    const lost = Math.max(0, this.oldest - (since + 1))
    const records: DropRecord[] = []
    for (let s = from; s <= this.seq; s++) {
      const i = (s - 1) % this.size
      records.push({
        seq: s,
        timeMs: this.time[i] as number,
        network: this.network[i] as string,
        port: this.port[i] as string,
        src: this.src[i] as number,
        dst: this.dst[i] as number,
        vid: this.vid[i] as number,
        reason: this.reason[i] as number
      })
    }
    return { records, lost }
  }
}
