/**
 * tapswitch-lab: the demo lab on one machine (needs root for namespaces).
 *   tapswitch-lab demo   start 3 hosts, ping every pair (IPv4 and IPv6), clean up
 *   tapswitch-lab up     start the hosts and keep them until Ctrl-C
 */

import { Lab, type LabHost } from './lab'
import { parseCli, helpText, intOption, die, type Specs } from '../common/cli'

const SPECS = {
  hosts: { type: 'string', default: '3', arg: 'N', help: 'number of hosts (namespaces), 2 to 8' },
  verbose: { type: 'boolean', short: 'v', help: 'print switchd and agent logs' },
  help: { type: 'boolean', short: 'h', help: 'show this help' }
} satisfies Specs

const ABOUT = `Commands:
  demo   start switchd and N namespaces with a tap-agent each, ping every pair
         over IPv4 and IPv6 through the switch, then remove everything
  up     start the same lab and keep it until Ctrl-C, for trying things by hand

Needs root (network namespaces, TAP devices), ip and ping.`

function summary (out: string): string {
  const sent = /(\d+) packets transmitted, (\d+) received/.exec(out)
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(out)
  return `${sent?.[2] ?? '?'}/${sent?.[1] ?? '?'} replies${rtt !== null ? `, rtt avg ${rtt[1] ?? '?'} ms` : ''}`
}

export async function main (argv: string[]): Promise<void> {
  const command = argv[0]
  let hosts = 3
  let verbose = false
  try {
    const o = parseCli(SPECS, argv.slice(1), process.env, 'tapswitch-lab')
    if (o.help || command === undefined || command === '--help' || command === '-h') {
      process.stdout.write(helpText('tapswitch-lab demo|up [options]', ABOUT, SPECS))
      return
    }
    if (command !== 'demo' && command !== 'up') throw new Error(`unknown command "${command}": expected demo or up`)
    hosts = intOption('hosts', o.hosts, 2, 8)
    verbose = o.verbose
  } catch (err) {
    die('tapswitch-lab', (err as Error).message, 2)
  }
  if (process.getuid?.() !== 0) die('tapswitch-lab', 'needs root for network namespaces and TAP devices; run it with sudo')

  const lab = new Lab({ hosts, onLog: verbose ? (l) => { process.stdout.write(`  | ${l}\n`) } : undefined })
  let stopping = false
  const cleanup = async (): Promise<void> => {
    if (stopping) return
    stopping = true
    await lab.stop()
    process.stdout.write('cleaned up: agents and switchd stopped, namespaces and TAPs removed\n')
  }
  process.on('SIGINT', () => { void cleanup().then(() => process.exit(130)) })
  process.on('SIGTERM', () => { void cleanup().then(() => process.exit(143)) })

  let failed = 0
  try {
    process.stdout.write(`starting switchd and ${hosts} hosts...\n`)
    await lab.start()
    process.stdout.write(`switchd listening on ${lab.url}\n`)
    for (const h of lab.hosts) {
      process.stdout.write(`  host-${h.label}  netns ${h.ns.padEnd(12)} tap ${h.tap.padEnd(11)} ${h.mac}  ${h.ipv4.padEnd(11)} ${h.ipv6}\n`)
    }
    if (command === 'up') {
      const [a, b] = lab.hosts as [LabHost, LabHost]
      process.stdout.write(`\nthe lab is up; try:\n  sudo ip netns exec ${a.ns} ping ${b.ipv4}\n  sudo ip netns exec ${a.ns} ping -6 ${b.ipv6}\n` +
        `and watch it in the web console: ${lab.url.replace('ws:', 'http:')}ui\nCtrl-C stops it and removes everything.\n`)
      await new Promise(() => {})
    }
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
  } catch (err) {
    process.stderr.write(`tapswitch-lab: ${(err as Error).message}\n`)
    failed++
  } finally {
    await cleanup()
  }
  process.stdout.write(failed === 0 ? 'all pings passed\n' : `${failed} ping(s) failed\n`)
  process.exitCode = failed === 0 ? 0 : 1
}
