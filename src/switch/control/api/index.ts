/**
 * The admin HTTP API (JSON), behind the admin token when one is configured
 * (`Authorization: Bearer <token>`, compared in constant time). Its endpoints
 * are the table in routes.ts, each answered by the file of its resource
 * (networks, ports, fdb, statics, conditions, capture, trace, drops, leases).
 *
 * Without an admin token the API is served only where that is safe
 * (exposure.ts); with `api: false` it answers 404. Requests from browsers are
 * refused unless their Origin is allowed, and POST/DELETE must be JSON
 * (exposure.ts). At most limits.maxCaptures captures run at once (429), and a
 * network holds at most MAX_STATIC_ENTRIES static entries, configured and
 * added here together (409).
 *
 * A network, port, VLAN, static entry or gateway a request names that does
 * not exist answers 404 TSW_ERR_NOT_FOUND with what exists (names.ts),
 * before anything is done. A method and path no route has answers 404 too.
 *
 * Slow path only: views are built on request from the plain counter fields.
 */

import type * as http from 'node:http'
import type { SwitchdView } from '../view'
import { logger } from '../../../common/log'
import { requestUrl } from '../../../common/cli'
import { apiRequestRefusal } from '../exposure'
import { bearerToken } from '../auth'
import { checkAdminToken, type AdminVerdict } from '../throttle'
import { NameError } from '../names'
import { clientAddressOf } from '../client-address'
import { HttpError, send } from './http'
import { RouteTable } from './route'
import { ROUTES } from './routes'

export { portView, networkView, conditionView, gatewayView, hasCondition } from './views'

const log = logger('api')
const table = new RouteTable(ROUTES)

/**
 * Answer a request whose admin token did not pass (throttle.ts): 401 with
 * the Bearer challenge, or 429 with Retry-After; counted and logged within
 * the client's log budget.
 */
export function refuseAdmin (res: http.ServerResponse, server: SwitchdView, remote: string, path: string, verdict: Exclude<AdminVerdict, { ok: true }>): void {
  if (verdict.status === 429) {
    server.refusedApi('auth_throttled')
    log.client('warn', 'admin_throttled', remote, { remote, path, retry_after: verdict.retryAfter })
    res.setHeader('retry-after', String(verdict.retryAfter))
  } else {
    if (verdict.hadToken) server.refusedApi('unauthorized')
    log.client('warn', 'admin_unauthorized', remote, { remote, path, had_token: verdict.hadToken })
    res.setHeader('www-authenticate', 'Bearer realm="switchd"')
  }
  send(res, verdict.status, { error: verdict.message })
}

/** Serve /api/v1/*; returns false for any other path. */
export function handleApi (req: http.IncomingMessage, res: http.ServerResponse, server: SwitchdView): boolean {
  const url = requestUrl(req.url)
  if (url === undefined) { send(res, 400, { error: 'not a valid request target' }); return true }
  if (!url.pathname.startsWith('/api/')) return false
  if (!server.config.api) { send(res, 404, { error: 'the admin API is off (api: false)' }); return true }
  const refusal = apiRequestRefusal(req, server.config.allowedOrigins, server.config.allowedHosts)
  if (refusal !== undefined) {
    server.refusedApi('bad_origin')
    const address = clientAddressOf(req, server.config)
    log.client('warn', 'admin_refused', address, { remote: address, path: url.pathname, reason: refusal })
    send(res, 403, { error: refusal })
    return true
  }
  const token = server.adminToken
  if (token === undefined && !server.adminOpen) {
    // Start refuses this set-up (exposure.ts); never serve it should one slip through.
    send(res, 403, { error: 'the admin API needs an admin token here (--admin-token)' })
    return true
  }
  const remote = clientAddressOf(req, server.config)
  const verdict = checkAdminToken(server.authThrottle, remote, bearerToken(req), token)
  if (!verdict.ok) {
    refuseAdmin(res, server, remote, url.pathname, verdict)
    return true
  }
  dispatch(req, res, server, url).catch((err: Error) => {
    const status = err instanceof HttpError || err instanceof NameError ? err.status : 500
    if (status === 500) log.error('api_error', { path: url.pathname, error: err.message })
    if (!res.headersSent) send(res, status, err instanceof NameError ? err.body() : { error: err.message })
    else res.destroy()
  })
  return true
}

/** Find the request's route and run its handler; a refusal it throws is answered by handleApi. */
async function dispatch (req: http.IncomingMessage, res: http.ServerResponse, server: SwitchdView, url: URL): Promise<void> {
  const method = req.method ?? 'GET'
  const path = url.pathname
  const found = table.find(method, path)
  if (found === undefined) throw new HttpError(404, `no endpoint ${method} ${path}`)
  await found.route.handler({ req, res, server, method, path, q: url.searchParams, params: found.params })
}
