/**
 * The web console's page: switchd serves it at /ui from dist/ui (built by
 * scripts/build-ui.js), and sends a person who typed the bare address there.
 * Everything the page needs comes from here (no CDN, no fonts from
 * elsewhere): it works in a lab with no internet. The page is public (a login
 * form, no data); its data comes over the event stream (console.ts).
 *
 * The pages carry a strict Content-Security-Policy (scripts and styles only
 * from this origin, no inline code, connections only back here, no framing):
 * log fields the page shows (a refused client's Host header, say) are text
 * that an attacker chose, and the page renders them as text.
 */

import type * as http from 'node:http'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { gzipSync } from 'node:zlib'
import type { SwitchdView } from './view'
import { RESPONSE_HEADERS } from './exposure'
import { requestUrl } from '../../common/cli'

/** The compiled page: dist/ui, beside dist/switch (whether this file runs from src/ or dist/). */
const UI_DIR = path.join(__dirname, '..', '..', '..', 'dist', 'ui')
const FILES: Record<string, { file: string, type: string }> = {
  '/ui': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/ui/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/ui/console.js': { file: 'console.js', type: 'text/javascript; charset=utf-8' },
  '/ui/console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
  '/ui/icon.svg': { file: 'icon.svg', type: 'image/svg+xml' }
}

/**
 * Scripts and styles from here only (no inline code, no eval), connections
 * back here only ('self' covers ws: and wss: to this host), images from here
 * (the pcap download is a blob: link, which no fetch directive governs), no
 * <base>, no form submission, no framing (frame-ancestors, and X-Frame-Options
 * for older browsers).
 */
export const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const SECURITY_HEADERS: Record<string, string> = {
  ...RESPONSE_HEADERS,
  'content-security-policy': CSP,
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin'
}

interface Asset { body: Buffer, gzip: Buffer, type: string }
const assets = new Map<string, Asset | null>()

/** A file of the page, read and compressed once; null if the page was not built. */
function asset (file: string, type: string): Asset | null {
  let a = assets.get(file)
  if (a === undefined) {
    try {
      const body = fs.readFileSync(path.join(UI_DIR, file))
      a = { body, gzip: gzipSync(body, { level: 9 }), type }
    } catch {
      a = null
    }
    // A missing build is not cached: `npm run build` while switchd runs fixes it.
    if (a !== null) assets.set(file, a)
  }
  return a
}

/**
 * Where a plain GET that is not the console's own path belongs: `/` (a person
 * who typed the address), `/console` and the case variants of `/ui` go to
 * `/ui`. Only a path that is never a WebSocket port's answers: `/` is the
 * default network's, but an upgrade never reaches here (daemon/routes.ts),
 * and `/net/<name>` keeps its 426. The query is left behind (a `?token=` meant
 * for the WebSocket path must not follow into a Location).
 */
export function consoleRedirect (req: http.IncomingMessage): string | undefined {
  if (req.method !== 'GET' && req.method !== 'HEAD') return undefined
  const pathname = requestUrl(req.url)?.pathname
  if (pathname === undefined) return undefined
  if (pathname === '/') return '/ui'
  const lower = pathname.toLowerCase().replace(/\/+$/, '')
  if ((lower === '/ui' && pathname !== '/ui' && pathname !== '/ui/') || lower === '/console') return '/ui'
  return undefined
}

/** Serve /ui and its files; returns false for any other path. */
export function handleConsole (req: http.IncomingMessage, res: http.ServerResponse, server: SwitchdView): boolean {
  const url = requestUrl(req.url)
  if (url === undefined || (url.pathname !== '/ui' && !url.pathname.startsWith('/ui/'))) return false
  const headers = { ...SECURITY_HEADERS }
  if (!server.config.api) {
    res.writeHead(404, { ...headers, 'content-type': 'text/plain' }).end('the web console needs the admin API, which is off (api: false)\n')
    return true
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { ...headers, allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('GET only\n')
    return true
  }
  const entry = FILES[url.pathname]
  if (entry === undefined) {
    res.writeHead(404, { ...headers, 'content-type': 'text/plain' }).end('no such file\n')
    return true
  }
  const a = asset(entry.file, entry.type)
  if (a === null) {
    res.writeHead(503, { ...headers, 'content-type': 'text/plain' }).end('the web console is not built: run `npm run build` (it bundles src/ui into dist/ui)\n')
    return true
  }
  const gzip = /\bgzip\b/.test(req.headers['accept-encoding'] ?? '')
  const body = gzip ? a.gzip : a.body
  res.writeHead(200, { ...headers, 'content-type': a.type, 'content-length': body.length, vary: 'accept-encoding', ...(gzip ? { 'content-encoding': 'gzip' } : {}) })
  res.end(req.method === 'HEAD' ? undefined : body)
  return true
}
