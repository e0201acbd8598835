/**
 * What waking a sleeping process costs on this machine, which is where most
 * of an idle ping through tapswitch goes. A 98-byte message (ping's size)
 * goes from this process to a Node echo process over loopback TCP and back:
 * once with both processes asleep in between (10 ms apart, as the idle ping
 * is timed), once back to back (both awake). Each round trip wakes two
 * processes, so half the difference is the price of one wake-up: on a
 * virtual machine, mostly the hypervisor waking an idle vCPU.
 *
 * An idle ping through tapswitch wakes agent-a, switchd, agent-b, switchd,
 * agent-a and ping: the report sets that many wake-ups against it.
 */

import * as net from 'node:net'
import * as path from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { stopChild, waitForLine, emitLines } from '../lab/lab'
import { spawnTracked, sleep, round } from './measure'

const ROOT = path.join(__dirname, '..', '..')
/** Processes an idle ping through tapswitch wakes, ping itself included. */
export const PING_WAKEUPS = 6
/**
 * Through `switchd --tap`: switchd and ping. switchd's write of the echo
 * request runs pb-b's stack in the same system call, so the reply is already
 * queued on the other TAP when switchd next polls: no second wake-up.
 */
export const PING_WAKEUPS_LOCAL = 2

export interface WakeupResult {
  /** Round trip p50 with both processes asleep between messages, µs. */
  asleepP50Us: number
  /** Round trip p50 back to back, µs. */
  awakeP50Us: number
  /** (asleep - awake) / 2: one wake-up, µs. */
  perWakeupUs: number
}

async function roundTrips (sock: net.Socket, count: number, gapMs: number): Promise<number> {
  const payload = Buffer.alloc(98)
  const times: number[] = []
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint()
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => { reject(new Error('no echo within 2 s')) }, 2000)
      sock.once('data', () => { clearTimeout(t); resolve() })
      sock.write(payload)
    })
    times.push(Number(process.hrtime.bigint() - t0) / 1000)
    if (gapMs > 0) await sleep(gapMs); else await new Promise((resolve) => setImmediate(resolve))
  }
  times.sort((a, b) => a - b)
  return times[Math.floor(times.length / 2)] as number
}

export async function measureWakeup (count: number, intervalS: number): Promise<WakeupResult> {
  let child: ChildProcess | undefined
  let sock: net.Socket | undefined
  try {
    child = spawnTracked(process.execPath, [path.join(ROOT, 'dist', 'bench', 'echo.js')])
    emitLines(child, 'echo')
    const line = await waitForLine(child, 'echo', (l) => l.startsWith('{"port"'), 5000)
    const port = (JSON.parse(line) as { port: number }).port
    const s = net.connect(port, '127.0.0.1')
    sock = s
    s.setNoDelay(true)
    await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject) })
    await roundTrips(s, 20, 0) // warm
    const asleep = await roundTrips(s, count, intervalS * 1000)
    const awake = await roundTrips(s, count, 0)
    return { asleepP50Us: round(asleep, 0), awakeP50Us: round(awake, 0), perWakeupUs: round((asleep - awake) / 2, 0) }
  } finally {
    sock?.destroy()
    await stopChild(child, 1000)
  }
}
