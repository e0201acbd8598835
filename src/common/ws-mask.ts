/**
 * The uplink's WebSocket masking (RFC 6455 section 5.3): random where a
 * proxy could read the stream, zero where nothing between can.
 */

import { isLoopback } from './address'

/** A zero mask: ws on both ends then skips the per-message copy and XOR. */
export const ZERO_MASK = (mask: Buffer): Buffer => mask.fill(0)

/**
 * Whether this uplink may use a zero mask. RFC 6455 makes clients mask with
 * a random key so that a hostile sender cannot put chosen bytes on the wire
 * for a transparent proxy to misread (cache poisoning); guests choose the
 * bytes of our frames, so on a plain ws:// path through other machines we
 * keep it. Where no intermediary can read the stream, over wss:// or to a
 * loopback address, masking only costs CPU (a third of a sending agent's
 * time at 2 Gbit/s, measured), so 'auto' zeroes it there.
 */
export function zeroMaskFor (url: string, mode: 'auto' | 'always' | 'never'): boolean {
  if (mode !== 'auto') return mode === 'never'
  const u = new URL(url)
  return u.protocol === 'wss:' || isLoopback(u.hostname)
}
