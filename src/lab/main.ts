/**
 * tapswitch-lab: the demo lab on one machine (needs root for namespaces).
 *   tapswitch-lab demo   start 3 hosts, ping every pair (IPv4 and IPv6), clean up
 *   tapswitch-lab up     start the hosts and keep them until Ctrl-C (or the terminal closes)
 *   tapswitch-lab clean  remove what a lab that died left (from its state file)
 */

import * as fs from 'node:fs'
import * as path from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { Lab, type LabHost } from './lab'
import { textFromJsonLine, chooseLogColor } from '../common/log-format'
import { cleanLabs } from './clean'
import { parseCli, helpText, intOption, die, type Specs } from '../common/cli'
import { labStateDir, labStateFile, writeLabState, describeProcess, type LabState, type LabProcess } from '../common/lab-state'

const SPECS = {
  hosts: { type: 'string', default: '3', arg: 'N', help: 'number of hosts (namespaces), 2 to 8' },
  verbose: { type: 'boolean', short: 'v', help: 'print switchd and agent logs' },
  help: { type: 'boolean', short: 'h', help: 'show this help' }
} satisfies Specs

const ABOUT = `Commands:
  demo   start switchd and N namespaces with a tap-agent each, ping every pair
         over IPv4 and IPv6 through the switch, then remove everything
  up     start the same lab and keep it until Ctrl-C (or its terminal closes),
         for trying things by hand; switchctl finds it by itself
  clean  remove what a lab that died left behind (killed, crashed): its
         processes and namespaces, from its state file

Needs root (network namespaces, TAP devices), ip and ping. The state files are
in /run/tapswitch-lab (TAPSWITCH_LAB_STATE_DIR).`

function summary (out: string): string {
  const sent = /(\d+) packets transmitted, (\d+) received/.exec(out)
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(out)
  return `${sent?.[2] ?? '?'}/${sent?.[1] ?? '?'} replies${rtt !== null ? `, rtt avg ${rtt[1] ?? '?'} ms` : ''}`
}

/** switchd's and the agents' lines (JSON: the lab reads them) as text for a person at a terminal, JSON for a pipe. */
function childLog (line: string): string {
  const tty = process.stdout.isTTY === true
  if (!tty) return line
  const i = line.indexOf(': ')
  return i < 0 ? textFromJsonLine(line) : `${line.slice(0, i)}: ${textFromJsonLine(line.slice(i + 2), chooseLogColor('text', tty, process.env))}`
}

/** How the user ran us: `node bin/tapswitch-lab.js` from the checkout, else `tapswitch-lab`. */
function invocation (): string {
  const script = process.argv[1] ?? ''
  const rel = path.relative(process.cwd(), script)
  return script !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? `node ${rel}` : 'tapswitch-lab'
}

/** Output after the terminal is gone (SIGHUP) fails with EIO or EPIPE: the clean-up must not die of it. */
function ignoreClosedOutput (): void {
  for (const s of [process.stdout, process.stderr]) s.on('error', () => {})
}

async function clean (): Promise<void> {
  const dir = labStateDir()
  const r = await cleanLabs(dir)
  for (const l of r.done) process.stdout.write(`${l}\n`)
  for (const f of r.running) process.stdout.write(`left alone: the lab of pid ${f.state.lab.pid} is running (${f.file}); stop it with Ctrl-C in its terminal, or kill ${f.state.lab.pid}\n`)
  for (const l of r.failed) process.stderr.write(`tapswitch-lab: clean: ${l}\n`)
  if (r.done.length === 0 && r.running.length === 0 && r.failed.length === 0) process.stdout.write(`nothing to clean: no lab's state file in ${dir}\n`)
  process.exitCode = r.failed.length === 0 ? 0 : 1
}

type Command = 'demo' | 'up' | 'clean'

/** The command and its options; undefined after printing the help. Exits 2 on a bad command line. */
function parseCommand (argv: string[]): { command: Command, hosts: number, verbose: boolean } | undefined {
  const command = argv[0]
  try {
    const o = parseCli(SPECS, argv.slice(1), process.env, 'tapswitch-lab')
    if (o.help || command === undefined || command === '--help' || command === '-h') {
      process.stdout.write(helpText('tapswitch-lab demo|up|clean [options]', ABOUT, SPECS))
      return undefined
    }
    if (command !== 'demo' && command !== 'up' && command !== 'clean') throw new Error(`unknown command "${command}": expected demo, up or clean`)
    return { command, hosts: intOption('hosts', o.hosts, 2, 8), verbose: o.verbose }
  } catch (err) {
    die('tapswitch-lab', (err as Error).message, 2)
  }
}

