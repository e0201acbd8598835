/**
 * switchctl's command line: which flags each command takes, and the help of
 * one command. A flag another command takes is still unknown here
 * (`switchctl ports --mac M` filters nothing: it is refused), and the
 * message names the command and its help: common/cli.ts parseFlags, the
 * same as switchd's and tap-agent's.
 */

import { parseArgs } from 'node:util'
import { parseFlags, type FlagSpec } from '../common/cli'
import { nearest } from '../common/suggest'
import { CtlError } from './http'

/** Every flag switchctl takes (docs/CONFIGURATION.md lists them; test/unit/docs.test.ts checks it). */
export const OPTIONS = {
  url: { type: 'string' }, 'fleet-file': { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  network: { type: 'string' }, vlan: { type: 'string' }, port: { type: 'string' }, mac: { type: 'string' }, detached: { type: 'boolean' },
  count: { type: 'string' }, bytes: { type: 'string' }, duration: { type: 'string' }, w: { type: 'string', short: 'w' },
  direction: { type: 'string' }, delay: { type: 'string' }, jitter: { type: 'string' }, 'jitter-reorders': { type: 'boolean' },
  loss: { type: 'string' }, burst: { type: 'string' }, duplicate: { type: 'string' }, corrupt: { type: 'string' }, reorder: { type: 'string' },
  rate: { type: 'string' }, backlog: { type: 'string' }, 'queue-frames': { type: 'string' }, 'queue-bytes': { type: 'string' }, seed: { type: 'string' },
  flap: { type: 'string' },
  in: { type: 'string' }, frame: { type: 'string' }, reason: { type: 'string' }, follow: { type: 'boolean', short: 'f' }, interval: { type: 'string' }
} as const satisfies Record<string, FlagSpec>

type Flag = keyof typeof OPTIONS

/** Flags every command takes. */
const GLOBAL: readonly Flag[] = ['url', 'fleet-file', 'token', 'json', 'help']

/** The flags of each command, besides GLOBAL. */
export const COMMAND_FLAGS: Readonly<Record<string, readonly Flag[]>> = {
  networks: [],
  ports: ['network'],
  fdb: ['network', 'vlan', 'port', 'mac'],
  flush: ['network', 'port', 'mac', 'vlan'],
  static: ['mac', 'port', 'vlan', 'network', 'detached'],
  port: ['network'],
  condition: ['network', 'direction', 'delay', 'jitter', 'jitter-reorders', 'loss', 'burst', 'duplicate', 'corrupt', 'reorder', 'rate', 'backlog', 'queue-frames', 'queue-bytes', 'seed'],
  link: ['network', 'direction', 'flap'],
  capture: ['network', 'port', 'vlan', 'count', 'bytes', 'duration', 'w'],
  events: ['count'],
  trace: ['in', 'frame', 'network'],
  leases: ['network'],
  drops: ['network', 'port', 'reason', 'follow', 'interval'],
  drain: [],
  undrain: []
}

/** The command `argv` names: its first positional (parsed loosely, since an unknown flag is reported later). */
function commandOf (argv: string[]): string | undefined {
  const { tokens } = parseArgs({ args: argv, options: OPTIONS, strict: false, allowPositionals: true, tokens: true })
  for (const t of tokens) if (t.kind === 'positional') return t.value
  return undefined
}

export interface CommandLine { cmd: string | undefined, rest: string[], o: Record<string, string | boolean | undefined> }

/** Parse switchctl's argv: the command's flags only; a CtlError (exit 2) names an unknown one and the command's help. */
export function parseCommandLine (argv: string[]): CommandLine {
  const cmd = commandOf(argv)
  const own = cmd === undefined ? undefined : COMMAND_FLAGS[cmd]
  const names = own === undefined ? Object.keys(OPTIONS) as Flag[] : [...GLOBAL, ...own]
  const flags: Record<string, FlagSpec> = {}
  for (const n of names) flags[n] = OPTIONS[n]
  try {
    const { values, positionals } = parseFlags(flags, argv, { prog: 'switchctl', command: own === undefined ? undefined : `switchctl ${cmd ?? ''}`, allowPositionals: true })
    const [first, ...rest] = positionals
    return { cmd: first, rest, o: values }
  } catch (err) {
    throw new CtlError((err as Error).message, 2)
  }
}

/** "unknown command …" with the nearest command. */
export function unknownCommand (cmd: string): CtlError {
  const near = nearest(cmd, Object.keys(COMMAND_FLAGS))
  return new CtlError(`unknown command "${cmd}"${near !== undefined ? ` (did you mean ${near}?)` : ''}; see switchctl --help`, 2)
}

/**
 * The help of one command: its lines of `usage` (a line at two spaces that
 * starts with the command, and the deeper lines under it), then the options
 * every command takes.
 */
export function commandHelp (usage: string, cmd: string): string | undefined {
  const lines = usage.split('\n')
  const mine: string[] = []
  let inside = false
  for (const line of lines) {
    if (/^ {2}\S/.test(line)) inside = line.startsWith(`  ${cmd} `) || line === `  ${cmd}`
    else if (!/^ {3,}\S/.test(line)) inside = false
    if (inside) mine.push(line)
  }
  if (mine.length === 0) return undefined
  const options = usage.slice(usage.indexOf('\nOptions:') + 1)
  return `Usage: switchctl [--url URL[,URL…]] [--token TOKEN] [--json] ${cmd} [options]\n\n${mine.join('\n')}\n\n${options}`
}
