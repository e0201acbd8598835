/**
 * Structured logs: one line per event on stderr, stable snake_case event
 * names and flat fields, e.g.
 *   {"time":"…","level":"info","component":"switch","event":"port_up","port":3}
 * or, for a person at a terminal (--log-format, log-format.ts),
 *   2026-12-06 08:51:27.123 INFO  switch: port_up port=3
 * Nothing here is called per frame; per-frame tracing goes through guarded
 * `util.debuglog('tapswitch:…')` in the modules that need it.
 *
 * Repeats of one event from one component are rate-limited like OVS's
 * VLOG_RATE_LIMIT: at most `burst` lines per `interval`, then one line saying
 * how many were suppressed.
 *
 * Lines a client causes at will, by connecting and leaving (port_up,
 * port_down, connection_rejected, …), are limited per client address
 * instead (`Logger.client`): each address has its own budget, so one address
 * cannot flood the log nor, by using up a shared budget, hide what other
 * addresses do. A budget for all clients together is the backstop against
 * many addresses at once.
 */

import { clientKeyOf } from './address'
import { TapswitchError, ERR_CONFIG } from './errors'
import {
  formatJson, formatText, chooseLogFormat, chooseLogColor, isLogFormatChoice, type Level, type Fields, type LogFormat
} from './log-format'

export type { Level, Fields, LogFormat } from './log-format'

const LEVELS: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 }

let threshold = LEVELS.info
let sink: (line: string) => void = (line) => { process.stderr.write(line + '\n') }
/** Bumped by setLogSink: a new sink starts with fresh rate-limit windows. */
let epoch = 0

/** Only events at `level` or above are written. */
export function setLogLevel (level: Level): void { threshold = LEVELS[level] }

let format: LogFormat = 'json'
let color = false

/** Write lines as JSON or as text (with ANSI colours if `colour`); the budgets and the observers do not care which. */
export function setLogFormat (f: LogFormat, colour = false): void {
  format = f
  color = f === 'text' && colour
}

/**
 * --log-level and --log-format as a program's flags give them: the format
 * `auto` looks at whether `stream` (where the lines go) is a terminal.
 * Throws TSW_ERR_CONFIG naming the flag and what it takes.
 */
export function configureLog (level: string, formatChoice: string, stream: { isTTY?: boolean } = process.stderr, env: NodeJS.ProcessEnv = process.env): void {
  if (!isLevel(level)) throw new TapswitchError(ERR_CONFIG, `--log-level ${level}: expected debug, info, warn or error`)
  if (!isLogFormatChoice(formatChoice)) throw new TapswitchError(ERR_CONFIG, `--log-format ${formatChoice}: expected auto, text or json`)
  const tty = stream.isTTY === true
  const f = chooseLogFormat(formatChoice, tty)
  setLogLevel(level)
  setLogFormat(f, chooseLogColor(f, tty, env))
}

/** Replace where lines go (tests capture them); returns the previous sink. */
export function setLogSink (fn: (line: string) => void): (line: string) => void {
  const prev = sink
  sink = fn
  epoch++
  clientBudgets = new ClientBudgets()
  return prev
}

/** Sees every event at info or above, whatever the threshold (the web console's event log). */
export type LogObserver = (level: Level, component: string, event: string, fields: Fields | undefined) => void
const observers = new Set<LogObserver>()

/** Watch events at info and above; returns a function that stops watching. Nothing is built for an observer: it gets the fields as logged. */
export function observeLog (fn: LogObserver): () => void {
  observers.add(fn)
  return () => { observers.delete(fn) }
}

export function isLevel (text: string): text is Level {
  return Object.prototype.hasOwnProperty.call(LEVELS, text)
}

interface Limit { windowStart: number, count: number, suppressed: number }

/** Per-connection lines one client address may cause per CLIENT_WINDOW_MS. */
export const CLIENT_BURST = 60
/** Per-connection lines all client addresses together may cause per CLIENT_WINDOW_MS. */
export const CLIENTS_BURST = 1200
export const CLIENT_WINDOW_MS = 10_000
/** Addresses whose budgets are remembered; beyond, the one whose window is oldest is forgotten. */
export const MAX_CLIENT_BUDGETS = 4096

/** Where a budget's suppressed lines are reported: one line per address and window. */
type Report = (client: string, count: number) => void

/**
 * Budgets of lines per client address (a window of CLIENT_WINDOW_MS, as
 * Logger.limited), in a bounded map: memory stays fixed however many
 * addresses come. The map is in window order (an entry moves to the end
 * when its window restarts), so the first entry is the one to forget.
 */
export class ClientBudgets {
  private readonly budgets = new Map<string, Limit>()
  private readonly all: Limit = { windowStart: 0, count: 0, suppressed: 0 }

