/**
 * Command-line flags with environment-variable fallbacks and generated --help,
 * shared by switchd and tap-agent. Flags win over the environment, the
 * environment over defaults. Built on node:util parseArgs: no dependency.
 */

import { parseArgs } from 'node:util'
import { TapswitchError, ERR_CONFIG, ERR_USAGE } from './errors'
import { nearest } from './suggest'

export interface OptionSpec {
  type: 'string' | 'boolean'
  /** Environment variable read when the flag is absent. */
  env?: string
  default?: string | boolean
  short?: string
  /** Placeholder in --help, e.g. HOST:PORT. */
  arg?: string
  help: string
}

export type Specs = Record<string, OptionSpec>
export type Values<S extends Specs> = { [K in keyof S]: S[K]['type'] extends 'boolean' ? boolean : string | undefined }

/** A flag as parseFlags takes it (node:util parseArgs's option shape). */
export interface FlagSpec { type: 'string' | 'boolean', short?: string }

/** Who parses: `prog` (switchd), and for a program with commands the command line's start (`switchctl ports`). */
export interface FlagsContext {
  prog: string
  command?: string
  allowPositionals?: boolean
}

/**
 * Parse `argv` against `flags`, or throw TSW_ERR_USAGE with one line that
 * names the bad argument and the fix: `unknown option --netwrk for
 * \`switchctl ports\` (did you mean --network?); see switchctl ports --help`.
 * Every program's command line goes through here (parseCli for switchd,
 * tap-agent and tapswitch-lab; switchctl per command), so they all read the
 * same. node:util's own messages are not shown: they speak of positional
 * arguments and `--` to someone who mistyped a flag.
 */
export function parseFlags (flags: Record<string, FlagSpec>, argv: string[], how: FlagsContext): { values: Record<string, string | boolean | undefined>, positionals: string[] } {
  const see = `see ${how.command ?? how.prog} --help`
  const fail = (what: string): never => { throw new TapswitchError(ERR_USAGE, `${what}; ${see}`) }
  // Non-strict first, for the tokens: every mistake is then named here, in the order given.
  const { tokens } = parseArgs({ args: argv, options: flags, strict: false, allowPositionals: true, tokens: true })
  for (const t of tokens) {
    if (t.kind === 'positional') {
      if (how.allowPositionals !== true) fail(`unexpected argument "${t.value}" (${how.prog} takes options only)`)
      continue
    }
    if (t.kind !== 'option') continue
    const spec = flags[t.name]
    if (spec === undefined) fail(unknownOption(argv[t.index] ?? t.rawName, t.rawName, Object.keys(flags), how.command))
    else if (spec.type === 'string' && t.value === undefined) fail(`option ${t.rawName} needs a value`)
    // What strict parsing calls ambiguous: `--network --json` is a forgotten value, not a network named --json.
    else if (spec.type === 'string' && t.inlineValue === false && /^-[^\d]/.test(t.value ?? '')) fail(`option ${t.rawName} needs a value (it is followed by ${t.value ?? ''}; write ${t.rawName}=${t.value ?? ''} if that is the value)`)
    else if (spec.type === 'boolean' && t.value !== undefined) fail(`option ${t.rawName} takes no value (${argv[t.index] ?? ''})`)
  }
  let parsed
  try {
    parsed = parseArgs({ args: argv, options: flags, strict: true, allowPositionals: how.allowPositionals === true })
  } catch (err) {
    // Checked above: whatever node:util still refuses, one line of it.
    return fail(((err as Error).message.split('\n')[0] ?? '').replace(/\.$/, ''))
  }
  return { values: parsed.values, positionals: parsed.positionals }
}

