/**
 * switchctl's way to switchd: the URL it is given, the requests, and what
 * each way of failing means. Every failure is one line that names the cause
 * and the fix, as switchd's own start-up errors do: a ws:// or scheme-less
 * URL, nothing listening, TLS spoken to plain HTTP (or the reverse), a
 * certificate not trusted, or a web server that is not switchd at all (its
 * own "404 File not found" page would otherwise be printed as switchd's).
 */

import type { ApiErrorJson } from '../common/api-types'

/** switchd marks every response with this header (control/exposure.ts RESPONSE_HEADERS). */
export const SWITCHD_HEADER = 'x-tapswitch'

export const DEFAULT_URL = 'http://127.0.0.1:8080'

export class CtlError extends Error {
  constructor (message: string, readonly exitCode = 1) { super(message) }
}

export interface Ctx {
  url: string
  token: string | undefined
  json: boolean
  /** Ends the request, its body included (a fleet's replicas each have a bounded time: fleet-ask.ts). */
  signal?: AbortSignal
}

/**
 * switchd's API address from `raw` (given by `source`: "--url" or
 * "SWITCHCTL_URL"), or a CtlError (exit 2) that says how to write it. An
 * empty value is as none (the default).
 */
export function checkUrl (raw: string, source: string): string {
  if (raw === '') return DEFAULT_URL
  const given = source.startsWith('--') ? `${source} ${raw}` : `${source}=${raw}`
  let url: URL | undefined
  try { url = new URL(raw) } catch { url = undefined }
  if (url?.protocol === 'http:' || url?.protocol === 'https:') return raw
  if (url?.protocol === 'ws:' || url?.protocol === 'wss:') {
    const fixed = raw.replace(/^ws/i, 'http')
    throw new CtlError(`${given}: switchctl speaks to switchd's HTTP API, not its WebSocket: use ${fixed}`, 2)
  }
  // "127.0.0.1:8080", "localhost:8080", "[::1]:8080", "switch": a host without a scheme (new URL takes "localhost:" for one).
  if (/^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:\d+)?(\/.*)?$/i.test(raw)) {
    throw new CtlError(`${given}: no scheme: use http://${raw}${/:\d+/.test(raw) ? '' : ':8080'} (https:// where switchd serves TLS)`, 2)
  }
  throw new CtlError(`${given}: expected http://HOST:PORT, e.g. ${DEFAULT_URL} (https:// where switchd serves TLS)`, 2)
}

/** "host:port" of `url`, the port spelled out. */
export function hostPort (url: URL): string {
  return `${url.hostname.includes(':') && !url.hostname.startsWith('[') ? `[${url.hostname}]` : url.hostname}:${url.port !== '' ? url.port : url.protocol === 'https:' ? '443' : '80'}`
}

const CERT_CODES = new Set(['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'CERT_UNTRUSTED'])

/** What a failed connection to `base` means, from its error (fetch's cause, or ws's error): one line with the fix. */
export function reachError (base: string, err: unknown): CtlError {
  const e = err as { code?: string, message?: string, cause?: { code?: string, message?: string } }
  const code = e.cause?.code ?? e.code
  const detail = e.cause?.message ?? e.message ?? String(err)
  const url = new URL(base)
  const at = hostPort(url)
  const plain = `http://${url.host}${url.pathname === '/' ? '' : url.pathname}`
  const tls = `https://${url.host}${url.pathname === '/' ? '' : url.pathname}`
  if (code === 'ECONNREFUSED') {
    return new CtlError(`nothing listens at ${at}: is switchd running? (start it with: switchd --listen ${at}; or point switchctl at it: --url or SWITCHCTL_URL)`)
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'EPROTO' || /wrong version number/.test(detail)) {
    return new CtlError(`${at} speaks plain HTTP, not TLS: use ${plain}`)
  }
  if (url.protocol === 'http:' && (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'HPE_INVALID_CONSTANT')) {
    return new CtlError(`${at} closed the connection without an answer: if switchd serves TLS there (--tls-cert), use ${tls}; else check --url or SWITCHCTL_URL`)
  }
  if (code !== undefined && CERT_CODES.has(code)) {
    return new CtlError(`${at}: its TLS certificate is not trusted (${code}): give switchctl the CA that signed it, NODE_EXTRA_CA_CERTS=/path/to/ca.pem`)
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new CtlError(`${at}: its TLS certificate is not for ${url.hostname} (${code}): use a host name the certificate names`)
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new CtlError(`cannot resolve ${url.hostname} (${code}): check --url or SWITCHCTL_URL`)
  }
  if (code === 'ETIMEDOUT' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new CtlError(`cannot reach ${at} (${code}): check --url, and that switchd listens there and no firewall is in the way`)
  }
  return new CtlError(`cannot reach ${at}: ${code ?? detail} (is switchd running? check --url or SWITCHCTL_URL)`)
}

/** `content-type` without its parameters: "text/html", or "no content type". */
function contentType (value: string | null | undefined): string {
  return value === null || value === undefined || value === '' ? 'no content type' : (value.split(';')[0] as string).trim()
}

/**
 * A CtlError if the answer is not switchd's: no switchd header, and not JSON
 * (a proxy may drop the header; a JSON error still says what went wrong).
 */
export function notSwitchd (base: string, request: string, status: number, headers: { get: (name: string) => string | null }): CtlError | undefined {
  if (headers.get(SWITCHD_HEADER) !== null) return undefined
  const type = contentType(headers.get('content-type'))
  if (type === 'application/json') return undefined
  return new CtlError(`${hostPort(new URL(base))} is not switchd (it answered ${request} with ${status} ${type}): check --url or SWITCHCTL_URL`)
}

/** Longest Location quoted in a message: the server chose it. */
const MAX_LOCATION = 200

/** A CtlError for a 3xx: switchctl follows no redirect, and says where it pointed and what to check. */
export function redirected (base: string, request: string, status: number, location: string | null): CtlError {
  const to = location === null ? 'nowhere' : location.length > MAX_LOCATION ? `${location.slice(0, MAX_LOCATION)}…` : location
  return new CtlError(`${hostPort(new URL(base))} answered ${request} with a redirect (${status} to ${to}); switchd's API never redirects and switchctl follows none: check --url or SWITCHCTL_URL`)
}

/** Most bytes of an error's body read: switchd's are a line or two, and a server that is not switchd may send without end. */
export const MAX_ERROR_BODY = 64 * 1024

/**
 * `res`'s body, or undefined if it is longer than `max` bytes (one that says
 * so in content-length is not read at all; one that sends without end is cut
 * off there): a server that is not switchd costs switchctl `max` bytes at
 * the most. A failed read (a reset, the request's signal) throws.
 */
export async function readBounded (res: Response, max: number): Promise<Buffer | undefined> {
  const declared = Number(res.headers.get('content-length') ?? NaN)
  if (declared > max) { await res.body?.cancel().catch(() => {}); return undefined }
  if (res.body === null) return Buffer.alloc(0)
  const reader = res.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      size += value.byteLength
      if (size > max) return undefined
      chunks.push(value)
    }
  } finally {
    await reader.cancel().catch(() => {})
  }
  return Buffer.concat(chunks)
}

