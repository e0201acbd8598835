/** The bench's printed report: one table against the bridge, then CPU, synthetic and memory. */

import type { CpuReport, PingResult, TcpResult, UdpResult } from './measure'
import type { ForwardResult, MemoryResult } from './synthetic'
import { PING_WAKEUPS, PING_WAKEUPS_LOCAL, type WakeupResult } from './wakeup'

export type Outcome<T> = T | { error: string }

export interface NetResult<T> {
  tapswitch?: Outcome<T>
  /** switchd serving both TAPs itself (--tap), no agents. */
  local?: Outcome<T>
  bridge?: Outcome<T>
  cpu?: { tapswitch?: CpuReport, local?: CpuReport, bridge?: CpuReport }
}

export interface NetResults {
  tcp1?: NetResult<TcpResult>
  tcp4?: NetResult<TcpResult>
  udp64?: NetResult<UdpResult>
  pingIdle?: NetResult<PingResult>
  pingLoaded?: NetResult<PingResult>
}

export interface BenchResults {
  /** Whole-machine busy % in the second before the bench started: others' load skews everything. */
  machineBusyBeforePercent?: number
  network?: NetResults
  synthetic?: Array<Outcome<ForwardResult>>
  memory?: Array<Outcome<MemoryResult>>
  /** What one process wake-up costs here (the bulk of an idle ping). */
  wakeup?: Outcome<WakeupResult>
  errors: string[]
}

function ok<T> (o: Outcome<T> | undefined): T | undefined {
  return o === undefined || 'error' in (o as object) ? undefined : o as T
}

export function fmt (x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '-'
  const a = Math.abs(x)
  if (a >= 100) return x.toFixed(0)
  if (a >= 10) return x.toFixed(1)
  return x.toFixed(2)
}

function row (cols: string[], widths: number[]): string {
  return cols.map((c, i) => i === cols.length - 1 ? c : c.padEnd(widths[i] ?? 12)).join('').trimEnd()
}

interface Metric<T> { label: string, value: (r: T) => number, ratio?: boolean }

export function formatReport (r: BenchResults): string {
  const out: string[] = []
  const net = r.network
  if (net !== undefined) out.push(...networkTable(net), ...networkNotes(net, r.wakeup), '', ...cpuTable(net))
  if (r.synthetic !== undefined && r.synthetic.length > 0) out.push('', ...syntheticTable(r.synthetic))
  if (r.memory !== undefined && r.memory.length > 0) out.push('', ...memoryTable(r.memory))
  if (r.machineBusyBeforePercent !== undefined && r.machineBusyBeforePercent > 15) {
    out.push('', `warning: the machine was already ${fmt(r.machineBusyBeforePercent)} % busy before the bench started (other processes): expect low and noisy figures`)
  }
  if (r.errors.length > 0) out.push('', ...r.errors.map((e) => `error: ${e}`))
  return out.join('\n') + '\n'
}

/** The three paths side by side, each metric a row, with its ratio to the bridge. */
function networkTable (net: NetResults): string[] {
  const out: string[] = []
  const w = [32, 12, 15, 14, 8, 8]
  out.push(row(['metric', 'tapswitch', 'switchd --tap', 'linux bridge', 'ratio', 'ratio --tap'], w))
  const add = <T>(res: NetResult<T> | undefined, metrics: Array<Metric<T>>): void => {
    if (res === undefined) return
    const t = ok(res.tapswitch)
    const l = ok(res.local)
    const b = ok(res.bridge)
    for (const m of metrics) {
      const tv = t === undefined ? undefined : m.value(t)
      const lv = l === undefined ? undefined : m.value(l)
      const bv = b === undefined ? undefined : m.value(b)
      const ratio = (x: number | undefined): string => m.ratio !== false && x !== undefined && bv !== undefined && bv !== 0 ? (x / bv).toFixed(2) : '-'
      const cell = (o: Outcome<T> | undefined, x: number | undefined): string => o === undefined ? '-' : x === undefined ? 'error' : fmt(x)
      out.push(row([m.label, cell(res.tapswitch, tv), cell(res.local, lv), b === undefined ? 'error' : fmt(bv), ratio(tv), ratio(lv)], w))
    }
  }
  add(net.tcp1, [{ label: 'tcp 1 stream (Gbit/s)', value: (x) => x.gbps }])
  add(net.tcp4, [{ label: 'tcp 4 streams (Gbit/s)', value: (x) => x.gbps }])
  add(net.udp64, [
    { label: 'udp 64 B received (kframes/s)', value: (x) => x.receivedPps / 1000 },
    { label: 'udp 64 B loss (%)', value: (x) => x.lossPercent, ratio: false },
    { label: 'udp 64 B sent by iperf3 (kfr/s)', value: (x) => x.sentPps / 1000, ratio: false }
  ])
  add(net.pingIdle, [
    { label: 'ping idle p50 (us)', value: (x) => x.p50Us },
    { label: 'ping idle p99 (us)', value: (x) => x.p99Us }
  ])
  add(net.pingLoaded, [
    { label: 'ping under tcp load p50 (us)', value: (x) => x.p50Us },
    { label: 'ping under tcp load p99 (us)', value: (x) => x.p99Us },
    { label: 'tcp during that ping (Gbit/s)', value: (x) => x.loadGbps ?? NaN }
  ])
  out.push('(tapswitch = switchd + 2 tap-agents over WebSocket; switchd --tap = one switchd serving both TAPs itself;')
  out.push(' ratio = that / linux bridge: above 1 is better for rates, worse for round trips)')
  return out
}

