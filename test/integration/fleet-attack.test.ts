/**
 * A mesh link is a trunk between replicas (issue 25, docs/FLEET.md): the
 * hostile cases, against one real replica. Only the fleet credential opens
 * one (anything else asking for `mesh` is closed 1008 and counted), the
 * credential opens nothing else, a mesh peer cannot claim root (its BPDUs
 * are dropped and counted) nor VLANs it was not given.
 */

import assert from 'node:assert/strict'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import WebSocket, { WebSocketServer } from 'ws'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { TestClient, upgradeStatus } from '../helpers/client'
import { waitFor, onceWithin } from '../helpers/net'
import { eth, tagged, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'
import { SUBPROTOCOL_V1, CLOSE_POLICY, MAX_MESSAGE_SIZE, decodeBatch, encodeBatch, parseWelcome, type Welcome } from '../../src/common/protocol'
import { R_VLAN } from '../../src/switch/core/reasons'
import { Fleet, setFleetLookup, type FleetHost } from '../../src/switch/io/fleet'
import { MAX_PEERS } from '../../src/switch/core/fleet-plan'

const TOKEN = 'fleet-credential-0123456789abcdef-0123456789'

/** A peer replica's side of a mesh link, by hand: the upgrade with `token`, a hello with `hello`. */
class MeshPeer {
  readonly frames: Buffer[] = []
  welcome: Welcome | undefined
  closeCode: number | undefined
  private constructor (readonly ws: WebSocket) {
    ws.on('error', () => {})
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) this.frames.push(...decodeBatch(data).map((f) => Buffer.from(f)))
      else if (this.welcome === undefined) this.welcome = parseWelcome(data.toString())
    })
    ws.on('close', (code) => { this.closeCode = code })
  }

  static async open (url: string, token: string | undefined, hello: Record<string, unknown>): Promise<MeshPeer> {
    const headers = token === undefined ? {} : { authorization: `Bearer ${token}` }
    const p = new MeshPeer(new WebSocket(url, [SUBPROTOCOL_V1], { headers, perMessageDeflate: false, maxPayload: MAX_MESSAGE_SIZE }))
    await onceWithin(p.ws, 'open')
    p.ws.send(JSON.stringify({ type: 'hello', version: 1, ...hello }))
    await waitFor(() => p.welcome !== undefined || p.closeCode !== undefined, 30_000, 'a welcome or a close')
    return p
  }
}

