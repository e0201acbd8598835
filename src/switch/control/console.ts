/**
 * The web console: switchd serves a small page at /ui and feeds it over one
 * WebSocket, /api/v1/events. Everything the page needs comes from here (no
 * CDN, no fonts from elsewhere): it works in a lab with no internet.
 *
 * Authority is the admin API's, nothing more. The page is public (a login
 * form, no data); the data and every action need the admin token, which the
 * page keeps in sessionStorage and sends as `Authorization: Bearer` to the API
 * and, on the events socket, in the upgrade itself: never in a URL, which logs
 * and browser history would keep. We chose a header over a session cookie so
 * that the browser holds no ambient authority: a cross-site page cannot make
 * the browser send the token, so there is nothing for CSRF to ride on. The
 * API's Origin checks (exposure.ts) still apply, and accept our own origin.
 *
 * The events socket is authenticated BEFORE the upgrade, so no
 * unauthenticated socket ever exists (nobody without the token can hold a
 * slot, however many connections it opens). A browser cannot set
 * Authorization on a WebSocket, but it chooses the subprotocols it offers:
 * the page offers `tapswitch.console` and `bearer.<the token, base64url>`,
 * and we answer with `tapswitch.console` alone, never echoing the token
 * (Kubernetes carries its bearer tokens the same way,
 * `base64url.bearer.authorization.k8s.io.<token>`). Other clients may send
 * `Authorization: Bearer` instead. A wrong token is refused with 401 through
 * the per-address throttle the API uses (throttle.ts).
 *
 * The page and its files (/ui, with a strict Content-Security-Policy) are
 * served by console-page.ts.
 *
 * The event stream is bounded everywhere: at most MAX_CLIENTS sockets,
 * MAX_CLIENTS_PER_ADDRESS of them from one client address, a 4 KiB message
 * limit (set by the transport; the stream asks nothing of its clients), at most
 * MAX_BUFFERED bytes waiting per client (beyond it the client is closed with
 * 4004: a slow console never holds switchd's memory), a log ring of LOG_RING
 * entries (and a ring of as many warnings and errors, which info lines a
 * client causes at will cannot push out), TICK_PORTS ports and FDB_ROWS fdb
 * rows per snapshot. One snapshot is built per second
 * and only while someone watches; the frame path pays nothing for it.
 */

import type * as http from 'node:http'
import type { SwitchdView } from './view'
import type { ConsoleMessage, FdbJson, LogEntryJson } from '../../common/api-types'
import { networkView, portView } from './api'
import { tokenMatches, consoleToken, offeredProtocols, CONSOLE_SUBPROTOCOL, BEARER_PREFIX } from './auth'
import { apiRequestRefusal } from './exposure'
import { checkAdminToken } from './throttle'
import { AddressCounts } from './admission'
import { clientAddressOf } from './client-address'
import { formatMac } from '../../common/ethernet'
import { CLOSE_POLICY, CLOSE_NOT_READING } from '../../common/protocol'
import { logger, observeLog, type Fields, type Level } from '../../common/log'

export { handleConsole, consoleRedirect, CSP } from './console-page'

const log = logger('console')

/** The console's event stream (a WebSocket upgrade on the main listener). */
export const EVENTS_PATH = '/api/v1/events'
/** Sockets on the event stream at once (every one authenticated). */
export const MAX_CLIENTS = 16
/** Of them, from one client address (addressKey): four addresses are needed to fill the room. */
export const MAX_CLIENTS_PER_ADDRESS = 4
/** After we close a socket, how long its peer has to answer before it is cut (ws would wait 30 s). */
const CLOSE_GRACE_MS = 1000
/** Largest message a console may send (it is asked for none); the transport enforces it. */
export const MAX_CLIENT_MESSAGE = 4096
/** Bytes that may wait for one console before it is closed as too slow. */
export const MAX_BUFFERED = 1024 * 1024
/** Log entries kept for a console that connects later. */
export const LOG_RING = 200
/** Rows of the fdb per snapshot (about 100 bytes each). */
export const FDB_ROWS = 2000
/**
 * Ports per snapshot (about 600 bytes each): a second's snapshot stays a few
 * hundred KB however many ports switchd has (limits.maxPorts is 10,000).
 */
