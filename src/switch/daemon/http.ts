/**
 * switchd's HTTP(S) listeners: the main one (WebSocket ports, /healthz,
 * /readyz, /api, /ui, and /metrics unless --metrics-listen moves it) and the
 * metrics one. What a listener does with a connection before a request is
 * read is listener-guard.ts's; what it does with a request is routes.ts's.
 *
 * A request (or upgrade) must arrive whole within the handshake timeout: a
 * slow-headers client holds a socket and a parser, not a port (Slowloris).
 * The guard sets the timeouts again on every reload.
 */

import * as http from 'node:http'
import * as https from 'node:https'
import { readFileSync } from 'node:fs'
import type { Duplex } from 'node:stream'
import { WebSocketServer } from 'ws'
import type { SwitchdConfig } from '../control/config'
import { RESPONSE_HEADERS } from '../control/exposure'
import { requestTimeouts } from './listener-guard'
import { TapswitchError, ERR_CONFIG } from '../../common/errors'
import { logger } from '../../common/log'
import { tlsClientHint } from '../../common/uplink-advice'

const log = logger('server')

/** How often Node looks for requests past their timeout (so a lower timeout set by a reload holds within it). */
const CHECK_INTERVAL_MS = 1000

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void

/** The TLS files of `config`, read; TSW_ERR_CONFIG naming the file if one cannot be. */
export function tlsOptions (config: SwitchdConfig): https.ServerOptions {
  const tls = config.tls
  if (tls === undefined) return {}
  const read = (file: string, what: string): Buffer => {
    try { return readFileSync(file) } catch (err) {
      throw new TapswitchError(ERR_CONFIG, `TLS ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
  }
  const opts: https.ServerOptions = { cert: read(tls.cert, 'certificate'), key: read(tls.key, 'key') }
  if (tls.clientCa !== undefined) { opts.ca = read(tls.clientCa, 'client CA'); opts.requestCert = true; opts.rejectUnauthorized = true }
  return opts
}

/** The main listener, over TLS when `config.tls` is set; Node's own answers (malformed, late) carry our headers. */
export function mainListener (config: SwitchdConfig, handler: Handler): http.Server {
  const httpOpts = { ...requestTimeouts(config.limits.handshakeTimeout), connectionsCheckingInterval: CHECK_INTERVAL_MS }
  const server = config.tls === undefined ? http.createServer(httpOpts, handler) : https.createServer({ ...tlsOptions(config), ...httpOpts }, handler)
  server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => { clientError(err, socket) })
  if (config.tls !== undefined) {
    server.on('tlsClientError', (err: Error & { code?: string }, socket: { remoteAddress?: string }) => {
      log.client('warn', 'tls_handshake_failed', socket.remoteAddress, { remote: socket.remoteAddress, error: err.code ?? err.message, hint: tlsClientHint(err) })
    })
  }
  return server
}

/** The --metrics-listen listener: plain HTTP, the same timeouts. */
export function metricsListener (config: SwitchdConfig, handler: Handler): http.Server {
  const server = http.createServer({ ...requestTimeouts(config.limits.handshakeTimeout), connectionsCheckingInterval: CHECK_INTERVAL_MS }, handler)
  server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => { clientError(err, socket) })
  return server
}

/** Listen on host:port; rejects with the system's error (EADDRINUSE…). */
export async function bind (server: http.Server, port: number, host: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

/** Our headers on every answer (exposure.ts RESPONSE_HEADERS). */
export function setResponseHeaders (res: http.ServerResponse): void {
  for (const [k, v] of Object.entries(RESPONSE_HEADERS)) res.setHeader(k, v)
}

/**
 * Answer an upgrade request (or a request Node could not parse) with a plain
 * HTTP error, with RESPONSE_HEADERS and `extra`, and hang up: the socket is
 * destroyed once the answer is written, so a refused client holds nothing
 * (the server's sockets are half-open: ending ours alone would wait for the
 * client's).
 */
export function reject (socket: Duplex, status: number, message: string, extra: Record<string, string> = {}): void {
  const body = message + '\n'
  const headers = { ...RESPONSE_HEADERS, ...extra, connection: 'close', 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(body)) }
  let head = `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\n`
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`
  socket.once('finish', () => { socket.destroy() })
  socket.end(head + '\r\n' + body)
}

/** Node's 'clientError' (a malformed request, headers too large or too late): answered as Node would, with our headers. */
export function clientError (err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) { socket.destroy(); return }
  const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400
  reject(socket, status, status === 408 ? 'the request did not arrive within limits.handshakeTimeout' : 'malformed request')
}

/** A WebSocket server that answers with `protocol` alone (never a token offered beside it); no compression, no tracking. */
export function wsServer (protocol: string, maxPayload: number, autoPong: boolean): WebSocketServer {
  return new WebSocketServer({
    noServer: true, clientTracking: false, perMessageDeflate: false, maxPayload, autoPong,
    handleProtocols: (protocols) => protocols.has(protocol) ? protocol : false
  })
}
