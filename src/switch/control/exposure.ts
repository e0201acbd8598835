/**
 * Who may reach the admin surface (/api, capture, /metrics), and which
 * browsers may reach anything at all.
 *
 * The admin surface is for those who could administer the switch anyway.
 * Without an admin token it is served only when switchd listens on loopback
 * AND requires no client tokens: then everyone who can connect is equally
 * trusted (a managed switch's console with no password, reachable only from
 * the box). In every other case switchd refuses to start, and a reload that
 * would get there is refused, naming the fix: an admin token, or `api: false`.
 * /metrics on its own listener beyond loopback needs the admin token too.
 *
 * Browsers are the other way in: a page the operator visits can open a
 * WebSocket or send a "simple" POST to 127.0.0.1, and DNS rebinding lets it
 * read the answers. So every request must name us in its Host (an IP literal,
 * localhost, or a configured name), a browser's WebSocket must come from an
 * allowed Origin, and the API refuses cross-site requests and state changes
 * that are not `application/json` (which a page cannot send without a CORS
 * preflight, and we never answer preflights). This is what Jupyter, the
 * Docker daemon's API and Vite's dev server do.
 */

import type * as http from 'node:http'
import { isIP } from 'node:net'
import type { SwitchdConfig } from './config'
import { isLoopback, splitHostPort } from '../../common/address'
import { TapswitchError, ERR_CONFIG } from '../../common/errors'

/**
 * Headers on every response switchd writes (API answers and errors, /healthz,
 * /readyz, /metrics, the 426 text, refused upgrades; /ui adds its CSP): no
 * browser may sniff a text or JSON answer into a script or a page (an error
 * can echo what a client sent), and nothing answered is cached.
 * `x-tapswitch` tells switchctl it reached switchd and not some other web
 * server at a mistyped --url (ctl/http.ts); it names no version.
 */
export const RESPONSE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
  'x-tapswitch': 'switchd'
})

/** Whether the admin surface is open to anyone who can connect to `host` (no admin token needed). */
export function adminOpen (config: SwitchdConfig, host: string): boolean {
  return config.adminToken === undefined && isLoopback(host) && config.tokens.size === 0
}

/**
 * Throw TSW_ERR_CONFIG, naming the fix, if `config` would serve the admin API
 * or /metrics to someone who could not administer the switch when listening on
 * `host`. Start (listen()) and reload both call it.
 */
export function checkExposure (config: SwitchdConfig, host: string): void {
  if (config.api && config.adminToken === undefined && !adminOpen(config, host)) {
    const why = config.tokens.size > 0 ? 'clients need tokens' : `switchd listens on ${host}, beyond loopback`
    throw new TapswitchError(ERR_CONFIG, `refusing to serve the admin API (/api, capture) without an admin token: ${why}, ` +
      'so anyone who reaches the port could administer the switch. Set --admin-token (SWITCHD_ADMIN_TOKEN, or adminToken in the ' +
      'configuration), or turn the API off with --no-api ("api": false)')
  }
  if (config.metricsListen !== undefined && config.adminToken === undefined) {
    const [mh] = splitHostPort(config.metricsListen)
    if (!isLoopback(mh)) {
      throw new TapswitchError(ERR_CONFIG, `refusing to serve /metrics on ${config.metricsListen} without an admin token: ` +
        'set --admin-token (Prometheus sends it as a bearer token: docs/METRICS.md), or listen on 127.0.0.1')
    }
  }
}

/** The host name of a Host header value (no port, no brackets, lower case); undefined if absent or malformed. */
export function hostName (header: string | undefined): string | undefined {
  if (header === undefined || header === '') return undefined
  if (header.startsWith('[')) {
    const end = header.indexOf(']')
    return end < 0 ? undefined : header.slice(1, end).toLowerCase()
  }
  const i = header.indexOf(':')
  if (i >= 0 && header.indexOf(':', i + 1) >= 0) return header.toLowerCase() // a bare IPv6 literal
  return (i < 0 ? header : header.slice(0, i)).toLowerCase()
}

/**
 * Does a Host header name this switch? IP literals and localhost always do
 * (a rebinding page's requests carry the attacker's name); other names must
 * be in `allowed` ("*" = any, ".example.org" = it and its subdomains).
 */
export function hostAllowed (header: string | undefined, allowed: readonly string[]): boolean {
  const name = hostName(header)
  if (name === undefined) return false
  if (isIP(name) !== 0 || name === 'localhost' || name.endsWith('.localhost')) return true
  for (const a of allowed) {
    if (a === '*' || a === name) return true
    if (a.startsWith('.') && (name.endsWith(a) || name === a.slice(1))) return true
  }
  return false
}

/** May a browser on `origin` (the Origin header) reach us? No Origin: not a browser, allowed. */
export function originAllowed (origin: string | undefined, allowed: readonly string[]): boolean {
  if (origin === undefined) return true
  const o = origin.toLowerCase()
  for (const a of allowed) if (a === '*' || a === o) return true
  return false
}

/**
 * Is the request from a page switchd served itself (the web console at /ui)?
 * Its Origin is our own scheme and Host. That Host passed hostAllowed()
 * first, so a DNS-rebinding page, whose Origin and Host carry the
 * attacker's name, never matches: only pages from this origin do, and the
 * only pages this origin serves are ours (Jupyter's same check). A Host let
 * in only by allowedHosts "*" does not count: "*" turns the Host check off,
 * and a rebinding page's own origin would then pass as ours.
 */
export function sameOrigin (req: http.IncomingMessage, allowedHosts: readonly string[]): boolean {
  const origin = req.headers.origin
  const host = req.headers.host
  if (origin === undefined || host === undefined) return false
  if (!hostAllowed(host, allowedHosts.filter((a) => a !== '*'))) return false
  const scheme = (req.socket as { encrypted?: boolean }).encrypted === true ? 'https://' : 'http://'
  return origin.toLowerCase() === scheme + host.toLowerCase()
}

/**
 * Why an admin API request from a browser must be refused, or undefined: an
 * Origin neither our own (the console's) nor named in allowedOrigins, `Sec-Fetch-Site: cross-site`, or a state change (POST,
 * DELETE) that is not `application/json`, the one kind of body a cross-site
 * page cannot send without a preflight.
 *
 * allowedOrigins "*" lets any page's browser VM join the LAN; it never lets
 * any page reach the admin surface (where that needs no token, on loopback
 * without client tokens, every site the operator visits could read the
 * console's stream): only an origin named there does, as a proxy in front of
 * the console needs.
 */
export function apiRequestRefusal (req: http.IncomingMessage, allowedOrigins: readonly string[], allowedHosts: readonly string[] = []): string | undefined {
  if (!originAllowed(req.headers.origin, allowedOrigins.filter((a) => a !== '*')) && !sameOrigin(req, allowedHosts)) {
    return `origin ${req.headers.origin ?? ''} is not allowed: the admin API and console answer switchd's own page, or an origin named in allowedOrigins ("*" does not count)`
  }
  if (req.headers['sec-fetch-site'] === 'cross-site' && req.headers.origin === undefined) return 'cross-site requests are refused'
  const method = req.method ?? 'GET'
  if (method !== 'GET' && method !== 'HEAD') {
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase()
    if (type !== 'application/json') return `${method} needs content-type: application/json`
  }
  return undefined
}
