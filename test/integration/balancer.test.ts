/**
 * The shipped balancer (deploy/nginx/tapswitch.conf, run by the test on
 * 127.0.0.1 with its own prefix, stopped by its PID) in front of three real
 * switchd: every port of a network lands on one replica whichever way its
 * path is written, the networks spread over the replicas, and when one
 * replica drains its ports (agents, and a trunk from another switchd) reconnect
 * through nginx, at once, each network's ports together on one other replica,
 * and no agent gives up.
 */

import assert from 'node:assert/strict'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { TapDevice } from '../../src/common/tap'
import { Uplink } from '../../src/common/uplink'
import { Agent } from '../../src/agent/agent'
import { setLogSink } from '../../src/common/log'
import { fakeTapBinding } from '../helpers/fake-tap'
import { TestClient, upgradeStatus } from '../helpers/client'
import { waitFor, httpRequest } from '../helpers/net'
import { requireTools } from '../helpers/proc'
import { startBalancer, type Balancer } from '../helpers/balancer'

const REPLICAS = 3
/** Trunks are opt-in: the site switch's trunk port is named trunk-site. */
const PROFILES = [{ match: 'trunk-*', trunk: true, claimable: true }]
const NETWORKS = 12
/** Longer than any wait here: an agent that took its backoff after the drain would miss the waitFor. */
const BACKOFF = { reconnectMin: 100, reconnectMax: 100 }

type Line = Record<string, unknown> & { event: string }

