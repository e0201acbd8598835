/**
 * switchctl over a fleet: which replicas (`--url A,B,C`, or `--fleet-file FILE`
 * with one URL a line), and the rows they answered merged into one table with
 * a REPLICA column. Pure: the parsing and the merge take text and answers, and
 * fleet-ask.ts does the asking. Only the lists (networks, ports, fdb) merge; a
 * change (flush, port disable, ...) acts on one replica, so several URLs there
 * are refused with the fix.
 *
 * A replica is not trusted to be well-behaved: its name is printed only if it
 * is a plain name (else its host:port), and rows it answered that switchctl
 * cannot read make that replica's error, not a crash that hides the others.
 */

import { CtlError, checkUrl, hostPort } from './http'
import { escapeUnsafe } from '../common/log-format'

/** Most replicas asked at once: a fleet file of 10,000 URLs is a mistake, not a fleet, and each costs a socket. */
export const MAX_REPLICAS = 256
/** Largest fleet file read (a URL a line: far beyond MAX_REPLICAS lines). */
export const MAX_FLEET_FILE = 1024 * 1024

/** The commands whose answers merge. */
export const FLEET_COMMANDS: ReadonlySet<string> = new Set(['networks', 'ports', 'fdb'])

/** One replica to ask: its API's URL, and where it was given (for a message). */
export interface ReplicaUrl { url: string, from: string }

/** `--url A,B,C` (or SWITCHCTL_URL=A,B,C) as replicas; one URL gives one. Each is checked as --url is. */
export function splitUrls (raw: string, source: string): ReplicaUrl[] {
  const parts = raw.split(',').map((s) => s.trim())
  if (parts.length > MAX_REPLICAS) throw tooMany(`${source} gives`, parts.length)
  if (parts.length > 1 && parts.some((p) => p === '')) throw new CtlError(`${source} ${raw}: an empty URL in the list: write --url http://r1:8080,http://r2:8080`, 2)
  return unique(parts.map((p, i) => ({ url: checkUrl(p, source), from: parts.length > 1 ? `${source} (URL ${i + 1})` : source })), source)
}

/**
 * A fleet file's replicas: one http(s):// URL a line; blank lines and `#`
 * comments (a whole line, or after a URL and a space) are skipped. Every bad
 * line is named with its number and the fix.
 */
export function parseFleetFile (text: string, file: string): ReplicaUrl[] {
  const out: ReplicaUrl[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).replace(/\s#.*$/, '').trim()
    if (line === '' || line.startsWith('#')) continue
    if (out.length === MAX_REPLICAS) throw tooMany(`${file} lists`, countUrls(lines))
    if (/\s/.test(line)) throw new CtlError(`${file}:${i + 1}: one URL a line, e.g. http://r1:8080 (a comment starts with #)`, 2)
    let url: string
    try { url = checkUrl(line, '--url') } catch (err) { throw new CtlError(`${file}:${i + 1}: ${(err as Error).message.replace(/^--url /, '')}`, 2) }
    out.push({ url, from: `${file}:${i + 1}` })
  }
  if (out.length === 0) throw new CtlError(`${file} lists no URL: write one http://HOST:PORT a line`, 2)
  return unique(out, file)
}

function countUrls (lines: string[]): number {
  return lines.filter((l) => { const t = l.trim(); return t !== '' && !t.startsWith('#') }).length
}

function tooMany (what: string, n: number): CtlError {
  return new CtlError(`${what} ${n} URLs; switchctl asks at most ${MAX_REPLICAS} replicas at once: split the list`, 2)
}

/** The same replica twice would print its rows twice. */
function unique (list: ReplicaUrl[], source: string): ReplicaUrl[] {
  if (list.length > MAX_REPLICAS) throw tooMany(`${source} gives`, list.length)
  const seen = new Map<string, string>()
  for (const r of list) {
    const key = new URL(r.url).href
    const before = seen.get(key)
    if (before !== undefined) throw new CtlError(`${r.from}: ${r.url} is listed twice (also ${before}): list each replica once`, 2)
    seen.set(key, r.from)
  }
  return list
}

