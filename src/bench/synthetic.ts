/**
 * switchd on its own, no TAPs: forwarding rate between two WebSocket clients
 * (held by a separate load-generator process, loadgen.ts), and memory per
 * idle port. switchd runs as a child (bin/switchd.js on 127.0.0.1:0) so that
 * its CPU and RSS are its own.
 */

import { fork, type ChildProcess } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import WebSocket from 'ws'
import { SUBPROTOCOL_V1, MAX_MESSAGE_SIZE } from '../common/protocol'
import { stopChild, emitLines, waitForLine } from '../lab/lab'
import { spawnTracked, trackChild, onCleanup, cpuSeconds, cpuWindow, round, sleep, type CpuReport } from './measure'
import type { LoadgenJob, LoadgenResult } from './loadgen'

const ROOT = path.join(__dirname, '..', '..')

export interface Switchd {
  child: ChildProcess
  port: number
  url: string
  stop: () => Promise<void>
}

/** Start bin/switchd.js on 127.0.0.1:0 with `args` (and `config` as a temporary --config file). */
export async function startSwitchd (args: string[], config?: unknown, onLog?: (line: string) => void): Promise<Switchd> {
  let dir: string | undefined
  const all = ['--listen', '127.0.0.1:0', ...args]
  if (config !== undefined) {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-bench-'))
    fs.writeFileSync(path.join(dir, 'switchd.json'), JSON.stringify(config))
    all.push('--config', path.join(dir, 'switchd.json'))
  }
  const child = spawnTracked(process.execPath, [path.join(ROOT, 'bin', 'switchd.js'), ...all])
  const stop = async (): Promise<void> => {
    unregister()
    await stopChild(child)
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
  }
  const unregister = onCleanup(stop)
  try {
    emitLines(child, 'switchd', onLog)
    const line = await waitForLine(child, 'switchd', (l) => l.includes('"event":"listening"'), 10_000)
    const port = (JSON.parse(line) as { port: number }).port
    return { child, port, url: `ws://127.0.0.1:${port}/`, stop }
  } catch (err) {
    await stop()
    throw err
  }
}

// ---------------------------------------------------------------- forwarding rate

export interface ForwardResult {
  mode: 'raw' | 'batched'
  frameBytes: number
  framesPerMessage: number
  seconds: number
  /** What the receiver got. */
  framesPerSecond: number
  gbps: number
  /** Received / sent in the window (switchd drops what the receiver cannot take; >100 % is queue drain). */
  deliveredPercent: number
  switchdCpuPercent: number
  loadgenCpuPercent: number
  /** Both cores, kernel (loopback TCP, softirq) included. */
  machineBusyPercent: number
  machine: CpuReport['machine'] | undefined
}

let macSeq = 0x020000bee000

/** One forwarding test through `sw`. */
export async function forwardRate (sw: Switchd, mode: 'raw' | 'batched', frameBytes: number, warmupMs: number, measureMs: number): Promise<ForwardResult> {
  const ext = path.extname(__filename) // .js from dist/, .ts under tsx
  const child = trackChild(fork(path.join(__dirname, `loadgen${ext}`), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  const job: LoadgenJob = { url: sw.url, mode, frameBytes, batchFrames: 64, warmupMs, measureMs, macA: macSeq++, macB: macSeq++ }
  try {
    let cpu0 = NaN
    let t0 = 0
    let machine: (() => CpuReport) | undefined
    const result = await new Promise<LoadgenResult>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error('load generator timed out')) }, warmupMs + measureMs + 15_000)
      child.on('message', (m: { ev: string, message?: string }) => {
        if (m.ev === 'measuring') { cpu0 = cpuSeconds(sw.child.pid); t0 = performance.now(); machine = cpuWindow({}) }
        if (m.ev === 'result') { clearTimeout(timer); resolve(m as LoadgenResult) }
        if (m.ev === 'error') { clearTimeout(timer); reject(new Error(`load generator: ${String(m.message)}`)) }
      })
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`load generator exited (${String(code)})`)) })
      child.send(job)
    })
    const switchdCpu = cpuSeconds(sw.child.pid) - cpu0
    const m = machine?.()
    const wall = (performance.now() - t0) / 1000
    const framesPerMessage = mode === 'raw' ? 1 : Math.max(1, Math.min(64, Math.floor(65536 / (4 + frameBytes))))
    return {
      mode,
      frameBytes,
      framesPerMessage,
      seconds: round(result.seconds, 2),
      framesPerSecond: Math.round(result.rxFrames / result.seconds),
      gbps: round(result.rxBytes * 8 / result.seconds / 1e9, 3),
      deliveredPercent: round(100 * result.rxFrames / Math.max(1, result.txFrames), 1),
      switchdCpuPercent: round(100 * switchdCpu / wall, 1),
      loadgenCpuPercent: round(100 * result.cpuSeconds / result.seconds, 1),
      machineBusyPercent: m?.machineBusyPercent ?? NaN,
      machine: m?.machine
    }
  } finally {
    await stopChild(child, 1000)
  }
}

