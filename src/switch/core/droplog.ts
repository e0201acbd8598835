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
 * Each network has a DropLog of its own (control/networks.ts), so a client
 * that drops frames at will in its network pushes out only its own network's
 * records, never another's. The networks of one switchd share one
 * DropSequence: a record's seq is unique across them, and one cursor reads
 * them all in order (GET /api/v1/drops without `network`). Nothing here does
 * I/O.
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

/** The sequence numbers of the drop logs of one switchd: each record takes the next. */
export class DropSequence {
  /** The last number given (0: none yet). */
  last = 0
}

export class DropLog {
  readonly size: number
  /** Records written to this log, ever. */
  private written = 0
  private readonly seqs: Float64Array
  private readonly time: Float64Array
  private readonly src: Float64Array
  private readonly dst: Float64Array
  private readonly vid: Uint16Array
  private readonly reason: Uint8Array
  private readonly network: string[]
  private readonly port: string[]

  constructor (size = DEFAULT_DROP_LOG_SIZE, readonly sequence = new DropSequence()) {
    if (!Number.isInteger(size) || size < 1 || size > MAX_DROP_LOG_SIZE) throw new RangeError(`drop log size ${size}: expected 1..${MAX_DROP_LOG_SIZE}`)
    this.size = size
    this.seqs = new Float64Array(size)
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
    const i = this.written % this.size
    this.written++
    this.seqs[i] = ++this.sequence.last
    this.time[i] = timeMs
    this.network[i] = network
    this.port[i] = port
    this.src[i] = src
    this.dst[i] = dst
    this.vid[i] = vid
    this.reason[i] = reason
  }

  /** Sequence number of the last record written to any log of this sequence (0: none yet). */
  get seq (): number { return this.sequence.last }

  /** Records this log holds. */
  get held (): number { return Math.min(this.written, this.size) }

  /** Sequence number of this log's oldest record still held (seq + 1 when empty). */
  get oldest (): number { return this.held === 0 ? this.sequence.last + 1 : this.seqs[(this.written - this.held) % this.size] as number }

  /**
   * Records after `since` (a seq), oldest first, at most `limit` of them
   * (the newest ones when there are more), and how many of this log's records
   * after `since` it no longer holds. With one log per sequence that is exact;
   * with several it is at most that (the gap's numbers may be other logs').
   * Slow path.
   */
  read (since = 0, limit = this.size): { records: DropRecord[], lost: number } {
    const held = this.held
    const first = this.written - held
    // Held records are in seq order: skip those at or before `since`, then all but the newest `limit`.
    let from = first
    while (from < this.written && (this.seqs[from % this.size] as number) <= since) from++
    from = Math.max(from, this.written - limit)
    const overwritten = first
    const lost = overwritten === 0 || this.oldest - 1 <= since ? 0 : Math.min(overwritten, this.oldest - 1 - since)
    const records: DropRecord[] = []
    for (let n = from; n < this.written; n++) {
      const i = n % this.size
      records.push({
        seq: this.seqs[i] as number,
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