export const TICK_PORTS = 256
/** Longest text of one log field the console gets. */
const MAX_FIELD = 200
/**
 * Port actions the API has: the page draws one button each. disable, enable and disconnect are
 * POST /api/v1/ports/<name>/<action>; link-down and link-up are POST …/link {state}; condition opens
 * the page's editor for POST and DELETE …/condition (docs/CONDITIONS.md).
 */
export const PORT_ACTIONS = ['disable', 'enable', 'disconnect', 'link-down', 'link-up', 'condition']

/** What the hub needs of a WebSocket (ws's WebSocket has it). */
export interface ConsoleSocket {
  send (text: string): void
  readonly bufferedAmount: number
  close (code: number, reason: string): void
  terminate (): void
  on (event: 'message', fn: (data: Buffer, isBinary: boolean) => void): unknown
  on (event: 'close', fn: () => void): unknown
  on (event: 'error', fn: (err: Error) => void): unknown
}

/** Why an upgrade to the event stream is refused, before it happens; `reason` is what switchd_connections_rejected_total counts. */
export interface ConsoleRefusal {
  status: number
  reason: 'bad_origin' | 'unauthorized' | 'auth_throttled' | 'unsupported_subprotocol' | 'limit_console' | 'api_off'
  message: string
  /** Seconds, for 429 (Retry-After). */
  retryAfter?: number
  /** Not counted in switchd_connections_rejected_total: asking without a token is a question (the page does), not an attack; nor is a console with the API off. */
  uncounted?: true
}

/** An upgrade that passed: the token it presented (checked), for the session. */
export interface ConsoleGrant { token: string }

class Client {
  /** We closed it: nothing more is sent to it. */
  ended = false
  constructor (readonly sock: ConsoleSocket, readonly remote: string, readonly addressKey: string, readonly token: string) {}
}

/** Keep `entry` in `ring`, at most LOG_RING of them. */
function keep (ring: LogEntryJson[], entry: LogEntryJson): void {
  ring.push(entry)
  if (ring.length > LOG_RING) ring.shift()
}

/** Two rings as one list in the order the entries were logged. */
function merged (a: readonly LogEntryJson[], b: readonly LogEntryJson[]): LogEntryJson[] {
  return [...a, ...b].sort((x, y) => x.seq - y.seq)
}

/** The consoles watching one switchd, and the log they are shown. */
export class ConsoleHub {
  private readonly clients = new Set<Client>()
  private readonly perAddress = new AddressCounts()
  /**
   * The log kept for consoles that connect later: info lines, and warnings
   * and errors in a ring of their own, so a client that causes info lines at
   * will (connecting and leaving) cannot push a security event out. Likewise
   * the entries waiting to be sent.
   */
  private readonly ring: LogEntryJson[] = []
  private readonly alerts: LogEntryJson[] = []
  private pending: LogEntryJson[] = []
  private pendingAlerts: LogEntryJson[] = []
  private seq = 0
  private ticks = 0
  private tickTimer: NodeJS.Timeout | undefined
  private flushTimer: NodeJS.Timeout | undefined
  /** The configuration sessions were last checked against (reload replaces the object). */
  private checkedConfig: unknown
  private unobserve: (() => void) | undefined
  /** Consoles closed for not reading (MAX_BUFFERED). */
  slowClosed = 0

  constructor (private readonly server: SwitchdView) {}

  /** Start keeping the log (switchd listens). */
  start (): void {
    this.checkedConfig = this.server.config
    this.unobserve ??= observeLog((level, component, event, fields) => { this.record(level, component, event, fields) })
  }

