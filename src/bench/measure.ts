/**
 * Measurements over a pair of hosts in namespaces, whoever switches between
 * them (tapswitch's Lab or the Linux bridge): iperf3 TCP and UDP, ping round
 * trips idle and under load, and the CPU time of given processes.
 *
 * Every process started here is tracked, bounded in time, and killed by its
 * PID by killAll() (the bench's cleanup).
 */

import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import * as fs from 'node:fs'
import type { BenchHost } from './lab-bridge'

/** Processes we started and have not seen exit. */
const live = new Set<ChildProcess>()
let aborted = false

/** SIGKILL every process we started that is still running, by its PID, and wait for each to exit. */
export async function killAll (): Promise<void> {
  await Promise.all([...live].map(async (c) => {
    if (c.exitCode !== null || c.signalCode !== null) return
    const exited = once(c, 'exit')
    c.kill('SIGKILL')
    await Promise.race([exited, sleep(2000)])
  }))
}

export function sleep (ms: number): Promise<void> { return new Promise((resolve) => setTimeout(resolve, ms)) }

export interface ProcResult { code: number | null, stdout: string, stderr: string }

/** Track a child we started, so that killAll() ends it. */
export function trackChild (child: ChildProcess): ChildProcess {
  live.add(child)
  child.on('exit', () => { live.delete(child) })
  child.on('error', () => { live.delete(child) })
  return child
}

/** Start a tracked process with piped output. */
export function spawnTracked (cmd: string, args: string[]): ChildProcess {
  if (aborted) throw new Error('aborted')
  return trackChild(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }))
}

const cleanups = new Set<() => Promise<void>>()

/** Run `fn` at clean-up (normal end, failure, Ctrl-C); returns a function that unregisters it. */
export function onCleanup (fn: () => Promise<void>): () => void {
  cleanups.add(fn)
  return () => { cleanups.delete(fn) }
}

/** SIGKILL whatever we started that is still running, then everything registered, newest first. */
export async function runCleanups (): Promise<void> {
  aborted = true
  await killAll()
  for (const fn of [...cleanups].reverse()) {
    cleanups.delete(fn)
    await fn().catch(() => {})
  }
}

/** Collect a tracked process's output until it exits; SIGKILL it after `timeoutMs`. */
export function collect (child: ChildProcess, timeoutMs: number): Promise<ProcResult> {
  return new Promise((resolve, reject) => {
    let stdout = ''
    let stderr = ''
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d })
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, timeoutMs)
    child.on('error', (err) => { clearTimeout(timer); reject(err) })
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}

/** Run a command to completion (at most `timeoutMs`), whatever its exit status. */
export async function exec (cmd: string, args: string[], timeoutMs: number): Promise<ProcResult> {
  return await collect(spawnTracked(cmd, args), timeoutMs)
}

function nsExec (h: BenchHost, args: string[]): [string, string[]] {
  // `ip netns exec` execs the command in place: the PID we hold is the command's own.
  return ['ip', ['netns', 'exec', h.ns, ...args]]
}

// ---------------------------------------------------------------- CPU

const CLK_TCK = 100

/** utime + stime of a process in seconds, or NaN if it is gone. */
export function cpuSeconds (pid: number | undefined): number {
  if (pid === undefined) return NaN
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    // comm may hold spaces and parentheses: fields start after the last ')'. Field 3 (state) is index 0.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(f[11]) + Number(f[12])) / CLK_TCK
  } catch {
    return NaN
  }
}

/** Jiffies of the whole machine (/proc/stat, all cores): user (with nice), system, softirq (+irq), busy, total. */
function machineJiffies (): { user: number, system: number, softirq: number, busy: number, total: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] as string
  const v = line.trim().split(/\s+/).slice(1).map(Number)
  const at = (i: number): number => v[i] ?? 0
  // user nice system idle iowait irq softirq steal guest guest_nice (guest time is already in user)
  const total = at(0) + at(1) + at(2) + at(3) + at(4) + at(5) + at(6) + at(7)
  return { user: at(0) + at(1), system: at(2), softirq: at(5) + at(6), busy: total - at(3) - at(4), total }
}

