/**
 * switchctl: the admin CLI over switchd's HTTP API (src/switch/control/api.ts).
 * Readable tables by default, the API's JSON with --json.
 */

import * as fs from 'node:fs'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import WebSocket from 'ws'
import { table } from './table'
import { twoColumns, helpWidth, GLUE } from '../common/cli'
import { formatText, chooseLogColor, escapeUnsafe } from '../common/log-format'
import { findTarget, TargetError, type Target } from './target'
import { CtlError, call, getJson, checkUrl, reachError, notSwitchd, hostPort, type Ctx } from './http'
import { parseCommandLine, commandHelp, unknownCommand, COMMAND_FLAGS } from './commands'
import type { LeaseJson, PortJson, NetworkJson, FdbJson, PortConditionJson, ConditionJson, ConsoleMessage, LogEntryJson, TraceJson, DropsJson, DropJson, CONSOLE_SUBPROTOCOL_NAME } from '../common/api-types'

/** The event stream's subprotocol (the type holds it to switchd's). */
const CONSOLE_SUBPROTOCOL: CONSOLE_SUBPROTOCOL_NAME = 'tapswitch.console'

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
    'the last frames switchd dropped, and why; --follow keeps printing new ones (polls every S seconds, default 1)']
]

const FLAGS: Array<[string, string]> = [
  ['--url URL', `switchd's HTTP address [env${GLUE}SWITCHCTL_URL, else the lab that tapswitch-lab up runs, else http://127.0.0.1:8080]`],
  ['--token TOKEN', `the admin token [env${GLUE}SWITCHCTL_TOKEN]`],
  ['--json', 'print the API\'s JSON instead of a table'],
  ['-h, --help', 'show this help']
]

/** switchctl's --help within `width` columns. */
export function usage (width = helpWidth()): string {
  return 'Usage: switchctl [--url URL] [--token TOKEN] [--json] COMMAND [options]\n\nCommands:\n' +
    twoColumns(COMMANDS, width, 2, 30) + '\nOptions:\n' + twoColumns(FLAGS, width, 2, 30)
}

const USAGE = usage()

export { OPTIONS } from './commands'

function query (params: Record<string, string | undefined>): string {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, v)
  const s = q.toString()
  return s === '' ? '' : `?${s}`
}

function print (ctx: Ctx, data: unknown, render: () => string): void {
  process.stdout.write(ctx.json ? JSON.stringify(data, null, 2) + '\n' : render())
}

/** One direction of a condition in a few words: "20ms±5 loss 1% 10mbit", "down", or "-". */
function describe (c: ConditionJson | undefined): string {
  if (c === undefined) return '-'
  if (c.down) return 'down'
  const parts: string[] = []
  if (c.delay !== undefined || c.jitter !== undefined) parts.push(`${c.delay ?? 0}ms${c.jitter !== undefined ? `±${c.jitter}` : ''}`)
  if (c.loss !== undefined) parts.push(`loss ${c.loss}%`)
  if (c.burst !== undefined) parts.push(`burst ${c.burst.p}%/${c.burst.r}%`)
  if (c.duplicate !== undefined) parts.push(`dup ${c.duplicate}%`)
  if (c.corrupt !== undefined) parts.push(`corrupt ${c.corrupt}%`)
  if (c.reorder !== undefined) parts.push(`reorder ${c.reorder}%`)
  if (c.rate !== undefined) parts.push(c.rate >= 1e6 ? `${c.rate / 1e6}mbit` : `${c.rate / 1e3}kbit`)
  return parts.length === 0 ? '-' : parts.join(' ')
}

function summary (c: PortConditionJson): string {
  const parts: string[] = []
  if (c.in !== undefined) parts.push(`in ${describe(c.in)}`)
  if (c.out !== undefined) parts.push(`out ${describe(c.out)}`)
  if (c.flap !== undefined) parts.push(`flap ${c.flap.down}s/${c.flap.every}s`)
  return parts.length === 0 ? '-' : parts.join('; ')
}

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
    ctx.url = checkUrl(ctx.url, target.source === '--url' || target.source === 'SWITCHCTL_URL' ? target.source : `the URL of ${target.source}`)
    await run(ctx, cmd, rest, o)
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

