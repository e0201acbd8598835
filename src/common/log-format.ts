/**
 * How a log line looks: JSON for a file, a pipe or journald (one object per
 * line, for jq and log shippers), or a line a person reads on a terminal:
 *
 *   2026-12-06 08:51:27.123 WARN  uplink: uplink_error url=ws://127.0.0.1:8080/ error=ECONNREFUSED hint="…"
 *
 * `auto` (the default of --log-format) picks text when the stream the lines
 * go to is a terminal, JSON otherwise, so `switchd 2>log` and systemd keep
 * JSON. Colour only in text on a terminal, and never with NO_COLOR set
 * (https://no-color.org).
 *
 * Field values can hold what a client sent (a port name in a hello, a close
 * reason, an Origin header): in both formats a control character, a C1
 * control and a bidirectional override are written as \uXXXX, so nothing a
 * client sends can move the operator's cursor, recolour their terminal or
 * hide part of a line (JSON.stringify escapes only U+0000-U+001F).
 */

export type Level = 'debug' | 'info' | 'warn' | 'error'
export type Fields = Record<string, string | number | boolean | undefined | null>
export type LogFormat = 'text' | 'json'
export type LogFormatChoice = LogFormat | 'auto'

export const LOG_FORMAT_CHOICES: readonly LogFormatChoice[] = ['auto', 'text', 'json']

export function isLogFormatChoice (text: string): text is LogFormatChoice {
  return (LOG_FORMAT_CHOICES as readonly string[]).includes(text)
}

/** The format for `choice`: auto means text on a terminal, JSON anywhere else. */
export function chooseLogFormat (choice: LogFormatChoice, isTTY: boolean): LogFormat {
  return choice === 'auto' ? (isTTY ? 'text' : 'json') : choice
}

/** Colour: text on a terminal, unless NO_COLOR is set to anything but the empty string. */
export function chooseLogColor (format: LogFormat, isTTY: boolean, env: NodeJS.ProcessEnv): boolean {
  return format === 'text' && isTTY && (env.NO_COLOR === undefined || env.NO_COLOR === '')
}

/** C0 and C1 controls, DEL, line and paragraph separators, and the bidirectional marks and overrides. */
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

/** `text` with every unsafe character written as \uXXXX: for any line printed to a terminal that holds text someone else chose. */
export function escapeUnsafe (text: string): string {
  return text.replace(UNSAFE, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'))
}

/** One JSON object: time, level, component, event, then the fields (undefined ones left out). */
export function formatJson (time: Date, level: Level, component: string, event: string, fields: Fields | undefined): string {
  // JSON.stringify has escaped U+0000-U+001F already; what remains unsafe is escaped the same way, and stays valid JSON.
  return escapeUnsafe(JSON.stringify({ time: time.toISOString(), level, component, event, ...fields }))
}

/** Characters a value may have and still be written bare: no space, quote, `=` or anything unsafe. */
const BARE = /^[A-Za-z0-9_.:/@+,%[\]()#~*-]+$/u

function textValue (v: string | number | boolean | null): string {
  if (typeof v !== 'string') return String(v)
  return BARE.test(v) ? v : escapeUnsafe(JSON.stringify(v))
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0')

/** Local time, to the millisecond: what a person at this machine's clock reads. */
function localTime (t: Date): string {
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}.${pad(t.getMilliseconds(), 3)}`
}

const LEVEL_COLOR: Record<Level, string> = { debug: '2', info: '36', warn: '33', error: '1;31' }
const paint = (on: boolean, sgr: string, text: string): string => on ? `\x1b[${sgr}m${text}\x1b[0m` : text

/** One line for a person: time, level, component: event, then key=value for each field (strings quoted when they must be). */
export function formatText (time: Date, level: Level, component: string, event: string, fields: Fields | undefined, color = false): string {
  let line = `${localTime(time)} ${paint(color, LEVEL_COLOR[level], level.toUpperCase().padEnd(5))} ${escapeUnsafe(component)}: ${paint(color, '1', escapeUnsafe(event))}`
  if (fields !== undefined) {
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue
      line += ` ${paint(color, '2', escapeUnsafe(k) + '=')}${textValue(v)}`
    }
  }
  return line
}

const LEVELS = new Set(['debug', 'info', 'warn', 'error'])

/**
 * A JSON log line (as switchd and tap-agent write to a pipe) as text; a line
 * that is not one (a startup error, a stack trace) comes back as it is, its
 * unsafe characters escaped. For programs that show their children's logs.
 */
export function textFromJsonLine (line: string, color = false): string {
  let rec: unknown
  try { rec = JSON.parse(line) } catch { return escapeUnsafe(line) }
  if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) return escapeUnsafe(line)
  const { time, level, component, event, ...rest } = rec as Record<string, unknown>
  if (typeof level !== 'string' || !LEVELS.has(level) || typeof component !== 'string' || typeof event !== 'string') return escapeUnsafe(line)
  const t = new Date(typeof time === 'string' ? time : NaN)
  const fields: Fields = {}
  for (const [k, v] of Object.entries(rest)) {
    fields[k] = v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : JSON.stringify(v)
  }
  return formatText(Number.isNaN(t.getTime()) ? new Date() : t, level as Level, component, event, fields, color)
}
