/**
 * Audit (issue 12, findings 8 and 16): trunks and the spanning tree against
 * clients posing as switches, and a switch that grants too much. Real
 * switchd on 127.0.0.1:0; the attackers are plain ws clients (or a ws server).
 */

import assert from 'node:assert/strict'
import WebSocket, { WebSocketServer } from 'ws'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import type { NetPort } from '../../src/switch/io/net-port'
import { TestClient } from '../helpers/client'
import { waitFor, sleep, onceWithin } from '../helpers/net'
import { eth, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'
import { FORWARD_DELAY_MS, MAX_AGE_MS } from '../../src/switch/core/stp'
import { SUBPROTOCOL_V1, MAX_MESSAGE_SIZE, CAP_TRUNK } from '../../src/common/protocol'

const LAB = '/net/lab'
const ROOT_CLAIM = JSON.stringify({ type: 'bpdu', root: '0000000000000001', cost: 0, bridge: '0000000000000002', port: 1, tc: [] })

describe('audit: trunks and the spanning tree', function () {
  const servers: SwitchServer[] = []
  const clients: TestClient[] = []
  const closers: Array<() => void> = []
  let restore: (line: string) => void
  const logs: string[] = []

  beforeEach(() => { logs.length = 0; restore = setLogSink((l) => { logs.push(l) }) })
  afterEach(async function () {
    for (const c of closers.splice(0)) c()
    for (const c of clients.splice(0)) c.close()
    await Promise.all(servers.splice(0).reverse().map(async (s) => { await s.close() }))
    setLogSink(restore)
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-60).join('\n') + '\n')
  })

  async function sw (config: Record<string, unknown> = {}): Promise<{ server: SwitchServer, url: string }> {
    const server = new SwitchServer({ config: buildConfig({ pingInterval: 1, api: false, ...config }, 'test'), host: '127.0.0.1', port: 0 })
    servers.push(server)
    return { server, url: `ws://127.0.0.1:${(await server.listen()).port}` }
  }

  async function station (url: string, hello: Record<string, unknown> = {}): Promise<TestClient> {
    const c = await TestClient.batched(url, hello)
    clients.push(c)
    return c
  }

  const trunkPorts = (s: SwitchServer): NetPort[] => s.ports().filter((p) => p.stp !== null)

  it('attack: without tokens, a client saying hello with the trunk capability is refused (1008) unless a profile opts its name in', async () => {
    const { server, url } = await sw()
    const ws = new WebSocket(url + LAB, [SUBPROTOCOL_V1], { perMessageDeflate: false, maxPayload: MAX_MESSAGE_SIZE })
    ws.on('error', () => {})
    closers.push(() => { ws.terminate() })
    await onceWithin(ws, 'open')
    ws.send(JSON.stringify({ type: 'hello', version: 1, name: 'evil', capabilities: [CAP_TRUNK] }))
    const [code] = await onceWithin<[number]>(ws, 'close')
    assert.equal(code, 1008)
    assert.equal(server.rejectedBy.trunk_refused, 1)
    assert.equal(server.ports().length, 0)
    // Opted in by name, the same hello is a trunk.
    const { server: opted, url: optedUrl } = await sw({ profiles: [{ match: 'core-*', trunk: true, claimable: true }] })
    await station(optedUrl + LAB, { name: 'core-1', capabilities: [CAP_TRUNK] })
    assert.equal(trunkPorts(opted).length, 1)
  })

  it('attack: a trunk token holder dialling two switchd and claiming root 0000000000000001 is root-guarded and intercepts 0/20 unicast', async () => {
    const tokens = [
      { id: 'sw', token: 'switch-token-0123456789', trunk: true },
      { id: 'evil', token: 'evil-token-0123456789', trunk: true, rootGuard: true },
      { id: 'host', token: 'host-token-0123456789' }
    ]
    const b = await sw({ tokens })
    const a = await sw({ tokens, trunks: [{ url: b.url + LAB, token: 'switch-token-0123456789' }] })
    await waitFor(() => [a, b].flatMap((s) => trunkPorts(s.server)).filter((p) => p.stp?.forwarding === true).length === 2, 10_000, 'A-B trunk forwarding')
    const evil = [
      await station(a.url + LAB + '?token=evil-token-0123456789', { name: 'evil', capabilities: [CAP_TRUNK] }),
      await station(b.url + LAB + '?token=evil-token-0123456789', { name: 'evil', capabilities: [CAP_TRUNK] })
    ]
    const claim = setInterval(() => { for (const e of evil) e.ws.send(ROOT_CLAIM) }, 200)
    closers.push(() => { clearInterval(claim) })
    // The claims have been heard (both claiming ports root-inconsistent); then a forward delay more, in which
    // a root claim that got through would have moved a port to forwarding.
    await waitFor(() => [a, b].every((s) => trunkPorts(s.server).some((p) => p.name.startsWith('evil') && p.stp?.rootInconsistent === true)), 10_000, 'the claims heard')
    await sleep(FORWARD_DELAY_MS)
    for (const s of [a.server, b.server]) {
      const ends = trunkPorts(s)
      const ab = ends.filter((p) => !p.name.startsWith('evil'))
      const guarded = ends.filter((p) => p.name.startsWith('evil'))
      assert.equal(ab.length, 1)
      assert.equal(ab[0]?.stp?.forwarding, true, 'the A-B trunk stays forwarding')
      assert.equal(guarded[0]?.stp?.rootInconsistent, true, 'the claiming port is root-inconsistent')
      assert.equal(guarded[0]?.stp?.forwarding, false)
      assert.notEqual(s.networks.get('lab')?.stp.rootId, '0000000000000001')
    }
    const ha = await station(a.url + LAB + '?token=host-token-0123456789', { name: 'ha' })
    const hb = await station(b.url + LAB + '?token=host-token-0123456789', { name: 'hb' })
    hb.send([eth(BROADCAST, MAC_B, 1)])
    await waitFor(() => ha.frames.length === 1, 3000, 'B\'s host learned across the trunk')
    for (const e of evil) e.take()
    for (let i = 0; i < 20; i++) ha.send([eth(MAC_B, MAC_A, 100 + i)])
    await waitFor(() => hb.frames.length === 20, 3000, '20 unicast frames at B\'s host')
    const intercepted = evil.reduce((n, e) => n + e.take().filter((f) => f.readUIntBE(0, 6) === 0x020000000002).length, 0)
    assert.equal(intercepted, 0, `${intercepted}/20 unicast frames intercepted`)
    // Superior BPDUs stop: after max age the guard clears and the port may forward as a designated port.
    clearInterval(claim)
    await waitFor(() => trunkPorts(a.server).every((p) => p.stp?.rootInconsistent !== true), MAX_AGE_MS + 3000, 'root guard cleared')
    assert.ok(logs.some((l) => l.includes('"stp_root_guard_blocked"')))
  })

  it('attack: an agent (not a trunk) that sends a BPDU is shut by BPDU guard (4005)', async () => {
    const { server, url } = await sw()
    const agent = await station(url + LAB, { name: 'agent' })
    agent.ws.send(ROOT_CLAIM)
    assert.equal(await agent.closed(), 4005)
    assert.equal(server.portTable.bpduGuardShutdowns, 1)
    await waitFor(() => server.ports().length === 0)
  })

  it('attack: a hostile switch granting VLANs 1-4094 to our trunk reaches only the VLANs we allow', async () => {
    const hostile = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => SUBPROTOCOL_V1 })
    closers.push(() => { for (const c of hostile.clients) c.terminate(); hostile.close() })
    await onceWithin(hostile, 'listening')
    const all = Array.from({ length: 4093 }, (_, i) => i + 2)
    hostile.on('connection', (ws, req) => {
      ws.on('error', () => {})
      // On /net/other it grants only VLAN 5.
      const vlan = req.url?.includes('other') === true ? { mode: 'trunk', vlans: [5] } : { mode: 'trunk', vlans: all, native: 1 }
      ws.once('message', () => {
        ws.send(JSON.stringify({
          type: 'welcome', version: 1, port: 1, name: 'trunk', maxFrameSize: 1518, maxMessageSize: MAX_MESSAGE_SIZE,
          pingInterval: 3, capabilities: [CAP_TRUNK], network: 'lab', vlan
        }))
      })
    })
    const hostileUrl = `ws://127.0.0.1:${(hostile.address() as { port: number }).port}${LAB}`
    // Default: what our own profile for the trunk's name allows (here none: access VLAN 1).
    const a = await sw({ trunks: [{ url: hostileUrl }] })
    await waitFor(() => trunkPorts(a.server).length === 1, 5000, 'trunk up')
    assert.deepEqual(trunkPorts(a.server)[0]?.policy.vlans, [1])
    // With trunks[].vlans: exactly those, tagged; the native VLAN 1 is not among them.
    const c = await sw({ trunks: [{ url: hostileUrl, vlans: [10, 20] }] })
    await waitFor(() => trunkPorts(c.server).length === 1, 5000, 'trunk up')
    const t = trunkPorts(c.server)[0]
    assert.deepEqual([t?.policy.vlans, t?.policy.pvid], [[10, 20], 0])
    // None in common: no port, and the refusal is counted.
    const e = await sw({ trunks: [{ url: hostileUrl.replace(LAB, '/net/other'), vlans: [10] }] })
    await waitFor(() => (e.server.trunks[0]?.vlansRefused ?? 0) > 0, 5000, 'the dial refused')
    assert.equal(trunkPorts(e.server).length, 0)
    assert.match(await e.server.registry.metrics(), /^switchd_trunk_dials_refused_total\{reason="no_common_vlan",replica="[^"]*"\} [1-9]/m)
  })
})