describe('fleet: hostile mesh peers', function () {
  this.timeout(60_000)
  let server: SwitchServer
  let url: string
  const peers: MeshPeer[] = []
  const clients: TestClient[] = []
  let restore: (line: string) => void
  const logs: string[] = []

  beforeEach(async () => {
    logs.length = 0
    restore = setLogSink((l) => { logs.push(l) })
    const config = buildConfig({ pingInterval: 1 }, 'test', { replica: 'r2', fleet: 'http://127.0.0.1:1', fleetToken: TOKEN, fleetVlans: '10' })
    server = new SwitchServer({ config, host: '127.0.0.1', port: 0 })
    url = `ws://127.0.0.1:${(await server.listen()).port}/net/lab`
  })
  afterEach(async function () {
    for (const p of peers.splice(0)) p.ws.terminate()
    for (const c of clients.splice(0)) c.close()
    await server.close()
    setLogSink(restore)
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-60).join('\n') + '\n')
  })

  async function peer (token: string | undefined, hello: Record<string, unknown> = { name: 'mesh-r1', capabilities: ['mesh'] }): Promise<MeshPeer> {
    const p = await MeshPeer.open(url, token, hello)
    peers.push(p)
    return p
  }

  it('attack: a hello asking for mesh without the fleet credential, or with a wrong one, is closed 1008 and counted', async () => {
    const none = await peer(undefined)
    await waitFor(() => none.closeCode !== undefined, 30_000, 'close')
    assert.equal(none.closeCode, CLOSE_POLICY)
    assert.equal(none.welcome, undefined)
    const wrong = await peer(TOKEN.replace(/.$/, 'x'))
    await waitFor(() => wrong.closeCode !== undefined, 30_000, 'close')
    assert.equal(wrong.closeCode, CLOSE_POLICY)
    assert.equal(server.rejectedBy.mesh_refused, 2)
    assert.equal(server.ports().filter((p) => p.mesh).length, 0)
    const metrics = await server.registry.metrics()
    assert.match(metrics, /^switchd_mesh_refused_total(\{replica="[^"]*"\})? 2$/m)
  })

  it('the fleet credential opens only mesh links: not a station (1008), not a raw port (400)', async () => {
    const station = await peer(TOKEN, { name: 'sneaky' })
    await waitFor(() => station.closeCode !== undefined, 30_000, 'close')
    assert.equal(station.closeCode, CLOSE_POLICY)
    assert.equal(await upgradeStatus(url, { headers: { authorization: `Bearer ${TOKEN}` } }), 400)
    const trunk = await peer(TOKEN, { name: 'mesh-r1', capabilities: ['mesh', 'trunk'] })
    await waitFor(() => trunk.closeCode !== undefined, 30_000, 'close')
    assert.equal(server.rejectedBy.mesh_refused, 3)
  })

  it('attack: a station naming itself mesh-<replica> does not take the mesh link\'s name (which guards.trusted may list)', async () => {
    const h = await TestClient.batched(url, { name: 'mesh-r1' })
    clients.push(h)
    const mesh = await peer(TOKEN)
    assert.ok(mesh.welcome !== undefined, 'admitted with the credential')
    const station = server.ports().find((p) => !p.mesh)
    assert.equal(server.ports().find((p) => p.mesh)?.name, 'mesh-r1', 'the mesh link has its name')
    assert.notEqual(station?.name, 'mesh-r1')
    assert.match(station?.name ?? '', /^mesh-r1-\d+$/)
  })

  it('attack: a mesh peer sending BPDUs that claim root: dropped, counted, no root change, no spanning tree on the port', async () => {
    const h = await TestClient.batched(url, { name: 'h' })
    clients.push(h)
    const mesh = await peer(TOKEN)
    assert.ok(mesh.welcome !== undefined, 'admitted with the credential')
    const sw = server.networks.get('lab')
    assert.ok(sw !== undefined)
    const root = sw.stp.rootId
    const port = server.ports().find((p) => p.mesh)
    assert.equal(port?.kind, 'mesh')
    assert.equal(port?.name, 'mesh-r1')
    assert.equal(port?.stp, null)
    for (let i = 0; i < 5; i++) mesh.ws.send(JSON.stringify({ type: 'bpdu', root: '0000000000000001', cost: 0, bridge: '0000000000000001', port: 1, tc: [] }))
    // A barrier: a frame after the BPDUs reaches the station, so the BPDUs were read.
    mesh.ws.send(encodeBatch([eth(BROADCAST, MAC_A)]))
    await waitFor(() => h.frames.length === 1, 30_000, 'the barrier frame')
    assert.equal(server.counters().meshBpdusDropped, 5)
    assert.equal(sw.stp.rootId, root, 'the mesh peer became root')
    assert.equal(mesh.closeCode, undefined, 'a mesh link is not shut by BPDU guard: it is our own fleet')
    assert.match(await server.registry.metrics(), /^switchd_mesh_bpdus_dropped_total(\{replica="[^"]*"\})? 5$/m)
  })

  it('attack: a mesh peer asking for VLANs it was not given gets VLAN 1 untagged and --fleet-vlans only', async () => {
    const h = await TestClient.batched(url, { name: 'h', vlan: { mode: 'access', vlan: 1 } })
    clients.push(h)
    const mesh = await peer(TOKEN, { name: 'mesh-r1', capabilities: ['mesh'], vlan: { mode: 'trunk', vlans: [10, 20, 30, 4000], native: 1 } })
    assert.deepEqual(mesh.welcome?.vlan, { mode: 'trunk', vlans: [10], native: 1 })
    const port = server.ports().find((p) => p.mesh)
    assert.deepEqual(port?.policy.vlans, [1, 10])
    mesh.ws.send(encodeBatch([tagged(BROADCAST, MAC_B, 20), eth(BROADCAST, MAC_A)]))
    await waitFor(() => h.frames.length === 1, 30_000, 'the untagged frame')
    assert.equal(port?.drops[R_VLAN], 1, 'VLAN 20 was refused')
  })
})

/**
 * The dialling side against a hostile peer: a fake replica that answers
 * /fleet/v1/state, takes our mesh link, grants every VLAN and sends BPDUs
 * claiming root. We carry the fleet's VLANs only and drop its BPDUs.
 */
describe('fleet: a hostile peer we dial', function () {
  this.timeout(60_000)
  let server: SwitchServer | undefined
  let fake: http.Server | undefined
  const clients: TestClient[] = []
  let restore: (line: string) => void

  beforeEach(() => { restore = setLogSink(() => {}) })
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close()
    await server?.close()
    fake?.closeAllConnections()
    await new Promise<void>((resolve) => { if (fake === undefined) resolve(); else fake.close(() => { resolve() }) })
    setLogSink(restore)
  })

  it('attack: carries only the fleet\'s VLANs whatever the peer grants, and drops its BPDUs claiming root', async () => {
    const wss = new WebSocketServer({ noServer: true, handleProtocols: () => SUBPROTOCOL_V1 })
    const fromUs: Buffer[] = []
    let heard: Record<string, unknown> | undefined
    let auth: string | undefined
    fake = http.createServer((req, res) => {
      const ok = req.headers.authorization === `Bearer ${TOKEN}`
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' }).end(ok ? JSON.stringify({ replica: 'zz', draining: false, networks: ['lab'] }) : '')
    })
    fake.on('upgrade', (req, socket, head) => {
      auth = req.headers.authorization
      wss.handleUpgrade(req, socket, head, (ws) => {
        ws.on('message', (data: Buffer, isBinary: boolean) => {
          if (isBinary) { fromUs.push(...decodeBatch(data).map((f) => Buffer.from(f))); return }
          heard = JSON.parse(data.toString()) as Record<string, unknown>
          ws.send(JSON.stringify({ type: 'welcome', version: 1, port: 1, name: 'mesh-a', maxFrameSize: 1518, maxMessageSize: MAX_MESSAGE_SIZE, pingInterval: 3, capabilities: [], network: 'lab', vlan: { mode: 'trunk', vlans: [10, 20, 30], native: 1 } }))
          for (let i = 0; i < 3; i++) ws.send(JSON.stringify({ type: 'bpdu', root: '0000000000000001', cost: 0, bridge: '0000000000000001', port: 1, tc: [] }))
          // Frames of a VLAN the fleet does not carry, then one it does (the barrier).
          ws.send(encodeBatch([tagged(BROADCAST, MAC_B, 20), tagged(BROADCAST, MAC_B, 10)]))
        })
      })
    })
    await new Promise<void>((resolve) => (fake as http.Server).listen(0, '127.0.0.1', resolve))
    const fakePort = (fake.address() as AddressInfo).port
    const profiles = [{ match: 'h', mode: 'trunk', vlans: [10, 20], claimable: true }]
    const config = buildConfig({ pingInterval: 1, profiles }, 'test', { replica: 'a', fleet: `http://127.0.0.1:${fakePort}`, fleetToken: TOKEN, fleetVlans: '10' })
    server = new SwitchServer({ config, host: '127.0.0.1', port: 0 })
    const url = `ws://127.0.0.1:${(await server.listen()).port}/net/lab`
    const h = await TestClient.batched(url, { name: 'h', vlan: { mode: 'trunk', vlans: [10, 20] } })
    clients.push(h)
    await waitFor(() => h.frames.length >= 1, 30_000, 'the VLAN 10 frame from the peer')
    assert.equal(auth, `Bearer ${TOKEN}`, 'dialled with the fleet credential')
    assert.deepEqual(heard?.capabilities, ['mesh', 'offload'])
    assert.equal(heard?.name, 'mesh-a')
    const port = server.ports().find((p) => p.mesh)
    assert.equal(port?.kind, 'mesh')
    assert.equal(port?.name, 'mesh-zz')
    assert.deepEqual(port?.policy.vlans, [1, 10], 'the peer granted 10, 20 and 30; the fleet gives 10')
    assert.equal(port?.drops[R_VLAN], 1, 'its VLAN 20 frame was refused')
    assert.equal(h.frames.length, 1)
    const sw = server.networks.get('lab')
    assert.equal(sw?.stp.rootId, sw?.stp.bridgeId, 'the peer became root')
    assert.equal(server.counters().meshBpdusDropped, 3)
    // And what we send it: VLAN 20 from our station stays home.
    h.send([tagged(BROADCAST, MAC_A, 20), tagged(BROADCAST, MAC_A, 10)])
    await waitFor(() => fromUs.length >= 1, 30_000, 'our VLAN 10 frame at the peer')
    assert.equal(fromUs.length, 1)
    wss.close()
  })
})