  /** Close every console and stop (switchd stops). */
  stop (): void {
    this.unobserve?.()
    this.unobserve = undefined
    clearInterval(this.tickTimer)
    clearTimeout(this.flushTimer)
    this.tickTimer = undefined
    this.flushTimer = undefined
    for (const c of [...this.clients]) c.sock.terminate()
    this.clients.clear()
  }

  get size (): number { return this.clients.size }

  /**
   * Whether an upgrade to EVENTS_PATH may happen (the Host was checked
   * before): the API on, an allowed Origin, our subprotocol, the admin token
   * (through the throttle), and room, for this address and in all. Only an
   * upgrade that passes becomes a socket, and every socket is a console.
   */
  admit (req: http.IncomingMessage): ConsoleRefusal | ConsoleGrant {
    const config = this.server.config
    if (!config.api) return { status: 404, reason: 'api_off', message: 'the admin API is off (api: false)', uncounted: true }
    // A browser always sends Origin on a WebSocket: only our own page (or an allowed origin) may watch.
    const why = apiRequestRefusal(req, config.allowedOrigins, config.allowedHosts)
    if (why !== undefined) return { status: 403, reason: 'bad_origin', message: why }
    if (config.adminToken === undefined && !this.server.adminOpen) return { status: 403, reason: 'unauthorized', message: 'the admin API needs an admin token here (--admin-token)' }
    if (!offeredProtocols(req).includes(CONSOLE_SUBPROTOCOL)) {
      return { status: 400, reason: 'unsupported_subprotocol', message: `offer the subprotocol ${CONSOLE_SUBPROTOCOL}, with the admin token as ${BEARER_PREFIX}<base64url> (or Authorization: Bearer)` }
    }
    const address = clientAddressOf(req, config)
    const token = consoleToken(req)
    const verdict = checkAdminToken(this.server.authThrottle, address, token, config.adminToken)
    if (verdict.ok) return this.room(address, token ?? '')
    if (verdict.status === 429) return { status: 429, reason: verdict.reason, message: verdict.message, retryAfter: verdict.retryAfter }
    return { status: 401, reason: verdict.reason, message: verdict.message, ...(verdict.hadToken ? {} : { uncounted: true as const }) }
  }

  /** Room for one more console from `address`, or why not. */
  private room (address: string, token: string): ConsoleRefusal | ConsoleGrant {
    if (this.perAddress.of(address) >= MAX_CLIENTS_PER_ADDRESS) {
      return { status: 429, reason: 'limit_console', message: `${MAX_CLIENTS_PER_ADDRESS} consoles are watching from this address already`, retryAfter: 10 }
    }
    if (this.clients.size >= MAX_CLIENTS) return { status: 503, reason: 'limit_console', message: `${MAX_CLIENTS} consoles are watching already` }
    return { token }
  }

  /** A socket on EVENTS_PATH whose upgrade passed admit(): it is sent the log and a snapshot at once. */
  attach (sock: ConsoleSocket, remote: string, grant: ConsoleGrant): void {
    const c = new Client(sock, remote, this.perAddress.add(remote), grant.token)
    this.clients.add(c)
    sock.on('error', () => {})
    sock.on('close', () => {
      if (!this.clients.delete(c)) return
      this.perAddress.remove(c.addressKey)
      if (this.clients.size === 0) { clearInterval(this.tickTimer); this.tickTimer = undefined }
    })
    // Nothing is asked of a console: what it sends is ignored (the transport closes one that sends over 4 KiB).
    sock.on('message', () => {})
    this.send(c, JSON.stringify({ type: 'welcome', log: merged(this.ring, this.alerts), actions: PORT_ACTIONS } satisfies ConsoleMessage))
    this.send(c, this.snapshot(true))
    this.tickTimer ??= setInterval(() => { this.tick() }, 1000)
    this.tickTimer.unref()
  }

