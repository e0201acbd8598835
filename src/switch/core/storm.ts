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

/** Refill `port`'s buckets up to `nowMs`. */
function refill (port: Port, nowMs: number): void {
  const dt = nowMs - port.stormRefilledAt
  if (dt <= 0) return
  port.stormRefilledAt = nowMs
  const s = dt / 1000
  if (port.bcRate > 0) port.bcTokens = Math.min(port.bcRate, port.bcTokens + port.bcRate * s)
  if (port.mcRate > 0) port.mcTokens = Math.min(port.mcRate, port.mcTokens + port.mcRate * s)
  if (port.uuRate > 0) port.uuTokens = Math.min(port.uuRate, port.uuTokens + port.uuRate * s)
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
    port.rateTokens = Math.min(port.rateBps, port.rateTokens + port.rateBps * dt / 1000)
  }
  if (port.rateTokens >= len) { port.rateTokens -= len; return true }
  port.dropRate++
  return false
}
