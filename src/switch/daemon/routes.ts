/**
 * Where a request goes once admit.ts has decided: the handlers of the main
 * listener (/healthz, /readyz, /metrics, the API, the console's files, the
 * console's event stream, a port's upgrade) and of the metrics listener.
 * The decisions are admit.ts's (pure); this file answers them, counts every
 * refusal by its reason and logs it.
 */

import type * as http from 'node:http'
import type { Duplex } from 'node:stream'
import type { WebSocketServer, WebSocket } from 'ws'
import type { Registry } from 'prom-client'
import type { Switch } from '../core/switch'
import type { SwitchdView } from '../control/view'
import type { PendingConnections } from '../control/admission'
import type { AuthThrottle } from '../control/throttle'
import type { TokenGrant } from '../control/auth'
import { bearerToken } from '../control/auth'
import { checkAdminToken } from '../control/throttle'
import { handleApi, refuseAdmin } from '../control/api'
import { handleConsole, consoleRedirect, type ConsoleHub } from '../control/console'
import { admitUpgrade, routeRequest, routeMetricsRequest, type AdmissionState, type RequestFacts, type Refusal } from './admit'
import { reject, setResponseHeaders } from './http'
import { clientAddressOf } from '../control/client-address'
import { closeSocket } from '../io/ws-port'
import { SUBPROTOCOL_V1, CLOSE_POLICY } from '../../common/protocol'
import { logger } from '../../common/log'
import type { FleetStateJson } from '../../common/api-types'

const log = logger('server')

/** What the routes need of the daemon (switchd.ts implements it). */
export interface RouteContext extends SwitchdView {
  readonly admission: AdmissionState
  readonly authThrottle: AuthThrottle
  readonly registry: Registry
  readonly console: ConsoleHub
  readonly portsWss: WebSocketServer
  readonly consoleWss: WebSocketServer
  readonly pendingConnections: PendingConnections
  /** Count a refusal by its reason (connections_rejected_total). */
  refused (reason: string): void
  /** Bring what the native fast paths forwarded into the counters before a scrape. */
  syncFastPaths (): void
  /** Open network `name` for `address` now that its upgrade succeeded, or say why not. */
  openNetwork (name: string, address: string): Switch | string
  /** Make the upgraded socket a port (port-table.ts); `fleet`: it presented the fleet credential. */
  attach (ws: WebSocket, req: http.IncomingMessage, sw: Switch, grant: TokenGrant | undefined, fleet?: boolean): void
  /** What /fleet/v1/state answers (fleet-host.ts). */
  fleetState (): FleetStateJson
}

/** The client's address (the TCP peer's, or a trusted proxy's X-Forwarded-For: control/client-address.ts). */
function client (ctx: RouteContext, req: http.IncomingMessage): string { return clientAddressOf(req, ctx.config) }

function facts (ctx: RouteContext, req: http.IncomingMessage): RequestFacts {
  return { method: req.method, url: req.url, headers: req.headers, remote: client(ctx, req) }
}

/** Count and log a Host refusal (DNS rebinding). */
function refusedHost (ctx: RouteContext, req: http.IncomingMessage): void {
  ctx.refused('bad_host')
  const address = client(ctx, req)
  log.client('warn', 'connection_rejected', address, { remote: address, reason: 'bad_host', host: req.headers.host })
}

