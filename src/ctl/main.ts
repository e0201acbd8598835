/**
 * switchctl: the admin CLI over switchd's HTTP API (src/switch/control/api/).
 * Readable tables by default, the API's JSON with --json.
 */

import { table, print } from './table'
import { twoColumns, helpWidth, GLUE } from '../common/cli'
import { escapeUnsafe } from '../common/log-format'
import { findTarget, TargetError, type Target } from './target'
import { CtlError, getJson, checkUrl, hostPort, opt, query, type Ctx, type Opts } from './http'
import { parseCommandLine, commandHelp, unknownCommand, COMMAND_FLAGS } from './commands'
import { flush, staticEntry, port, drain } from './changes'
import { FLEET_COMMANDS, columns, merge, notAFleetCommand, splitUrls, type Columns, type ReplicaUrl } from './fleet'
import { askAll, readFleetFile } from './fleet-ask'
import { condition, link, summary } from './conditions'
import { capture, events } from './streams'
import { trace, drops } from './trace'
import type { LeaseJson, PortJson, NetworkJson, FdbJson } from '../common/api-types'

/** Each command's synopsis and what it does: --help wraps them to the terminal (common/cli.ts twoColumns). */
const COMMANDS: Array<[string, string]> = [
  ['networks', 'networks and their counters'],
  ['ports [--network N]', 'ports: VLAN mode, state, traffic, drops'],
  ['fdb [--network N] [--vlan V] [--port P] [--mac M]', 'the forwarding database'],
  ['flush [--network N] [--port P] [--mac M] [--vlan V]', 'forget learned MACs (all, or those matching)'],
  ['static add --mac M --port P [--vlan V] [--network N] [--detached]', 'a static fdb entry (--detached: P has not connected yet; the entry waits for it)'],
  ['static del --mac M [--vlan V] [--network N]', 'remove a static fdb entry'],
  ['port disable|enable|disconnect NAME [--network N]', '(--network: for a name two networks have, e.g. gateway)'],
  ['condition set PORT [--network N] [--direction in|out|both] [--delay 20ms] [--jitter 5ms] [--jitter-reorders] ' +
    '[--loss 1% | --burst P%,R%] [--duplicate 1%] [--corrupt 0.1%] [--reorder 25%] ' +
    '[--rate 10mbit] [--backlog BYTES] [--queue-frames N] [--queue-bytes BYTES] [--seed N]',
  'impair a port\'s link ("in": toward the switch, "out": toward the endpoint); see docs/CONDITIONS.md'],
  ['condition show [--network N]', 'conditions and drills in force'],
  ['condition clear PORT [--network N] [--direction in|out|both]', 'remove a port\'s conditions'],
  ['link down|up PORT [--network N] [--direction in|out|both] [--flap 2s/8s]',
    'failure drill: a pulled cable (a TAP sees NO-CARRIER); --flap: down 2 s every 8 s until "link up"'],
  ['capture [--network N] [--port P] [--vlan V] [--count N] [--bytes N] [--duration S] [-w FILE]',
    `stream a pcap; -w - or a pipe writes to stdout, e.g. switchctl capture --port web1 | tcpdump${GLUE}-nr${GLUE}-`],
  ['events [--count N]', 'switchd\'s log as it happens (the web console\'s stream): the recent events, then new ones until N or Ctrl-C'],
  ['trace --in PORT --frame SPEC [--network N]',
    'each step of the forwarding decision for a frame arriving on PORT now (changes nothing); SPEC is ' +
    'dst=MAC,src=MAC[,vlan=V][,pcp=P][,type=arp|ipv4|0x88b5][,len=N] (dst may be broadcast, stp, lacp, 8021x, lldp) or hex bytes'],
  ['leases [--network N]', 'the gateways\' DHCP leases: address, MAC, state, expiry, port'],
  ['drops [--network N] [--port P] [--reason R] [--follow] [--interval S]',
    'the last frames switchd dropped, and why; --follow keeps printing new ones (polls every S seconds, default 1)'],
  ['drain', 'hand this replica\'s ports to the others: not ready, new ports refused (503), every port closed with 4006 ' +
    '(agents reconnect at once through the balancer); returns once they are closed. SIGTERM does the same before switchd exits'],
  ['undrain', 'serve ports again after a drain']
]

const FLAGS: Array<[string, string]> = [
  ['--url URL[,URL…]', `switchd's HTTP address [env${GLUE}SWITCHCTL_URL, else the lab that tapswitch-lab up runs, else http://127.0.0.1:8080]; ` +
    'several (a fleet\'s replicas): networks, ports and fdb merge their rows with a REPLICA column'],
  ['--fleet-file FILE', 'the replicas\' URLs from FILE, one a line (# comments), instead of --url'],
  ['--token TOKEN', `the admin token [env${GLUE}SWITCHCTL_TOKEN]`],
  ['--json', 'print the API\'s JSON instead of a table'],
  ['-h, --help', 'show this help']
]

