/**
 * Failed admin-token guesses, throttled per client address (addressKey): a
 * token bucket of failures, as fail2ban or an SSH server's MaxStartups would
 * have it, without sleeping on anyone. Each address may fail FAILURE_BURST
 * times, then once more every FAILURE_REFILL_MS; beyond that, a request that
 * presents an admin token (API, /metrics, the console's upgrade) is answered
 * 429 with Retry-After before its token is even compared, right or wrong: a
 * throttled guesser learns nothing, whatever it guesses.
 *
 * Only failures spend the budget: a request with the right token is never
 * slowed or counted, and one with no token is not a guess (the page asks
 * that way first). An operator who shares an address with a guesser (the
 * same host, the same NAT) waits with it: the address is all switchd knows
 * before the token is checked.
 *
 * The map is bounded (MAX_ADDRESSES, the oldest failure forgotten first), so
 * a guesser from many addresses costs a fixed amount of memory. Pure: the
 * clock is passed in.
 */

import { addressKey } from '../../common/address'
import { tokenMatches } from './auth'

/** Failures an address may have at once before it is throttled. */
export const FAILURE_BURST = 10
/** One more failure allowed every FAILURE_REFILL_MS (10 a minute, sustained). */
export const FAILURE_REFILL_MS = 6000
/** Addresses whose failures are remembered. */
export const MAX_ADDRESSES = 4096

interface Bucket { tokens: number, at: number }

export class AuthThrottle {
  /** In order of last failure: the first is the one to forget. */
  private readonly buckets = new Map<string, Bucket>()
  /** Wrong tokens seen, and requests refused for being over the budget. */
  failures = 0
  throttled = 0

  constructor (private readonly now: () => number = () => performance.now(), private readonly burst = FAILURE_BURST,
    private readonly refillMs = FAILURE_REFILL_MS, private readonly max = MAX_ADDRESSES) {}

  /** Seconds `address` must wait before a token it presents is checked again; 0: now. */
  retryAfter (address: string): number {
    const b = this.refilled(addressKey(address))
    return b === undefined || b.tokens >= 1 ? 0 : Math.ceil((1 - b.tokens) * this.refillMs / 1000)
  }

  /** A wrong token from `address`. */
  failed (address: string): void {
    this.failures++
    const key = addressKey(address)
    const b = this.refilled(key) ?? { tokens: this.burst, at: this.now() }
    b.tokens = Math.max(0, b.tokens - 1)
    this.buckets.delete(key)
    if (this.buckets.size >= this.max) {
      for (const k of this.buckets.keys()) { this.buckets.delete(k); break }
    }
    this.buckets.set(key, b)
  }

  /** Addresses remembered. */
  get size (): number { return this.buckets.size }

  /** The bucket of `key` brought up to now; one that is full again is forgotten. */
  private refilled (key: string): Bucket | undefined {
    const b = this.buckets.get(key)
    if (b === undefined) return undefined
    const now = this.now()
    b.tokens = Math.min(this.burst, b.tokens + (now - b.at) / this.refillMs)
    b.at = now
    if (b.tokens >= this.burst) { this.buckets.delete(key); return undefined }
    return b
  }
}

/** What an admin-token check decided. */
export type AdminVerdict =
  | { ok: true }
  | { ok: false, status: 401, reason: 'unauthorized', message: string, hadToken: boolean }
  | { ok: false, status: 429, reason: 'auth_throttled', message: string, retryAfter: number }

/**
 * Check the admin token `given` by a client at `address` against `expected`
 * (undefined: none is configured, everyone passes), through the throttle.
 * The one check the API, /metrics and the console's upgrade make.
 */
export function checkAdminToken (throttle: AuthThrottle, address: string, given: string | undefined, expected: string | undefined): AdminVerdict {
  if (expected === undefined) return { ok: true }
  if (given === undefined || given === '') return { ok: false, status: 401, reason: 'unauthorized', message: 'admin token required (Authorization: Bearer …)', hadToken: false }
  const wait = throttle.retryAfter(address)
  if (wait > 0) {
    throttle.throttled++
    return { ok: false, status: 429, reason: 'auth_throttled', message: `too many wrong admin tokens from this address: try again in ${wait} s`, retryAfter: wait }
  }
  if (tokenMatches(given, expected)) return { ok: true }
  throttle.failed(address)
  return { ok: false, status: 401, reason: 'unauthorized', message: 'wrong admin token', hadToken: true }
}
