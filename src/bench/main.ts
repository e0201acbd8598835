/**
 * tapswitch-bench: tapswitch against the Linux bridge, in the same run, on
 * this machine; then switchd alone (synthetic forwarding, memory per port).
 * Prints one report and writes the raw numbers as JSON. Needs root for the
 * namespace part (--skip-net runs the rest as anyone).
 *
 * Everything it creates (namespaces, veths, bridge, processes) is removed at
 * the end, on failure, on Ctrl-C / SIGTERM, and when the time bound passes.
 */

import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { Lab } from '../lab/lab'
import { BridgeLab, type BenchHost } from './lab-bridge'
import { LocalTapLab } from './local-taps'
import { iperfTcp, iperfUdp, pingRtt, pingUnderLoad, cpuWindow, exec, onCleanup, runCleanups, sleep, linkCounters, diffCounters } from './measure'
import { startSwitchd, forwardRate, memoryPerPort } from './synthetic'
import { formatReport, type BenchResults, type NetResult, type NetResults } from './report'
import { measureWakeup } from './wakeup'

const ROOT = path.join(__dirname, '..', '..')

const HELP = `usage: tapswitch-bench [--quick] [--out FILE] [--skip-net] [--skip-synthetic] [-v]

Measures tapswitch between two network namespaces, both ways it runs: switchd
+ two tap-agents over WebSocket (TAPs on other hosts), and one switchd serving
both TAPs itself (--tap, TAPs on its own host); against a Linux bridge between
two namespaces, in the same run, interleaved: iperf3 TCP
(1 and 4 streams), iperf3 UDP 64-byte datagrams, ping round trips idle and
under load, and the CPU of switchd and each agent. Then switchd alone:
forwarding rate between two WebSocket clients (64/1500/9000-byte frames, raw
and batched) and RSS per idle port; and the cost of waking an idle process
(a TCP echo between two Node processes, asleep vs back to back), which is
most of an idle ping. Needs root for the namespaces.

  --quick            shorter runs (about a minute in all)
  --out FILE         JSON results [default bench-results.json]
  --skip-net         only the synthetic and memory parts (no root needed)
  --skip-synthetic   only the namespace part
  -v, --verbose      show the logs of switchd and the agents
`

interface Options { quick: boolean, out: string, skipNet: boolean, skipSynthetic: boolean, verbose: boolean }

function parseArgs (argv: string[]): Options {
  const o: Options = { quick: false, out: 'bench-results.json', skipNet: false, skipSynthetic: false, verbose: false }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string
    if (a === '--quick') o.quick = true
    else if (a === '--out') { const v = argv[++i]; if (v === undefined) throw new Error('--out needs a file'); o.out = v }
    else if (a.startsWith('--out=')) o.out = a.slice(6)
    else if (a === '--skip-net') o.skipNet = true
    else if (a === '--skip-synthetic') o.skipSynthetic = true
    else if (a === '-v' || a === '--verbose') o.verbose = true
    else if (a === '-h' || a === '--help') { process.stdout.write(HELP); process.exit(0) }
    else throw new Error(`unknown argument ${a} (see --help)`)
  }
  return o
}

