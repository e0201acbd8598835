/**
 * The native addon (native/, built by node-gyp; its typed contract is
 * native/index.d.ts), loaded in one place for every program that uses it:
 * tap-agent's TAP and Unix datagram sockets, switchd's own TAPs and their
 * fast path. Loaded on first use only, so a program (or a mode) that needs
 * none of it runs where the addon was never built.
 *
 * Also the one TypeScript reading of the counters' layout the addon's
 * readers share (the STAT_* indexes of Tap and UnixDgram).
 */

import type * as Native from '../../native'
import { TapswitchError } from './errors'

/** The addon's exports, as native/index.d.ts types them. */
export type NativeAddon = typeof Native

let addon: NativeAddon | undefined

/**
 * The addon, loaded once. `what` says who needs it, for the error: a
 * TapswitchError (TSW_ERR_ADDON) `taps need the native addon, which did not
 * load (…); run npm install …`.
 */
export function loadNative (what: string): NativeAddon {
  if (addon !== undefined) return addon
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    addon = require('../../native') as NativeAddon
    return addon
  } catch (err) {
    throw new TapswitchError('TSW_ERR_ADDON', `${what} need the native addon, which did not load (${(err as Error).message.split('\n')[0] ?? ''}); run \`npm install\` in the tapswitch directory (needs python3, make and g++)`)
  }
}

/**
 * The addon if it loads, else undefined: for the parts of switchd that work
 * without it, less well (the child-peer check, the gateway's sandbox), and
 * say so in their own words.
 */
export function tryLoadNative (): NativeAddon | undefined {
  try {
    return loadNative('')
  } catch {
    return undefined
  }
}

/** Indexes into a Tap's or UnixDgram's stats() (native/index.d.ts STAT_*). */
export const STAT_RX_FRAMES = 0
export const STAT_RX_BYTES = 1
export const STAT_TX_FRAMES = 2
export const STAT_TX_BYTES = 3
/** The kernel refused a write with EAGAIN/ENOBUFS: its queue was full. */
export const STAT_TX_DROPPED = 4
export const STAT_TX_ERRORS = 5
export const STAT_TX_MALFORMED = 6
export const STAT_RX_ERRORS = 7
export const STAT_COUNT = 8

/** A native reader/writer's counters, read at scrape time. */
export interface NativeStats {
  /** Frames (and bytes) read: from the TAP, received from QEMU. */
  rxFrames: number
  rxBytes: number
  /** Frames (and bytes) written. */
  txFrames: number
  txBytes: number
  /** Frames the kernel could not take now (full queue, or nobody at the other end). */
  txDropped: number
  txErrors: number
  txMalformed: number
  rxErrors: number
}

/** The counters out of the array a stats() call filled. */
export function statsFrom (s: Float64Array): NativeStats {
  return {
    rxFrames: s[STAT_RX_FRAMES] as number,
    rxBytes: s[STAT_RX_BYTES] as number,
    txFrames: s[STAT_TX_FRAMES] as number,
    txBytes: s[STAT_TX_BYTES] as number,
    txDropped: s[STAT_TX_DROPPED] as number,
    txErrors: s[STAT_TX_ERRORS] as number,
    txMalformed: s[STAT_TX_MALFORMED] as number,
    rxErrors: s[STAT_RX_ERRORS] as number
  }
}