/** A replica's name as switchd reports it (GET /api/v1/status), printed only if it is a plain name; else the URL's host:port. */
export function replicaName (reported: unknown, url: string): string {
  if (typeof reported === 'string' && /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(reported)) return reported
  return hostPort(new URL(url))
}

/** What one replica answered: its rows, or why there are none. */
export type Answer = { url: string, replica: string, rows: unknown } | { url: string, replica: string, error: string }

/** A table's columns and how a row of the API's JSON fills them (main.ts has one per list). */
export interface Columns<T> {
  headers: string[]
  row: (x: T) => Array<string | number>
  /** Lines printed after the table (a warning about some rows), or ''. */
  notes?: (rows: T[]) => string
}

/** Columns<T> in one call, so each list's headers stay beside its case in main.ts. */
export function columns<T> (headers: string[], row: (x: T) => Array<string | number>, notes?: (rows: T[]) => string): Columns<T> {
  return { headers, row, notes }
}

export interface Merged {
  headers: string[]
  rows: Array<Array<string | number>>
  /** --json: every row as {replica, ...row}. */
  json: Array<Record<string, unknown>>
  notes: string
  /** One line per replica that did not answer, or answered what switchctl cannot read. */
  errors: string[]
  /** Two URLs that reached the same replica (a balancer's address beside the replicas'): its rows are there twice. */
  warnings: string[]
}

/** Every replica's rows under one header with REPLICA first, in the order the replicas were given. */
export function merge<T> (answers: readonly Answer[], columns: Columns<T>): Merged {
  const out: Merged = { headers: ['REPLICA', ...columns.headers], rows: [], json: [], notes: '', errors: [], warnings: [] }
  const urlOf = new Map<string, string>()
  for (const a of answers) {
    const twin = urlOf.get(a.replica)
    if (twin !== undefined) out.warnings.push(`${twin} and ${a.url} both answer as replica ${a.replica}: its rows are listed twice (list each replica's own address, not the balancer's)`)
    urlOf.set(a.replica, a.url)
    const who = a.replica === hostPort(new URL(a.url)) ? a.url : `${a.replica} (${a.url})`
    if ('error' in a) { out.errors.push(`${who}: ${a.error}`); continue }
    if (!Array.isArray(a.rows)) { out.errors.push(`${who}: answered ${kind(a.rows)} where a list was expected: is it switchd?`); continue }
    const rows = a.rows as unknown[]
    let cells: Array<Array<string | number>>
    let notes: string
    try {
      // All or nothing per replica: half of a replica's rows would look like all of them.
      // A cell is text the replica chose: printed to a terminal, never as controls.
      cells = rows.map((r) => { if (!isObject(r)) throw new Error(`a row that is ${kind(r)}`); return [a.replica, ...columns.row(r as T).map((c) => typeof c === 'string' ? escapeUnsafe(c) : c)] })
      notes = columns.notes?.(rows as T[]) ?? ''
    } catch (err) {
      out.errors.push(`${who}: answered rows switchctl cannot read (${(err as Error).message}): is it switchd, and of this version?`)
      continue
    }
    out.rows.push(...cells)
    // REPLICA first, and a row's own "replica" field cannot stand in for it.
    for (const r of rows) out.json.push(Object.assign({ replica: a.replica }, r, { replica: a.replica }))
    if (notes !== '') out.notes += notes.split('\n').filter((l) => l !== '').map((l) => `${a.replica}: ${escapeUnsafe(l)}\n`).join('')
  }
  return out
}

function isObject (v: unknown): boolean { return typeof v === 'object' && v !== null && !Array.isArray(v) }

function kind (v: unknown): string { return v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'an object' : `a ${typeof v}` }

/** "several URLs fit only the lists": the error for any other command. */
export function notAFleetCommand (cmd: string, n: number): CtlError {
  return new CtlError(`switchctl ${cmd} acts on one replica, and ${n} were given: give one URL (--url http://HOST:PORT, no --fleet-file); ` +
    `several URLs fit ${[...FLEET_COMMANDS].join(', ')} only`, 2)
}