const started = performance.now()
/** Set once we are cleaning up after a signal or the time bound: failures from then on are ours. */
let finishing = false
function progress (text: string): void {
  if (finishing && / FAILED /.test(text)) return
  process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(1).padStart(5)} s] ${text}\n`)
}

function errorText (err: unknown): string { return (err as Error).message.split('\n')[0] as string }

async function versionOf (cmd: string, args: string[]): Promise<string | undefined> {
  try {
    const r = await exec(cmd, args, 5000)
    return r.code === 0 ? (r.stdout.split('\n')[0] as string).trim() : undefined
  } catch { return undefined }
}

async function meta (o: Options): Promise<Record<string, unknown>> {
  const commit = await versionOf('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])
  let wsVersion: string | undefined
  try { wsVersion = (JSON.parse(fs.readFileSync(require.resolve('ws/package.json'), 'utf8')) as { version: string }).version } catch {}
  return {
    date: new Date().toISOString(),
    kernel: os.release(),
    node: process.version,
    ws: wsVersion,
    iperf3: await versionOf('iperf3', ['--version']),
    ping: await versionOf('ping', ['-V']),
    cpu: os.cpus()[0]?.model,
    cores: os.cpus().length,
    memoryMiB: Math.round(os.totalmem() / 1048576),
    commit,
    quick: o.quick
  }
}

interface Durations { iperfSeconds: number, pingCount: number, pingInterval: number, warmupMs: number, measureMs: number, memoryPorts: number }

/** Our processes' event counts from their logs (backpressure, drops, reconnects...), by process. */
const labEvents: Record<string, Record<string, number>> = {}

async function networkPart (d: Durations, o: Options, results: BenchResults): Promise<NetResults> {
  const net: NetResults = {}
  results.network = net
  const onLog = (line: string): void => {
    const who = line.slice(0, line.indexOf(':'))
    const ev = /"event":"([a-z_]+)"/.exec(line)?.[1]
    if (ev !== undefined) { labEvents[who] ??= {}; labEvents[who][ev] = (labEvents[who]?.[ev] ?? 0) + 1 }
    if (o.verbose) process.stderr.write(`  ${line}\n`)
  }
  const lab = new Lab({ hosts: 2, mtu: 1500, onLog })
  const bridge = new BridgeLab(2)
  const local = new LocalTapLab(onLog)
  // Clean-up waits for a start in progress, so nothing it creates is left behind.
  let labStarting: Promise<void> = Promise.resolve()
  let bridgeStarting: Promise<void> = Promise.resolve()
  let localStarting: Promise<void> = Promise.resolve()
  const unregister = [
    onCleanup(async () => { await Promise.race([labStarting.catch(() => {}), sleep(20_000)]); await lab.stop() }),
    onCleanup(async () => { await Promise.race([bridgeStarting.catch(() => {}), sleep(20_000)]); await bridge.stop() }),
    onCleanup(async () => { await Promise.race([localStarting.catch(() => {}), sleep(20_000)]); await local.stop() })
  ]
  try {
    progress('starting the linux bridge namespaces and the tapswitch lab (switchd + 2 tap-agents)')
    bridgeStarting = bridge.start()
    await bridgeStarting
    labStarting = lab.start()
    await labStarting
    progress('starting switchd --tap (one switchd serving both TAPs, no agents)')
    localStarting = local.start()
    await localStarting
    const paths: Paths = {
      lab,
      local,
      hosts: { bridge: bridge.hosts as [BenchHost, BenchHost], tapswitch: lab.hosts as unknown as [BenchHost, BenchHost], local: local.hosts as [BenchHost, BenchHost] }
    }
    // ARP and fdb warm, and proof that every path works before anything is measured.
    for (const side of SIDES) await pingRtt(...paths.hosts[side], 3, 0.1)
    for (const test of netTests(d)) (net as Record<string, NetResult<unknown>>)[test.key] = await runNetTest(paths, test, results)
    for (const [who, child] of [['switchd', lab.switchd], ['switchd --tap', local.switchd], ...lab.hosts.map((h) => [`agent-${h.label}`, h.agent] as const)] as const) {
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) results.errors.push(`${who} is not running at the end of the tests`)
    }
    try {
      ;(results as unknown as Record<string, unknown>).labPorts = await lab.api('/api/v1/ports')
    } catch (err) {
      results.errors.push(`switchd /api/v1/ports: ${errorText(err)}`)
    }
  } finally {
    progress('removing the namespaces and stopping switchd and the agents')
    for (const u of unregister) u()
    await Promise.all([lab.stop(), bridge.stop(), local.stop()])
  }
  return net
}

/** The three paths, in the order each test runs them: the bridge, tapswitch with agents, switchd --tap. */
const SIDES = ['bridge', 'tapswitch', 'local'] as const
type Side = typeof SIDES[number]
const SIDE_NAMES: Record<Side, string> = { bridge: 'linux bridge', tapswitch: 'tapswitch', local: 'switchd --tap' }

/** The paths under test, started: the two hosts of each. */
interface Paths { lab: Lab, local: LocalTapLab, hosts: Record<Side, [BenchHost, BenchHost]> }

interface NetTest {
  key: keyof NetResults
  label: string
  run: (a: BenchHost, b: BenchHost) => Promise<unknown>
  describe: (r: never) => string
}

function netTests (d: Durations): NetTest[] {
  return [
    { key: 'tcp1', label: 'tcp 1 stream', run: async (a, b) => await iperfTcp(a, b, d.iperfSeconds, 1), describe: (r: { gbps: number }) => `${r.gbps} Gbit/s` },
    { key: 'tcp4', label: 'tcp 4 streams', run: async (a, b) => await iperfTcp(a, b, d.iperfSeconds, 4), describe: (r: { gbps: number }) => `${r.gbps} Gbit/s` },
    {
      key: 'udp64',
      label: 'udp 64 B',
      run: async (a, b) => await iperfUdp(a, b, d.iperfSeconds, 64),
      describe: (r: { receivedPps: number, sentPps: number, lossPercent: number }) => `${r.receivedPps} frames/s received of ${r.sentPps} sent, loss ${r.lossPercent} %`
    },
    {
      key: 'pingIdle',
      label: 'ping idle',
      run: async (a, b) => await pingRtt(a, b, d.pingCount, d.pingInterval),
      describe: (r: { p50Us: number, p99Us: number }) => `p50 ${r.p50Us} us, p99 ${r.p99Us} us`
    },
    {
      key: 'pingLoaded',
      label: 'ping under tcp load',
      run: async (a, b) => await pingUnderLoad(a, b, d.pingCount, d.pingInterval),
      describe: (r: { p50Us: number, p99Us: number, loadGbps?: number }) => `p50 ${r.p50Us} us, p99 ${r.p99Us} us (tcp ${String(r.loadGbps)} Gbit/s)`
    }
  ]
}

/** One test on each path, interleaved, with the CPU of our processes and where the frames went. */
async function runNetTest (paths: Paths, test: NetTest, results: BenchResults): Promise<NetResult<unknown>> {
  const res: NetResult<unknown> = { cpu: {} }
  const cpu = res.cpu as Record<string, unknown>
  const { lab, local } = paths
  for (const side of SIDES) {
    const [a, b] = paths.hosts[side]
    const before = await frameCounters(paths, side).catch(() => undefined)
    const pids = side === 'tapswitch'
      ? { switchd: lab.switchd?.pid, 'agent-a': lab.hosts[0]?.agent?.pid, 'agent-b': lab.hosts[1]?.agent?.pid }
      : side === 'local' ? { switchd: local.switchd?.pid } : {}
    const window = cpuWindow(pids)
    try {
      const r = await test.run(a, b) as Record<string, unknown>
      cpu[side] = window()
      const after = await frameCounters(paths, side).catch(() => undefined)
      if (before !== undefined && after !== undefined) r.frames = diffCounters(before, after)
      res[side] = r
      progress(`${test.label}, ${SIDE_NAMES[side]}: ${test.describe(r as never)}`)
    } catch (err) {
      cpu[side] ??= window()
      res[side] = { error: errorText(err) }
      results.errors.push(`${test.label}, ${side}: ${errorText(err)}`)
      progress(`${test.label}, ${side}: FAILED ${errorText(err)}`)
    }
    await sleep(300) // let queues drain between runs
  }
  return res
}

interface PortCounters { name: string, counters: { rxFrames: number, txFrames: number }, drops: Record<string, number> }

/**
 * Where frames went: the sender's interface (tx, tx dropped = not taken off
 * the TAP queue in time), switchd's two ports, the receiver's interface.
 */
async function frameCounters (paths: Paths, side: Side): Promise<Record<string, number>> {
  const [a, b] = paths.hosts[side]
  const { lab, local } = paths
  const dev = side === 'bridge' ? ['eth0', 'eth0'] : side === 'local' ? [local.tap(0), local.tap(1)] : [lab.hosts[0]?.tap as string, lab.hosts[1]?.tap as string]
  const ca = await linkCounters(a.ns, dev[0] as string)
  const cb = await linkCounters(b.ns, dev[1] as string)
  const out: Record<string, number> = { aTxPackets: ca.txPackets, aTxDropped: ca.txDropped, bRxPackets: cb.rxPackets, bRxDropped: cb.rxDropped, bTxPackets: cb.txPackets }
  if (side === 'tapswitch') {
    const ports = await lab.api<PortCounters[]>('/api/v1/ports')
    const pa = ports.find((p) => p.name === 'host-a')
    const pb = ports.find((p) => p.name === 'host-b')
    out.switchdRxFromA = pa?.counters.rxFrames ?? NaN
    out.switchdTxToB = pb?.counters.txFrames ?? NaN
    out.switchdDrops = ports.reduce((n, p) => n + Object.values(p.drops).reduce((x, y) => x + y, 0), 0)
  }
  return out
}

async function syntheticPart (d: Durations, o: Options, results: BenchResults): Promise<void> {
  const onLog = o.verbose ? (line: string) => { process.stderr.write(`  ${line}\n`) } : undefined
  results.synthetic = []
  for (const mode of ['raw', 'batched'] as const) {
    for (const size of [64, 1500, 9000]) {
      try {
        // A fresh switchd per run: no heap or fdb left over from the one before.
        const sw = await startSwitchd(['--max-frame-size', '9018'], undefined, onLog)
        try {
          const r = await forwardRate(sw, mode, size, d.warmupMs, d.measureMs)
          results.synthetic.push(r)
          progress(`synthetic ${mode} ${size} B: ${r.framesPerSecond} frames/s, ${r.gbps} Gbit/s (switchd ${r.switchdCpuPercent} % CPU, load generator ${r.loadgenCpuPercent} %)`)
        } finally {
          await sw.stop()
        }
      } catch (err) {
        results.synthetic.push({ error: `${mode} ${size} B: ${errorText(err)}` })
        results.errors.push(`synthetic ${mode} ${size} B: ${errorText(err)}`)
        progress(`synthetic ${mode} ${size} B: FAILED ${errorText(err)}`)
      }
    }
  }
  results.memory = []
  for (const mode of ['raw', 'batched'] as const) {
    try {
      const m = await memoryPerPort(mode, d.memoryPorts, onLog)
      results.memory.push(m)
      progress(`memory ${mode}: RSS ${m.rssIdleKiB} KiB idle, ${m.rssPortsKiB} KiB with ${m.ports} ports (${m.perPortKiB} KiB per port)`)
    } catch (err) {
      results.memory.push({ error: `${mode}: ${errorText(err)}` })
      results.errors.push(`memory ${mode}: ${errorText(err)}`)
      progress(`memory ${mode}: FAILED ${errorText(err)}`)
    }
  }
}

async function preflight (o: Options): Promise<void> {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'switch', 'main.js')) || !fs.existsSync(path.join(ROOT, 'dist', 'agent', 'main.js'))) {
    throw new Error('dist/ is incomplete: run `npm run build` first')
  }
  if (o.skipNet) return
  if (process.getuid?.() !== 0) throw new Error('the namespace tests need root (sudo), or pass --skip-net for the synthetic part only')
  for (const [cmd, args] of [['ip', ['-V']], ['ping', ['-V']], ['iperf3', ['--version']]] as Array<[string, string[]]>) {
    if (await versionOf(cmd, args) === undefined) throw new Error(`${cmd} is missing (apt-get install iproute2 iputils-ping iperf3)`)
  }
  if (!fs.existsSync('/dev/net/tun')) throw new Error('/dev/net/tun is missing (modprobe tun)')
}

export async function main (argv: string[]): Promise<void> {
  let o: Options
  try { o = parseArgs(argv) } catch (err) { process.stderr.write(`tapswitch-bench: ${errorText(err)}\n`); process.exitCode = 2; return }
  const d: Durations = o.quick
    ? { iperfSeconds: 3, pingCount: 200, pingInterval: 0.01, warmupMs: 500, measureMs: 1500, memoryPorts: 1000 }
    : { iperfSeconds: 8, pingCount: 200, pingInterval: 0.01, warmupMs: 1000, measureMs: 3000, memoryPorts: 1000 }
  const limitS = o.quick ? 240 : 600

  const abort = (why: string, code: number): void => {
    if (finishing) return
    progress(`${why}: cleaning up`)
    finishing = true
    void runCleanups().finally(() => { process.exit(code) })
  }
  process.on('SIGINT', () => { abort('interrupted', 130) })
  process.on('SIGTERM', () => { abort('terminated', 143) })
  process.on('SIGHUP', () => { abort('hangup', 129) })
  const watchdog = setTimeout(() => { abort(`still running after ${limitS} s (the time bound)`, 1) }, limitS * 1000)
  watchdog.unref()

  const results: BenchResults & Record<string, unknown> = { errors: [] }
  try {
    await preflight(o)
    const idle = cpuWindow({})
    await sleep(1000)
    results.machineBusyBeforePercent = idle().machineBusyPercent
    if (results.machineBusyBeforePercent > 15) progress(`warning: the machine is ${results.machineBusyBeforePercent} % busy before we start (other processes)`)
    results.meta = await meta(o)
    results.durations = d
    if (!o.skipNet) {
      // A failure here (say, no iperf3 server) still leaves the synthetic part to run.
      await networkPart(d, o, results).catch((err: unknown) => {
        if (finishing) throw err
        results.errors.push(`network tests: ${errorText(err)}`)
        progress(`network tests FAILED: ${errorText(err)}`)
      })
    }
    if (!o.skipNet) {
      // The idle ping's schedule, between two processes that do nothing else: the price of a wake-up.
      try {
        results.wakeup = await measureWakeup(d.pingCount, d.pingInterval)
        progress(`wake-up cost: tcp echo p50 ${results.wakeup.asleepP50Us} us asleep, ${results.wakeup.awakeP50Us} us awake (${results.wakeup.perWakeupUs} us per wake-up)`)
      } catch (err) {
        results.wakeup = { error: errorText(err) }
        results.errors.push(`wake-up cost: ${errorText(err)}`)
      }
    }
    if (!o.skipSynthetic) await syntheticPart(d, o, results)
  } catch (err) {
    results.errors.push(errorText(err))
    progress(`FAILED: ${errorText(err)}`)
  } finally {
    if (!finishing) await runCleanups()
  }
  if (finishing) return
  clearTimeout(watchdog)
  results.labEvents = labEvents
  process.stdout.write('\n' + formatReport(results))
  if (results.meta !== undefined) {
    fs.writeFileSync(o.out, JSON.stringify(results, null, 2) + '\n')
    process.stdout.write(`\nresults: ${path.resolve(o.out)}\n`)
  }
  process.exitCode = results.errors.length > 0 ? 1 : 0
}
