/**
 * A fixed-size hash table of flows on typed arrays, for the per-frame path:
 * open addressing with linear probing, keyed by a kind and four 32-bit
 * integers (a TCP 4-tuple is 96 bits: no single double holds it, and a
 * string key would allocate per frame). Its user adds the columns it needs
 * (column()); a slot index then reads every column of one flow.
 *
 * Sized at construction, at least twice what its user will hold (the user
 * keeps the count within `capacity / 2`), so probes stay short and nothing
 * grows. Removal shifts the rest of the probe run back (no tombstones), so a
 * table that churns never fills with dead slots. The hash is seeded, so no
 * client can choose keys that collide. Nothing here allocates after
 * construction.
 */

/** Slot kind 0: empty. */
export const EMPTY = 0

type Column = Uint8Array | Uint16Array | Uint32Array | Int32Array | Float64Array

export class FlowTable {
  /** Slots: a power of two. */
  readonly cap: number
  /** Each slot's kind (EMPTY or the user's, 1-255). */
  readonly kind: Uint8Array
  private readonly ka: Uint32Array
  private readonly kb: Uint32Array
  private readonly kc: Uint32Array
  private readonly kd: Uint32Array
  /** The slot each entry hashed to, for removal. */
  private readonly home: Uint32Array
  private readonly columns: Column[] = []

  constructor (atLeast: number, private readonly seed: number) {
    let cap = 16
    while (cap < atLeast) cap *= 2
    this.cap = cap
    this.kind = new Uint8Array(cap)
    this.ka = new Uint32Array(cap); this.kb = new Uint32Array(cap); this.kc = new Uint32Array(cap); this.kd = new Uint32Array(cap)
    this.home = new Uint32Array(cap)
  }

  /** A column of one value per slot, moved with its entry. */
  column<T extends Column> (make: (n: number) => T): T {
    const c = make(this.cap)
    this.columns.push(c)
    return c
  }

  private hash (k: number, a: number, b: number, c: number, d: number): number {
    let h = Math.imul(a ^ this.seed, 0xcc9e2d51)
    h = Math.imul((h << 15) | (h >>> 17), 0x1b873593) ^ Math.imul(b + k * 0x10000, 0x85ebca6b)
    h = Math.imul(h ^ (h >>> 13) ^ c, 0xc2b2ae35)
    h = Math.imul(h ^ (h >>> 16) ^ d, 0x85ebca6b)
    return (h ^ (h >>> 15)) & (this.cap - 1)
  }

  /** Slot of the entry, or -1. */
  find (k: number, a: number, b: number, c: number, d: number): number {
    const m = this.cap - 1
    for (let i = this.hash(k, a, b, c, d); ; i = (i + 1) & m) {
      const x = this.kind[i]
      if (x === EMPTY) return -1
      if (x === k && this.ka[i] === a && this.kb[i] === b && this.kc[i] === c && this.kd[i] === d) return i
    }
  }

  /** A slot for a new entry (not in the table; the caller keeps the table at most half full). */
  insert (k: number, a: number, b: number, c: number, d: number): number {
    const h = this.hash(k, a, b, c, d)
    const m = this.cap - 1
    let i = h
    while (this.kind[i] !== EMPTY) i = (i + 1) & m
    this.kind[i] = k; this.ka[i] = a; this.kb[i] = b; this.kc[i] = c; this.kd[i] = d
    this.home[i] = h
    return i
  }

  /** Empty slot i, shifting the probe run after it back: what lands in i must be looked at again by a walk. */
  remove (i: number): void {
    const m = this.cap - 1
    let hole = i
    for (let j = (i + 1) & m; this.kind[j] !== EMPTY; j = (j + 1) & m) {
      const h = this.home[j] as number
      // The entry at j may fill the hole unless its home lies cyclically in (hole, j].
      if (((j - h) & m) < ((j - hole) & m)) continue
      this.move(j, hole)
      hole = j
    }
    this.kind[hole] = EMPTY
  }

  private move (from: number, to: number): void {
    this.kind[to] = this.kind[from] as number
    this.ka[to] = this.ka[from] as number; this.kb[to] = this.kb[from] as number; this.kc[to] = this.kc[from] as number; this.kd[to] = this.kd[from] as number
    this.home[to] = this.home[from] as number
    const cols = this.columns
    for (let n = 0; n < cols.length; n++) { const c = cols[n] as Column; c[to] = c[from] as number }
  }

  clear (): void { this.kind.fill(EMPTY) }
}
