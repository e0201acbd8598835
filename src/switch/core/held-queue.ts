/**
 * Where the frames a link condition holds wait (condition.ts decides which
 * frames and until when): one byte ring per condition, each frame a record in
 * typed-array columns, leaving in due order through a min-heap.
 *
 * Why a ring (issue 21, finding 11): a frame held as a Buffer of its own
 * costs about 550 bytes of heap and external memory for a 60-byte frame (an
 * ArrayBuffer, its backing store, a Buffer and a queue entry), so a queue
 * that counted frame bytes held 9x what it said. Here a condition holds
 * exactly what `memory` says: the ring (grown by doubling up to queueBytes)
 * and the columns (RECORD_BYTES a slot, grown by doubling up to the power of
 * two at or above queueFrames). After warm-up, holding a frame is one copy
 * and a few stores, and nothing is allocated.
 *
 * Records are kept in admission order (slot = seq & mask). Frames leave in
 * due order, which with `reorder` or `jitterReorders` is not admission order:
 * a frame that leaves before an older one leaves a hole, whose slot and bytes
 * come back once every older frame has left. `bytes` (the span from the
 * oldest frame in the ring to the newest) and the frame limit count holes, so
 * the bound is on memory, never exceeded. A frame is contiguous: one that
 * does not fit before the ring's end starts again at 0, and that end is
 * reused once the head has passed it.
 *
 * Memory is charged to a HeldBudget before it is allocated: per client (the
 * port's address, so one client's ports share one allowance) and in all. A
 * queue that may not grow refuses the frame; the switch drops and counts it
 * (`condition_queue`). Memory goes back, and the charge with it, once the
 * queue has held nothing since the last trim() (Switch.tick, once a second)
 * or when its condition goes: an idle port holds nothing.
 *
 * take() returns one view, reused: its bytes stay valid until the next put().
 * The switch sends them before then; a transport that keeps views of what it
 * sends (a raw WebSocket port) copies instead (Switch.releasing).
 */

import type { HeldBudget } from './held-budget'

export { HeldBudget, DEFAULT_HELD_TOTAL, DEFAULT_HELD_PER_CLIENT, MAX_HELD_BYTES } from './held-budget'

/** Column bytes per slot: due f64, offset u32, length u32, vid u16, header u8, op u8, gone u8, heap f64. */
export const RECORD_BYTES = 29
/** First ring: a few dozen full frames, or a thousand pings. */
const FIRST_RING = 16 * 1024
const FIRST_SLOTS = 64

const EMPTY = Buffer.alloc(0)

/** A held frame as take() shows it: buf[off, off + len) is the frame, buf[hdrOff] its virtio-net header (or -1). */
export class HeldFrame {
  buf: Buffer = EMPTY
  off = 0
  len = 0
  hdrOff = -1
  /** Egress VLAN operation and VID (egress direction only). */
  op = 0
  vid = 0
  due = 0
  /** Admission order: 0 for the first frame the queue held. */
  seq = 0
}

export class HeldQueue {
  /** Frames held now (not counting holes). */
  frames = 0
  /** Bytes allocated (ring and columns), charged to the budget. */
  memory = 0
  private ring = EMPTY
  /** The oldest frame's first byte, where the next one goes, and whether the ring has wrapped between them. */
  private head = 0
  private tail = 0
  private wrapped = false
  /** Records in the ring (held, or holes): seqs firstSeq .. nextSeq - 1, at slot seq & mask. */
  private firstSeq = 0
  private nextSeq = 0
  private mask = -1
  private due = new Float64Array(0)
  private at = new Uint32Array(0)
  private len = new Uint32Array(0)
  private vid = new Uint16Array(0)
  private hdr = new Uint8Array(0)
  private op = new Uint8Array(0)
  private gone = new Uint8Array(0)
  /** Min-heap of seqs on (due, seq). */
  private heap = new Float64Array(0)
  /** A frame was held since the last trim(). */
  private busy = false
  private readonly view = new HeldFrame()

  constructor (readonly maxFrames: number, readonly maxBytes: number, readonly budget: HeldBudget | null, readonly client: string) {}

  /** Ring bytes in use: from the oldest frame in the ring to the newest, holes included. */
  get bytes (): number {
    if (this.firstSeq === this.nextSeq) return 0
    return this.wrapped ? this.ring.length - this.head + this.tail : this.tail - this.head
  }

  /**
   * Make sure put() can take a record of `size` bytes now, growing (and
   * charging the budget) if needed; false if the queue is full or may not grow.
   */
  reserve (size: number): boolean {
    if (this.nextSeq - this.firstSeq >= this.maxFrames) return false
    if (this.nextSeq - this.firstSeq > this.mask && !this.growSlots()) return false
    return this.place(size, false) >= 0 || this.growRing(size)
  }