/** A plain request on the main listener. */
export function serveRequest (ctx: RouteContext, req: http.IncomingMessage, res: http.ServerResponse): void {
  setResponseHeaders(res)
  const route = routeRequest(facts(ctx, req), ctx.admission)
  if (route.refuse) {
    refusedHost(ctx, req)
    res.writeHead(route.status, { 'content-type': 'text/plain' }).end(route.message + '\n')
    return
  }
  switch (route.to) {
    case 'healthz': res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n'); return
    case 'readyz': res.writeHead(route.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(route.ready ? 'ready\n' : route.draining ? 'draining\n' : 'not ready\n'); return
    case 'metrics': serveMetrics(ctx, req, res); return
    case 'fleet': serveFleet(ctx, req, res, route.status); return
  }
  if (handleApi(req, res, ctx)) return
  if (handleConsole(req, res, ctx)) return
  const to = consoleRedirect(req)
  if (to !== undefined) { res.writeHead(302, { location: to, 'content-type': 'text/plain' }).end(`the web console is at ${to}\n`); return }
  res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' })
    .end('tapswitch: connect with a WebSocket client (raw frames, or subprotocol ' + SUBPROTOCOL_V1 + '); see docs/PROTOCOL.md\n')
}

/** /fleet/v1/state (docs/FLEET.md): no body is read, the answer is small; without the fleet credential, nothing but the status. */
function serveFleet (ctx: RouteContext, req: http.IncomingMessage, res: http.ServerResponse, status: 200 | 401 | 404 | 405): void {
  if (status === 401) {
    ctx.refused('fleet_unauthorized')
    const address = client(ctx, req)
    log.client('warn', 'fleet_unauthorized', address, { remote: address })
  }
  if (status !== 200) {
    const why = status === 401 ? 'the fleet credential is required\n' : status === 404 ? 'this replica runs without --fleet\n' : 'GET only\n'
    const extra: Record<string, string> = status === 401 ? { 'www-authenticate': 'Bearer realm="fleet"' } : status === 405 ? { allow: 'GET' } : {}
    res.writeHead(status, { 'content-type': 'text/plain', ...extra }).end(why)
    return
  }
  const body = JSON.stringify(ctx.fleetState())
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(req.method === 'HEAD' ? undefined : body)
}

/** A request on the metrics listener (--metrics-listen). */
export function serveMetricsListener (ctx: RouteContext, req: http.IncomingMessage, res: http.ServerResponse): void {
  setResponseHeaders(res)
  const route = routeMetricsRequest(facts(ctx, req), ctx.admission)
  if (route.refuse) { refusedHost(ctx, req); res.writeHead(421).end(); return }
  if (route.to === 'metrics') { serveMetrics(ctx, req, res); return }
  res.writeHead(404).end()
}

/** /metrics: behind the admin token whenever one is set (Prometheus sends it as a bearer token). */
function serveMetrics (ctx: RouteContext, req: http.IncomingMessage, res: http.ServerResponse): void {
  const remote = client(ctx, req)
  const verdict = checkAdminToken(ctx.authThrottle, remote, bearerToken(req), ctx.config.adminToken)
  if (!verdict.ok) { refuseAdmin(res, ctx, remote, '/metrics', verdict); return }
  ctx.syncFastPaths()
  ctx.registry.metrics().then(
    (text) => { res.writeHead(200, { 'content-type': ctx.registry.contentType }).end(text) },
    (err: Error) => { res.writeHead(500).end(err.message) }
  )
}

/** An upgrade on the main listener: a port, the console's event stream, or a refusal. */
export function serveUpgrade (ctx: RouteContext, req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
  const address = client(ctx, req)
  // The pending-connection count is the TCP socket's (listener-guard.ts counted it by the peer's address before any header).
  const peer = req.socket.remoteAddress ?? '?'
  socket.on('error', (err) => { log.client('debug', 'socket_error', address, { remote: address, error: err.message }) })
  const decision = admitUpgrade(facts(ctx, req), ctx.admission)
  if (decision.refuse) { refuseUpgrade(ctx, req, socket, decision); return }
  if (decision.to === 'console') { serveConsoleUpgrade(ctx, req, socket, head); return }
  // Open the network only once the upgrade has succeeded: ws answers a bad
  // key or version itself and never calls back, and a network opened before
  // that would stay, empty, until restart (each one counts to maxNetworks).
  ctx.portsWss.handleUpgrade(req, socket, head, (ws) => {
    const sw = ctx.openNetwork(decision.network, address)
    ws.once('close', ctx.pendingConnections.upgrade(peer))
    if (typeof sw === 'string') { ctx.refused('unknown_network'); closeSocket(ws, CLOSE_POLICY, 'unknown network'); return }
    ctx.attach(ws, req, sw, decision.grant, decision.fleet)
  })
}

function refuseUpgrade (ctx: RouteContext, req: http.IncomingMessage, socket: Duplex, r: Refusal): void {
  if (r.reason === 'bad_host') { refusedHost(ctx, req); reject(socket, r.status, r.message); return }
  const address = client(ctx, req)
  ctx.refused(r.reason)
  // The path may carry ?token=: log the path only.
  // `why` is the answer the client got, the fix in words (cut: it may quote an Origin header).
  log.client('warn', 'connection_rejected', address, { remote: address, reason: r.reason, path: (req.url ?? '').split('?')[0], token: r.token, why: r.message.slice(0, 200) })
  reject(socket, r.status, r.message)
}

/**
 * The web console's event stream: admitted by the console hub (API on,
 * Origin, subprotocol, the admin token through the throttle, room) before
 * the upgrade, so every socket it makes is an authenticated console.
 */
function serveConsoleUpgrade (ctx: RouteContext, req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
  const address = client(ctx, req)
  const admitted = ctx.console.admit(req)
  if ('status' in admitted) {
    if (admitted.uncounted !== true) ctx.refused(admitted.reason)
    log.client('warn', 'console_refused', address, { remote: address, reason: admitted.reason, origin: req.headers.origin })
    const extra: Record<string, string> = admitted.retryAfter !== undefined ? { 'retry-after': String(admitted.retryAfter) } : {}
    if (admitted.status === 401) extra['www-authenticate'] = 'Bearer realm="switchd"'
    reject(socket, admitted.status, admitted.message, extra)
    return
  }
  ctx.consoleWss.handleUpgrade(req, socket, head, (ws) => {
    // Not a pending connection any more (limits.maxPending): count it as upgraded, like a port.
    ws.once('close', ctx.pendingConnections.upgrade(req.socket.remoteAddress ?? '?'))
    ctx.console.attach(ws, address, admitted)
  })
}