/** switchctl's --help within `width` columns. */
export function usage (width = helpWidth()): string {
  return 'Usage: switchctl [--url URL[,URL…]] [--token TOKEN] [--json] COMMAND [options]\n\nCommands:\n' +
    twoColumns(COMMANDS, width, 2, 30) + '\nOptions:\n' + twoColumns(FLAGS, width, 2, 30)
}

const USAGE = usage()

export { OPTIONS } from './commands'

/** Whether an error message is about `url` (it names the URL or its host and port). */
function names (message: string, url: string): boolean {
  let host = url
  try { host = hostPort(new URL(url)) } catch {}
  return message.includes(url) || message.includes(host)
}

export async function main (argv: string[]): Promise<number> {
  let target: Target | undefined
  let ctx: Ctx | undefined
  try {
    const { cmd, rest, o } = parseCommandLine(argv)
    if (o.help === true) { process.stdout.write((cmd !== undefined ? commandHelp(USAGE, cmd) : undefined) ?? USAGE); return 0 }
    if (cmd === undefined) { process.stdout.write(USAGE); return 2 }
    if (COMMAND_FLAGS[cmd] === undefined) throw unknownCommand(cmd)
    target = findTarget(o.url as string | undefined)
    ctx = { url: target.url, token: (o.token as string | undefined) ?? process.env.SWITCHCTL_TOKEN, json: o.json === true }
    const fleet = fleetOf(o, target)
    if (fleet !== undefined && !FLEET_COMMANDS.has(cmd)) throw notAFleetCommand(cmd, fleet.length)
    ctx.url = fleet?.[0]?.url ?? checkUrl(ctx.url, target.source === '--url' || target.source === 'SWITCHCTL_URL' ? target.source : `the URL of ${target.source}`)
    await run(ctx, fleet, cmd, rest, o)
    return 0
  } catch (err) {
    // A message may quote what the server sent (its error, a Location, a close reason): never terminal controls.
    const message = escapeUnsafe((err as Error).message)
    process.stderr.write(`switchctl: ${message}\n`)
    // Where the address it could not use came from (the lab's state file, the default, ...).
    if (ctx !== undefined && target !== undefined && target.source !== '--url' && !message.includes(target.source) && names(message, ctx.url)) process.stderr.write(`switchctl: ${ctx.url} is from ${target.source}\n`)
    return err instanceof CtlError ? err.exitCode : err instanceof TargetError ? 2 : 1
  }
}

/** The replicas to ask when several are given (--url A,B, SWITCHCTL_URL=A,B, --fleet-file FILE); undefined for one switchd. */
function fleetOf (o: Opts, target: Target): ReplicaUrl[] | undefined {
  const file = opt(o, 'fleet-file')
  if (file !== undefined) {
    if (o.url !== undefined) throw new CtlError('--url and --fleet-file both name the switchd to ask: give one of them', 2)
    return readFleetFile(file)
  }
  if ((target.source !== '--url' && target.source !== 'SWITCHCTL_URL') || !target.url.includes(',')) return undefined
  return splitUrls(target.url, target.source)
}

/**
 * A list: one switchd's rows as a table (or its JSON); a fleet's merged with
 * a REPLICA column, then a line for each replica that did not answer, and a
 * CtlError (exit 1) if any did not: the others' rows are printed all the same.
 */
async function list<T> (ctx: Ctx, fleet: ReplicaUrl[] | undefined, path: string, cols: Columns<T>): Promise<void> {
  if (fleet === undefined) {
    const rows = await getJson<T[]>(ctx, path)
    print(ctx, rows, () => table(cols.headers, rows.map(cols.row)) + (cols.notes?.(rows) ?? ''))
    return
  }
  const m = merge(await askAll(fleet, ctx.token, path), cols)
  const failed = m.errors.length
  if (failed < fleet.length) print(ctx, m.json, () => table(m.headers, m.rows) + m.notes)
  for (const e of [...m.warnings, ...m.errors]) process.stderr.write(`switchctl: ${escapeUnsafe(e)}\n`)
  if (failed > 0) throw new CtlError(`${failed} of ${fleet.length} replicas did not answer (above)${failed < fleet.length ? '; the rows printed are the others\'' : ''}`)
}

