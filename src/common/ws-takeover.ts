/**
 * Hand a `ws` WebSocket's connection over to a native thread (issue 24): the
 * handshake, the token and the hello stay `ws`'s, and from a safe point on a
 * thread reads and writes the socket itself (native/ws_conn.h).
 *
 * A point is safe when no byte is half-way through `ws`: its receiver holds
 * nothing (no partial frame, no fragments), and nothing is waiting to be
 * written (ws's sender, the stream, libuv's write queue), since libuv would
 * write it later between the thread's frames. Bytes already read off the
 * socket but not yet given to `ws` (the `head` of an upgrade, a chunk in the
 * stream's buffer) are raw wire bytes: they are handed over as the prefill,
 * for the native reader to parse first. Anything else keeps the JS path
 * (and says why): TLS (the bytes on the fd are ciphertext), a socket without
 * an fd, bytes half-parsed, writes pending.
 *
 * After it, `ws` and Node's socket are inert: `ws`'s listeners are gone, the
 * socket reads nothing (libuv's readStop) and writes nothing; the native side
 * owns a dup of the fd. The caller keeps the socket object to destroy it when
 * the native side is done with the connection (its other listeners, such as
 * a per-address share's 'close', then run as before).
 *
 * This leans on `ws` internals (_socket, _receiver's state, the names of its
 * socket listeners) and Node's (_handle.fd, readStop): test/integration
 * covers every one of them, so an upgrade that changes them fails a test,
 * never a port (a refusal only keeps the JS path).
 */

import type * as net from 'node:net'
import type { WebSocket } from 'ws'

export interface Takeover {
  /** The socket's fd (the native side dups it; this one closes with `socket`). */
  fd: number
  /** Bytes already read off the socket, not yet parsed: the native reader parses them first. */
  prefill: Buffer | null
  /** Inert from now on; destroy it once the native side let go of the connection. */
  socket: net.Socket
}

/** Bytes read ahead the native reader takes as a prefill (ws_frame.h kReadRoom). */
export const MAX_PREFILL = 64 * 1024

/** ws's listeners on its socket (lib/websocket.js), by function name. */
const WS_SOCKET_LISTENERS = ['socketOnClose', 'socketOnData', 'socketOnEnd', 'socketOnError']

interface WsInternals {
  _socket?: net.Socket & { _handle?: { fd?: number, readStop?: () => number, reading?: boolean, writeQueueSize?: number }, encrypted?: boolean }
  _receiver?: { _state?: number, _bufferedBytes?: number, _fragments?: unknown[] }
  _sender?: { _bufferedBytes?: number }
}

/** Why `ws`'s connection cannot be taken over now, or undefined when it can. */
export function takeoverRefusal (ws: WebSocket): string | undefined {
  const w = ws as unknown as WsInternals
  const socket = w._socket
  if (ws.readyState !== ws.OPEN || socket === undefined) return 'not open'
  if (socket.encrypted === true) return 'TLS'
  const fd = socket._handle?.fd
  if (typeof fd !== 'number' || fd < 0 || typeof socket._handle?.readStop !== 'function') return 'no fd'
  const r = w._receiver
  if (r === undefined || r._state !== 0 || r._bufferedBytes !== 0 || (r._fragments?.length ?? 0) !== 0) return 'bytes half-parsed'
  if ((w._sender?._bufferedBytes ?? 0) !== 0 || socket.writableLength !== 0 || (socket._handle?.writeQueueSize ?? 0) !== 0) return 'writes pending'
  if (!socket.readable || socket.destroyed) return 'closing'
  // The native reader takes at most this much before it parses (native/ws_frame.h kReadRoom): a peer
  // that sent more ahead of its turn keeps the JS path rather than failing the connection.
  if (socket.readableLength > MAX_PREFILL) return 'too much read ahead'
  for (const ev of ['close', 'data', 'end', 'error']) {
    if (!socket.listeners(ev).some((f) => WS_SOCKET_LISTENERS.includes(f.name))) return 'unknown ws version'
  }
  return undefined
}

/** Take the connection over (see the header), or undefined with `takeoverRefusal` saying why. */
export function takeOver (ws: WebSocket): Takeover | undefined {
  if (takeoverRefusal(ws) !== undefined) return undefined
  const socket = (ws as unknown as WsInternals)._socket as NonNullable<WsInternals['_socket']>
  for (const ev of ['close', 'data', 'end', 'error']) {
    for (const f of socket.listeners(ev)) if (WS_SOCKET_LISTENERS.includes(f.name)) socket.removeListener(ev, f as (...a: unknown[]) => void)
  }
  // An error after this (a reset seen by libuv on a write we never make) must not be unheard: the native side reports its own.
  socket.on('error', () => {})
  socket.pause()
  // Raw bytes read but not given to ws: read() may ask libuv to read again, so stop it after.
  const chunks: Buffer[] = []
  for (let c = socket.read() as Buffer | null; c !== null; c = socket.read() as Buffer | null) chunks.push(c)
  const handle = socket._handle as NonNullable<NonNullable<WsInternals['_socket']>['_handle']>
  handle.readStop?.()
  handle.reading = false
  return { fd: handle.fd as number, prefill: chunks.length === 0 ? null : Buffer.concat(chunks), socket }
}