  /**
   * After a reload: a console whose token is no longer the admin token (rotated,
   * or the API turned off or no longer open) loses its session, as a port loses
   * its revoked token (daemon/reload.ts regrant).
   */
  private recheck (): void {
    const config = this.server.config
    this.checkedConfig = config
    const expected = config.adminToken
    for (const c of [...this.clients]) {
      if (c.ended) continue
      const ok = config.api && (expected === undefined ? this.server.adminOpen : tokenMatches(c.token, expected))
      if (!ok) {
        log.client('info', 'console_closed', c.remote, { remote: c.remote, reason: 'admin_token_changed' })
        this.end(c, CLOSE_POLICY, 'the admin token changed: log in again')
      }
    }
  }

  /** Close with a code, and cut the socket if its peer does not answer the close soon: its slot is freed either way. */
  private end (c: Client, code: number, reason: string): void {
    c.ended = true
    c.sock.close(code, reason)
    setTimeout(() => { c.sock.terminate() }, CLOSE_GRACE_MS).unref()
  }

  /** Send, or close a console that is not reading. */
  private send (c: Client, text: string): void {
    if (c.ended) return
    if (c.sock.bufferedAmount > MAX_BUFFERED) {
      this.slowClosed++
      log.client('warn', 'console_not_reading', c.remote, { remote: c.remote, buffered: c.sock.bufferedAmount })
      c.ended = true
      c.sock.close(CLOSE_NOT_READING, 'console not reading')
      c.sock.terminate()
      return
    }
    c.sock.send(text)
  }

  private broadcast (text: string): void {
    // Every broadcast, not only a tick's: a console whose token a reload revoked gets nothing more (the reload's own log line included).
    if (this.server.config !== this.checkedConfig) this.recheck()
    for (const c of [...this.clients]) this.send(c, text)
  }

  private tick (): void {
    this.ticks++
    this.broadcast(this.snapshot(this.ticks % 2 === 0))
  }

  /** One tick: counters of every network and port, and every other second the fdb. */
  private snapshot (withFdb: boolean): string {
    const s = this.server
    const ports = s.ports()
    const msg: ConsoleMessage = {
      type: 'tick',
      time: Date.now(),
      networks: s.networks.all().map((sw) => networkView(sw)),
      ports: ports.slice(0, TICK_PORTS).map(portView),
      portsTotal: ports.length,
      captures: s.captures.size
    }
    if (withFdb) {
      const rows: FdbJson[] = []
      let total = 0
      for (const sw of s.networks.all()) {
        total += sw.fdb.size
        if (rows.length >= FDB_ROWS) continue
        for (const r of sw.fdb.rows()) {
          if (rows.length >= FDB_ROWS) break
          rows.push({ network: sw.name, vlan: r.vid, mac: formatMac(r.mac), port: r.port.name, age: r.age, static: r.isStatic })
        }
      }
      msg.fdb = { rows, total, limit: FDB_ROWS }
    }
    return JSON.stringify(msg)
  }

  /** A log event: kept in its ring, sent to the consoles within 250 ms (bursts become one message, in order). */
  private record (level: Level, component: string, event: string, fields: Fields | undefined): void {
    const flat: LogEntryJson['fields'] = {}
    if (fields !== undefined) {
      for (const k of Object.keys(fields)) {
        const v = fields[k]
        if (v === undefined) continue
        flat[k] = typeof v === 'string' && v.length > MAX_FIELD ? v.slice(0, MAX_FIELD) + '…' : v
      }
    }
    const entry: LogEntryJson = { seq: ++this.seq, time: new Date().toISOString(), level: level as LogEntryJson['level'], component, event, fields: flat }
    const alert = level === 'warn' || level === 'error'
    keep(alert ? this.alerts : this.ring, entry)
    if (this.clients.size === 0) return
    keep(alert ? this.pendingAlerts : this.pending, entry)
    if (this.flushTimer !== undefined) return
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined
      const entries = merged(this.pending, this.pendingAlerts)
      this.pending = []
      this.pendingAlerts = []
      this.broadcast(JSON.stringify({ type: 'log', entries } satisfies ConsoleMessage))
    }, 250)
    this.flushTimer.unref()
  }
}