/** One command: the lists are here (a GET and a table each), the rest in their files. */
async function run (ctx: Ctx, fleet: ReplicaUrl[] | undefined, cmd: string, rest: string[], o: Opts): Promise<void> {
  const s = (k: string): string | undefined => opt(o, k)
  switch (cmd) {
    case 'networks': {
      await list(ctx, fleet, '/api/v1/networks', columns<NetworkJson>(['NETWORK', 'PORTS', 'FDB', 'MAX', 'LEARNED', 'MOVED', 'EXPIRED', 'EVICTED', 'FORWARDED', 'FLOODED', 'LOOPS', 'NATIVE', 'GATEWAY', 'GATEWAY FLOWS'],
        (n) => [n.name, n.ports, n.fdb.entries ?? 0, n.fdb.maxEntries ?? 0, n.fdb.learned ?? 0, n.fdb.moved ?? 0, n.fdb.expired ?? 0, n.fdb.evicted ?? 0,
          n.counters.forwarded ?? 0, (n.counters.floodedBroadcast ?? 0) + (n.counters.floodedMulticast ?? 0) + (n.counters.floodedUnknown ?? 0), n.counters.loopsDetected ?? 0,
          // Of FORWARDED, what the native fast path of local TAPs forwarded itself (docs/LOCAL-TAPS.md); - without one.
          n.fastPath?.forwarded ?? '-',
          // Its gateway: up or down, and how its child is confined (docs/GATEWAY.md "Security"); - without one.
          n.gateway === undefined ? '-' : `${n.gateway.up ? 'up' : 'down'} ${n.gateway.sandbox}`,
          // Host sockets the gateway's child holds for the stations, of its maxFlows (docs/GATEWAY.md); - without a gateway.
          n.gateway === undefined ? '-' : `${n.gateway.flows}/${n.gateway.maxFlows}`],
        (nets) => nets.filter((n) => n.gateway?.sandbox === 'weak').map((n) => `warning: the gateway of ${n.name} runs without Landlock: ${n.gateway?.sandboxWhy ?? ''}\n`).join('')))
      return
    }
    case 'ports': {
      await list(ctx, fleet, '/api/v1/ports' + query({ network: s('network') }), columns<PortJson>(['PORT', 'NETWORK', 'KIND', 'VLAN', 'STATE', 'MACS', 'RX', 'TX', 'DROPS', 'CONDITION', 'DELAYED', 'QUEUED', 'REMOTE', 'SINCE', 'PATH'],
        (p) => [p.name, p.network, p.kind, p.mode === 'trunk' ? `trunk ${p.vlans.join(',')}` : `access ${p.pvid}`, p.state, p.fdbEntries,
          p.counters.rxFrames, p.counters.txFrames, Object.values(p.drops).reduce((a, b) => a + b, 0),
          p.condition === undefined ? '-' : summary(p.condition), p.condition?.framesDelayed ?? 0,
          (p.condition?.in?.queuedFrames ?? 0) + (p.condition?.out?.queuedFrames ?? 0), p.remote, p.connectedAt.replace(/\.\d+Z$/, 'Z'), p.path]))
      return
    }
    case 'fdb': {
      await list(ctx, fleet, '/api/v1/fdb' + query({ network: s('network'), vlan: s('vlan'), port: s('port'), mac: s('mac') }),
        columns<FdbJson>(['NETWORK', 'VLAN', 'MAC', 'PORT', 'AGE', 'TYPE'], (r) => [r.network, r.vlan, r.mac, r.port, r.age, r.static ? 'static' : 'learned']))
      return
    }
    case 'leases': {
      const rows = await getJson<LeaseJson[]>(ctx, '/api/v1/leases' + query({ network: s('network') }))
      print(ctx, rows, () => table(['NETWORK', 'IP', 'MAC', 'KIND', 'STATE', 'EXPIRES', 'PORT'],
        rows.map((r) => [r.network, r.ip, r.mac, r.kind, r.state, r.expires ?? '-', r.port ?? '-'])))
      return
    }
    // The changes (changes.ts, conditions.ts), the streams (streams.ts), the decision's views (trace.ts).
    case 'flush': { await flush(ctx, o); return }
    case 'static': { await staticEntry(ctx, rest, o); return }
    case 'port': { await port(ctx, rest, o); return }
    case 'condition': { await condition(ctx, rest, o); return }
    case 'link': { await link(ctx, rest, o); return }
    case 'capture': { await capture(ctx, o); return }
    case 'events': { await events(ctx, o); return }
    case 'trace': { await trace(ctx, o); return }
    case 'drops': { await drops(ctx, o); return }
    case 'drain': { await drain(ctx, true); return }
    case 'undrain': { await drain(ctx, false); return }
    default:
      throw unknownCommand(cmd)
  }
}
