/**
 * Link conditions: what a bad cable, a congested WAN link or a lossy radio
 * does to the frames of one port in one direction, as Linux `tc netem` does
 * to an interface's egress (delay, jitter, loss, duplication, corruption,
 * reordering, rate). Here it works on every port kind, in either direction,
 * without root.
 *
 * The logic is pure: a seeded PRNG (so unit tests and `seed` in a condition
 * make a run repeatable), the Gilbert-Elliott two-state loss model (netem's
 * `loss gemodel p r 1-h 1-k`), and one bounded queue ordered by "when does
 * this frame leave". It acts at the port's edge (edge.ts), outside the
 * forwarding decision, which calls admit() with the precise clock; the
 * timer that releases due frames lives in io/ (io/net-port.ts).
 *
 * Order of operations for one frame (netem's): loss first (a lost frame
 * never occupies the queue), then duplication, corruption, then the rate
 * limit (the frame leaves when the link has finished sending the ones before
 * it: a token bucket of depth one frame), then the delay with jitter. Jitter
 * is uniform in [-jitter, +jitter]; unless `jitterReorders`, a frame never
 * leaves before the one admitted before it (a FIFO link whose latency
 * varies). `reorder` percent of frames skip the delay and so overtake the
 * queue, as netem's `reorder`.
 *
 * Memory: a held frame is copied (the ingress buffer is reused once
 * handleFrame returns) into the condition's HeldQueue (held-queue.ts): one
 * byte ring and a few typed-array columns, grown up to `queueBytes` and
 * `queueFrames`, charged to a per-client and switchd-wide HeldBudget and
 * given back when idle. The rate limit's backlog (frames waiting for the link
 * to be free) is at most `backlogBytes`. Beyond any of these the frame is
 * dropped and counted (drops.ts `condition_queue`). After warm-up a
 * conditioned port allocates nothing per frame.
 *
 * A port without a condition has no edge (Port.edge null): the switch pays
 * one null check per message and per output.
 */

import { TapswitchError, ERR_CONFIG } from '../../common/errors'
import { HeldQueue, HeldFrame, HeldBudget } from './held-queue'

export { HeldFrame, HeldBudget }

/** Directions of a link condition: toward the switch (ingress, before the decision), toward the endpoint (egress). */
export const DIR_IN = 0
export const DIR_OUT = 1

/** Most delay or jitter, ms: a minute is past any WAN a lab wants to imitate. */
export const MAX_DELAY_MS = 60_000
/** Rate limits, bits/s. */
export const MIN_RATE = 8_000
export const MAX_RATE = 100_000_000_000
export const DEFAULT_QUEUE_FRAMES = 10_000
export const MAX_QUEUE_FRAMES = 100_000
export const DEFAULT_QUEUE_BYTES = 8 * 1024 * 1024
export const MAX_QUEUE_BYTES = 64 * 1024 * 1024
/** The rate limit's backlog by default: 50 ms of the rate (at least 16 KiB), like a small router buffer. */
export const DEFAULT_BACKLOG_MS = 50

/** A condition's settings, in canonical units: ms, probabilities 0..1, bits/s. */
export interface ConditionParams {
  delayMs: number
  jitterMs: number
  /** Jitter may make a frame leave before one admitted earlier. */
  jitterReorders: boolean
  /** Random loss probability (Bernoulli), used when `burst` is null. */
  loss: number
  /** Gilbert-Elliott bursty loss (probabilities): p good→bad, r bad→good, loss in each state. */
  burst: { p: number, r: number, lossBad: number, lossGood: number } | null
  duplicate: number
  corrupt: number
  /** Probability that a frame skips the delay (overtakes), netem `reorder`. */
  reorder: number
  /** bits/s; 0 = no limit. */
  rate: number
  queueFrames: number
  queueBytes: number
  /** Most bytes waiting for the rate limit's link. */
  backlogBytes: number
  /** PRNG seed; 0 = pick one. */
  seed: number
}

