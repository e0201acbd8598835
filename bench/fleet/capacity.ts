/**
 * How many networks and ports a 3-replica fleet behind nginx holds on this
 * machine (`npm run bench:fleet`, root not needed for this part): networks
 * of two raw WebSocket ports each (what a browser VM opens) are added through
 * nginx in doubling steps, up to a bound (--max-networks, default 8000). After
 * each step every network must still carry a frame: port a of each sends one
 * broadcast, and port b of each must get it. The ramp stops at the bound, at
 * the first port the fleet refuses, or at the first step where a network
 * does not deliver; it prints each step (ports per replica, each replica's
 * and nginx's memory) and where it stopped.
 *
 * Everything runs on 127.0.0.1; every wait is bounded; the fleet is stopped
 * by PID (test/helpers/fleet.ts) also on failure.
 */

import * as fs from 'node:fs'
import WebSocket from 'ws'
import { Fleet } from '../../test/helpers/fleet'

interface Port { ws: WebSocket, got: number }
interface Step { networks: number, ports: number, perReplica: Record<string, number>, rssMiB: Record<string, number>, deliverMs: number }

const BATCH = 100
const GUARD_MS = 60_000

function arg (name: string, dflt: number): number {
  const i = process.argv.indexOf(name)
  return i >= 0 ? Number(process.argv[i + 1]) : dflt
}

function rssMiB (pid: number | undefined): number {
  if (pid === undefined) return 0
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? 0 : Math.round(Number(m[1]) / 1024)
  } catch { return 0 }
}

function open (url: string): Promise<Port> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 20_000 })
    const port: Port = { ws, got: 0 }
    ws.on('message', () => { port.got++ })
    ws.once('open', () => { resolve(port) })
    ws.once('unexpected-response', (_req, res) => { reject(new Error(`${url}: HTTP ${res.statusCode ?? 0}`)) })
    ws.once('error', reject)
  })
}

/** A 60-byte broadcast from a MAC that names network `i`. */
function frame (i: number): Buffer {
  const f = Buffer.alloc(60)
  f.fill(0xff, 0, 6)
  f.writeUInt16BE(0x02cc, 6)
  f.writeUInt32BE(i, 8)
  f.writeUInt16BE(0x88b5, 12)
  return f
}

/** Every network's port a sends one frame; resolves with the ms until every port b got one, or throws after GUARD_MS. */
async function deliver (nets: Array<[Port, Port]>): Promise<number> {
  const before = nets.map(([, b]) => b.got)
  const start = Date.now()
  nets.forEach(([a], i) => { a.ws.send(frame(i)) })
  for (;;) {
    const missing = nets.filter(([, b], i) => b.got <= (before[i] as number)).length
    if (missing === 0) return Date.now() - start
    if (Date.now() - start > GUARD_MS) throw new Error(`${missing} of ${nets.length} networks did not deliver a frame within ${GUARD_MS / 1000} s`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

async function perReplica (fleet: Fleet): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const r of fleet.replicas) out[r.name] = (await fleet.api<unknown[]>(r, '/api/v1/ports')).length
  return out
}

async function main (): Promise<void> {
  const max = arg('--max-networks', 8000)
  const first = Math.min(arg('--first', 250), max)
  const fleet = new Fleet({
    replicas: 3,
    pingInterval: 3,
    balancerConnections: 4 * max + 1024,
    config: { maxNetworks: 100_000, limits: { maxPorts: 1_000_000, maxPortsPerAddress: 1_000_000, maxPending: 4096, maxPendingPerAddress: 4000 } }
  })
  const nets: Array<[Port, Port]> = []
  const steps: Step[] = []
  let stopped = `the bound (--max-networks ${max})`
  try {
    await fleet.start()
    for (let target = first; nets.length < max; target = Math.min(target * 2, max)) {
      try {
        while (nets.length < target) {
          const batch = Array.from({ length: Math.min(BATCH, target - nets.length) }, (_, k) => nets.length + k)
          const opened = await Promise.all(batch.map(async (i) => [await open(fleet.netUrl(`cap${i}`)), await open(fleet.netUrl(`cap${i}`))] as [Port, Port]))
          nets.push(...opened)
        }
        const deliverMs = await deliver(nets)
        const rss: Record<string, number> = {}
        for (const r of fleet.replicas) rss[r.name] = rssMiB(r.child?.pid)
        rss.nginx = rssMiB(fleet.balancer?.child?.pid)
        const step = { networks: nets.length, ports: 2 * nets.length, perReplica: await perReplica(fleet), rssMiB: rss, deliverMs }
        steps.push(step)
        console.log(`networks ${step.networks}  ports ${step.ports}  ports per replica ${JSON.stringify(step.perReplica)}  RSS MiB ${JSON.stringify(step.rssMiB)}  every network delivered in ${deliverMs} ms`)
      } catch (err) {
        stopped = `at ${nets.length} networks: ${(err as Error).message}`
        break
      }
    }
  } finally {
    for (const [a, b] of nets) { a.ws.terminate(); b.ws.terminate() }
    await fleet.stop()
  }
  const last = steps[steps.length - 1]
  console.log(`capacity: a 3-replica fleet held ${last?.networks ?? 0} networks (${last?.ports ?? 0} ports), every one delivering; stopped ${stopped}`)
  if (process.env.BENCH_FLEET_JSON !== undefined) fs.writeFileSync(process.env.BENCH_FLEET_JSON, JSON.stringify({ steps, stopped }, null, 2))
}

main().catch((err: unknown) => { console.error(err); process.exitCode = 1 })
