/**
 * Issue 25's acceptance: three switchd replicas behind a real nginx
 * (test/helpers/fleet.ts, balancer.ts), networks of two tap-agents each in
 * namespaces of their own, connecting through nginx.
 *
 *  - every network's ports end on one replica (each replica's API), pings
 *    pass in every network, the networks are spread over the replicas;
 *  - SIGKILL of a replica: its networks ping again within 5 s, on the others;
 *  - a forced split (agents connected straight to different replicas): they
 *    ping through the mesh, and a broadcast reaches every other port exactly once;
 *  - a rolling restart (drain, restart, each replica in turn) under a steady
 *    ping in every network loses at most ROLLING_LOSS_MAX pings per network,
 *    the figure docs/DEPLOYMENT.md promises, and no agent gives up.
 *
 * The tests run in order on one fleet. Every loop is bounded in time.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { spawn, type ChildProcess } from 'node:child_process'
import { stopChild } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { requireTools, pingUntilAnswered } from '../helpers/proc'
import { sleep, until, MIN_WAIT_MS } from '../helpers/net'
import { Fleet, type FleetAgent, type Replica } from '../helpers/fleet'
import { BroadcastCount } from '../helpers/broadcast'

/** Pings (one each 200 ms) a network may lose over a whole rolling restart of 3 replicas: docs/DEPLOYMENT.md ("Rolling restart"). */
export const ROLLING_LOSS_MAX = 25
/** The issue's acceptance: a crashed replica's networks ping again within this. */
const RECOVERY_MS = 5000
const NETWORKS = 6

/** SIGINT (ping prints its summary), then SIGKILL after 5 s; resolves once it has exited. */
async function interrupt (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGINT')
  const t = setTimeout(() => { child.kill('SIGKILL') }, 5000)
  await exited
  clearTimeout(t)
}

