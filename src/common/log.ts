/**
 * Structured logs: one JSON line per event on stderr, stable snake_case event
 * names and flat fields, e.g.
 *   {"time":"…","level":"info","component":"switch","event":"port_up","port":3}
 * Nothing here is called per frame; per-frame tracing goes through guarded
 * `util.debuglog('tapswitch:…')` in the modules that need it.
 *
 * Repeats of one event from one component are rate-limited like OVS's
 * VLOG_RATE_LIMIT: at most `burst` lines per `interval`, then one line saying
 * how many were suppressed.
 */

export type Level = 'debug' | 'info' | 'warn' | 'error'
export type Fields = Record<string, string | number | boolean | undefined | null>

const LEVELS: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 }

let threshold = LEVELS.info
let sink: (line: string) => void = (line) => { process.stderr.write(line + '\n') }
/** Bumped by setLogSink: a new sink starts with fresh rate-limit windows. */
let epoch = 0

/** Only events at `level` or above are written. */
export function setLogLevel (level: Level): void { threshold = LEVELS[level] }

/** Replace where lines go (tests capture them); returns the previous sink. */
export function setLogSink (fn: (line: string) => void): (line: string) => void {
  const prev = sink
  sink = fn
  epoch++
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
    sink(JSON.stringify({ time: new Date().toISOString(), level, component: this.component, event, ...fields }))
  }
}

/** One logger per module, created at module scope. */
export function logger (component: string): Logger { return new Logger(component) }