/** What admit() did with a frame (bits; 0 = passed unchanged, send it now). */
export const V_PASS = 0
/** Lost (loss or burst loss). */
export const V_LOST = 1
/** Dropped: the queue or the rate backlog was full. */
export const V_QUEUE_FULL = 2
/** Copied into the queue: it leaves later (the caller must not send it now). */
export const V_QUEUED = 4
export const V_DUPLICATED = 8
export const V_CORRUPTED = 16
export const V_REORDERED = 32
/** This direction of the link is down. */
export const V_DOWN = 64

/** mulberry32: a small, fast, seedable PRNG; [0, 1). Good enough for link impairment, not for secrets. */
export class Prng {
  private s: number
  constructor (seed: number) { this.s = seed >>> 0 }
  next (): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Whether the params impair anything (a condition that only holds a one-way link-down has none). */
export function impairs (c: ConditionParams): boolean {
  return c.delayMs > 0 || c.jitterMs > 0 || c.loss > 0 || c.burst !== null || c.duplicate > 0 || c.corrupt > 0 || c.reorder > 0 || c.rate > 0
}

export const NO_IMPAIRMENT: ConditionParams = Object.freeze({
  delayMs: 0, jitterMs: 0, jitterReorders: false, loss: 0, burst: null, duplicate: 0, corrupt: 0, reorder: 0, rate: 0,
  queueFrames: DEFAULT_QUEUE_FRAMES, queueBytes: DEFAULT_QUEUE_BYTES, backlogBytes: 16 * 1024, seed: 0
})

/** One direction of one port's link. */
export class LinkCondition {
  params: ConditionParams
  /** This direction is down (`switchctl link down PORT --direction in|out`): every frame dropped. */
  down = false
  private readonly rng: Prng
  /** Gilbert-Elliott state: in the bad state. */
  private bad = false
  /** When the rate-limited link has finished sending what it was given (ms). */
  private busyUntil = 0
  /** Due time of the last frame queued in order (no-reorder jitter keeps dues monotonic). */
  private lastDue = 0
  /** The frames held, and the memory they take (held-queue.ts). */
  private readonly queue: HeldQueue
  /** When the io timer is set to fire (ms), Infinity if none: admit() asks for an earlier one only when needed. */
  wakeAt = Infinity
  /** Counters (read at scrape time). */
  delayed = 0
  duplicated = 0
  corrupted = 0
  reordered = 0

  /**
   * `budget` is what the queue's memory is charged to, under `client` (the
   * port's address key; '' for ports of switchd and its operator); null: no
   * budget beyond the condition's own queueBytes and queueFrames.
   */
  constructor (params: ConditionParams, seed = params.seed, budget: HeldBudget | null = null, client = '') {
    this.params = params
    this.rng = new Prng(seed !== 0 ? seed : (Math.random() * 4294967296) >>> 0)
    this.queue = new HeldQueue(params.queueFrames, params.queueBytes, budget, client)
  }

  /** Frames held now. */
  get queuedFrames (): number { return this.queue.frames }
  /** Queue bytes in use now (frames, their virtio-net headers, and the holes of frames that overtook). */
  get queuedBytes (): number { return this.queue.bytes }
  /** Memory the queue holds (its ring and records), charged to the budget. */
  get memoryBytes (): number { return this.queue.memory }

  /** Whether frames pass untouched and at once (only loss, or nothing at all): no copy needed. */
  private get holds (): boolean {
    const c = this.params
    return c.delayMs > 0 || c.jitterMs > 0 || c.rate > 0
  }

