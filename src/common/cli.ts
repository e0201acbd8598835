/**
 * Command-line flags with environment-variable fallbacks and generated --help,
 * shared by switchd and tap-agent. Flags win over the environment, the
 * environment over defaults. Built on node:util parseArgs: no dependency.
 */

import { parseArgs } from 'node:util'
import { TapswitchError, ERR_CONFIG } from './errors'

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

/** Parse argv/env against `specs`; throws TSW_ERR_CONFIG naming the bad flag. */
export function parseCli<S extends Specs> (specs: S, argv: string[], env: NodeJS.ProcessEnv): Values<S> {
  const options: Record<string, { type: 'string' | 'boolean', short?: string }> = {}
  for (const [name, spec] of Object.entries(specs)) {
    options[name] = spec.short === undefined ? { type: spec.type } : { type: spec.type, short: spec.short }
  }
  let parsed
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: false })
  } catch (err) {
    throw new TapswitchError(ERR_CONFIG, (err as Error).message + ' (see --help)')
  }
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