  constructor (private readonly burst = CLIENT_BURST, private readonly total = CLIENTS_BURST, private readonly windowMs = CLIENT_WINDOW_MS,
    private readonly max = MAX_CLIENT_BUDGETS) {}

  /** Whether one more line for `client` (an addressKey) may be written at `now` (ms). */
  take (client: string, now: number, report: Report): boolean {
    let l = this.budgets.get(client)
    if (l !== undefined && now - l.windowStart >= this.windowMs) {
      if (l.suppressed > 0) report(client, l.suppressed)
      this.budgets.delete(client)
      l = undefined
    }
    if (l === undefined) {
      if (this.budgets.size >= this.max) this.forgetOldest(report)
      l = { windowStart: now, count: 0, suppressed: 0 }
      this.budgets.set(client, l)
    }
    if (l.count >= this.burst) { l.suppressed++; return false }
    const all = this.all
    if (now - all.windowStart >= this.windowMs) {
      if (all.suppressed > 0) report('*', all.suppressed)
      all.windowStart = now; all.count = 0; all.suppressed = 0
    }
    if (all.count >= this.total) { all.suppressed++; return false }
    l.count++
    all.count++
    return true
  }

  /** Addresses remembered. */
  get size (): number { return this.budgets.size }

  private forgetOldest (report: Report): void {
    for (const [client, l] of this.budgets) {
      if (l.suppressed > 0) report(client, l.suppressed)
      this.budgets.delete(client)
      return
    }
  }
}

let clientBudgets = new ClientBudgets()

export class Logger {
  private limits = new Map<string, Limit>()
  private epoch = epoch
  constructor (readonly component: string, private readonly burst = 10, private readonly intervalMs = 10_000) {}

  /** Whether `level` is written: guard building fields that cost something. */
  isEnabled (level: Level): boolean { return LEVELS[level] >= threshold }

  debug (event: string, fields?: Fields): void { this.write('debug', event, fields) }
  info (event: string, fields?: Fields): void { this.write('info', event, fields) }
  warn (event: string, fields?: Fields): void { this.write('warn', event, fields) }
  error (event: string, fields?: Fields): void { this.write('error', event, fields) }

  /**
   * A line a client at `address` caused (its connection, its port, its
   * refusal): written while that address's budget lasts (ClientBudgets), so
   * a client that connects and leaves at any rate writes a bounded number of
   * lines, and then one saying how many it suppressed.
   */
  client (level: Level, event: string, address: string | undefined, fields?: Fields): void {
    this.forClient(level, event, clientKeyOf(address ?? '?'), fields)
  }

  /**
   * The same for a client known by its key (a port's Port.clientKey: what
   * the switch core has of a WebSocket port's address), so that what its
   * frames cause (a loop, a port-security violation) spends the same budget
   * as what its connections do.
   */
  forClient (level: Level, event: string, key: string, fields?: Fields): void {
    if (LEVELS[level] < threshold && (observers.size === 0 || LEVELS[level] < LEVELS.info)) return
    if (!clientBudgets.take(key, Date.now(), (client, count) => {
      // One line per address and window (info: many addresses must not fill the console's ring of warnings); all of them together: warn.
      this.write(client === '*' ? 'warn' : 'info', 'log_suppressed', { remote: client.replace(/^address /, ''), count, window_seconds: CLIENT_WINDOW_MS / 1000 })
    })) return
    this.write(level, event, fields)
  }

  /** Like `write`, but at most `burst` lines of this event per interval. */
  limited (level: Level, event: string, fields?: Fields): void {
    if (LEVELS[level] < threshold && (observers.size === 0 || LEVELS[level] < LEVELS.info)) return
    if (this.epoch !== epoch) { this.epoch = epoch; this.limits = new Map() }
    const now = Date.now()
    let l = this.limits.get(event)
    if (l === undefined) { l = { windowStart: now, count: 0, suppressed: 0 }; this.limits.set(event, l) }
    if (now - l.windowStart >= this.intervalMs) {
      if (l.suppressed > 0) this.write(level, 'log_suppressed', { suppressed_event: event, count: l.suppressed })
      l.windowStart = now; l.count = 0; l.suppressed = 0
    }
    if (l.count >= this.burst) { l.suppressed++; return }
    l.count++
    this.write(level, event, fields)
  }

  write (level: Level, event: string, fields?: Fields): void {
    if (observers.size > 0 && LEVELS[level] >= LEVELS.info) for (const fn of observers) fn(level, this.component, event, fields)
    if (LEVELS[level] < threshold) return
    const now = new Date()
    sink(format === 'text' ? formatText(now, level, this.component, event, fields, color) : formatJson(now, level, this.component, event, fields))
  }
}

/** One logger per module, created at module scope. */
export function logger (component: string): Logger { return new Logger(component) }