describe('fleet: hostile answers about the peers', function () {
  this.timeout(60_000)
  let restore: (line: string) => void
  const logs: string[] = []
  beforeEach(() => { logs.length = 0; restore = setLogSink((l) => { logs.push(l) }) })
  afterEach(() => { setLogSink(restore) })

  /** The daemon's side as a Fleet sees it: no local network, nothing to open. */
  const host: FleetHost = {
    localNetworks: () => new Set<string>(),
    allocateId: () => 1,
    portBuffer: 1 << 20,
    instance: '0123456789abcdef',
    answeredLinks: () => new Set<string>(),
    open: () => 'no networks here',
    release: () => {},
    portChanged: () => {}
  }

  it('attack: a dns:// name resolving to 10,000 addresses is asked at MAX_PEERS of them, not 10,000 sockets a second', async () => {
    const addresses: string[] = []
    for (let i = 0; i < 10_000; i++) addresses.push(`127.${(i >> 16) & 255}.${(i >> 8) & 255}.${(i & 255) + 1}`)
    const was = setFleetLookup(async () => addresses)
    // Port 1: nothing listens, every poll is refused at once.
    const fleet = new Fleet('a', { peers: [{ kind: 'dns', name: 'huge.test', port: 1 }], token: TOKEN, vlans: [], ca: undefined }, false, host)
    try {
      await fleet.start()
      assert.equal(fleet.targets, MAX_PEERS)
      await waitFor(() => fleet.pollsFailed >= MAX_PEERS, 30_000, 'the first round of polls')
      assert.ok(logs.some((l) => l.includes('fleet_too_many_peers')), 'the cut is logged')
    } finally {
      await fleet.close()
      setFleetLookup(was)
    }
    assert.throws(() => buildConfig({}, 'test', { fleet: Array.from({ length: MAX_PEERS + 1 }, (_, i) => `http://127.0.0.1:${i + 1000}`).join(','), fleetToken: TOKEN }), /at most 64 replicas/)
  })
})