describe('balancer: nginx in front of three switchd (integration)', function () {
  const servers: SwitchServer[] = []
  const agents: Agent[] = []
  const clients: TestClient[] = []
  const logs: Line[] = []
  let nginx: Balancer | undefined
  let restore: (line: string) => void

  before(async function () {
    requireTools(this, [{ cmd: 'nginx', pkg: 'nginx' }])
    restore = setLogSink((l) => { logs.push(JSON.parse(l) as Line) })
    for (let i = 0; i < REPLICAS; i++) {
      const s = new SwitchServer({ config: buildConfig({ dynamicNetworks: true, api: true, profiles: PROFILES, trustedProxies: ['127.0.0.1'] }, 'test'), host: '127.0.0.1', port: 0 })
      servers.push(s)
      await s.listen()
    }
    nginx = await startBalancer(servers.map((s) => s.address().port))
  })
  let site: SwitchServer | undefined
  after(async () => {
    for (const a of agents.splice(0)) await a.stop()
    for (const c of clients.splice(0)) c.close()
    await site?.close()
    for (const s of servers.splice(0)) await s.close()
    await nginx?.stop()
    if (restore !== undefined) setLogSink(restore)
  })

  const url = (p: string): string => `ws://127.0.0.1:${nginx?.port ?? 0}${p}`
  /** Which replicas hold a port of network `net`. */
  const holders = (net: string): number[] => servers.flatMap((s, i) => s.ports().some((p) => p.network.name === net) ? [i] : [])
  function agent (net: string, name: string): Agent {
    const dev = TapDevice.open(fakeTapBinding, { name: `tsw-b${agents.length}` })
    const a = new Agent(dev, new Uplink({ url: url(`/net/${net}`), name, ...BACKOFF }), 1500)
    agents.push(a)
    a.start()
    return a
  }

  it('puts every port of a network on one replica, however its path is written, and spreads the networks', async () => {
    for (let n = 0; n < NETWORKS; n++) { agent(`n${n}`, `a${n}`); agent(`n${n}`, `b${n}`) }
    // Another switch (a site's) trunks its n0 to the fleet's, through nginx.
    site = new SwitchServer({ config: buildConfig({ dynamicNetworks: true, trunks: [{ url: url('/net/n0'), name: 'trunk-site' }] }, 'test'), host: '127.0.0.1', port: 0 })
    await site.listen()
    await waitFor(() => agents.every((a) => a.uplink.isUp) && site?.trunks[0]?.uplink.isUp === true, 60_000, 'every agent and the trunk up through nginx')
    const owner = new Map<string, number>()
    for (let n = 0; n < NETWORKS; n++) {
      const h = holders(`n${n}`)
      assert.equal(h.length, 1, `n${n} is on replicas ${h.join(',')}`)
      owner.set(`n${n}`, h[0] as number)
      assert.equal(servers[h[0] as number]?.ports().filter((p) => p.network.name === `n${n}`).length, n === 0 ? 3 : 2)
    }
    assert.ok(new Set(owner.values()).size > 1, 'the networks spread over more than one replica')
    // One key for every spelling switchd reads as n0: a trailing slash, a %-escape, a query string.
    for (const p of ['/net/n0/', '/net/%6E0', '/net/n0?token=x', '/net/n0/?a=b']) clients.push(await TestClient.raw(url(p)))
    await waitFor(() => servers[owner.get('n0') as number]?.ports().filter((q) => q.network.name === 'n0').length === 7, 30_000, 'n0 spellings')
    assert.deepEqual(holders('n0'), [owner.get('n0')])
    // Only the networks go through: the API, the metrics and the probes stay on each replica.
    for (const p of ['/api/v1/ports', '/api/v1/drain', '/metrics', '/readyz', '/healthz', '/net/n0/x']) {
      assert.equal((await httpRequest(nginx?.port ?? 0, p === '/api/v1/drain' ? 'POST' : 'GET', p, { 'content-type': 'application/json' }, '{}')).status, 404, p)
    }
    for (const c of clients.splice(0)) c.close()
    await waitFor(() => holders('n0').length === 1 && servers[owner.get('n0') as number]?.ports().filter((q) => q.network.name === 'n0').length === 3, 30_000, 'raw clients gone')
  })

  it('attack: through nginx each client is seen with its own address (switchd trusts nginx\'s 127.0.0.1), and a client\'s own X-Forwarded-For is replaced', async () => {
    // Distinct loopback sources: nginx's $remote_addr is each client's; nginx itself reaches the replicas from 127.0.0.1.
    const one = await TestClient.raw(url('/net/who'), { localAddress: '127.0.0.2' })
    const two = await TestClient.raw(url('/net/who'), { localAddress: '127.0.0.3', headers: { 'x-forwarded-for': '192.0.2.9' } })
    clients.push(one, two)
    await waitFor(() => servers.reduce((n, s) => n + s.ports().filter((p) => p.network.name === 'who').length, 0) === 2, 10_000, 'both ports of who')
    const remotes = servers.flatMap((s) => s.ports().filter((p) => p.network.name === 'who').map((p) => p.remote.replace(/:\d+$/, ''))).sort()
    // Before --trusted-proxy (or without nginx setting the header) both were nginx's 127.0.0.1; a rule taking the first entry would believe 192.0.2.9.
    assert.deepEqual(remotes, ['127.0.0.2', '127.0.0.3'])
    for (const c of clients.splice(clients.indexOf(one), 2)) c.close()
    await waitFor(() => servers.every((s) => !s.ports().some((p) => p.network.name === 'who')), 10_000, 'who gone before the drain below')
  })

  it('drain one replica: its ports (and the trunk) come back through nginx at once, each network whole on another replica, and no agent gives up', async () => {
    const victim = holders('n0')[0] as number
    const moved = [...new Set((servers[victim] as SwitchServer).ports().map((p) => p.network.name))]
    assert.ok(moved.length > 0)
    const before = new Map(agents.map((a) => [a, a.uplink.stats.connects]))
    logs.length = 0
    const trunkConnects = site?.trunks[0]?.uplink.stats.connects ?? 0
    const r = await (servers[victim] as SwitchServer).drain(true)
    assert.equal(r.closed, moved.length * 2 + 1)
    await waitFor(() => agents.every((a) => a.uplink.isUp) && agents.filter((a) => a.uplink.stats.connects > (before.get(a) ?? 0)).length === moved.length * 2 &&
      site?.trunks[0]?.uplink.isUp === true && site.trunks[0].uplink.stats.connects > trunkConnects, 60_000, 'the drained agents and the trunk up again through nginx')
    assert.equal((servers[victim] as SwitchServer).ports().length, 0)
    for (const net of moved) {
      const h = holders(net)
      assert.equal(h.length, 1, `${net} is on replicas ${h.join(',')}`)
      assert.notEqual(h[0], victim)
      assert.equal(servers[h[0] as number]?.ports().filter((p) => p.network.name === net).length, net === 'n0' ? 3 : 2, net)
    }
    // Each went at once (its backoff is 100 s), once: not a retry on the backoff, not a refusal.
    const retries = logs.filter((l) => l.event === 'uplink_retry')
    assert.equal(retries.length, moved.length * 2 + 1, JSON.stringify(retries))
    for (const l of retries) assert.deepEqual([l.delay_seconds, l.reason], [0, 'draining'])
    assert.equal(logs.filter((l) => l.event === 'uplink_refused').length, 0)
    // nginx tried the draining replica first for each moved network: counted there as refused upgrades.
    assert.ok(((servers[victim] as SwitchServer).rejectedBy.draining ?? 0) >= 1)
    // A client that skips the balancer is refused by the drained replica itself.
    assert.equal(await upgradeStatus(`ws://127.0.0.1:${(servers[victim] as SwitchServer).address().port}/net/${moved[0] as string}`), 503)
  })
})