export interface CpuReport {
  wallSeconds: number
  /** CPU seconds per process name over the window. */
  seconds: Record<string, number>
  /** The same as a percentage of one core over the window. */
  percentOfCore: Record<string, number>
  /** Whole machine, all cores: percentage of its capacity that was busy (softirq included). */
  machineBusyPercent: number
  /** The machine's busy time by kind, % of all cores: user, system, softirq+irq. */
  machine: { userPercent: number, systemPercent: number, softirqPercent: number }
}

/** Start measuring; call the returned function at the end of the window. */
export function cpuWindow (pids: Record<string, number | undefined>): () => CpuReport {
  const t0 = performance.now()
  const m0 = machineJiffies()
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]))
  return () => {
    const wall = (performance.now() - t0) / 1000
    const m1 = machineJiffies()
    const seconds: Record<string, number> = {}
    const percentOfCore: Record<string, number> = {}
    for (const [k, pid] of Object.entries(pids)) {
      seconds[k] = round(cpuSeconds(pid) - (before[k] as number), 2)
      percentOfCore[k] = round(100 * seconds[k] / wall, 1)
    }
    const total = Math.max(1, m1.total - m0.total)
    const pct = (k: 'user' | 'system' | 'softirq' | 'busy'): number => round(100 * (m1[k] - m0[k]) / total, 1)
    return {
      wallSeconds: round(wall, 2),
      seconds,
      percentOfCore,
      machineBusyPercent: pct('busy'),
      machine: { userPercent: pct('user'), systemPercent: pct('system'), softirqPercent: pct('softirq') }
    }
  }
}

export function round (x: number, digits: number): number {
  if (!Number.isFinite(x)) return x
  const f = 10 ** digits
  return Math.round(x * f) / f
}

// ---------------------------------------------------------------- iperf3

/** Start `iperf3 -s -1` on the host's address; resolves once it listens. */
async function iperfServer (h: BenchHost, port: number): Promise<ChildProcess> {
  const [cmd, args] = nsExec(h, ['iperf3', '-s', '-1', '-B', h.ipv4, '-p', String(port), '--forceflush'])
  const server = spawnTracked(cmd, args)
  const r = collect(server, 120_000)
  let out = ''
  server.stdout?.on('data', (d: string) => { out += d })
  const t0 = Date.now()
  while (!out.includes('Server listening')) {
    if (server.exitCode !== null || Date.now() - t0 > 5000) {
      server.kill('SIGKILL')
      const res = await r
      throw new Error(`iperf3 server in ${h.ns} did not start: ${res.stderr.trim() || res.stdout.trim()}`)
    }
    await sleep(20)
  }
  r.catch(() => {})
  return server
}

async function stopServer (server: ChildProcess): Promise<void> {
  if (server.exitCode !== null || server.signalCode !== null) return
  const exited = once(server, 'exit')
  // -1 makes it exit after its one test: give it a moment, then make sure.
  await Promise.race([exited, sleep(1000)])
  if (server.exitCode === null && server.signalCode === null) { server.kill('SIGKILL'); await Promise.race([exited, sleep(2000)]) }
}

let nextPort = 5201

interface IperfJson {
  /** Ours, not iperf3's: CPU % of one core of the client and server processes over the run (from /proc, polled). */
  measuredCpu?: { client: number, server: number }
  error?: string
  end?: {
    sum_sent?: { bits_per_second: number, retransmits?: number, packets?: number, seconds: number, bytes: number }
    sum_received?: { bits_per_second: number, packets?: number, lost_packets?: number, lost_percent?: number, seconds: number, bytes: number }
    cpu_utilization_percent?: { host_total: number, remote_total: number }
  }
}