  /**
   * Decide for the frame buf[off, off + len) (its virtio-net header at
   * hdrOff, or -1) arriving at `nowMs`; returns V_* bits. With V_QUEUED the
   * frame (and its duplicate, if any) was copied and leaves from take();
   * otherwise V_PASS means "send the original now".
   */
  admit (buf: Buffer, off: number, len: number, hdrOff: number, op: number, vid: number, nowMs: number): number {
    if (this.down) return V_DOWN
    const c = this.params
    const rng = this.rng
    if (c.burst !== null) {
      const b = c.burst
      // Transition first, then lose by the state's loss probability (netem gemodel).
      if (this.bad) { if (rng.next() < b.r) this.bad = false } else if (rng.next() < b.p) this.bad = true
      if (rng.next() < (this.bad ? b.lossBad : b.lossGood)) return V_LOST
    } else if (c.loss > 0 && rng.next() < c.loss) return V_LOST
    let v = V_PASS
    const dup = c.duplicate > 0 && rng.next() < c.duplicate
    const corrupt = c.corrupt > 0 && rng.next() < c.corrupt
    if (!this.holds && !dup && !corrupt) return V_PASS
    if (dup) v |= V_DUPLICATED
    if (corrupt) v |= V_CORRUPTED
    const copies = dup ? 2 : 1
    for (let i = 0; i < copies; i++) {
      const r = this.hold(buf, off, len, hdrOff, op, vid, nowMs, corrupt && i === 0)
      if (r === V_QUEUE_FULL) return i === 0 ? V_QUEUE_FULL : v | V_QUEUED
      v |= r
    }
    return v | V_QUEUED
  }

  /** Copy one frame into the queue with its due time; V_QUEUE_FULL if there is no room. */
  private hold (buf: Buffer, off: number, len: number, hdrOff: number, op: number, vid: number, nowMs: number, corrupt: boolean): number {
    const c = this.params
    const hdr = hdrOff < 0 ? 0 : off - hdrOff
    const size = len + hdr
    // Room first, so a refused frame changes nothing (the link's clock, the random sequence).
    if (!this.queue.reserve(size)) return V_QUEUE_FULL
    let depart = nowMs
    if (c.rate > 0) {
      const start = this.busyUntil > nowMs ? this.busyUntil : nowMs
      // Backlog in bytes: what the link still has to send before this frame starts.
      if ((start - nowMs) * c.rate / 8000 + size > c.backlogBytes) return V_QUEUE_FULL
      depart = start + len * 8000 / c.rate
      this.busyUntil = depart
    }
    let v = 0
    let due = depart
    if (c.reorder > 0 && this.rng.next() < c.reorder) {
      v = V_REORDERED
    } else {
      let d = c.delayMs
      if (c.jitterMs > 0) d += (this.rng.next() * 2 - 1) * c.jitterMs
      due = depart + (d > 0 ? d : 0)
      if (!c.jitterReorders) {
        if (due < this.lastDue) due = this.lastDue
        this.lastDue = due
      }
    }
    const at = this.queue.put(buf, off, len, hdrOff, op, vid, due)
    if (corrupt && len > 14) {
      // One bit past the Ethernet header, as a bad cable would flip: the frame still has a valid source and length.
      const ring = this.queue.buffer
      const bit = at + hdr + 14 + Math.floor(this.rng.next() * (len - 14))
      ring[bit] = (ring[bit] as number) ^ (1 << Math.floor(this.rng.next() * 8))
    }
    this.delayed++
    return v
  }

  /** Due time of the next frame to leave; Infinity if none is held. */
  nextDue (): number { return this.queue.nextDue() }

  /**
   * The next frame due by `nowMs`, or undefined. One view, reused: its bytes
   * are in the queue's ring and stay valid until the next admit().
   */
  take (nowMs: number): HeldFrame | undefined { return this.queue.take(nowMs) }

  /** Give the queue's memory back if it held nothing since the last call (once a second). */
  trim (): void { this.queue.trim() }