/** What the figures mean: the wake-ups in an idle ping, a UDP generator at its limit, where tapswitch's UDP frames went. */
function networkNotes (net: NetResults, wakeup: Outcome<WakeupResult> | undefined): string[] {
  const out: string[] = []
  const wk = ok(wakeup)
  if (wk !== undefined) {
    const idle = ok(net.pingIdle?.tapswitch)
    const idleLocal = ok(net.pingIdle?.local)
    out.push(`wake-ups: a 98-byte TCP echo between two Node processes takes p50 ${fmt(wk.asleepP50Us)} us with both asleep in between, ` +
      `${fmt(wk.awakeP50Us)} us back to back: ${fmt(wk.perWakeupUs)} us per wake-up. An idle ping through tapswitch wakes ${PING_WAKEUPS} processes` +
      (idle !== undefined ? ` (~${fmt(PING_WAKEUPS * wk.perWakeupUs)} us of its ${fmt(idle.p50Us)} us)` : '') +
      `; through switchd --tap, none: its fast-path thread (a C++ thread in poll(2)) forwards known flows without waking Node` +
      (idleLocal !== undefined ? ` (its ${fmt(idleLocal.p50Us)} us; with --no-fast-path, ${PING_WAKEUPS_LOCAL} Node wake-ups, ~${fmt(PING_WAKEUPS_LOCAL * wk.perWakeupUs)} us)` : ''))
  }
  const udp = net.udp64
  for (const side of ['tapswitch', 'local', 'bridge'] as const) {
    const u = ok(udp?.[side])
    if (u !== undefined && u.receivedPps >= 0.9 * u.sentPps && (u.iperfCpuClient ?? 0) >= 80) {
      out.push(`note: udp ${side}: received ~ sent and the iperf3 client used ${fmt(u.iperfCpuClient)} % CPU: the generator, not the path, is the limit`)
    }
  }
  const ut = ok<UdpResult & { frames?: Record<string, number> }>(udp?.tapswitch)
  const f = ut?.frames
  if (f !== undefined) {
    out.push(`udp tapswitch, where the frames went: a's TAP sent ${f.aTxPackets} and dropped ${f.aTxDropped} (queue full: agent-a did not read them in time); ` +
      `switchd got ${f.switchdRxFromA} from agent-a, sent ${f.switchdTxToB} to agent-b, dropped ${f.switchdDrops}; b's TAP received ${f.bRxPackets}`)
    out.push('(iperf3 "sent" is not comparable between the paths: on the bridge the sender pays for delivery, on tapswitch its write ends at the TAP queue)')
  }
  return out
}

type IperfCpu = { iperfCpuClient?: number, iperfCpuServer?: number } | undefined