/** A client of an iperf3 test (server on `to`, client on `from`), started but not awaited. */
async function iperfClient (from: BenchHost, to: BenchHost, seconds: number, extra: string[]): Promise<{ done: Promise<IperfJson>, server: ChildProcess }> {
  const port = nextPort++
  if (nextPort > 5299) nextPort = 5201
  const server = await iperfServer(to, port)
  const [cmd, args] = nsExec(from, ['iperf3', '-c', to.ipv4, '-p', String(port), '-t', String(seconds), '-J', '--connect-timeout', '3000', ...extra])
  const client = spawnTracked(cmd, args)
  // /proc/<pid>/stat is gone once a process exits: poll it, keep the last reading.
  const t0 = performance.now()
  const cpu0 = { client: cpuSeconds(client.pid), server: cpuSeconds(server.pid) }
  const last = { ...cpu0, t: t0 }
  const poll = setInterval(() => {
    const c = cpuSeconds(client.pid)
    const sv = cpuSeconds(server.pid)
    if (Number.isFinite(c) && Number.isFinite(sv)) { last.client = c; last.server = sv; last.t = performance.now() }
  }, 100)
  const done = collect(client, (seconds + 20) * 1000).then((res) => {
    let j: IperfJson
    try { j = JSON.parse(res.stdout) as IperfJson } catch { throw new Error(`iperf3 ${extra.join(' ')}: no JSON (exit ${String(res.code)}): ${res.stderr.trim()}`) }
    if (j.error !== undefined) throw new Error(`iperf3 ${extra.join(' ')}: ${j.error}`)
    const wall = Math.max(0.001, (last.t - t0) / 1000)
    j.measuredCpu = { client: round(100 * (last.client - cpu0.client) / wall, 1), server: round(100 * (last.server - cpu0.server) / wall, 1) }
    return j
  }).finally(async () => { clearInterval(poll); await stopServer(server) })
  return { done, server }
}

export interface TcpResult {
  streams: number
  seconds: number
  /** Receiver side. */
  gbps: number
  senderGbps: number
  retransmits: number | undefined
  /** CPU of the iperf3 client and server processes, % of one core, measured by us from /proc. */
  iperfCpuClient: number | undefined
  iperfCpuServer: number | undefined
  /** What iperf3 itself says (host = client, remote = server). */
  iperfReportedCpu: unknown
}

function tcpResult (j: IperfJson, streams: number): TcpResult {
  const e = j.end
  if (e?.sum_received === undefined || e.sum_sent === undefined) throw new Error('iperf3: no TCP summary in its JSON')
  return {
    streams,
    seconds: round(e.sum_received.seconds, 2),
    gbps: round(e.sum_received.bits_per_second / 1e9, 3),
    senderGbps: round(e.sum_sent.bits_per_second / 1e9, 3),
    retransmits: e.sum_sent.retransmits,
    iperfCpuClient: j.measuredCpu?.client,
    iperfCpuServer: j.measuredCpu?.server,
    iperfReportedCpu: e.cpu_utilization_percent
  }
}

/** iperf3 TCP from `from` to `to` with `streams` parallel streams; the first second (slow start) is omitted. */
export async function iperfTcp (from: BenchHost, to: BenchHost, seconds: number, streams: number): Promise<TcpResult> {
  const extra = ['-O', '1', ...(streams > 1 ? ['-P', String(streams)] : [])]
  const { done } = await iperfClient(from, to, seconds, extra)
  return tcpResult(await done, streams)
}

export interface UdpResult {
  datagramBytes: number
  seconds: number
  /** Datagrams the server received, per second. */
  receivedPps: number
  /** Datagrams the client sent, per second: the generator's rate. */
  sentPps: number
  lossPercent: number
  receivedGbps: number
  /** CPU of the iperf3 client and server processes, % of one core, measured by us from /proc. */
  iperfCpuClient: number | undefined
  iperfCpuServer: number | undefined
  /** What iperf3 itself says (host = client, remote = server). */
  iperfReportedCpu: unknown
}