  /** Forget every held frame and give the memory back (the condition was replaced or cleared, or the port left). */
  discard (): void {
    this.queue.free()
    this.busyUntil = 0
    this.lastDue = 0
  }
}

/** What a condition would do to a frame now, for `switchctl trace` (no random number is drawn). */
export interface ConditionVerdict {
  /** none: no condition; down: this direction is down; full: the queue is full; conditioned: impaired as the params say. */
  action: 'none' | 'down' | 'full' | 'conditioned'
  params?: ConditionParams
  queuedFrames?: number
  queuedBytes?: number
}

/**
 * What `port`'s link condition in `dir` (DIR_IN toward the switch, DIR_OUT
 * toward the endpoint) would do to a frame arriving now, for a trace step.
 * A link down both ways is the port's BLOCK_LINK (portState 'down'), not this.
 * Pure: nothing changes, no random number is drawn.
 */
export function conditionVerdict (port: { readonly condIn: LinkCondition | null, readonly condOut: LinkCondition | null }, dir: number): ConditionVerdict {
  const cond = dir === DIR_IN ? port.condIn : port.condOut
  if (cond === null) return { action: 'none' }
  if (cond.down) return { action: 'down' }
  const p = cond.params
  const full = cond.queuedFrames >= p.queueFrames || cond.queuedBytes >= p.queueBytes
  return { action: full ? 'full' : 'conditioned', params: p, queuedFrames: cond.queuedFrames, queuedBytes: cond.queuedBytes }
}

// ---- Reading a condition from JSON (configuration and admin API) -----------

export const CONDITION_KEYS = ['delay', 'jitter', 'jitterReorders', 'loss', 'burst', 'duplicate', 'corrupt', 'reorder', 'rate', 'queueFrames', 'queueBytes', 'backlog', 'seed']

function fail (key: string, expected: string): never {
  throw new TapswitchError(ERR_CONFIG, `${key}: ${expected}`)
}

const UNIT = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z%]*)\s*$/

/** A number, or a string with one of `units` (factor to the canonical unit); `def` if absent. */
function quantity (v: unknown, key: string, units: Record<string, number>, bare: number, min: number, max: number, what: string): number {
  let n: number
  if (typeof v === 'number') n = v * bare
  else if (typeof v === 'string') {
    const m = UNIT.exec(v)
    const factor = m === null ? undefined : m[2] === '' ? bare : units[(m[2] as string).toLowerCase()]
    if (m === null || factor === undefined) fail(key, `expected ${what}`)
    n = Number(m[1]) * factor
  } else fail(key, `expected ${what}`)
  if (!Number.isFinite(n) || n < min || n > max) fail(key, `expected ${what}`)
  return n
}

const MS = { ms: 1, s: 1000, us: 0.001 }
const PERCENT = { '%': 0.01 }
const RATE = { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9, bps: 8, kbps: 8e3, mbps: 8e6, gbps: 8e9 }
const BYTES = { b: 1, kb: 1024, kib: 1024, mb: 1024 * 1024, mib: 1024 * 1024 }

function percent (v: unknown, key: string): number {
  if (v === undefined) return 0
  return quantity(v, key, PERCENT, 0.01, 0, 1, 'a percentage 0..100 (a number, or "1%")')
}

/**
 * A condition from JSON: `{delay: "20ms" | 20, jitter, jitterReorders,
 * loss: "1%" | 1, burst: {p, r, lossBad?, lossGood?} (percent), duplicate,
 * corrupt, reorder, rate: "10mbit" | bits/s, queueFrames, queueBytes,
 * backlog: bytes, seed}`. Throws TSW_ERR_CONFIG naming `key.field`.
 */
