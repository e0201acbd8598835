/**
 * Who may plug into the switch. With tokens configured, every WebSocket
 * upgrade must present one: `Authorization: Bearer <token>`, or
 * `?token=<token>` for browser VMs (which cannot set headers). A token binds
 * its client to what it may be: a network, a port name, a VLAN policy, the
 * source MACs it may use, a byte rate.
 *
 * Tokens are kept as SHA-256 digests (the configuration may hold only the
 * digest), and a presented token is looked up by its digest: what a timing
 * side channel could reveal is a prefix of a hash, which says nothing about
 * the token. Refusals happen before the upgrade (401 unknown or missing,
 * 403 wrong network) and are logged without the token.
 *
 * The admin token of the web console's event stream is read here too: a
 * browser cannot set Authorization on a WebSocket, so it offers the token as
 * a subprotocol (console.ts says why).
 */

import { createHash, timingSafeEqual } from 'node:crypto'
import type * as http from 'node:http'
import type { PortPolicy } from '../core/port'
import { requestUrl } from '../../common/cli'
import type { CONSOLE_SUBPROTOCOL_NAME, BEARER_SUBPROTOCOL_PREFIX } from '../../common/api-types'

/** One configured token and what it grants. */
export interface TokenGrant {
  /** For logs: the token's `id` in the configuration (never the token). */
  id: string
  /** SHA-256 of the token, hex: what identifies it (ids are only for people). */
  digest: string
  /** Network the token is for; undefined = any. */
  network: string | undefined
  /** Port name the client gets, whatever it asks for. */
  name: string | undefined
  /** VLAN policy and limits; undefined = the profile for the port name. */
  policy: PortPolicy | undefined
  /** Source MACs the port may use; undefined = any. */
  macs: ReadonlySet<number> | undefined
  /** Ingress byte rate limit (bytes/s); 0 = none. */
  rate: number
  /** May connect a switch as a trunk (switchd --uplink). */
  trunk: boolean
  /** Root guard on its trunk (stp.ts): it may never become our path to the root. */
  rootGuard: boolean
}

export function sha256Hex (text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

/** Constant-time token check (hashing first makes the lengths equal). */
export function tokenMatches (given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest()
  const b = createHash('sha256').update(expected).digest()
  return timingSafeEqual(a, b)
}

/** What token checks read of a request: its headers and target (an http.IncomingMessage is one; tests pass literals). */
export interface RequestHead {
  readonly url?: string
  readonly headers: http.IncomingHttpHeaders
}

/** The `Authorization: Bearer` token of a request, as sent; undefined if none. */
export function bearerToken (req: RequestHead): string | undefined {
  const auth = req.headers.authorization
  return auth !== undefined && auth.startsWith('Bearer ') ? auth.slice(7) : undefined
}

/** The subprotocol of the web console's event stream, the one its upgrade answers with. */
export const CONSOLE_SUBPROTOCOL: CONSOLE_SUBPROTOCOL_NAME = 'tapswitch.console'
/** The admin token as a subprotocol offered beside it: `bearer.<base64url of the token>` (a subprotocol is an HTTP token: base64url is). */
export const BEARER_PREFIX: BEARER_SUBPROTOCOL_PREFIX = 'bearer.'

/** The subprotocols a request offers (Sec-WebSocket-Protocol, comma-separated, possibly over several headers). */
export function offeredProtocols (req: RequestHead): string[] {
  const h = req.headers['sec-websocket-protocol']
  return h === undefined ? [] : h.split(',').map((p) => p.trim()).filter((p) => p !== '')
}

/** Stands for a `bearer.` subprotocol that is not canonical base64url: a guess that cannot match (tokens hold no whitespace, TOKEN_PATTERN). */
const MALFORMED = ' '

/**
 * The admin token a console upgrade presents: `bearer.<base64url>` among its
 * subprotocols (what a browser can send), else `Authorization: Bearer`;
 * MALFORMED when the base64url is not canonical (a wrong token, counted as
 * one), undefined when there is none. Never from the URL.
 */
export function consoleToken (req: RequestHead): string | undefined {
  const offered = offeredProtocols(req).find((p) => p.startsWith(BEARER_PREFIX))
  if (offered === undefined) return bearerToken(req)
  const encoded = offered.slice(BEARER_PREFIX.length)
  const token = Buffer.from(encoded, 'base64url').toString('utf8')
  return token !== '' && Buffer.from(token, 'utf8').toString('base64url') === encoded ? token : MALFORMED
}

/** The token a request carries: Bearer header first, then ?token=. */
export function presentedToken (req: RequestHead): string | undefined {
  const bearer = bearerToken(req)
  if (bearer !== undefined) return bearer.trim()
  const q = requestUrl(req.url)?.searchParams.get('token') ?? null
  return q === null || q === '' ? undefined : q
}

export type AuthResult =
  | { ok: true, grant: TokenGrant | undefined }
  | { ok: false, status: 401 | 403, reason: 'unauthorized' | 'forbidden_network', message: string, id?: string }

/**
 * Check a request for `network` against `tokens` (digest -> grant). No tokens
 * configured means no authentication (grant undefined).
 */
export function authenticate (tokens: ReadonlyMap<string, TokenGrant>, req: RequestHead, network: string): AuthResult {
  if (tokens.size === 0) return { ok: true, grant: undefined }
  const token = presentedToken(req)
  if (token === undefined) return { ok: false, status: 401, reason: 'unauthorized', message: 'a token is required: Authorization: Bearer <token>, or ?token=<token>' }
  const grant = tokens.get(sha256Hex(token))
  if (grant === undefined) return { ok: false, status: 401, reason: 'unauthorized', message: 'unknown token' }
  if (grant.network !== undefined && grant.network !== network) {
    return { ok: false, status: 403, reason: 'forbidden_network', message: `this token is not for network "${network}"`, id: grant.id }
  }
  return { ok: true, grant }
}

/**
 * A grant checked at the upgrade, checked again against the tokens in force
 * when its port is made (a hello may come after a reload): the token must
 * still be there (by digest), for this network; without one, tokens must
 * still not be required. On success, the grant in force (its pin, policy,
 * MACs, rate and trunk right as configured now).
 */
export function grantInForce (tokens: ReadonlyMap<string, TokenGrant>, grant: TokenGrant | undefined, network: string): AuthResult {
  if (grant === undefined) {
    return tokens.size === 0 ? { ok: true, grant: undefined } : { ok: false, status: 401, reason: 'unauthorized', message: 'a token is now required' }
  }
  const g = tokens.get(grant.digest)
  if (g === undefined) return { ok: false, status: 401, reason: 'unauthorized', message: 'token revoked', id: grant.id }
  if (g.network !== undefined && g.network !== network) {
    return { ok: false, status: 403, reason: 'forbidden_network', message: `token now for network "${g.network}"`, id: g.id }
  }
  return { ok: true, grant: g }
}