export async function main (argv: string[]): Promise<void> {
  const args = parseCommand(argv)
  if (args === undefined) return
  const { command, hosts } = args
  if (process.getuid?.() !== 0) die('tapswitch-lab', 'needs root for network namespaces and TAP devices; run it with sudo')
  ignoreClosedOutput()
  if (command === 'clean') { await clean(); return }

  const rec = recordedLab(command, hosts, args.verbose)
  const { lab, state } = rec
  let stopping = false
  const cleanup = async (): Promise<void> => {
    if (stopping) return
    stopping = true
    await lab.stop()
    const file = rec.file()
    if (file !== undefined) fs.rmSync(file, { force: true })
    process.stdout.write('cleaned up: agents and switchd stopped, namespaces and TAPs removed\n')
  }
  // SIGHUP: the terminal closed. The agents in its process group may be gone already; switchd, the namespaces and the file are not.
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    process.on(signal, () => { void cleanup().then(() => process.exit(code)) })
  }

  let failed = 0
  try {
    process.stdout.write(`starting switchd and ${hosts} hosts...\n`)
    await lab.start()
    state.url = lab.url.replace('ws:', 'http:')
    rec.save()
    process.stdout.write(`switchd listening on ${lab.url}\n`)
    for (const h of lab.hosts) {
      process.stdout.write(`  host-${h.label}  netns ${h.ns.padEnd(12)} tap ${h.tap.padEnd(11)} ${h.mac}  ${h.ipv4.padEnd(11)} ${h.ipv6}\n`)
    }
    if (command === 'up') {
      const [a, b] = lab.hosts as [LabHost, LabHost]
      process.stdout.write(`\nthe lab is up; switchctl finds it by itself (${rec.file() ?? labStateFile(labStateDir(), process.pid)}), or in another shell:\n` +
        `  export SWITCHCTL_URL=${state.url}\n` +
        `try:\n  switchctl ports\n  sudo ip netns exec ${a.ns} ping ${b.ipv4}\n  sudo ip netns exec ${a.ns} ping -6 ${b.ipv6}\n` +
        `and watch it in the web console: ${state.url}ui\nCtrl-C (or closing this terminal) stops it and removes everything; ` +
        `if it is ever killed, \`sudo ${invocation()} clean\` removes what it left.\n`)
      await new Promise(() => {})
    }
    failed = await pingEveryPair(lab)
  } catch (err) {
    process.stderr.write(`tapswitch-lab: ${(err as Error).message}\n`)
    failed++
  } finally {
    await cleanup()
  }
  process.stdout.write(failed === 0 ? 'all pings passed\n' : `${failed} ping(s) failed\n`)
  process.exitCode = failed === 0 ? 0 : 1
}

/**
 * A Lab whose processes and namespaces are on disk from the start (its state
 * file): `clean` can undo a lab killed at any point, and switchctl finds it.
 */
function recordedLab (command: 'demo' | 'up', hosts: number, verbose: boolean): { lab: Lab, state: LabState, save: () => void, file: () => string | undefined } {
  const dir = labStateDir()
  const processes: LabProcess[] = []
  const lab = new Lab({
    hosts,
    onLog: verbose ? (l) => { process.stdout.write(`  | ${childLog(l)}\n`) } : undefined,
    onSpawn: (who: string, child: ChildProcess, script: string) => {
      const p = child.pid === undefined ? undefined : describeProcess(who === 'switchd' ? 'switchd' : who, child.pid, path.basename(script))
      if (p !== undefined) { processes.push(p); save() }
    }
  })
  const self = describeProcess('tapswitch-lab', process.pid, path.basename(process.argv[1] ?? 'tapswitch-lab.js'))
  const state: LabState = {
    version: 1,
    command,
    lab: self ?? { role: 'tapswitch-lab', pid: process.pid, start: 0, script: '' },
    url: '',
    startedAt: new Date().toISOString(),
    processes,
    namespaces: lab.hosts.map((h) => h.ns)
  }
  let stateFile: string | undefined
  function save (): void {
    try {
      stateFile = writeLabState(dir, state)
    } catch (err) {
      process.stderr.write(`tapswitch-lab: cannot write the state file in ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (switchctl will not find the lab; clean will not know it)\n`)
    }
  }
  save()
  return { lab, state, save, file: () => stateFile }
}

/** The demo: every host pings every other, over IPv4 and IPv6; the number that failed. */
async function pingEveryPair (lab: Lab): Promise<number> {
  let failed = 0
  for (const from of lab.hosts) {
    for (const to of lab.hosts) {
      if (from === to) continue
      for (const family of [4, 6] as const) {
        const target = family === 4 ? to.ipv4 : to.ipv6
        try {
          const out = await lab.ping(from, to, 3, family)
          process.stdout.write(`ping host-${from.label} -> host-${to.label} ${target.padEnd(16)} ok   ${summary(out)}\n`)
        } catch (err) {
          failed++
          process.stdout.write(`ping host-${from.label} -> host-${to.label} ${target.padEnd(16)} FAIL ${(err as Error).message.split('\n').slice(-2).join(' ')}\n`)
        }
      }
    }
  }
  return failed
}
