/**
 * The typed reader every part of the configuration is read with: each method
 * checks one value and, if it is wrong, throws TSW_ERR_CONFIG naming the file
 * and the key ("switchd.json: networks.lab.fdbMax: expected an integer from 1
 * to 10000000"). Also the two ways a list arrives (a JSON list, or a flag's
 * comma-separated text) and reading a JSON file, for the configuration and
 * its tokens file alike.
 */

import { readFileSync } from 'node:fs'
import { TapswitchError, ERR_CONFIG } from '../../../common/errors'
import { VID_MIN, VID_MAX } from '../../../common/vlan'

export type Obj = Record<string, unknown>

export class Reader {
  constructor (readonly source: string) {}

  fail (key: string, expected: string): never {
    throw new TapswitchError(ERR_CONFIG, `${this.source}: ${key}: ${expected}`)
  }

  object (v: unknown, key: string, allowed: readonly string[]): Obj {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(key, 'expected an object')
    for (const k of Object.keys(v)) {
      if (!allowed.includes(k)) this.fail(key === '' ? k : `${key}.${k}`, `unknown key (expected one of ${allowed.join(', ')})`)
    }
    return v as Obj
  }

  int (v: unknown, key: string, min: number, max: number, def: number): number {
    if (v === undefined) return def
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) this.fail(key, `expected an integer from ${min} to ${max}`)
    return v
  }

  num (v: unknown, key: string, min: number, max: number, def: number): number {
    if (v === undefined) return def
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) this.fail(key, `expected a number from ${min} to ${max}`)
    return v
  }

  bool (v: unknown, key: string, def: boolean): boolean {
    if (v === undefined) return def
    if (typeof v !== 'boolean') this.fail(key, 'expected true or false')
    return v
  }

  str (v: unknown, key: string, pattern: RegExp, def: string | undefined, what: string): string | undefined {
    if (v === undefined) return def
    if (typeof v !== 'string' || !pattern.test(v)) this.fail(key, `expected ${what}`)
    return v
  }

  vid (v: unknown, key: string): number {
    return this.int(v, key, VID_MIN, VID_MAX, 0)
  }

  vids (v: unknown, key: string): number[] {
    if (!Array.isArray(v) || v.length === 0) this.fail(key, `expected a non-empty list of VLAN ids ${VID_MIN}-${VID_MAX}`)
    const out = v.map((x, i) => this.vid(x, `${key}[${i}]`))
    return [...new Set(out)].sort((a, b) => a - b)
  }
}

/** A flag's comma-separated list: items trimmed, empty ones left out ("a, b," is [a, b]). */
export function splitList (flag: string): string[] {
  return flag.split(',').map((x) => x.trim()).filter((x) => x !== '')
}

/** A list of strings from the file, or comma-separated from a flag (which wins); each must match `pattern`. */
export function readList (r: Reader, v: unknown, flag: string | undefined, key: string, pattern: RegExp, what: string): readonly string[] {
  const list: unknown = flag !== undefined ? splitList(flag) : v ?? []
  if (!Array.isArray(list)) r.fail(key, `expected a list of ${what}`)
  return Object.freeze(list.map((x: unknown, i: number) => {
    if (typeof x !== 'string' || !pattern.test(x)) r.fail(`${key}[${i}]`, `expected ${what}`)
    return x.toLowerCase()
  }))
}

/**
 * Read and parse a JSON file (the configuration, its tokens file): errors name
 * the file, and `key` (the key that named the file) when there is one.
 */
export function readJsonFile (file: string, key: string | undefined, source: string): unknown {
  const fail = (why: string): never => {
    throw new TapswitchError(ERR_CONFIG, key === undefined ? `${file}: ${why}` : `${source}: ${key}: ${file}: ${why}`)
  }
  let text = ''
  try { text = readFileSync(file, 'utf8') } catch (err) {
    fail(`${(err as NodeJS.ErrnoException).code ?? (err as Error).message}${key === undefined ? ' (cannot read the configuration file)' : ''}`)
  }
  try { return JSON.parse(text) } catch (err) { return fail(`not valid JSON: ${(err as Error).message}`) }
}