async function run (ctx: Ctx, cmd: string, rest: string[], o: Record<string, string | boolean | undefined>): Promise<void> {
  const s = (k: string): string | undefined => o[k] as string | undefined
  switch (cmd) {
    case 'networks': {
      const nets = await getJson<NetworkJson[]>(ctx, '/api/v1/networks')
      print(ctx, nets, () => table(['NETWORK', 'PORTS', 'FDB', 'MAX', 'LEARNED', 'MOVED', 'EXPIRED', 'EVICTED', 'FORWARDED', 'FLOODED', 'LOOPS', 'NATIVE', 'GATEWAY', 'GATEWAY FLOWS'],
        nets.map((n) => [n.name, n.ports, n.fdb.entries ?? 0, n.fdb.maxEntries ?? 0, n.fdb.learned ?? 0, n.fdb.moved ?? 0, n.fdb.expired ?? 0, n.fdb.evicted ?? 0,
          n.counters.forwarded ?? 0, (n.counters.floodedBroadcast ?? 0) + (n.counters.floodedMulticast ?? 0) + (n.counters.floodedUnknown ?? 0), n.counters.loopsDetected ?? 0,
          // Of FORWARDED, what the native fast path of local TAPs forwarded itself (docs/LOCAL-TAPS.md); - without one.
          n.fastPath?.forwarded ?? '-',
          // Its gateway: up or down, and how its child is confined (docs/GATEWAY.md "Security"); - without one.
          n.gateway === undefined ? '-' : `${n.gateway.up ? 'up' : 'down'} ${n.gateway.sandbox}`,
          // Host sockets the gateway's child holds for the stations, of its maxFlows (docs/GATEWAY.md); - without a gateway.
          n.gateway === undefined ? '-' : `${n.gateway.flows}/${n.gateway.maxFlows}`])) +
        nets.filter((n) => n.gateway?.sandbox === 'weak').map((n) => `warning: the gateway of ${n.name} runs without Landlock: ${n.gateway?.sandboxWhy ?? ''}\n`).join(''))
      return
    }
    case 'ports': {
      const ports = await getJson<PortJson[]>(ctx, '/api/v1/ports' + query({ network: s('network') }))
      print(ctx, ports, () => table(['PORT', 'NETWORK', 'KIND', 'VLAN', 'STATE', 'MACS', 'RX', 'TX', 'DROPS', 'CONDITION', 'DELAYED', 'QUEUED', 'REMOTE', 'SINCE'],
        ports.map((p) => [p.name, p.network, p.kind, p.mode === 'trunk' ? `trunk ${p.vlans.join(',')}` : `access ${p.pvid}`, p.state, p.fdbEntries,
          p.counters.rxFrames, p.counters.txFrames, Object.values(p.drops).reduce((a, b) => a + b, 0),
          p.condition === undefined ? '-' : summary(p.condition), p.condition?.framesDelayed ?? 0,
          (p.condition?.in?.queuedFrames ?? 0) + (p.condition?.out?.queuedFrames ?? 0), p.remote, p.connectedAt.replace(/\.\d+Z$/, 'Z')])))
      return
    }
    case 'fdb': {
      const rows = await getJson<FdbJson[]>(ctx,
        '/api/v1/fdb' + query({ network: s('network'), vlan: s('vlan'), port: s('port'), mac: s('mac') }))
      print(ctx, rows, () => table(['NETWORK', 'VLAN', 'MAC', 'PORT', 'AGE', 'TYPE'], rows.map((r) => [r.network, r.vlan, r.mac, r.port, r.age, r.static ? 'static' : 'learned'])))
      return
    }
    case 'leases': {
      const rows = await getJson<LeaseJson[]>(ctx, '/api/v1/leases' + query({ network: s('network') }))
      print(ctx, rows, () => table(['NETWORK', 'IP', 'MAC', 'KIND', 'STATE', 'EXPIRES', 'PORT'],
        rows.map((r) => [r.network, r.ip, r.mac, r.kind, r.state, r.expires ?? '-', r.port ?? '-'])))
      return
    }
    case 'flush': {
      const body: Record<string, unknown> = { network: s('network'), port: s('port'), mac: s('mac'), vlan: s('vlan') }
      const r = await (await call(ctx, 'POST', '/api/v1/fdb/flush', body)).json() as { flushed: number }
      print(ctx, r, () => `flushed ${r.flushed} fdb entr${r.flushed === 1 ? 'y' : 'ies'}\n`)
      return
    }
    case 'static': {
      const verb = rest[0]
      if (s('mac') === undefined) throw new CtlError('static: --mac is required', 2)
      if (verb === 'add') {
        if (s('port') === undefined) throw new CtlError('static add: --port is required', 2)
        const body = { network: s('network'), vlan: s('vlan'), mac: s('mac'), port: s('port'), ...(o.detached === true ? { detached: true } : {}) }
        const r = await (await call(ctx, 'POST', '/api/v1/fdb/static', body)).json() as Record<string, unknown>
        print(ctx, r, () => `static ${String(r.mac)} vlan ${String(r.vlan)} -> ${String(r.port)} (network ${String(r.network)})` +
          (r.detached === true ? `: detached until a port named ${String(r.port)} connects (one whose name a token or the configuration gives, or a claimable profile covers)\n` : '\n'))
      } else if (verb === 'del') {
        const r = await (await call(ctx, 'DELETE', '/api/v1/fdb/static' + query({ network: s('network'), vlan: s('vlan'), mac: s('mac') }))).json()
        print(ctx, r, () => `removed static ${s('mac') ?? ''}\n`)
      } else {
        throw new CtlError('static: expected add or del', 2)
      }
      return
    }
    case 'port': {
      const [verb, name] = rest
      if (verb === undefined || !['disable', 'enable', 'disconnect'].includes(verb) || name === undefined) throw new CtlError('port: expected disable|enable|disconnect NAME', 2)
      const r = await (await call(ctx, 'POST', `/api/v1/ports/${encodeURIComponent(name)}/${verb}` + query({ network: s('network') }))).json()
      print(ctx, r, () => `port ${name}: ${verb}d\n`.replace('disconnectd', 'disconnected'))
      return
    }
    case 'condition': {
      const [verb, name] = rest
      if (verb === 'show') {
        const rows = await getJson<PortConditionJson[]>(ctx, '/api/v1/conditions' + query({ network: s('network') }))
        print(ctx, rows, () => table(['PORT', 'NETWORK', 'IN', 'OUT', 'DELAYED', 'QUEUED'],
          rows.map((r) => [r.port, r.network, describe(r.in), describe(r.out) + (r.flap !== undefined ? ` flap ${r.flap.down}s/${r.flap.every}s` : ''), r.framesDelayed,
            (r.in?.queuedFrames ?? 0) + (r.out?.queuedFrames ?? 0)])))
        return
      }
      if ((verb !== 'set' && verb !== 'clear') || name === undefined) throw new CtlError('condition: expected set PORT …, show, or clear PORT', 2)
      const path = `/api/v1/ports/${encodeURIComponent(name)}/condition`
      const network = s('network')
      let r: PortConditionJson
      if (verb === 'clear') {
        r = await (await call(ctx, 'DELETE', path + query({ network, direction: s('direction') }))).json() as PortConditionJson
      } else {
        const body: Record<string, unknown> = { direction: s('direction') }
        for (const [flag, key] of [['delay', 'delay'], ['jitter', 'jitter'], ['loss', 'loss'], ['duplicate', 'duplicate'], ['corrupt', 'corrupt'], ['reorder', 'reorder'],
          ['rate', 'rate'], ['backlog', 'backlog'], ['queue-frames', 'queueFrames'], ['queue-bytes', 'queueBytes']] as const) {
          const v = s(flag)
          if (v !== undefined) body[key] = v
        }
        if (o['jitter-reorders'] === true) body.jitterReorders = true
        const seed = s('seed')
        if (seed !== undefined) body.seed = Number(seed)
        const burst = s('burst')
        if (burst !== undefined) {
          const [p, r2] = burst.split(',')
          body.burst = r2 === undefined ? { p } : { p, r: r2 }
        }
        r = await (await call(ctx, 'POST', path + query({ network }), body)).json() as PortConditionJson
      }
      print(ctx, r, () => `port ${name}: in ${describe(r.in)}; out ${describe(r.out)}\n`)
      return
    }
    case 'link': {
      const [verb, name] = rest
      if ((verb !== 'down' && verb !== 'up') || name === undefined) throw new CtlError('link: expected down|up PORT [--direction in|out] [--flap DOWN/EVERY]', 2)
      const r = await (await call(ctx, 'POST', `/api/v1/ports/${encodeURIComponent(name)}/link` + query({ network: s('network') }), { state: verb, direction: s('direction'), flap: s('flap') })).json() as PortConditionJson & { state: string }
      print(ctx, r, () => `port ${name}: link ${s('flap') !== undefined ? `flapping (down ${s('flap') ?? ''})` : verb}${s('direction') !== undefined ? ` (${s('direction') ?? ''})` : ''}, state ${r.state}\n`)
      return
    }
    case 'capture': {
      const out = s('w')
      if (out === undefined && process.stdout.isTTY === true) throw new CtlError('capture writes binary pcap: use -w FILE, or pipe it (switchctl capture | tcpdump -nr -)', 2)
      const res = await call(ctx, 'GET', '/api/v1/capture' + query({ network: s('network'), port: s('port'), vlan: s('vlan'), count: s('count'), bytes: s('bytes'), duration: s('duration') }))
      if (res.body === null) throw new CtlError('capture: empty response')
      const dest = out === undefined || out === '-' ? process.stdout : fs.createWriteStream(out)
      await pipeline(Readable.fromWeb(res.body), dest)
      return
    }
    case 'events': {
      const count = s('count') === undefined ? Infinity : Number(s('count'))
      if (!(count > 0)) throw new CtlError('events: --count expects a positive number', 2)
      await events(ctx, count)
      return
    }
    case 'trace': {
      if (s('in') === undefined || s('frame') === undefined) throw new CtlError('trace: --in PORT and --frame SPEC are required', 2)
      const t = await (await call(ctx, 'POST', '/api/v1/trace', { network: s('network'), in: s('in'), frame: s('frame') })).json() as TraceJson
      print(ctx, t, () => renderTrace(t))
      return
    }
    case 'drops': {
      const interval = Number(s('interval') ?? 1)
      if (!Number.isFinite(interval) || interval < 0.1 || interval > 3600) throw new CtlError('drops: --interval expects seconds from 0.1 to 3600', 2)
      const filter = { network: s('network'), port: s('port'), reason: s('reason') }
      let r = await getJson<DropsJson>(ctx, '/api/v1/drops' + query(filter))
      if (o.follow !== true) { print(ctx, r, () => renderDrops(r.drops)); return }
      // Follow by polling with a cursor: switchd keeps no state per follower, and a reader that stops reading costs it nothing.
      let since = r.last
      writeDrops(ctx, r.drops, true)
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, interval * 1000))
        r = await getJson<DropsJson>(ctx, '/api/v1/drops' + query({ ...filter, since: String(since) }))
        // switchd restarted: its sequence numbers began again.
        if (r.last < since) { since = 0; continue }
        if (r.lost > 0 && !ctx.json) process.stdout.write(`(${r.lost} drops not shown: switchd keeps the last ${r.size})\n`)
        writeDrops(ctx, r.drops, false)
        since = r.last
      }
    }
    default:
      throw unknownCommand(cmd)
  }
}