/** "unknown option --netwrk (did you mean --network?)"; `-network` (one dash) is taken for the long option it spells. */
function unknownOption (raw: string, rawName: string, known: string[], command: string | undefined): string {
  const oneDash = /^-([^-=][^=]+)/.exec(raw)
  const typed = oneDash !== null ? raw.split('=')[0] as string : rawName
  const name = typed.replace(/^-+/, '')
  const near = known.includes(name) ? name : name.length > 1 ? nearest(name, known.filter((k) => k.length > 1)) : undefined
  return `unknown option ${typed}${command !== undefined ? ` for \`${command}\`` : ''}${near !== undefined ? ` (did you mean --${near}?)` : ''}`
}

/** Parse argv/env against `specs`; throws TSW_ERR_USAGE naming a bad flag (`prog` for "see PROG --help"), TSW_ERR_CONFIG a bad environment value. */
export function parseCli<S extends Specs> (specs: S, argv: string[], env: NodeJS.ProcessEnv, prog = 'this program'): Values<S> {
  const options: Record<string, FlagSpec> = {}
  for (const [name, spec] of Object.entries(specs)) {
    options[name] = spec.short === undefined ? { type: spec.type } : { type: spec.type, short: spec.short }
  }
  const parsed = parseFlags(options, argv, { prog })
  const out: Record<string, string | boolean | undefined> = {}
  for (const [name, spec] of Object.entries(specs)) {
    let v: string | boolean | undefined = parsed.values[name]
    if (v === undefined && spec.env !== undefined && env[spec.env] !== undefined && env[spec.env] !== '') {
      const raw = env[spec.env] as string
      if (spec.type === 'boolean') {
        if (!/^(1|0|true|false|yes|no)$/i.test(raw)) throw new TapswitchError(ERR_CONFIG, `${spec.env}=${raw}: expected true or false`)
        v = /^(1|true|yes)$/i.test(raw)
      } else {
        v = raw
      }
    }
    if (v === undefined) v = spec.default
    if (v === undefined && spec.type === 'boolean') v = false
    out[name] = v
  }
  return out as Values<S>
}

/** Narrowest and widest --help: below 60 the columns stop making sense; above 120 lines get hard to read. */
export const HELP_MIN_WIDTH = 60
export const HELP_MAX_WIDTH = 120

/**
 * Columns --help may use: the terminal's width on a terminal, else $COLUMNS
 * if set (as shells and `man` do), else 80; kept within HELP_MIN_WIDTH and
 * HELP_MAX_WIDTH.
 */
export function helpWidth (out: { isTTY?: boolean, columns?: number } = process.stdout, env: NodeJS.ProcessEnv = process.env): number {
  const fromEnv = Number(env.COLUMNS)
  const cols = out.isTTY === true && (out.columns ?? 0) > 0 ? out.columns as number : Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : 80
  return Math.max(HELP_MIN_WIDTH, Math.min(HELP_MAX_WIDTH, cols))
}

/** Characters as a terminal counts columns (… and µ are one each, not three bytes). */
export function displayWidth (text: string): number { return [...text].length }

/** Joins words that wrapWords keeps on one line (`env NAME`); written as a space. */
export const GLUE = '\u00a0'

/**
 * Words of `text` in lines of at most `width` columns, broken at spaces only:
 * a word longer than the width (a flag, a URL) gets a line of its own, whole.
 * Words joined by GLUE stay together.
 */
export function wrapWords (text: string, width: number): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(/[ \t\n]+/).filter((w) => w !== '')) {
    if (line === '') line = word
    else if (displayWidth(line) + 1 + displayWidth(word) <= width) line += ' ' + word
    else { lines.push(line); line = word }
  }
  if (line !== '') lines.push(line)
  return lines.length === 0 ? [''] : lines.map((l) => l.replaceAll(GLUE, ' '))
}

/**
 * Two columns (a flag or a command, and what it does) within `width`:
 * descriptions wrap aligned under the description column; a left entry wider
 * than that column has its description start on the next line. A left entry
 * wider than the whole width wraps at its spaces (between a command's flags,
 * never inside one), its further lines indented by two.
 */
export function twoColumns (rows: Array<[string, string]>, width: number, indent = 2, maxLeft = 28): string {
  const leftWidth = Math.min(maxLeft, Math.max(0, ...rows.map(([l]) => displayWidth(l)).filter((n) => n <= maxLeft)))
  const col = indent + leftWidth + 2
  const out: string[] = []
  for (const [left, right] of rows) {
    const leftLines = displayWidth(left) <= width - indent ? [left] : wrapLeft(left, width - indent)
    const desc = right === '' ? [] : wrapWords(right, Math.max(20, width - col))
    const last = leftLines[leftLines.length - 1] as string
    for (const l of leftLines.slice(0, -1)) out.push(' '.repeat(indent) + l)
    if (desc.length > 0 && displayWidth(last) <= leftWidth && leftLines.length === 1) {
      out.push(' '.repeat(indent) + last + ' '.repeat(col - indent - displayWidth(last)) + (desc[0] as string))
      desc.shift()
    } else {
      out.push(' '.repeat(indent) + last)
    }
    // A word too long for the column (a QEMU option string) moves left rather than past the width.
    for (const d of desc) out.push(' '.repeat(Math.max(indent, Math.min(col, width - displayWidth(d)))) + d)
  }
  return out.join('\n') + '\n'
}

/**
 * A command synopsis wider than `width`, broken between its words outside
 * brackets (`[--loss 1% | --burst P%,R%]` stays whole, a flag stays with its
 * value), continued two columns further in.
 */
function wrapLeft (text: string, width: number): string[] {
  const words: string[] = []
  let depth = 0
  let word = ''
  for (const ch of text) {
    if (ch === '[') depth++
    if (ch === ']') depth = Math.max(0, depth - 1)
    if (ch === ' ' && depth === 0) { words.push(word); word = ''; continue }
    word += ch
  }
  words.push(word)
  // A value (PORT, SPEC) goes with the flag before it.
  const groups: string[] = []
  for (const w of words.filter((x) => x !== '')) {
    const prev = groups[groups.length - 1]
    if (prev !== undefined && /^-/.test(prev) && !prev.includes(' ') && !/^[[-]/.test(w)) groups[groups.length - 1] = `${prev} ${w}`
    else groups.push(w)
  }
  const lines: string[] = []
  let line = ''
  for (const g of groups) {
    const room = lines.length === 0 ? width : width - 2
    if (line === '') line = g
    else if (displayWidth(line) + 1 + displayWidth(g) <= room) line += ' ' + g
    else { lines.push(line); line = g }
  }
  if (line !== '') lines.push(line)
  return lines.map((l, i) => i === 0 ? l : '  ' + l)
}

/**
 * Free text for --help within `width`: a paragraph of lines that start at the
 * margin is filled again; an indented line (a table, an example) is kept as
 * it is if it fits, else wrapped under its own indentation.
 */
export function reflow (text: string, width: number): string {
  const out: string[] = []
  let para: string[] = []
  const flush = (): void => { if (para.length > 0) out.push(...wrapWords(para.join(' '), width)); para = [] }
  for (const line of text.split('\n')) {
    if (line.trim() === '') { flush(); out.push(''); continue }
    const lead = /^\s*/.exec(line)?.[0] ?? ''
    if (lead === '') { para.push(line); continue }
    flush()
    if (displayWidth(line) <= width) { out.push(line); continue }
    out.push(...wrapWords(line, width - lead.length).map((l) => lead + l))
  }
  flush()
  return out.join('\n')
}

/** --help text within `width` columns: usage line, then one entry per flag with its env variable and default. */
export function helpText (usage: string, about: string, specs: Specs, width = helpWidth()): string {
  const rows = Object.entries(specs).map(([name, s]): [string, string] => {
    const flag = `${s.short !== undefined ? `-${s.short}, ` : '    '}--${name}${s.arg !== undefined ? ' ' + s.arg : ''}`
    const extra: string[] = []
    if (s.env !== undefined) extra.push(`env${GLUE}${s.env}`)
    // An empty default (e.g. --tap's: the kernel picks) is not worth a word: its help says what it means.
    if (s.default !== undefined && s.default !== false && s.default !== '') extra.push(`default${GLUE}${String(s.default)}`)
    return [flag, s.help + (extra.length > 0 ? ` [${extra.join(', ')}]` : '')]
  })
  return `${reflow(`Usage: ${usage}`, width)}\n\n${reflow(about, width)}\n\nOptions:\n${twoColumns(rows, width)}`
}

/**
 * An integer flag within [min, max], written in decimal digits; throws
 * TSW_ERR_CONFIG naming the flag. Number() alone would take 0x3e8, 1e3 and
 * 0b1111101000 for 1000: a typo the operator should hear about, not a value.
 */
export function intOption (name: string, value: string | undefined, min: number, max: number): number {
  const n = Number(value)
  if (value === undefined || !/^\s*-?\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new TapswitchError(ERR_CONFIG, `--${name} ${String(value)}: expected an integer from ${min} to ${max}`)
  }
  return n === 0 ? 0 : n // '-0' is 0, not Number's -0 (which Object.is and a strict assert tell apart)
}

/** A number flag (may be fractional) within [min, max]. */
export function numberOption (name: string, value: string | undefined, min: number, max: number): number {
  const n = Number(value)
  if (value === undefined || value.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    throw new TapswitchError(ERR_CONFIG, `--${name} ${String(value)}: expected a number from ${min} to ${max}`)
  }
  return n
}

/** `host:port` or `[v6]:port`; port 0 means any free port. */
export function hostPortOption (name: string, value: string | undefined): { host: string, port: number } {
  const m = value === undefined ? null : /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(value)
  if (m === null) throw new TapswitchError(ERR_CONFIG, `--${name} ${String(value)}: expected HOST:PORT, e.g. 127.0.0.1:8080`)
  return { host: (m[1] ?? m[2]) as string, port: intOption(name, m[3], 0, 65535) }
}

/** Print `prog: message` and exit non-zero: startup errors name the cause and the fix. */
export function die (prog: string, message: string, code = 1): never {
  process.stderr.write(`${prog}: ${message}\n`)
  process.exit(code)
}

/** The URL of a request's target, or undefined if it is not one (e.g. `http://[`): never throws. */
export function requestUrl (target: string | undefined): URL | undefined {
  try { return new URL(target ?? '/', 'http://x') } catch { return undefined }
}