  /**
   * Copy the frame buf[off, off + len), with its virtio-net header at hdrOff
   * (or -1), into the ring after reserve() said yes; returns where the
   * record starts in ring() (the header, if any, then the frame).
   */
  put (buf: Buffer, off: number, len: number, hdrOff: number, op: number, vid: number, due: number): number {
    const hdr = hdrOff < 0 ? 0 : off - hdrOff
    const at = this.place(hdr + len, true)
    if (hdr > 0) buf.copy(this.ring, at, hdrOff, off)
    buf.copy(this.ring, at + hdr, off, off + len)
    this.tail = at + hdr + len
    const seq = this.nextSeq++
    const i = seq & this.mask
    this.due[i] = due
    this.at[i] = at
    this.len[i] = len
    this.hdr[i] = hdr
    this.op[i] = op
    this.vid[i] = vid
    this.gone[i] = 0
    this.push(seq)
    this.frames++
    this.busy = true
    return at
  }

  /** The ring the records are in (put()'s offsets are into it). */
  get buffer (): Buffer { return this.ring }

  /** Due time of the next frame to leave; Infinity if none is held. */
  nextDue (): number {
    return this.frames === 0 ? Infinity : this.due[(this.heap[0] as number) & this.mask] as number
  }

  /** The next frame due by `nowMs`, or undefined. The view and its bytes are valid until the next put(). */
  take (nowMs: number): HeldFrame | undefined {
    if (this.frames === 0) return undefined
    const seq = this.heap[0] as number
    const i = seq & this.mask
    if ((this.due[i] as number) > nowMs) return undefined
    this.pop()
    this.frames--
    this.gone[i] = 1
    const v = this.view
    const at = this.at[i] as number
    const hdr = this.hdr[i] as number
    v.buf = this.ring
    v.off = at + hdr
    v.len = this.len[i] as number
    v.hdrOff = hdr > 0 ? at : -1
    v.op = this.op[i] as number
    v.vid = this.vid[i] as number
    v.due = this.due[i] as number
    v.seq = seq
    this.reclaim()
    return v
  }

  /** Forget every held frame; the memory stays until trim() or free(). */
  clear (): void {
    this.firstSeq = this.nextSeq
    this.frames = 0
    this.head = 0
    this.tail = 0
    this.wrapped = false
  }

  /**
   * Give the memory back if nothing was held since the last call
   * (Switch.tick, once a second); else a ring four times larger than what
   * it holds (a burst's) shrinks to twice that: a trickle that never lets
   * the queue go idle must not keep a burst's memory, which its client's
   * other queues (and all switchd's) would be refused meanwhile.
   */
  trim (): void {
    if (this.frames === 0 && !this.busy && this.memory > 0) this.free()
    else if (this.ring.length > FIRST_RING && this.bytes * 4 <= this.ring.length) this.shrinkRing()
    this.busy = false
  }

  /** Forget every held frame and give all memory back (the condition goes). */
  free (): void {
    this.clear()
    this.ring = EMPTY
    this.mask = -1
    this.due = new Float64Array(0)
    this.at = new Uint32Array(0)
    this.len = new Uint32Array(0)
    this.vid = new Uint16Array(0)
    this.hdr = new Uint8Array(0)
    this.op = new Uint8Array(0)
    this.gone = new Uint8Array(0)
    this.heap = new Float64Array(0)
    // The view of the last frame taken must not keep the ring alive once its charge is given back.
    this.view.buf = EMPTY
    if (this.budget !== null) this.budget.give(this.client, this.memory)
    this.memory = 0
  }

  /** Where a record of `size` bytes fits in the ring now, or -1; with `commit` the ring wraps if that is where. */
  private place (size: number, commit: boolean): number {
    const cap = this.ring.length
    if (this.firstSeq === this.nextSeq) {
      if (commit) { this.head = 0; this.wrapped = false }
      return size <= cap ? 0 : -1
    }
    if (this.wrapped) return this.head - this.tail >= size ? this.tail : -1
    if (cap - this.tail >= size) return this.tail
    if (this.head >= size) { if (commit) this.wrapped = true; return 0 }
    return -1
  }

  /** Advance past the frames that have left, oldest first: their bytes and slots are free again. */
  private reclaim (): void {
    while (this.firstSeq < this.nextSeq && this.gone[this.firstSeq & this.mask] === 1) this.firstSeq++
    if (this.firstSeq === this.nextSeq) { this.head = 0; this.tail = 0; this.wrapped = false; return }
    const at = this.at[this.firstSeq & this.mask] as number
    // The oldest frame is now past the wrap: the ring is one stretch again.
    if (this.wrapped && at < this.head) this.wrapped = false
    this.head = at
  }