/** An error answer's JSON ({} if it is not JSON, is longer than MAX_ERROR_BODY, or cannot be read). */
async function errorBody (res: Response): Promise<Partial<ApiErrorJson>> {
  let body: Buffer | undefined
  try {
    body = await readBounded(res, MAX_ERROR_BODY)
  } catch {
    return {}
  }
  if (body === undefined) return {}
  try {
    const e = JSON.parse(body.toString('utf8')) as unknown
    return typeof e === 'object' && e !== null ? e : {}
  } catch {
    return {}
  }
}

export async function call (ctx: Ctx, method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = {}
  if (ctx.token !== undefined && ctx.token !== '') headers.authorization = `Bearer ${ctx.token}`
  // switchd refuses a POST or DELETE that is not JSON (a web page cannot send one without a preflight).
  if (body !== undefined || method !== 'GET') headers['content-type'] = 'application/json'
  let res: Response
  try {
    // redirect: 'manual': switchd's API never redirects, and a redirect followed would send the request
    // (its body, and to the same origin its token) where the server chose, not where --url says.
    res = await fetch(new URL(path, ctx.url), { method, headers, redirect: 'manual', signal: ctx.signal, body: body === undefined ? undefined : JSON.stringify(body) })
  } catch (err) {
    throw reachError(ctx.url, err)
  }
  if (res.status >= 300 && res.status < 400) {
    await res.body?.cancel()
    throw redirected(ctx.url, `${method} ${path.split('?')[0] ?? ''}`, res.status, res.headers.get('location'))
  }
  const foreign = notSwitchd(ctx.url, `${method} ${path.split('?')[0] ?? ''}`, res.status, res.headers)
  if (foreign !== undefined) { await res.body?.cancel(); throw foreign }
  if (res.status === 401) {
    const e = await errorBody(res)
    throw new CtlError(`401 ${e.error ?? 'unauthorized'} (set --token or SWITCHCTL_TOKEN)`)
  }
  if (!res.ok) {
    const e = await errorBody(res)
    // A coded error is a sentence of its own (a name that does not exist, with what does); else the status says what kind.
    throw new CtlError(e.code !== undefined && e.error !== undefined ? e.error : `${res.status} ${e.error ?? res.statusText}`)
  }
  return res
}

export async function getJson<T> (ctx: Ctx, path: string): Promise<T> {
  return await (await call(ctx, 'GET', path)).json() as T
}

/** The command's options as parseCommandLine gives them. */
export type Opts = Record<string, string | boolean | undefined>

/** A string option (parseFlags has checked its type). */
export function opt (o: Opts, key: string): string | undefined {
  return o[key] as string | undefined
}

/** `?a=1&b=2` from the parameters that are set; '' when none is. */
export function query (params: Record<string, string | undefined>): string {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, v)
  const s = q.toString()
  return s === '' ? '' : `?${s}`
}