/** iperf3 UDP flood of small datagrams (`-b 0`: as fast as the client can). */
export async function iperfUdp (from: BenchHost, to: BenchHost, seconds: number, datagramBytes = 64): Promise<UdpResult> {
  const { done } = await iperfClient(from, to, seconds, ['-u', '-l', String(datagramBytes), '-b', '0'])
  const j = await done
  const e = j.end
  const rx = e?.sum_received
  const tx = e?.sum_sent
  if (rx === undefined || tx === undefined || rx.packets === undefined || tx.packets === undefined) throw new Error('iperf3: no UDP summary in its JSON')
  const received = rx.packets - (rx.lost_packets ?? 0)
  return {
    datagramBytes,
    seconds: round(rx.seconds, 2),
    receivedPps: Math.round(received / rx.seconds),
    sentPps: Math.round(tx.packets / tx.seconds),
    lossPercent: round(rx.lost_percent ?? 0, 2),
    receivedGbps: round(rx.bits_per_second / 1e9, 3),
    iperfCpuClient: j.measuredCpu?.client,
    iperfCpuServer: j.measuredCpu?.server,
    iperfReportedCpu: e?.cpu_utilization_percent
  }
}

// ---------------------------------------------------------------- ping

export interface PingResult {
  sent: number
  received: number
  p50Us: number
  p99Us: number
  minUs: number
  maxUs: number
  /** Every round trip, in the order sent. */
  samplesUs: number[]
  /** Load running meanwhile (iperf3 TCP), receiver Gbit/s, and its processes' CPU (% of one core). */
  loadGbps?: number
  iperfCpuClient?: number
  iperfCpuServer?: number
}

export function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))] as number
}

/** `count` pings `intervalS` apart; per-packet times parsed from ping's output. */
export async function pingRtt (from: BenchHost, to: BenchHost, count: number, intervalS: number): Promise<PingResult> {
  const [cmd, args] = nsExec(from, ['ping', '-4', '-n', '-c', String(count), '-i', String(intervalS), '-W', '1', to.ipv4])
  const res = await exec(cmd, args, (count * intervalS + 10) * 1000)
  const samples = [...res.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => round(Number(m[1]) * 1000, 1))
  const times = [...samples].sort((a, b) => a - b)
  if (times.length === 0) throw new Error(`ping ${to.ipv4} from ${from.ns}: no replies (exit ${String(res.code)}) ${res.stderr.trim()}`)
  return {
    sent: count,
    received: times.length,
    p50Us: round(percentile(times, 50), 1),
    p99Us: round(percentile(times, 99), 1),
    minUs: round(times[0] as number, 1),
    maxUs: round(times[times.length - 1] as number, 1),
    samplesUs: samples
  }
}

/** The same ping while one iperf3 TCP stream runs from `from` to `to`. */
export async function pingUnderLoad (from: BenchHost, to: BenchHost, count: number, intervalS: number): Promise<PingResult> {
  const pingSeconds = count * intervalS
  const { done } = await iperfClient(from, to, Math.ceil(pingSeconds) + 3, [])
  done.catch(() => {})
  let ping: PingResult
  try {
    await sleep(1000) // past slow start: the queues are full
    ping = await pingRtt(from, to, count, intervalS)
  } catch (err) {
    await done.catch(() => {})
    throw err
  }
  const load = tcpResult(await done, 1)
  return { ...ping, loadGbps: load.gbps, iperfCpuClient: load.iperfCpuClient, iperfCpuServer: load.iperfCpuServer }
}

// ---------------------------------------------------------------- where frames went

export interface LinkCounters { rxPackets: number, rxDropped: number, txPackets: number, txDropped: number }

/** The kernel's counters of one interface in a namespace. */
export async function linkCounters (ns: string, dev: string): Promise<LinkCounters> {
  const res = await exec('ip', ['-n', ns, '-j', '-s', 'link', 'show', 'dev', dev], 5000)
  const s = (JSON.parse(res.stdout) as Array<{ stats64: { rx: { packets: number, dropped: number }, tx: { packets: number, dropped: number } } }>)[0]?.stats64
  if (s === undefined) throw new Error(`no counters for ${dev} in ${ns}`)
  return { rxPackets: s.rx.packets, rxDropped: s.rx.dropped, txPackets: s.tx.packets, txDropped: s.tx.dropped }
}

export function diffCounters<T extends Record<string, number>> (a: T, b: T): T {
  return Object.fromEntries(Object.keys(b).map((k) => [k, (b[k] as number) - (a[k] as number)])) as T
}