/** CPU per process during each tapswitch test, and the machine's during the bridge's. */
function cpuTable (net: NetResults): string[] {
  const out: string[] = []
  out.push('cpu during each tapswitch test (% of one core; machine = all cores busy %, both paths)')
  const cw = [22, 9, 9, 9, 13, 22, 10]
  out.push(row(['test', 'switchd', 'agent-a', 'agent-b', 'iperf3 c/s', 'machine usr/sys/si', 'machine br'], cw))
  const names: Array<[keyof NetResults, string]> = [['tcp1', 'tcp 1 stream'], ['tcp4', 'tcp 4 streams'], ['udp64', 'udp 64 B'], ['pingIdle', 'ping idle'], ['pingLoaded', 'ping under tcp load']]
  for (const [key, label] of names) {
    const c = net[key]?.cpu
    if (c === undefined) continue
    const p = c.tapswitch?.percentOfCore ?? {}
    const ip = ok(net[key]?.tapswitch) as IperfCpu
    const iperf = ip?.iperfCpuClient === undefined ? '-' : `${fmt(ip.iperfCpuClient)}/${fmt(ip.iperfCpuServer)}`
    const m = c.tapswitch?.machine
    const machine = m === undefined ? '-' : `${fmt(c.tapswitch?.machineBusyPercent)} = ${fmt(m.userPercent)}/${fmt(m.systemPercent)}/${fmt(m.softirqPercent)}`
    out.push(row([label, fmt(p.switchd), fmt(p['agent-a']), fmt(p['agent-b']), iperf, machine, fmt(c.bridge?.machineBusyPercent)], cw))
    if (c.local !== undefined) {
      const lp = ok(net[key]?.local) as IperfCpu
      const lm = c.local.machine
      out.push(row([`  switchd --tap`, fmt(c.local.percentOfCore.switchd), '-', '-', lp?.iperfCpuClient === undefined ? '-' : `${fmt(lp.iperfCpuClient)}/${fmt(lp.iperfCpuServer)}`,
        lm === undefined ? '-' : `${fmt(c.local.machineBusyPercent)} = ${fmt(lm.userPercent)}/${fmt(lm.systemPercent)}/${fmt(lm.softirqPercent)}`, ''], cw))
    }
  }
  out.push('(agent-a sends: a -> b. iperf3 c/s: client/server, % of one core. machine: % of all cores busy, split user/system/softirq;')
  out.push(' machine br: the same total during the bridge run. A process\'s % includes its own system time)')
  return out
}

function syntheticTable (results: Array<Outcome<ForwardResult>>): string[] {
  const out = ['synthetic: switchd alone, two WebSocket clients in a separate process (no baseline)']
  const sw = [10, 8, 8, 12, 9, 10, 10, 12, 10]
  out.push(row(['mode', 'frame B', 'fr/msg', 'frames/s', 'Gbit/s', 'switchd%', 'loadgen%', 'delivered%', 'machine%'], sw))
  for (const s of results) {
    const x = ok(s)
    if (x === undefined) { out.push(`error: ${(s as { error: string }).error}`); continue }
    out.push(row([x.mode, String(x.frameBytes), String(x.framesPerMessage), x.framesPerSecond.toLocaleString('en-US'), fmt(x.gbps), fmt(x.switchdCpuPercent), fmt(x.loadgenCpuPercent), fmt(x.deliveredPercent), fmt(x.machineBusyPercent)], sw))
  }
  out.push('(frames/s and Gbit/s as received, frame bytes without the 4-byte record header; switchd%/loadgen%: % of one core;')
  out.push(' switchd near 100 % = switchd is the limit; delivered = received / sent in the window; machine: % of both cores)')
  return out
}

function memoryTable (results: Array<Outcome<MemoryResult>>): string[] {
  const out = ['switchd memory (RSS)']
  const mw = [10, 8, 12, 18, 16, 22]
  out.push(row(['mode', 'ports', 'idle (MiB)', 'with ports (MiB)', 'per port (KiB)', 'after 1 broadcast (MiB)'], mw))
  for (const m of results) {
    const x = ok(m)
    if (x === undefined) { out.push(`error: ${(m as { error: string }).error}`); continue }
    out.push(row([x.mode, String(x.ports), fmt(x.rssIdleKiB / 1024), fmt(x.rssPortsKiB / 1024), fmt(x.perPortKiB), fmt(x.rssAfterBroadcastKiB / 1024)], mw))
  }
  return out
}
