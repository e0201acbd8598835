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
  return { values: parsed.values as Record<string, string | boolean | undefined>, positionals: parsed.positionals }
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

/** --help text: usage line, then one line per flag with its env variable and default. */
export function helpText (usage: string, about: string, specs: Specs): string {
  const rows = Object.entries(specs).map(([name, s]) => {
    const flag = `${s.short !== undefined ? `-${s.short}, ` : '    '}--${name}${s.arg !== undefined ? ' ' + s.arg : ''}`
    const extra: string[] = []
    if (s.env !== undefined) extra.push(`env ${s.env}`)
    if (s.default !== undefined && s.default !== false) extra.push(`default ${String(s.default)}`)
    return [flag, s.help + (extra.length > 0 ? ` [${extra.join(', ')}]` : '')]
  })
  const width = Math.max(...rows.map(([f]) => (f as string).length)) + 2
  return `Usage: ${usage}\n\n${about}\n\nOptions:\n` + rows.map(([f, h]) => `  ${(f as string).padEnd(width)}${h as string}`).join('\n') + '\n'
}

/** An integer flag within [min, max]; throws TSW_ERR_CONFIG naming the flag. */
export function intOption (name: string, value: string | undefined, min: number, max: number): number {
  const n = Number(value)
  if (value === undefined || value.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    throw new TapswitchError(ERR_CONFIG, `--${name} ${String(value)}: expected an integer from ${min} to ${max}`)
  }
  return n
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
