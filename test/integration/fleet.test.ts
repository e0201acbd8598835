/**
 * The fleet's mesh (issue 25, docs/FLEET.md): real SwitchServers on
 * 127.0.0.1 with `--fleet` pointing at each other (the same list on each:
 * each skips itself by name) and real WebSocket stations. A network with
 * ports on two replicas is joined by one mesh link; a broadcast reaches each
 * port exactly once, unicast is learned across; three replicas are a full
 * mesh that split horizon keeps loop-free; a replica that goes takes its
 * links with it; a network not shared is not meshed.
 */

import assert from 'node:assert/strict'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import type { NetPort } from '../../src/switch/io/net-port'
import type { TestClient } from '../helpers/client'
import { useSwitches } from '../helpers/switchd-fixture'
import { waitFor, freePort, httpRequest } from '../helpers/net'
import { eth, BROADCAST, MAC_A, MAC_B, MAC_C, MAC_D } from '../helpers/frames'
import { meshKey, type FleetTiming } from '../../src/switch/core/fleet-plan'
import { setFleetLookup, setFleetTiming, baseOf } from '../../src/switch/io/fleet'

export const FLEET_TOKEN = 'fleet-credential-0123456789abcdef-0123456789'

/**
 * The fleet's periods for these tests, shortened together (in service: 1 s polls, 5 s staleness, 10 s grace,
 * 15 s await, 5 s resolve; the rules are the same and test/unit/fleet-plan.test.ts checks them at those values).
 * A healthy peer is still polled a dozen times before it could go stale, and stale for the grace before a link goes.
 */
export const TEST_FLEET_TIMING: FleetTiming = Object.freeze({ pollMs: 250, pollTimeoutMs: 2000, resolveMs: 1000, graceMs: 2000, awaitMs: 3000, staleMs: 3000 })

export interface Replica { server: SwitchServer, url: string, port: number, name: string }

/** Replicas r1.. on ports picked now, each given the whole list (itself included, as a deployment would). */
export async function startFleet (names: string[], extra: Record<string, string> = {}): Promise<Replica[]> {
  const ports: number[] = []
  for (let i = 0; i < names.length; i++) ports.push(await freePort())
  const fleet = ports.map((p) => `http://127.0.0.1:${p}`).join(',')
  const out: Replica[] = []
  for (const [i, name] of names.entries()) {
    const port = ports[i] as number
    const config = buildConfig({ pingInterval: 1 }, 'test', { replica: name, fleet, fleetToken: FLEET_TOKEN, ...extra })
    const server = new SwitchServer({ config, host: '127.0.0.1', port })
    await server.listen()
    out.push({ server, url: `ws://127.0.0.1:${port}`, port, name })
  }
  return out
}

export function meshPorts (r: Replica, network?: string): NetPort[] {
  return r.server.ports().filter((p) => p.mesh && (network === undefined || p.network.name === network))
}

/** Frames from `src` to `dst` among those a station got. */
function count (c: TestClient, dst: string, src: string): number {
  return c.frames.filter((f) => f.subarray(0, 6).toString('hex') === dst && f.subarray(6, 12).toString('hex') === src).length
}

