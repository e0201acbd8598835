/**
 * A fleet on one machine (issue 25): N switchd replicas that know each other
 * (`--replica rN --fleet <every replica's URL> --fleet-token-file`), a real
 * nginx in front of them hashing `/net/<name>` onto the replicas
 * (balancer.ts writes its configuration), and tap-agents in network
 * namespaces the fleet made, connecting through nginx or straight to one
 * replica (a forced split).
 *
 * Every replica listens on a loopback port picked before any starts, so the
 * same `--fleet` list is given to all of them and a restarted replica comes
 * back on its own port. Everything is stopped by the PID we started and
 * removed by stop(), which is safe after any failure and more than once.
 * Addresses (192.0.2.0/24) exist only inside the namespaces.
 */

import { spawn, type ChildProcess } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { randomBytes } from 'node:crypto'
import { emitLines, run, stopChild, waitForLine } from '../../src/lab/lab'
import { freePort, until, MIN_WAIT_MS } from './net'
import { Balancer } from './fleet-nginx'

const ROOT = path.join(__dirname, '..', '..')

export interface Replica {
  /** r1, r2, … */
  name: string
  port: number
  child: ChildProcess | undefined
  /** Base URL of its main listener (API, fleet state, WebSocket ports). */
  url: string
}

export interface FleetAgent {
  network: string
  /** Port name on the switch: `<network>-<letter>`. */
  name: string
  ns: string
  tap: string
  mac: string
  ipv4: string
  /** The URL it was told to connect to (nginx, or one replica: a forced split). */
  url: string
  child: ChildProcess | undefined
}

export interface FleetOptions {
  replicas?: number
  /** switchd's configuration (the JSON of --config) for every replica. */
  config?: unknown
  /** Extra switchd flags for every replica. */
  switchdArgs?: string[]
  /** switchd's keepalive ping period (default 1 s: a dead peer is noticed fast). */
  pingInterval?: number
  /** nginx's worker_connections (each port through it takes two). */
  balancerConnections?: number
  /** Receives every log line, prefixed by who said it. */
  onLog?: (line: string) => void
}

/** GET /api/v1/ports: the fields the fleet tests read. */
export interface FleetPort { name: string, network: string, kind: string, counters: { rxFrames: number, txFrames: number } }

export class Fleet {
  readonly replicas: Replica[] = []
  readonly agents: FleetAgent[] = []
  balancer: Balancer | undefined
  readonly token = randomBytes(24).toString('hex')
  private readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-fleet-'))
  private readonly tag = String(process.pid)
  private readonly made = new Set<string>()
  private seq = 0

  constructor (readonly opts: FleetOptions = {}) {}

  /** The balancer's WebSocket URL of network `name`. */
  netUrl (name: string): string {
    if (this.balancer === undefined) throw new Error('the fleet has no balancer yet')
    return `ws://127.0.0.1:${this.balancer.port}/net/${name}`
  }