/**
 * One log entry as switchd writes it on a terminal (common/log-format.ts):
 * its fields can hold what clients sent (an Origin, a close reason), escaped
 * there so that they cannot drive this terminal.
 */
function logLine (e: LogEntryJson): string {
  const t = new Date(e.time)
  const tty = process.stdout.isTTY === true
  // Checked, not trusted: a server that is not switchd could send any shape.
  const level = (['debug', 'info', 'warn', 'error'] as const).find((l) => l === e.level) ?? 'info'
  const fields: Record<string, string | number | boolean | null> = {}
  for (const [k, v] of Object.entries(typeof e.fields === 'object' && e.fields !== null ? e.fields as Record<string, unknown> : {})) {
    fields[k] = v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : JSON.stringify(v)
  }
  return formatText(Number.isNaN(t.getTime()) ? new Date() : t, level, String(e.component), String(e.event), fields, chooseLogColor('text', tty, process.env)) + '\n'
}

/**
 * Follow /api/v1/events: the token goes in the upgrade's Authorization header
 * (never the URL); the page, which cannot set it, offers it as a subprotocol.
 */
async function events (ctx: Ctx, count: number): Promise<void> {
  const url = new URL('/api/v1/events', ctx.url)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  const token = ctx.token === '' ? undefined : ctx.token
  const headers: Record<string, string> = token !== undefined ? { authorization: `Bearer ${token}` } : {}
  const ws = new WebSocket(url, [CONSOLE_SUBPROTOCOL], { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024, headers })
  let shown = 0
  const show = (e: LogEntryJson): void => {
    if (shown >= count) return
    process.stdout.write(ctx.json ? JSON.stringify(e) + '\n' : logLine(e))
    if (++shown >= count) ws.close(1000)
  }
  await new Promise<void>((resolve, reject) => {
    ws.on('unexpected-response', (_req, res) => {
      const status = res.statusCode ?? 0
      const retry = res.headers['retry-after']
      const foreign = notSwitchd(ctx.url, `GET ${url.pathname}`, status, { get: (h) => { const v = res.headers[h]; return v === undefined ? null : String(v) } })
      reject(foreign ?? new CtlError(status === 401
        ? `${token === undefined ? 'admin token required' : 'wrong admin token'} (set --token or SWITCHCTL_TOKEN)`
        : status === 429 && retry !== undefined ? `429 from ${url.pathname}: try again in ${String(retry)} s` : `${status} ${res.statusMessage ?? ''} from ${url.pathname}`))
      res.resume()
    })
    ws.on('error', (err: Error & { code?: string }) => { reject(reachError(ctx.url, err)) })
    ws.on('message', (data: Buffer) => {
      // switchd sends JSON; anything else (a server that is not switchd) ends the stream with one line, not a stack trace.
      let m: ConsoleMessage
      try { m = JSON.parse(data.toString()) as ConsoleMessage } catch {
        ws.terminate()
        reject(new CtlError(`${url.host} sent a message on ${url.pathname} that is not JSON: is it switchd? check --url or SWITCHCTL_URL`))
        return
      }
      if (m.type === 'welcome' && Array.isArray(m.log)) { for (const e of m.log) show(e) } else if (m.type === 'log' && Array.isArray(m.entries)) for (const e of m.entries) show(e)
    })
    ws.on('close', (code, reason) => {
      if (code === 1008) reject(new CtlError(`${reason.toString() || 'closed'} (set --token or SWITCHCTL_TOKEN)`))
      else if (code === 1000 || code === 1005 || shown >= count) resolve()
      else reject(new CtlError(`the event stream closed: ${code} ${reason.toString()}`))
    })
  })
}

