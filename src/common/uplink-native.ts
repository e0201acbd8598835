/**
 * Where an uplink's connection may leave `ws` for a native thread (issue 24).
 * The uplink (uplink.ts) asks at ws's 'open', before its hello: if its owner
 * set a hook (tap-agent with a TAP and the addon, unless --no-fast-path) and
 * ws-takeover.ts finds the point safe (not TLS, nothing half-parsed or
 * pending), the hook gets the fd and the bytes already read and returns the
 * socket the uplink uses from then on; otherwise `ws` keeps the connection
 * and the reason is logged with the welcome (`path`, `fallback`).
 */

import type { EventEmitter } from 'node:events'
import type WebSocket from 'ws'
import { takeOver, takeoverRefusal, type Takeover } from './ws-takeover'
import type { NativeSocket } from './native-socket'

/** The part of ws's WebSocket the uplink uses: ws's own, or a NativeSocket. */
export interface UplinkSocket extends EventEmitter {
  readonly readyState: number
  readonly OPEN: 1
  readonly CLOSED: 3
  readonly bufferedAmount: number
  send: (data: string | Buffer, opts?: { binary?: boolean, compress?: boolean, fin?: boolean }) => void
  ping: () => void
  pong: (data: Buffer) => void
  close: (code?: number, reason?: string) => void
  terminate: () => void
}

/** What a hook gets: the connection, and how to mask and bound it. */
export interface UplinkTakeover {
  takeover: Takeover
  /** zeroMaskFor() said this connection may use a zero mask. */
  zeroMask: boolean
  /** Bytes queued before a batch is refused (the uplink's highWaterMark). */
  highWaterMark: number
}

/** Returns the socket carrying the connection from now on; throws if it cannot (the connection is then dropped). */
export type UplinkTakeoverHook = (t: UplinkTakeover) => NativeSocket

/** Which path carries a connection, and why not the native one when a hook was set. */
export interface UplinkPath {
  sock: NativeSocket | undefined
  path: 'native' | 'js'
  fallback?: string
}

/**
 * At ws's 'open': the native socket, or why ws keeps the connection. Throws
 * only when the hook did after ws let go (the caller drops the connection).
 */
export function takeOverUplink (ws: WebSocket, hook: UplinkTakeoverHook | undefined, zeroMask: boolean, highWaterMark: number): UplinkPath {
  if (hook === undefined) return { sock: undefined, path: 'js' }
  const refusal = takeoverRefusal(ws)
  const t = refusal === undefined ? takeOver(ws) : undefined
  if (t === undefined) return { sock: undefined, path: 'js', fallback: refusal ?? 'not open' }
  try {
    return { sock: hook({ takeover: t, zeroMask, highWaterMark }), path: 'native' }
  } catch (err) {
    t.socket.destroy()
    throw err
  }
}