  /** Start every replica and nginx; on failure cleans up and rethrows. */
  async start (): Promise<void> {
    try {
      const n = this.opts.replicas ?? 3
      for (let i = 1; i <= n; i++) {
        const port = await freePort()
        this.replicas.push({ name: `r${i}`, port, child: undefined, url: `http://127.0.0.1:${port}` })
      }
      fs.writeFileSync(path.join(this.dir, 'fleet.token'), this.token + '\n', { mode: 0o600 })
      if (this.opts.config !== undefined) fs.writeFileSync(path.join(this.dir, 'switchd.json'), JSON.stringify(this.opts.config, null, 2))
      await Promise.all(this.replicas.map(async (r) => { await this.startReplica(r) }))
      this.balancer = new Balancer(path.join(this.dir, 'nginx'), this.replicas.map((r) => r.port), this.opts.onLog, this.opts.balancerConnections)
      await this.balancer.start()
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  /** Start (or restart) one replica on its own port; resolves once /readyz says ready. */
  async startReplica (r: Replica): Promise<void> {
    const args = ['--listen', `127.0.0.1:${r.port}`, '--ping-interval', String(this.opts.pingInterval ?? 1), '--replica', r.name,
      '--fleet', this.replicas.map((x) => x.url).join(','), '--fleet-token-file', path.join(this.dir, 'fleet.token'),
      ...(this.opts.config !== undefined ? ['--config', path.join(this.dir, 'switchd.json')] : []), ...(this.opts.switchdArgs ?? [])]
    r.child = this.spawnNode(r.name, path.join(ROOT, 'bin', 'switchd.js'), args)
    await waitForLine(r.child, r.name, (l) => l.includes('"event":"listening"'), MIN_WAIT_MS)
    await until(async () => (await this.status(r, '/readyz')) === 200, MIN_WAIT_MS, `${r.name} ready`)
  }

  /** Stop one replica: SIGTERM drains it (4006 to every port) and exits; SIGKILL is a crash. */
  async stopReplica (r: Replica, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const child = r.child
    if (child === undefined) return
    if (signal === 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill('SIGKILL')
        await exited
      }
    } else {
      await stopChild(child, MIN_WAIT_MS)
    }
    r.child = undefined
  }

  /** An HTTP status from a replica (0 when nothing answers). */
  async status (r: Replica, p: string, init: RequestInit = {}): Promise<number> {
    try {
      const res = await fetch(`${r.url}${p}`, { ...init, signal: AbortSignal.timeout(5000) })
      await res.arrayBuffer()
      return res.status
    } catch { return 0 }
  }

  /** GET a replica's JSON (the admin API is open: the fleet listens on loopback without tokens). */
  async api<T = unknown> (r: Replica, p: string, headers: Record<string, string> = {}): Promise<T> {
    const res = await fetch(`${r.url}${p}`, { headers, signal: AbortSignal.timeout(5000) })
    if (!res.ok) throw new Error(`${r.name} GET ${p}: HTTP ${res.status} ${await res.text()}`)
    return await res.json() as T
  }

  /** Every port of every running replica, with the replica it is on. */
  async ports (): Promise<Array<FleetPort & { replica: string }>> {
    const up = this.replicas.filter((r) => r.child !== undefined)
    const all = await Promise.all(up.map(async (r) => (await this.api<FleetPort[]>(r, '/api/v1/ports')).map((p) => ({ ...p, replica: r.name }))))
    return all.flat()
  }

  /**
   * Start a tap-agent for network `network` in a namespace of its own, with
   * the next address of that network; `via` is the balancer (default) or one
   * replica (a forced split). Resolves once it is connected.
   */
  async addAgent (network: string, via?: Replica): Promise<FleetAgent> {
    const inNet = this.agents.filter((a) => a.network === network).length
    const n = this.seq++
    const a: FleetAgent = {
      network,
      name: `${network}-${String.fromCharCode(97 + inNet)}`,
      ns: `tsf-${this.tag}-${n}`,
      tap: `tsf${this.tag}t${n}`,
      mac: `02:00:5e:10:${(n >> 8).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`,
      ipv4: `192.0.2.${inNet + 1}`,
      url: via === undefined ? this.netUrl(network) : `ws://127.0.0.1:${via.port}/net/${network}`,
      child: undefined
    }
    this.agents.push(a)
    await run('ip', ['netns', 'add', a.ns])
    this.made.add(a.ns)
    await run('ip', ['-n', a.ns, 'link', 'set', 'lo', 'up'])
    a.child = this.spawnNode(a.name, path.join(ROOT, 'bin', 'tap-agent.js'), ['--url', a.url, '--tap', a.tap, '--netns', a.ns,
      '--mac', a.mac, '--name', a.name, '--address', `${a.ipv4}/24`, '--reconnect-max', '1'])
    await waitForLine(a.child, a.name, (l) => l.includes('"event":"uplink_connected"'), MIN_WAIT_MS)
    // --address configures the TAP once it is up: wait for the address before anyone pings it.
    await until(async () => (await run('ip', ['-n', a.ns, '-4', '-o', 'addr', 'show', 'dev', a.tap]).catch(() => '')).includes(a.ipv4),
      MIN_WAIT_MS, `${a.name}'s address`)
    return a
  }

  /** One ping from `from` to `to`; whether it came back within `waitS` seconds. */
  async pingOnce (from: FleetAgent, to: FleetAgent, waitS = 1): Promise<boolean> {
    try {
      await run('ip', ['netns', 'exec', from.ns, 'ping', '-4', '-c', '1', '-W', String(waitS), '-n', '-q', to.ipv4], (waitS + 5) * 1000)
      return true
    } catch { return false }
  }

  /** Stop the agents, nginx and the replicas (by PID) and delete the namespaces. Safe to repeat. */
  async stop (): Promise<void> {
    await Promise.all(this.agents.map(async (a) => { await stopChild(a.child); a.child = undefined }))
    await this.balancer?.stop()
    await Promise.all(this.replicas.map(async (r) => { await stopChild(r.child, 5000); r.child = undefined }))
    for (const ns of [...this.made]) {
      this.made.delete(ns)
      await run('ip', ['netns', 'del', ns]).catch(() => {})
    }
    fs.rmSync(this.dir, { recursive: true, force: true })
  }

  private spawnNode (who: string, script: string, args: string[]): ChildProcess {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    emitLines(child, who, this.opts.onLog)
    return child
  }
}