function renderTrace (t: TraceJson): string {
  const f = t.frame
  const lines = [`trace: ${f.src} > ${f.dst}${f.vlan !== null ? ` vlan ${f.vlan}` : ''} type ${f.ethertype} (${f.length} bytes) into port ${t.ingress}, network ${t.network}`]
  for (const st of t.steps) lines.push(`  ${st.step.padEnd(10)} ${st.verdict.padEnd(7)} ${st.detail}`)
  if (t.action === 'drop') lines.push(`action: drop (${t.dropReason ?? '?'})`)
  else lines.push(`action: ${t.action} to ${t.egress.length === 0 ? 'no port' : t.egress.map((e) => `${e.port} (${e.tagging === 'tagged' ? `tagged ${e.vlan}` : 'untagged'})`).join(', ')}`)
  return lines.join('\n') + '\n'
}

const DROP_HEADERS = ['TIME', 'NETWORK', 'PORT', 'SRC', 'DST', 'VLAN', 'REASON']

function dropRow (d: DropJson): string[] {
  return [d.time, d.network, d.port, d.src ?? '-', d.dst ?? '-', d.vlan === null ? '-' : String(d.vlan), d.reason]
}

function renderDrops (drops: DropJson[]): string {
  return drops.length === 0 ? 'no drops recorded\n' : table(DROP_HEADERS, drops.map(dropRow))
}

/** --follow: JSON lines with --json, else rows (fixed widths, so columns line up across polls). */
function writeDrops (ctx: Ctx, drops: DropJson[], header: boolean): void {
  if (ctx.json) { for (const d of drops) process.stdout.write(JSON.stringify(d) + '\n'); return }
  const widths = [24, 12, 16, 17, 17, 5, 14]
  const line = (r: string[]): string => r.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd() + '\n'
  if (header) process.stdout.write(line(DROP_HEADERS))
  for (const d of drops) process.stdout.write(line(dropRow(d)))
}
