/**
 * Storm control: per-port token buckets for broadcast, multicast and unknown
 * unicast, in frames per second (what `storm-control` on a managed switch
 * limits). Buckets hold one second's worth and refill from the switch's clock,
 * lazily when a flood is about to happen, so a quiet port costs nothing.
 */

import type { Port } from './port'

export const KIND_BROADCAST = 0
export const KIND_MULTICAST = 1
export const KIND_UNKNOWN_UNICAST = 2

/** A bucket of `rate` per second holding `tokens`, `dtMs` later (at most one second's worth). */
function refilled (rate: number, tokens: number, dtMs: number): number {
  return dtMs <= 0 ? tokens : Math.min(rate, tokens + rate * dtMs / 1000)
}

/** Refill `port`'s buckets up to `nowMs`. */
function refill (port: Port, nowMs: number): void {
  const dt = nowMs - port.stormRefilledAt
  if (dt <= 0) return
  port.stormRefilledAt = nowMs
  if (port.bcRate > 0) port.bcTokens = refilled(port.bcRate, port.bcTokens, dt)
  if (port.mcRate > 0) port.mcTokens = refilled(port.mcRate, port.mcTokens, dt)
  if (port.uuRate > 0) port.uuTokens = refilled(port.uuRate, port.uuTokens, dt)
}

/**
 * Storm control for one more flood of `kind` from `port` now: the tokens its
 * bucket holds (>= 1: admitted), or -1 if that kind is not limited. With
 * `commit`, the bucket is refilled, an admitted frame takes its token and a
 * refused one is counted by kind (Port.stormDrops; the caller drops it); a
 * dry run (the trace, revalidation) only answers.
 */
export function spendFlood (port: Port, kind: number, nowMs: number, commit: boolean): number {
  const rate = kind === KIND_BROADCAST ? port.bcRate : kind === KIND_MULTICAST ? port.mcRate : port.uuRate
  // Small on purpose: the decision inlines it, and an unlimited kind costs one compare.
  return rate === 0 ? -1 : spendToken(port, kind, rate, nowMs, commit)
}

function spendToken (port: Port, kind: number, rate: number, nowMs: number, commit: boolean): number {
  if (!commit) return refilled(rate, kind === KIND_BROADCAST ? port.bcTokens : kind === KIND_MULTICAST ? port.mcTokens : port.uuTokens, nowMs - port.stormRefilledAt)
  refill(port, nowMs)
  const tokens = kind === KIND_BROADCAST ? port.bcTokens : kind === KIND_MULTICAST ? port.mcTokens : port.uuTokens
  if (tokens < 1) { port.stormDrops[kind] = (port.stormDrops[kind] as number) + 1; return tokens }
  if (kind === KIND_BROADCAST) port.bcTokens--
  else if (kind === KIND_MULTICAST) port.mcTokens--
  else port.uuTokens--
  return tokens
}

/**
 * Per-port ingress byte rate (a token's `rate`): one second's worth of bytes
 * in the bucket. Returns the bytes it holds now (>= len: admitted; -1: no
 * limit); with `commit` it is refilled and an admitted frame spends `len`.
 */
export function spendBytes (port: Port, len: number, nowMs: number, commit: boolean): number {
  if (port.rateBps === 0) return -1
  const dt = nowMs - port.rateRefilledAt
  if (!commit) return refilled(port.rateBps, port.rateTokens, dt)
  if (dt > 0) {
    port.rateRefilledAt = nowMs
    port.rateTokens = refilled(port.rateBps, port.rateTokens, dt)
  }
  const tokens = port.rateTokens
  if (tokens >= len) port.rateTokens -= len
  return tokens
}
