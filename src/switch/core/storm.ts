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
 * Storm control as admitFlood() would decide it now, without taking a token
 * or counting (the frame trace): the tokens the bucket of `kind` would hold,
 * or -1 if that kind is not limited. admitFlood admits when this is >= 1.
 */
export function floodTokens (port: Port, kind: number, nowMs: number): number {
  const dt = nowMs - port.stormRefilledAt
  if (kind === KIND_BROADCAST) return port.bcRate === 0 ? -1 : refilled(port.bcRate, port.bcTokens, dt)
  if (kind === KIND_MULTICAST) return port.mcRate === 0 ? -1 : refilled(port.mcRate, port.mcTokens, dt)
  return port.uuRate === 0 ? -1 : refilled(port.uuRate, port.uuTokens, dt)
}

/** The ingress byte rate as admitBytes() would see it now, without spending (trace): bytes in the bucket, or -1 if unlimited. */
export function rateTokens (port: Port, nowMs: number): number {
  return port.rateBps === 0 ? -1 : refilled(port.rateBps, port.rateTokens, nowMs - port.rateRefilledAt)
}

/**
 * May `port` flood one more frame of `kind` now? Takes a token if so;
 * otherwise counts the drop on the port and returns false.
 */
export function admitFlood (port: Port, kind: number, nowMs: number): boolean {
  if (kind === KIND_BROADCAST) {
    if (port.bcRate === 0) return true
    refill(port, nowMs)
    if (port.bcTokens >= 1) { port.bcTokens--; return true }
    port.dropStormBroadcast++
    return false
  }
  if (kind === KIND_MULTICAST) {
    if (port.mcRate === 0) return true
    refill(port, nowMs)
    if (port.mcTokens >= 1) { port.mcTokens--; return true }
    port.dropStormMulticast++
    return false
  }
  if (port.uuRate === 0) return true
  refill(port, nowMs)
  if (port.uuTokens >= 1) { port.uuTokens--; return true }
  port.dropStormUnknownUnicast++
  return false
}

/**
 * Per-port ingress byte rate (a token's `rate`): one second's worth of bytes
 * in the bucket. False (counted) if `len` more bytes would exceed it.
 */
export function admitBytes (port: Port, len: number, nowMs: number): boolean {
  const dt = nowMs - port.rateRefilledAt
  if (dt > 0) {
    port.rateRefilledAt = nowMs
    port.rateTokens = refilled(port.rateBps, port.rateTokens, dt)
  }
  if (port.rateTokens >= len) { port.rateTokens -= len; return true }
  port.dropRate++
  return false
}