  private charge (n: number): boolean {
    if (this.budget !== null && !this.budget.take(this.client, n)) return false
    this.memory += n
    return true
  }

  /** A larger ring holding the records in one stretch from 0, if the bound and the budget allow. */
  private growRing (size: number): boolean {
    const cap = this.ring.length
    const used = this.bytes
    if (used + size > this.maxBytes) return false
    let next = Math.max(FIRST_RING, cap * 2)
    while (next < used + size) next *= 2
    next = Math.min(next, this.maxBytes)
    // Short of a doubling, the budget's last bytes still make a ring that holds the frame.
    if (this.budget !== null) next = Math.min(next, cap + Math.max(0, this.budget.room(this.client)))
    // At its bound already: a frame that finds no stretch of its size waits for the head to move (at most one frame's worth of queueBytes lost to the wrap).
    if (next <= cap || next < used + size || !this.charge(next - cap)) {
      if (this.budget !== null && next < used + size) this.budget.refused++
      return false
    }
    this.moveRing(next)
    return true
  }

  /** A ring of twice what it holds (at least FIRST_RING), the rest given back. */
  private shrinkRing (): void {
    let next = FIRST_RING
    while (next < 2 * this.bytes) next *= 2
    const freed = this.ring.length - next
    if (freed <= 0) return
    this.moveRing(next)
    this.memory -= freed
    if (this.budget !== null) this.budget.give(this.client, freed)
  }

  /** Move the records into a new ring of `next` bytes, in one stretch from 0 (a view take() gave keeps the old one). */
  private moveRing (next: number): void {
    const cap = this.ring.length
    const used = this.bytes
    const ring = Buffer.allocUnsafeSlow(next)
    // Nor the old ring, whose charge the new one takes over (a view is valid only until the next put()).
    this.view.buf = EMPTY
    if (used > 0) {
      const head = this.head
      if (!this.wrapped) this.ring.copy(ring, 0, head, this.tail)
      else { this.ring.copy(ring, 0, head, cap); this.ring.copy(ring, cap - head, 0, this.tail) }
      for (let s = this.firstSeq; s < this.nextSeq; s++) {
        const i = s & this.mask
        const at = this.at[i] as number
        this.at[i] = at >= head ? at - head : at + cap - head
      }
    }
    this.ring = ring
    this.head = 0
    this.tail = used
    this.wrapped = false
  }

  /** Twice the slots (records move to their slot under the new mask), if the bound and the budget allow. */
  private growSlots (): boolean {
    const slots = this.mask + 1
    let limit = FIRST_SLOTS
    while (limit < this.maxFrames) limit *= 2
    const next = slots === 0 ? FIRST_SLOTS : slots * 2
    if (next > limit || !this.charge((next - slots) * RECORD_BYTES)) return false
    const due = new Float64Array(next)
    const at = new Uint32Array(next)
    const len = new Uint32Array(next)
    const vid = new Uint16Array(next)
    const hdr = new Uint8Array(next)
    const op = new Uint8Array(next)
    const gone = new Uint8Array(next)
    const mask = next - 1
    for (let s = this.firstSeq; s < this.nextSeq; s++) {
      const o = s & this.mask
      const n = s & mask
      due[n] = this.due[o] as number
      at[n] = this.at[o] as number
      len[n] = this.len[o] as number
      vid[n] = this.vid[o] as number
      hdr[n] = this.hdr[o] as number
      op[n] = this.op[o] as number
      gone[n] = this.gone[o] as number
    }
    const heap = new Float64Array(next)
    heap.set(this.heap.subarray(0, this.frames))
    this.due = due; this.at = at; this.len = len; this.vid = vid; this.hdr = hdr; this.op = op; this.gone = gone; this.heap = heap
    this.mask = mask
    return true
  }

  private before (a: number, b: number): boolean {
    const da = this.due[a & this.mask] as number
    const db = this.due[b & this.mask] as number
    return da < db || (da === db && a < b)
  }

  private push (seq: number): void {
    const h = this.heap
    let i = this.frames
    while (i > 0) {
      const parent = (i - 1) >> 1
      const p = h[parent] as number
      if (!this.before(seq, p)) break
      h[i] = p
      i = parent
    }
    h[i] = seq
  }

  /** Remove the heap's root (frames is still the count before the removal). */
  private pop (): void {
    const h = this.heap
    const n = this.frames - 1
    const last = h[n] as number
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      if (l >= n) break
      const r = l + 1
      const child = r < n && this.before(h[r] as number, h[l] as number) ? r : l
      if (!this.before(h[child] as number, last)) break
      h[i] = h[child] as number
      i = child
    }
    h[i] = last
  }
}