describe('fleet: the mesh between replicas', function () {
  this.timeout(90_000)
  const net = useSwitches({ logTail: 80 })
  const logs = net.logs
  let timing: FleetTiming
  before(() => { timing = setFleetTiming(TEST_FLEET_TIMING) })
  after(() => { setFleetTiming(timing) })
  const { staleMs, graceMs, awaitMs } = TEST_FLEET_TIMING

  /** startFleet's replicas, closed after the test. */
  async function startReplicas (names: string[]): Promise<Replica[]> {
    const replicas = await startFleet(names)
    for (const r of replicas) net.add(r.server)
    return replicas
  }

  async function station (r: Replica, network: string, name: string): Promise<TestClient> {
    return await net.station(`${r.url}/net/${network}`, { name })
  }

  it('joins a network both replicas have ports in: a broadcast reaches each port once, unicast is learned across, other networks stay apart', async () => {
    const replicas = await startReplicas(['r1', 'r2'])
    const [r1, r2] = replicas as [Replica, Replica]
    const ha = await station(r1, 'lab', 'ha')
    const ha2 = await station(r1, 'lab', 'ha2')
    const hb = await station(r2, 'lab', 'hb')
    const solo = await station(r1, 'solo', 'solo')
    await waitFor(() => meshPorts(r1, 'lab').length === 1 && meshPorts(r2, 'lab').length === 1, 30_000, 'the mesh link for lab on both replicas')
    assert.equal(meshPorts(r1)[0]?.kind, 'mesh')
    assert.equal(meshPorts(r1)[0]?.name, 'mesh-r2')
    assert.equal(meshPorts(r2)[0]?.name, 'mesh-r1')
    assert.equal(r1.server.fleet?.links.size, 1, 'only the lower name dials')
    assert.equal(r2.server.fleet?.links.size, 0)

    // A broadcast from r2 reaches both ports on r1 once; a barrier frame after it shows nothing else is coming.
    hb.send([eth(BROADCAST, MAC_B), eth(BROADCAST, MAC_D)])
    await waitFor(() => count(ha, BROADCAST, MAC_D) === 1 && count(ha2, BROADCAST, MAC_D) === 1, 30_000, 'the barrier on r1')
    assert.equal(count(ha, BROADCAST, MAC_B), 1)
    assert.equal(count(ha2, BROADCAST, MAC_B), 1)
    assert.equal(solo.frames.length, 0, 'a network not shared is not joined')
    assert.equal(hb.frames.length, 0, 'nothing comes back to its sender')

    // Unicast both ways, learned across the mesh.
    ha.send([eth(MAC_B, MAC_A)])
    await waitFor(() => count(hb, MAC_B, MAC_A) === 1, 30_000, 'unicast across')
    hb.send([eth(MAC_A, MAC_B)])
    await waitFor(() => count(ha, MAC_A, MAC_B) === 1, 30_000, 'the answer across')
    const lab1 = r1.server.networks.get('lab')
    assert.equal(lab1?.fdb.lookup(1, parseInt(MAC_B, 16))?.name, 'mesh-r2')
    assert.equal(count(ha2, MAC_A, MAC_B), 0, 'known unicast is forwarded, not flooded')
    assert.equal(meshPorts(r1, 'solo').length, 0)

    const status = JSON.parse((await httpRequest(r2.port, 'GET', '/api/v1/status')).body)
    assert.deepEqual(status, { replica: 'r2', fleet: true, peers: 1, meshLinks: 1 })
  })

  it('attack: a flood arriving on the mesh is not re-flooded to another mesh port (three replicas, full mesh)', async () => {
    const replicas = await startReplicas(['r1', 'r2', 'r3'])
    const [r1, r2, r3] = replicas as [Replica, Replica, Replica]
    const h1 = await station(r1, 'lab', 'h1')
    const h2 = await station(r2, 'lab', 'h2')
    const h3 = await station(r3, 'lab', 'h3')
    await waitFor(() => replicas.every((r) => meshPorts(r, 'lab').length === 2), 30_000, 'a full mesh: two links on each replica')
    h1.send([eth(BROADCAST, MAC_A), eth(BROADCAST, MAC_D)])
    await waitFor(() => count(h2, BROADCAST, MAC_D) === 1 && count(h3, BROADCAST, MAC_D) === 1, 30_000, 'the barrier on r2 and r3')
    // Split horizon: what r2 and r3 got from the mesh never went back out to the mesh, so no second copy is on its way.
    for (const r of [r2, r3]) {
      for (const p of meshPorts(r, 'lab')) assert.equal(p.txFrames, 0, `${r.name}'s ${p.name} sent nothing: it re-flooded a flood from the mesh`)
    }
    assert.equal(count(h2, BROADCAST, MAC_A), 1)
    assert.equal(count(h3, BROADCAST, MAC_A), 1)
    assert.equal(h1.frames.length, 0)
    // And unicast between two replicas takes the one link between them.
    h3.send([eth(MAC_A, MAC_C)])
    await waitFor(() => count(h1, MAC_A, MAC_C) === 1, 30_000, 'unicast r3 -> r1')
    assert.equal(count(h2, MAC_A, MAC_C), 0)
  })

  it('a replica that goes takes its links with it; the link is not redialled once it is no longer needed', async () => {
    const replicas = await startReplicas(['r1', 'r2'])
    const [r1, r2] = replicas as [Replica, Replica]
    await station(r1, 'lab', 'ha')
    await station(r2, 'lab', 'hb')
    await waitFor(() => meshPorts(r1, 'lab').length === 1, 30_000, 'the mesh link')
    await r2.server.close()
    await waitFor(() => meshPorts(r1).length === 0, 30_000, 'r1\'s end of the link gone with r2')
    // r2 no longer answers: forgotten after staleMs, its link closed graceMs later.
    await waitFor(() => r1.server.fleet?.links.size === 0, staleMs + graceMs + 20_000, 'the link closed for good')
  })

  it('closes a link once one side has no local port left in the network (after the grace)', async () => {
    const replicas = await startReplicas(['r1', 'r2'])
    const [r1, r2] = replicas as [Replica, Replica]
    await station(r1, 'lab', 'ha')
    const hb = await station(r2, 'lab', 'hb')
    await waitFor(() => meshPorts(r1, 'lab').length === 1 && meshPorts(r2, 'lab').length === 1, 30_000, 'the mesh link')
    hb.close()
    await waitFor(() => meshPorts(r2, 'lab').length === 0 && meshPorts(r1, 'lab').length === 0, graceMs + 30_000, 'the link closed on both sides')
    assert.equal(r1.server.fleet?.links.size, 0)
  })

  it('finds its peers by DNS (dns://NAME:PORT: every address is a replica), and follows the name as it changes', async () => {
    const port = await freePort()
    const replicas: Replica[] = []
    let addresses = ['127.0.0.1']
    const was = setFleetLookup(async (name) => { if (name !== 'switchd-headless.test') throw new Error('ENOTFOUND'); return addresses })
    try {
      for (const [name, host] of [['r1', '127.0.0.1'], ['r2', '127.0.0.2']] as const) {
        const config = buildConfig({ pingInterval: 1 }, 'test', { replica: name, fleet: `dns://switchd-headless.test:${port}`, fleetToken: FLEET_TOKEN })
        const server = net.add(new SwitchServer({ config, host, port }))
        await server.listen()
        replicas.push({ server, url: `ws://${host}:${port}`, port, name })
      }
      const [r1, r2] = replicas as [Replica, Replica]
      await station(r1, 'lab', 'ha')
      await station(r2, 'lab', 'hb')
      // The name gives r1 only: no peer, no link (r1 finds itself by name).
      await waitFor(() => (r1.server.fleet?.peers ?? -1) === 0 && meshPorts(r1).length === 0, 10_000, 'r1 alone')
      // The Service's records now list r2 too: within a resolve interval and a poll, the link.
      addresses = ['127.0.0.1', '127.0.0.2']
      await waitFor(() => meshPorts(r1, 'lab').length === 1 && meshPorts(r2, 'lab').length === 1, 30_000, 'the mesh link found by DNS')
      assert.equal(r1.server.fleet?.peers, 1)
    } finally { setFleetLookup(was) }
    assert.equal(baseOf('http', '::1', 8080), 'http://[::1]:8080')
  })

  it('attack: two replicas answering to one name (a host name cut at its first dot, a copied --replica) are not taken for ourselves in silence', async () => {
    const replicas = await startReplicas(['sw', 'sw'])
    const [a, b] = replicas as [Replica, Replica]
    await station(a, 'lab', 'ha')
    await station(b, 'lab', 'hb')
    await waitFor(() => a.server.fleet?.clashes.length === 1 && b.server.fleet?.clashes.length === 1, 30_000, 'the clash seen on both')
    assert.deepEqual(a.server.fleet?.clashes, ['sw'])
    assert.ok(logs.some((l) => l.includes('"event":"fleet_name_clash"') && l.includes('"level":"error"')), 'said at error, with the fix')
    assert.equal(meshPorts(a).length + meshPorts(b).length, 0, 'no link: neither knows which one dials')
  })

  it('attack: a peer that should dial us and cannot (its --fleet or DNS answer leaves us out, a one-way firewall) is said, not a silent split', async () => {
    const [pa, pb] = [await freePort(), await freePort()]
    const replicas: Replica[] = []
    // a sorts lower and so dials; its list leaves b out. b asks a and waits for a's link.
    for (const [name, port, fleet] of [['a', pa, `http://127.0.0.1:${pa}`], ['b', pb, `http://127.0.0.1:${pa},http://127.0.0.1:${pb}`]] as const) {
      const server = net.add(new SwitchServer({ config: buildConfig({ pingInterval: 1 }, 'test', { replica: name, fleet, fleetToken: FLEET_TOKEN }), host: '127.0.0.1', port }))
      await server.listen()
      replicas.push({ server, url: `ws://127.0.0.1:${port}`, port, name })
    }
    const [a, b] = replicas as [Replica, Replica]
    await station(a, 'lab', 'ha')
    await station(b, 'lab', 'hb')
    await waitFor(() => b.server.fleet?.awaited.length === 1, awaitMs + 30_000, 'the missing link said')
    assert.deepEqual(b.server.fleet?.awaited, [meshKey('a', 'lab')])
    assert.ok(logs.some((l) => l.includes('"event":"mesh_link_awaited"') && l.includes('"network":"lab"')), 'logged with the fix')
    assert.equal(meshPorts(a).length + meshPorts(b).length, 0)
    assert.deepEqual(a.server.fleet?.awaited, [], 'a knows of no peer')
  })

  it('/fleet/v1/state: 401 without the credential (and no network named), the state with it, 404 without --fleet', async () => {
    const replicas = await startReplicas(['r1'])
    const [r1] = replicas as [Replica]
    await station(r1, 'secretlab', 'h')
    const none = await httpRequest(r1.port, 'GET', '/fleet/v1/state')
    assert.equal(none.status, 401)
    assert.ok(!none.body.includes('secretlab'), 'attack: network names leaked without the fleet credential')
    const wrong = await httpRequest(r1.port, 'GET', '/fleet/v1/state', { authorization: 'Bearer ' + FLEET_TOKEN.replace(/.$/, 'x') })
    assert.equal(wrong.status, 401)
    assert.ok(!wrong.body.includes('secretlab'))
    assert.ok((r1.server.rejectedBy.fleet_unauthorized ?? 0) >= 2)
    const ok = await httpRequest(r1.port, 'GET', '/fleet/v1/state', { authorization: 'Bearer ' + FLEET_TOKEN })
    assert.equal(ok.status, 200)
    const state = JSON.parse(ok.body) as Record<string, unknown>
    assert.match(String(state.instance), /^[0-9a-f]{16}$/, 'the process\'s random id')
    delete state.instance
    assert.deepEqual(state, { replica: 'r1', draining: false, networks: ['secretlab'] })
    // A drain says so (a peer then dials no new mesh link to this replica), and an undrain takes it back.
    await r1.server.drain()
    const drained = await httpRequest(r1.port, 'GET', '/fleet/v1/state', { authorization: 'Bearer ' + FLEET_TOKEN })
    assert.equal((JSON.parse(drained.body) as { draining: boolean }).draining, true, 'a drained replica says it drains')
    await r1.server.drain(false)
    const back = await httpRequest(r1.port, 'GET', '/fleet/v1/state', { authorization: 'Bearer ' + FLEET_TOKEN })
    assert.equal((JSON.parse(back.body) as { draining: boolean }).draining, false)
    const lone = new SwitchServer({ config: buildConfig({}, 'test', { replica: 'lone' }), host: '127.0.0.1', port: 0 })
    const addr = await lone.listen()
    try {
      assert.equal((await httpRequest(addr.port, 'GET', '/fleet/v1/state', { authorization: 'Bearer ' + FLEET_TOKEN })).status, 404)
    } finally { await lone.close() }
  })
})