export function readCondition (raw: unknown, key: string): ConditionParams {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(key, 'expected an object like {"delay": "20ms", "loss": "1%"}')
  const o = raw as Record<string, unknown>
  for (const k of Object.keys(o)) if (!CONDITION_KEYS.includes(k)) fail(`${key}.${k}`, `unknown key (expected one of ${CONDITION_KEYS.join(', ')})`)
  const ms = (k: string): number => o[k] === undefined ? 0 : quantity(o[k], `${key}.${k}`, MS, 1, 0, MAX_DELAY_MS, `a time 0..${MAX_DELAY_MS} ms (a number of ms, or "20ms", "1.5s")`)
  let burst: ConditionParams['burst'] = null
  if (o.burst !== undefined) {
    const b = o.burst
    if (typeof b !== 'object' || b === null || Array.isArray(b)) fail(`${key}.burst`, 'expected {p, r, lossBad?, lossGood?} in percent (Gilbert-Elliott)')
    const bo = b as Record<string, unknown>
    for (const k of Object.keys(bo)) if (!['p', 'r', 'lossBad', 'lossGood'].includes(k)) fail(`${key}.burst.${k}`, 'unknown key (expected p, r, lossBad, lossGood)')
    if (bo.p === undefined) fail(`${key}.burst.p`, 'required: percent chance per frame of entering the bad state')
    burst = {
      p: percent(bo.p, `${key}.burst.p`),
      r: bo.r === undefined ? 1 - percent(bo.p, `${key}.burst.p`) : percent(bo.r, `${key}.burst.r`),
      lossBad: bo.lossBad === undefined ? 1 : percent(bo.lossBad, `${key}.burst.lossBad`),
      lossGood: percent(bo.lossGood, `${key}.burst.lossGood`)
    }
    if (burst.r === 0) fail(`${key}.burst.r`, 'must be above 0 (else the bad state never ends)')
  }
  if (o.loss !== undefined && burst !== null) fail(`${key}.loss`, 'give loss or burst, not both')
  if (o.jitterReorders !== undefined && typeof o.jitterReorders !== 'boolean') fail(`${key}.jitterReorders`, 'expected true or false')
  const rate = o.rate === undefined ? 0 : quantity(o.rate, `${key}.rate`, RATE, 1, MIN_RATE, MAX_RATE, `a rate from 8kbit to 100gbit (bits/s, or "10mbit", "1gbit"; omit it for no limit)`)
  const int = (k: string, min: number, max: number, def: number): number => {
    if (o[k] === undefined) return def
    const n = quantity(o[k], `${key}.${k}`, BYTES, 1, min, max, `an integer from ${min} to ${max}`)
    if (!Number.isInteger(n)) fail(`${key}.${k}`, `an integer from ${min} to ${max}`)
    return n
  }
  const queueBytes = int('queueBytes', 2048, MAX_QUEUE_BYTES, DEFAULT_QUEUE_BYTES)
  const backlogDefault = Math.min(queueBytes, Math.max(16 * 1024, Math.round(rate * DEFAULT_BACKLOG_MS / 8000)))
  return Object.freeze({
    delayMs: ms('delay'),
    jitterMs: ms('jitter'),
    jitterReorders: o.jitterReorders === true,
    loss: percent(o.loss, `${key}.loss`),
    burst,
    duplicate: percent(o.duplicate, `${key}.duplicate`),
    corrupt: percent(o.corrupt, `${key}.corrupt`),
    reorder: percent(o.reorder, `${key}.reorder`),
    rate,
    queueFrames: int('queueFrames', 1, MAX_QUEUE_FRAMES, DEFAULT_QUEUE_FRAMES),
    queueBytes,
    backlogBytes: int('backlog', 2048, queueBytes, backlogDefault),
    seed: int('seed', 0, 4294967295, 0)
  })
}

/** The params back as JSON in the units switchctl shows (ms, percent, bits/s). */
export function conditionJson (c: ConditionParams): Record<string, unknown> {
  const pct = (x: number): number => Math.round(x * 1e6) / 1e4
  const out: Record<string, unknown> = {}
  if (c.delayMs > 0) out.delay = c.delayMs
  if (c.jitterMs > 0) { out.jitter = c.jitterMs; out.jitterReorders = c.jitterReorders }
  if (c.loss > 0) out.loss = pct(c.loss)
  if (c.burst !== null) out.burst = { p: pct(c.burst.p), r: pct(c.burst.r), lossBad: pct(c.burst.lossBad), lossGood: pct(c.burst.lossGood) }
  if (c.duplicate > 0) out.duplicate = pct(c.duplicate)
  if (c.corrupt > 0) out.corrupt = pct(c.corrupt)
  if (c.reorder > 0) out.reorder = pct(c.reorder)
  if (c.rate > 0) { out.rate = c.rate; out.backlog = c.backlogBytes }
  out.queueFrames = c.queueFrames
  out.queueBytes = c.queueBytes
  if (c.seed !== 0) out.seed = c.seed
  return out
}
