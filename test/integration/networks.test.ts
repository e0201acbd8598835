import assert from 'node:assert/strict'
import WebSocket from 'ws'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { TapDevice } from '../../src/common/tap'
import { Uplink } from '../../src/common/uplink'
import { Agent } from '../../src/agent/agent'
import { TestClient } from '../helpers/client'
import { FakeTap, fakeTapBinding } from '../helpers/fake-tap'
import { onceWithin, waitFor } from '../helpers/net'
import { eth, tagged, vidOf, BROADCAST, MAC_A, MAC_B, MAC_C } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'

const CONFIG = {
  networks: { default: {}, lab: { maxFrameSize: 9018 } },
  dynamicNetworks: false,
  port: { mode: 'access', vlan: 1 },
  profiles: [
    { match: 'router', mode: 'trunk', vlans: [10, 20], claimable: true },
    { match: 'v10-*', mode: 'access', vlan: 10, claimable: true },
    { match: 'flex', mode: 'trunk', vlans: [10, 20, 30], claimable: true }
  ]
}

describe('networks, VLANs and configuration (integration)', () => {
  let server: SwitchServer
  let base: string
  let clients: TestClient[]
  let agent: Agent | undefined
  let restore: (line: string) => void
  const logs: string[] = []

  beforeEach(async () => {
    logs.length = 0
    restore = setLogSink((l) => { logs.push(l) })
    clients = []
    server = new SwitchServer({ config: buildConfig(CONFIG, 'test'), host: '127.0.0.1', port: 0 })
    base = `ws://127.0.0.1:${(await server.listen()).port}`
  })
  afterEach(async () => {
    for (const c of clients) c.close()
    await agent?.stop()
    agent = undefined
    await server.close()
    setLogSink(restore)
  })

  async function raw (path = '/'): Promise<TestClient> { const c = await TestClient.raw(base + path); clients.push(c); return c }
  async function batched (hello: Record<string, unknown>, path = '/'): Promise<TestClient> { const c = await TestClient.batched(base + path, hello); clients.push(c); return c }

  it('keeps networks apart: nothing crosses from / to /net/lab', async () => {
    const d1 = await raw('/'); const d2 = await raw('/')
    const l1 = await raw('/net/lab'); const l2 = await raw('/net/lab')
    d1.send([eth(BROADCAST, MAC_A, 1)])
    l1.send([eth(BROADCAST, MAC_A, 2)])
    await waitFor(() => d2.frames.length >= 1 && l2.frames.length >= 1)
    // Barriers: each port broadcasts once more (tag 10 + i); every port hears its neighbour's
    // barrier after anything the two broadcasts above could have sent it.
    const all = [d1, d2, l1, l2]
    for (const [i, c] of all.entries()) c.send([eth(BROADCAST, '02000000001' + String(i), 10 + i)])
    await waitFor(() => all.every((c) => c.frames.some((f) => (f[14] ?? 0) >= 10)), 3000, 'the barriers')
    assert.deepEqual(d1.take().map((f) => f[14]), [11], 'nothing from /net/lab at /')
    assert.deepEqual(d2.take().map((f) => f[14]), [1, 10])
    assert.deepEqual(l1.take().map((f) => f[14]), [13], 'nothing from / at /net/lab')
    assert.deepEqual(l2.take().map((f) => f[14]), [2, 12])
    assert.equal(server.networks.get('lab')?.ports.length, 2)
  })

  it('refuses unknown paths and networks with 404 before the upgrade', async () => {
    for (const path of ['/other', '/net/nope']) {
      const ws = new WebSocket(base + path)
      ws.on('error', () => {})
      const [, res] = await onceWithin<[unknown, { statusCode: number }]>(ws, 'unexpected-response')
      assert.equal(res.statusCode, 404, path)
      ws.terminate()
    }
    assert.equal(server.rejected, 2)
  })

  it('tells an agent its network, VLAN mode and the network\'s maximum frame size', async () => {
    const r = await batched({ name: 'router' }, '/net/lab')
    assert.equal(r.welcome?.network, 'lab')
    assert.equal(r.welcome?.maxFrameSize, 9018)
    assert.deepEqual(r.welcome?.vlan, { mode: 'trunk', vlans: [10, 20] })
    const h = await batched({ name: 'v10-a' })
    assert.deepEqual(h.welcome?.vlan, { mode: 'access', vlan: 10 })
  })

  it('grants a narrower request and refuses one outside the profile (1008)', async () => {
    const ok = await batched({ name: 'flex', vlan: { mode: 'trunk', vlans: [30] } })
    assert.deepEqual(ok.welcome?.vlan, { mode: 'trunk', vlans: [30] })
    const ws = new WebSocket(base + '/', ['tapswitch.v1'])
    ws.on('error', () => {})
    await onceWithin(ws, 'open')
    ws.send(JSON.stringify({ type: 'hello', version: 1, name: 'v10-b', vlan: { mode: 'access', vlan: 20 } }))
    const [code, reason] = await onceWithin<[number, Buffer]>(ws, 'close')
    assert.equal(code, 1008)
    assert.match(reason.toString(), /VLAN 20 is not allowed/)
  })

  it('tags frames toward a trunk and strips them toward access ports', async () => {
    const router = await batched({ name: 'router' })
    const a = await batched({ name: 'v10-a' })
    const b = await batched({ name: 'v10-b' })
    a.send([eth(BROADCAST, MAC_A, 5)])
    await waitFor(() => router.frames.length === 1 && b.frames.length === 1)
    assert.equal(vidOf(router.frames[0] as Buffer), 10)
    assert.equal(vidOf(b.frames[0] as Buffer), -1)
    router.send([tagged(MAC_A, MAC_B, 10, 6)])
    await waitFor(() => a.frames.length === 1)
    assert.equal(vidOf(a.frames[0] as Buffer), -1)
    assert.equal(a.frames[0]?.[14], 6)
    const before = a.frames.length + b.frames.length
    router.send([tagged(BROADCAST, MAC_B, 20, 7)])
    // Barrier: a VLAN 10 broadcast by the same path reaches both after the VLAN 20 one would have.
    router.send([tagged(BROADCAST, MAC_B, 10, 8)])
    await waitFor(() => a.frames.length + b.frames.length >= before + 2, 3000, 'the barrier')
    assert.deepEqual([a, b].map((c) => c.frames.slice(-1).map((f) => f[14])), [[8], [8]])
    assert.equal(a.frames.length + b.frames.length, before + 2, 'VLAN 20 reaches no VLAN 10 port')
  })

  it('reloads: keeps ports still allowed, closes the ones that are not (1008), applies new limits', async () => {
    const keep = await batched({ name: 'v10-a' })
    const lose = await batched({ name: 'flex', vlan: { mode: 'trunk', vlans: [30] } })
    const next = { ...CONFIG, port: { mode: 'access', vlan: 1, maxMacs: 7 }, profiles: [CONFIG.profiles[0], { match: 'v10-*', mode: 'access', vlan: 10, maxMacs: 7, claimable: true }, { match: 'flex', mode: 'trunk', vlans: [10], claimable: true }] }
    server.reload(buildConfig(next, 'test'))
    assert.equal(await lose.closed(), 1008)
    // Barrier: a frame that reaches keep after any close the reload could have sent it.
    const peer = await batched({ name: 'v10-b' })
    peer.send([eth(BROADCAST, MAC_C, 9)])
    await waitFor(() => keep.frames.length >= 1, 3000, 'the barrier at keep')
    assert.deepEqual(keep.frames.map((f) => f[14]), [9])
    assert.equal(keep.closeCode, undefined)
    const p = server.ports().find((x) => x.name === 'v10-a')
    assert.equal(p?.maxMacs, 7)
    assert.ok(logs.some((l) => l.includes('"config_reloaded"')))
  })

  it('serves the read-only API: networks, ports and the fdb', async () => {
    const a = await batched({ name: 'v10-a' })
    const b = await batched({ name: 'v10-b' })
    a.send([eth(BROADCAST, MAC_A)])
    await waitFor(() => b.frames.length === 1)
    const http = base.replace('ws:', 'http:')
    const ports = await (await fetch(`${http}/api/v1/ports`)).json() as Array<{ name: string, vlans: number[], counters: { rxFrames: number } }>
    assert.deepEqual(ports.map((p) => p.name).sort(), ['v10-a', 'v10-b'])
    assert.equal(ports.find((p) => p.name === 'v10-a')?.counters.rxFrames, 1)
    const fdb = await (await fetch(`${http}/api/v1/fdb?vlan=10`)).json() as Array<{ mac: string, port: string, vlan: number }>
    assert.deepEqual(fdb.map((e) => [e.mac, e.port, e.vlan]), [['02:00:00:00:00:01', 'v10-a', 10]])
    const nets = await (await fetch(`${http}/api/v1/networks`)).json() as Array<{ name: string }>
    assert.deepEqual(nets.map((n) => n.name).sort(), ['default', 'lab'])
    assert.equal((await fetch(`${http}/api/v1/nope`)).status, 404)
  })

  it('has the agent set its TAP MTU from the welcome unless --mtu was given', async () => {
    const dev = TapDevice.open(fakeTapBinding, { name: 'tsw-mtu0' })
    agent = new Agent(dev, new Uplink({ url: `${base}/net/lab`, name: 'mtu-test', reconnectMin: 0.05, reconnectMax: 0.2 }))
    agent.start()
    await waitFor(() => agent?.uplink.isUp === true)
    assert.equal((dev.tap as FakeTap).mtu, 9000)
  })
})