describe('e2e: a fleet of 3 replicas behind nginx (issue 25)', function () {
  this.timeout(300_000)
  const logs: string[] = []
  const fleet = new Fleet({ replicas: 3, onLog: (l) => { logs.push(l); if (logs.length > 40_000) logs.splice(0, 10_000) } })
  /** The networks of the acceptance, each [a, b]. */
  const nets = new Map<string, [FleetAgent, FleetAgent]>()

  /** Which replicas each network's non-mesh ports are on. */
  async function placement (): Promise<Map<string, Set<string>>> {
    const out = new Map<string, Set<string>>()
    for (const p of await fleet.ports()) {
      if (p.kind === 'mesh') continue
      const s = out.get(p.network) ?? new Set<string>()
      s.add(p.replica)
      out.set(p.network, s)
    }
    return out
  }

  /**
   * Until both ports of every network are up: on exactly one replica (`whole`), or anywhere in the fleet
   * (a network whose ports nginx put on two replicas is one LAN through the mesh).
   */
  async function settled (what: string, whole = true): Promise<Map<string, Set<string>>> {
    let seen = new Map<string, Set<string>>()
    const show = (): string => [...seen].map(([n, s]) => `${n}@${[...s].join('+')}`).join(' ')
    try {
      await until(async () => {
        seen = await placement()
        const ports = await fleet.ports()
        return [...nets.keys()].every((n) => (!whole || seen.get(n)?.size === 1) && ports.filter((p) => p.network === n && p.kind !== 'mesh').length === 2)
      }, MIN_WAIT_MS, what)
    } catch (err) {
      throw new Error(`${what}: not every network's two ports ${whole ? 'on one replica' : 'up'}: ${show()} (${(err as Error).message})`)
    }
    return seen
  }

  before(async function () {
    requireRoot(this)
    requireTools(this, [{ cmd: 'nginx', pkg: 'nginx' }, { cmd: 'python3', pkg: 'python3' }])
    this.timeout(240_000)
    await fleet.start()
    // The hash picks the replicas, from ports chosen at random: six names land all on one
    // replica about once in 250 runs, so the sixth is taken among candidates until they span two.
    const home = new Map<string, string>()
    for (let i = 0; nets.size < NETWORKS && i < 40; i++) {
      const name = `lab${i}`
      const a = await fleet.addAgent(name)
      const where = [...(await placement()).get(name) ?? []][0] ?? '?'
      if (nets.size === NETWORKS - 1 && new Set(home.values()).size === 1 && home.values().next().value === where) {
        await stopChild(a.child)
        continue
      }
      home.set(name, where)
      nets.set(name, [a, await fleet.addAgent(name)])
    }
    assert.equal(nets.size, NETWORKS, 'six networks placed')
  })
  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return
    // The whole log in a file (every replica, nginx, every agent), the last lines here.
    const file = path.join(os.tmpdir(), `tsw-fleet-${process.pid}.log`)
    fs.writeFileSync(file, logs.join('\n') + '\n')
    process.stderr.write(logs.slice(-60).join('\n') + `\n(the whole log: ${file})\n`)
  })
  after(async function () {
    this.timeout(60_000)
    await fleet.stop()
  })

  it('every network\'s ports end on one replica, its pings pass, and the networks are spread over more than one replica', async () => {
    const where = await settled('placed through nginx')
    const ports = await fleet.ports()
    assert.deepEqual(ports.filter((p) => p.kind === 'mesh').map((p) => `${p.replica}:${p.network}:${p.name}`), [], 'no network is split, so no mesh link runs')
    // Each replica's fleet state names exactly the networks it holds (what its peers see).
    for (const r of fleet.replicas) {
      const state = await fleet.api<{ replica: string, draining: boolean, networks: string[] }>(r, '/fleet/v1/state', { authorization: `Bearer ${fleet.token}` })
      assert.equal(state.replica, r.name)
      assert.equal(state.draining, false)
      const mine = [...nets.keys()].filter((n) => where.get(n)?.has(r.name) === true)
      assert.deepEqual(state.networks.filter((n) => nets.has(n)).sort(), mine.sort(), `${r.name}'s networks`)
    }
    assert.equal(await fleet.status(fleet.replicas[0] as Replica, '/fleet/v1/state'), 401, 'the fleet state needs the fleet credential')
    for (const [a, b] of nets.values()) await pingUntilAnswered(a.ns, b.ipv4)
    const used = new Set([...where.values()].flatMap((s) => [...s]))
    assert.ok(used.size > 1, `networks spread over ${[...used].join(', ')}`)
  })

  it(`SIGKILL of a replica: its networks ping again within ${RECOVERY_MS / 1000} s, on the others`, async () => {
    const where = await settled('before the kill')
    const byReplica = (r: Replica): string[] => [...nets.keys()].filter((n) => where.get(n)?.has(r.name) === true)
    const victim = [...fleet.replicas].sort((x, y) => byReplica(y).length - byReplica(x).length)[0] as Replica
    const moved = byReplica(victim)
    assert.ok(moved.length > 0, `${victim.name} holds a network`)
    await fleet.stopReplica(victim, 'SIGKILL')
    const killedAt = Date.now()
    const took = await Promise.all(moved.map(async (n) => {
      const [a, b] = nets.get(n) as [FleetAgent, FleetAgent]
      // Bounded: MIN_WAIT_MS, far beyond the claim, so a miss reports how long it took.
      while (!await fleet.pingOnce(a, b, 1)) {
        if (Date.now() - killedAt > MIN_WAIT_MS) break
      }
      return { n, ms: Date.now() - killedAt }
    }))
    assert.ok(took.every((t) => t.ms <= RECOVERY_MS), `recovery after SIGKILL of ${victim.name}: ${took.map((t) => `${t.n} ${t.ms} ms`).join(', ')}`)
    const after = await settled('after the kill')
    for (const n of moved) assert.ok(!(after.get(n)?.has(victim.name) ?? false), `${n} left ${victim.name}`)
    // The replica comes back (empty) for the tests that follow.
    await fleet.startReplica(victim)
  })

  it('a forced split: agents on three replicas ping through the mesh, and a broadcast reaches every other port exactly once', async () => {
    const [r1, r2, r3] = fleet.replicas as [Replica, Replica, Replica]
    const split = [await fleet.addAgent('split', r1), await fleet.addAgent('split', r2), await fleet.addAgent('split', r3), await fleet.addAgent('split', r1)]
    const [a, b, c, d] = split as [FleetAgent, FleetAgent, FleetAgent, FleetAgent]
    try {
      // One mesh link per pair of replicas that carry the network: both ends are mesh ports, mesh-<peer>
      // (a replica that has a port of that name in another network already adds -N, as for any port name).
      let mesh = ''
      await until(async () => {
        mesh = (await fleet.ports()).filter((p) => p.network === 'split' && p.kind === 'mesh').map((p) => `${p.replica}:${p.name.replace(/-\d+$/, '')}`).sort().join(' ')
        return mesh === 'r1:mesh-r2 r1:mesh-r3 r2:mesh-r1 r2:mesh-r3 r3:mesh-r1 r3:mesh-r2'
      }, MIN_WAIT_MS, `a mesh link between every two replicas carrying "split" (${mesh})`)
      await pingUntilAnswered(a.ns, b.ipv4)
      await pingUntilAnswered(a.ns, c.ipv4)
      await pingUntilAnswered(b.ns, c.ipv4)
      await pingUntilAnswered(c.ns, d.ipv4)
      const counts = await BroadcastCount.run(a, [b, c, d, a], 50)
      for (const x of [b, c, d]) {
        assert.deepEqual(counts.get(x.name), { frames: 50, duplicates: 0, missing: 0 }, `${x.name} got each broadcast once`)
      }
      assert.deepEqual(counts.get(a.name), { frames: 0, duplicates: 0, missing: 50 }, 'the sender never gets its own broadcast back')
    } finally {
      for (const x of split) await stopChild(x.child)
    }
  })

  it(`a rolling restart under a steady ping in every network loses at most ${ROLLING_LOSS_MAX} pings per network, and no agent gives up`, async () => {
    await settled('before the rolling restart', false)
    const pings = new Map<string, ChildProcess>()
    const out = new Map<string, Promise<string>>()
    for (const [n, [a, b]] of nets) {
      // ip netns exec execs ping: its PID is ping's, so SIGINT reaches it and it prints its summary.
      const child = spawn('ip', ['netns', 'exec', a.ns, 'ping', '-4', '-n', '-q', '-i', '0.2', '-W', '1', '-w', '600', b.ipv4], { stdio: ['ignore', 'pipe', 'pipe'] })
      let text = ''
      child.stdout.setEncoding('utf8').on('data', (d: string) => { text += d })
      out.set(n, new Promise((resolve) => child.once('close', () => { resolve(text) })))
      pings.set(n, child)
    }
    try {
      await sleep(1000)
      for (const r of fleet.replicas) {
        // Drain (not ready, 503 to new ports, 4006 to every port), then SIGTERM: what a rollout does.
        assert.equal(await fleet.status(r, '/api/v1/drain', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"drain":true}' }), 200, `${r.name} drains`)
        await until(async () => (await fleet.api<Array<{ kind: string }>>(r, '/api/v1/ports')).filter((p) => p.kind !== 'mesh').length === 0,
          MIN_WAIT_MS, `${r.name} empty after its drain`)
        await fleet.stopReplica(r, 'SIGTERM')
        await fleet.startReplica(r)
        await settled(`after restarting ${r.name}`, false)
      }
      await sleep(1000)
    } finally {
      for (const child of pings.values()) await interrupt(child)
    }
    const loss = await Promise.all([...nets.keys()].map(async (n) => {
      const text = await out.get(n)
      const m = /(\d+) packets transmitted, (\d+) received/.exec(text ?? '')
      assert.ok(m !== null, `ping's summary in ${n}: ${text ?? ''}`)
      return { n, sent: Number(m[1]), lost: Number(m[1]) - Number(m[2]) }
    }))
    process.stdout.write(`      rolling restart, pings lost per network: ${loss.map((l) => `${l.n} ${l.lost}/${l.sent}`).join(', ')}\n`)
    assert.ok(loss.every((l) => l.lost <= ROLLING_LOSS_MAX), `loss per network at most ${ROLLING_LOSS_MAX}: ${JSON.stringify(loss)}`)
    for (const [a, b] of nets.values()) {
      for (const x of [a, b]) assert.ok(x.child !== undefined && x.child.exitCode === null && x.child.signalCode === null, `${x.name} still runs`)
    }
    for (const [a, b] of nets.values()) await pingUntilAnswered(a.ns, b.ipv4)
  })
})
