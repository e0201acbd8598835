/**
 * The console's event stream, /api/v1/events, and the login it needs: the
 * token goes as a subprotocol (a browser cannot set Authorization on a
 * WebSocket) and lives in sessionStorage, never in a URL. A stream that
 * drops, or brings nothing for STALE_AFTER_MS, is dialled again with
 * backoff, the page marked stale meanwhile; a refused one is asked about
 * through the API, which shares the check.
 */

import type { ConsoleMessage, LogEntryJson, CONSOLE_SUBPROTOCOL_NAME, BEARER_SUBPROTOCOL_PREFIX } from '../common/api-types'
import { $ } from './dom'
import { auth, headers, setToken } from './api'
import { markStale, markLive, STALE_AFTER_MS } from './stale'

/** The event stream's subprotocol, and the token offered beside it (a browser cannot set Authorization on a WebSocket). */
const SUBPROTOCOL: CONSOLE_SUBPROTOCOL_NAME = 'tapswitch.console'
const BEARER: BEARER_SUBPROTOCOL_PREFIX = 'bearer.'

/** What the page does with each message of the stream. */
export interface StreamHandlers {
  welcome: (log: LogEntryJson[], actions: string[]) => void
  tick: (m: Extract<ConsoleMessage, { type: 'tick' }>) => void
  log: (e: LogEntryJson) => void
}

let handlers: StreamHandlers | undefined

// ---------- authority ----------

/** The token as a subprotocol: base64url of its UTF-8 bytes, no padding (a subprotocol must be an HTTP token). */
function bearerProtocol (t: string): string {
  let bin = ''
  for (const b of new TextEncoder().encode(t)) bin += String.fromCharCode(b)
  return BEARER + btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

export function showLogin (message: string): void {
  $('main').hidden = true
  $('tabs').hidden = true
  $('logout').hidden = true
  $('login').hidden = false
  $('login-error').textContent = message
  setStatus('not logged in', false)
  $<HTMLInputElement>('token').focus()
}

export function setStatus (text: string, live: boolean): void {
  const s = $('status')
  s.textContent = text
  s.classList.toggle('live', live)
}

// ---------- the stream ----------

let ws: WebSocket | undefined
let retry = 1000
/** Closes a stream that brings no tick for STALE_AFTER_MS (restarted by each tick). */
let watchdog: ReturnType<typeof setTimeout> | undefined

function watch (sock: WebSocket): void {
  clearTimeout(watchdog)
  watchdog = setTimeout(() => {
    if (ws !== sock) return
    // Silent but open: the numbers are stale now, not when TCP gives up (reconnect marks them).
    ws = undefined
    sock.close()
    reconnect(`no update for ${STALE_AFTER_MS / 1000} s`)
  }, STALE_AFTER_MS)
}

/** Open the stream, its messages to `h` from now on (the reconnects too). */
export function startStream (h: StreamHandlers): void {
  handlers = h
  connect()
}

function connect (): void {
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/v1/events'
  // The token is checked before the upgrade: a refused one never gets a socket.
  const sock = new WebSocket(url, auth.token === '' ? [SUBPROTOCOL] : [SUBPROTOCOL, bearerProtocol(auth.token)])
  ws = sock
  let opened = false
  sock.onopen = () => { opened = true; watch(sock) }
  sock.onmessage = (ev) => {
    const m = JSON.parse(String(ev.data)) as ConsoleMessage
    if (m.type === 'welcome') {
      retry = 1000
      handlers?.welcome(m.log, m.actions)
    } else if (m.type === 'tick') { watch(sock); handlers?.tick(m) }
    else if (m.type === 'log') for (const e of m.entries) handlers?.log(e)
  }
  sock.onclose = (ev) => {
    if (ws !== sock) return
    ws = undefined
    clearTimeout(watchdog)
    // A refused upgrade: the browser does not say why (401, 429 and 503 look alike), so ask the API, which shares the check.
    if (!opened) { void refused(); return }
    if (ev.code === 1008) { forget(ev.reason); return }
    reconnect(closeWhy(ev.code))
  }
}

/** Close the stream for good (logout): no reconnect. */
export function hangUp (): void {
  const sock = ws
  ws = undefined
  sock?.close()
}

/** A closed stream's code in words (the code too, for a search). */
function closeWhy (code: number): string {
  if (code === 1001) return 'switchd is shutting down or restarting (1001)'
  if (code === 1006) return 'the connection to switchd was lost (1006)'
  return `the stream was closed (${code})`
}

function reconnect (why: string): void {
  // Whatever the page shows is from before now: say so until a tick comes.
  if (!$('main').hidden) markStale(why)
  setStatus(`${why}; retrying…`, false)
  setTimeout(connect, retry)
  retry = Math.min(retry * 2, 15000)
}

/** Drop the token and ask for one (an empty one is tried first, for a switchd that needs none). */
function forget (message: string): void {
  setToken('')
  markLive()
  showLogin(message)
}

type Verdict = 'ok' | 'refused' | 'throttled' | 'other'

/** What the API says of the token: the stream's upgrade makes the same check, but a browser does not say why an upgrade failed. */
async function askApi (): Promise<{ verdict: Verdict, wait: string }> {
  try {
    const r = await fetch('/api/v1/networks', { headers: headers(false), credentials: 'omit', cache: 'no-store' })
    await r.body?.cancel()
    const verdict: Verdict = r.ok ? 'ok' : r.status === 401 ? 'refused' : r.status === 429 ? 'throttled' : 'other'
    return { verdict, wait: r.headers.get('retry-after') ?? '' }
  } catch { return { verdict: 'other', wait: '' } }
}

/** Why the stream's upgrade was refused, as the API answers the same token. */
async function refused (): Promise<void> {
  const { verdict, wait } = await askApi()
  if (verdict === 'refused') forget(auth.token !== '' ? 'That token was refused.' : '')
  else if (verdict === 'throttled') showLogin(`Too many wrong tokens from this address: try again in ${wait} s.`)
  else reconnect('cannot open the event stream')
}

/** A token typed in: checked once through the API (one guess, not two), then the stream. */
export async function logIn (): Promise<void> {
  const { verdict, wait } = await askApi()
  if (verdict === 'refused') forget('That token was refused.')
  else if (verdict === 'throttled') showLogin(`Too many wrong tokens from this address: try again in ${wait} s.`)
  else connect()
}