// ---------------------------------------------------------------- memory

/** VmRSS and VmSize of a process in KiB. */
export function memoryKiB (pid: number | undefined): { rss: number, size: number } {
  const status = fs.readFileSync(`/proc/${String(pid)}/status`, 'utf8')
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN)
  return { rss: field('VmRSS'), size: field('VmSize') }
}

export interface MemoryResult {
  mode: 'raw' | 'batched'
  ports: number
  rssIdleKiB: number
  rssPortsKiB: number
  perPortKiB: number
  vmSizeIdleKiB: number
  vmSizePortsKiB: number
  /** After one broadcast frame reached every port (each port's egress path used once). */
  rssAfterBroadcastKiB: number
  vmSizeAfterBroadcastKiB: number
  connectSeconds: number
}

/** Open one idle port (raw, or batched with hello and welcome). */
async function openPort (url: string, mode: 'raw' | 'batched', sockets: Set<WebSocket>): Promise<void> {
  const ws = mode === 'batched'
    ? new WebSocket(url, [SUBPROTOCOL_V1], { perMessageDeflate: false, maxPayload: MAX_MESSAGE_SIZE })
    : new WebSocket(url, { perMessageDeflate: false })
  sockets.add(ws)
  ws.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error('port did not open within 10 s')) }, 10_000)
    ws.once('open', () => {
      if (mode === 'raw') { clearTimeout(timer); resolve(); return }
      ws.send(JSON.stringify({ type: 'hello', version: 1 }))
      ws.once('message', () => { clearTimeout(timer); resolve() })
    })
    ws.once('close', (code) => { clearTimeout(timer); reject(new Error(`closed with ${code} before it was up`)) })
  })
}

/** switchd's RSS with no ports, then with `ports` idle ones from this process. */
export async function memoryPerPort (mode: 'raw' | 'batched', ports: number, onLog?: (line: string) => void): Promise<MemoryResult> {
  // Every port comes from 127.0.0.1: lift the per-address limits (default 1000 ports, 64 connections not yet upgraded).
  const sw = await startSwitchd([], { limits: { maxPortsPerAddress: Math.max(5000, ports + 100), maxPendingPerAddress: 512 } }, onLog)
  const sockets = new Set<WebSocket>()
  try {
    await sleep(1000)
    const idle = memoryKiB(sw.child.pid)
    const t0 = performance.now()
    for (let i = 0; i < ports; i += 50) {
      await Promise.all(Array.from({ length: Math.min(50, ports - i) }, async () => { await openPort(sw.url, mode, sockets) }))
    }
    const connectSeconds = (performance.now() - t0) / 1000
    await sleep(2000)
    const loaded = memoryKiB(sw.child.pid)
    // One broadcast from one port: switchd floods it to the 999 others.
    const bcast = Buffer.alloc(64)
    bcast.fill(0xff, 0, 6)
    bcast.writeUIntBE(0x020000beef01, 6, 6)
    bcast.writeUInt16BE(0x88b5, 12)
    const first = sockets.values().next().value as WebSocket
    first.send(mode === 'raw' ? bcast : Buffer.concat([Buffer.from([0, 0, 0, 64]), bcast]))
    await sleep(1500)
    const flooded = memoryKiB(sw.child.pid)
    return {
      mode,
      ports,
      rssIdleKiB: idle.rss,
      rssPortsKiB: loaded.rss,
      perPortKiB: round((loaded.rss - idle.rss) / ports, 2),
      vmSizeIdleKiB: idle.size,
      vmSizePortsKiB: loaded.size,
      rssAfterBroadcastKiB: flooded.rss,
      vmSizeAfterBroadcastKiB: flooded.size,
      connectSeconds: round(connectSeconds, 2)
    }
  } finally {
    for (const ws of sockets) ws.terminate()
    await sw.stop()
  }
}
