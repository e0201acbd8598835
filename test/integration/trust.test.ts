import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as tls from 'node:tls'
import WebSocket from 'ws'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { TapDevice } from '../../src/common/tap'
import { Uplink } from '../../src/common/uplink'
import { Agent } from '../../src/agent/agent'
import { sha256Hex } from '../../src/switch/control/auth'
import { fakeTapBinding } from '../helpers/fake-tap'
import { TestClient, upgradeStatus } from '../helpers/client'
import { onceWithin, waitFor } from '../helpers/net'
import { makePki, type TestPki } from '../helpers/tls'
import { eth, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'
import { SUBPROTOCOL_V1, MAX_MESSAGE_SIZE } from '../../src/common/protocol'
import { R_PORT_SECURITY, R_RATE } from '../../src/switch/core/reasons'

const T_LAB = 'lab-token-0123456789abcdef'
const T_WEB = 'web-token-0123456789abcdef'
const T_RAW = 'raw-token-0123456789abcdef'

describe('trust and survival (integration)', () => {
  let servers: SwitchServer[]
  let agents: Agent[]
  let clients: TestClient[]
  let restore: (line: string) => void
  const logs: string[] = []

  beforeEach(() => {
    logs.length = 0
    restore = setLogSink((l) => { logs.push(l) })
    servers = []; agents = []; clients = []
  })
  afterEach(async () => {
    for (const c of clients) c.close()
    for (const a of agents) await a.stop()
    for (const s of servers) await s.close()
    setLogSink(restore)
  })

  async function start (raw: unknown, extra: Record<string, unknown> = {}): Promise<{ server: SwitchServer, port: number }> {
    const server = new SwitchServer({ config: buildConfig(raw, 'test'), host: '127.0.0.1', port: 0, ...extra })
    servers.push(server)
    return { server, port: (await server.listen()).port }
  }
  function agent (urls: string[], opts: Partial<ConstructorParameters<typeof Uplink>[0]> = {}): Agent {
    const dev = TapDevice.open(fakeTapBinding, { name: `tsw-t${agents.length}` })
    const a = new Agent(dev, new Uplink({ url: urls[0] as string, urls, reconnectMin: 0.05, reconnectMax: 0.2, ...opts }), 1500)
    agents.push(a)
    a.start()
    return a
  }

  describe('tokens', () => {
    const CONFIG = {
      api: false, // client tokens without an admin token: the API must be off
      tokens: [
        { id: 'lab-agent', token: T_LAB, network: 'lab', name: 'lab-host', mode: 'access', vlan: 10 },
        { id: 'web', sha256: sha256Hex(T_WEB), macs: ['02:00:00:00:00:01'], rate: 1000 },
        { id: 'browser', token: T_RAW }
      ]
    }

    it('refuses a missing or unknown token (401) and a token for another network (403), logging neither token', async () => {
      const { server, port } = await start(CONFIG)
      const base = `ws://127.0.0.1:${port}`
      assert.equal(await upgradeStatus(`${base}/`), 401)
      assert.equal(await upgradeStatus(`${base}/`, { headers: { authorization: 'Bearer wrong-token-wrong-token' } }), 401)
      assert.equal(await upgradeStatus(`${base}/`, { headers: { authorization: `Bearer ${T_LAB}` } }), 403)
      assert.equal(await upgradeStatus(`${base}/net/lab?token=nope`), 401)
      assert.equal(server.rejectedBy.unauthorized, 3)
      assert.equal(server.rejectedBy.forbidden_network, 1)
      const lines = logs.filter((l) => l.includes('"connection_rejected"'))
      assert.equal(lines.length, 4)
      assert.ok(lines.some((l) => l.includes('"reason":"forbidden_network"') && l.includes('"token":"lab-agent"')), 'names the token by its id')
      assert.ok(!logs.some((l) => l.includes(T_LAB) || l.includes('nope')), 'no token value in the logs')
    })

    it('binds what the token grants: network, name and VLAN; ?token= works for browser VMs', async () => {
      const { server, port } = await start(CONFIG)
      const lab = await TestClient.batched(`ws://127.0.0.1:${port}/net/lab?token=${T_LAB}`, { name: 'asks-for-another-name' })
      clients.push(lab)
      assert.equal(lab.welcome?.name, 'lab-host')
      assert.deepEqual(lab.welcome?.vlan, { mode: 'access', vlan: 10 })
      const browser = await TestClient.raw(`ws://127.0.0.1:${port}/?token=${T_RAW}`)
      clients.push(browser)
      await waitFor(() => server.ports().length === 2)
    })

    it('drops frames from MACs the token does not name, and traffic over its byte rate', async () => {
      const { server, port } = await start(CONFIG)
      const web = new WebSocket(`ws://127.0.0.1:${port}/`, { headers: { authorization: `Bearer ${T_WEB}` } })
      web.on('error', () => {})
      await onceWithin(web, 'open')
      const peer = await TestClient.raw(`ws://127.0.0.1:${port}/?token=${T_RAW}`)
      clients.push(peer)
      await waitFor(() => server.ports().length === 2)
      web.send(eth(BROADCAST, MAC_B)) // not its MAC
      web.send(eth(BROADCAST, MAC_A)) // its MAC
      await waitFor(() => peer.frames.length === 1)
      for (let i = 0; i < 40; i++) web.send(eth(BROADCAST, MAC_A, i)) // 40 x 60 B over a 1000 B/s rate
      const p = server.ports().find((x) => x.grantId === 'web')
      // All 42 frames read, and every one the rate admitted arrived at peer: the counts below are final.
      await waitFor(() => p?.rxFrames === 42 && peer.frames.length === 41 - p.drops[R_RATE], 3000, 'the 40 frames read and delivered')
      assert.equal(p?.drops[R_PORT_SECURITY], 1)
      assert.ok((p?.drops[R_RATE] ?? 0) > 20, `over the rate: ${p?.drops[R_RATE]}`)
      assert.ok(peer.frames.length < 20)
      web.terminate()
    })

    it('refuses to listen beyond loopback with no tokens unless allowAnonymous', async () => {
      const server = new SwitchServer({ config: buildConfig({ listen: '0.0.0.0:0' }, 'test') })
      await assert.rejects(server.listen(), (err: Error & { code?: string }) => err.code === 'TSW_ERR_CONFIG' && /--allow-anonymous/.test(err.message))
    })
  })

  describe('TLS', () => {
    let pki: TestPki
    before(function () {
      pki = makePki()
    })
    after(() => { fs.rmSync(pki.dir, { recursive: true, force: true }) })

    it('serves wss:// to an agent that trusts the CA', async () => {
      const { port } = await start({ tls: { cert: pki.cert, key: pki.key } })
      const a = agent([`wss://127.0.0.1:${port}/`], { tls: { ca: fs.readFileSync(pki.ca) } })
      await waitFor(() => a.uplink.isUp, 5000, 'wss uplink up')
    })

    it('an agent refuses an untrusted or expired certificate, and says which', async () => {
      const { port } = await start({ tls: { cert: pki.cert, key: pki.key } })
      const a = agent([`wss://127.0.0.1:${port}/`])
      await waitFor(() => logs.some((l) => l.includes('"uplink_error"') && l.includes('not trusted: pass its CA with --ca')), 5000, 'untrusted hint')
      assert.equal(a.uplink.isUp, false)
      const expired = await start({ tls: { cert: pki.expiredCert, key: pki.expiredKey } })
      const b = agent([`wss://127.0.0.1:${expired.port}/`], { tls: { ca: fs.readFileSync(pki.ca) } })
      await waitFor(() => logs.some((l) => l.includes('CERT_HAS_EXPIRED') && l.includes('has expired')), 5000, 'expired hint')
      assert.equal(b.uplink.isUp, false)
    })

    it('plain ws:// to a TLS port fails on both sides with a clear log line', async () => {
      const { port } = await start({ tls: { cert: pki.cert, key: pki.key } })
      agent([`ws://127.0.0.1:${port}/`])
      await waitFor(() => logs.some((l) => l.includes('"tls_handshake_failed"') && l.includes('it should use wss://')), 5000, 'switchd logs the failed handshake, with the fix')
      await waitFor(() => logs.some((l) => l.includes('use wss:// in --url')), 5000, 'the agent says to use wss://')
    })

    it('reloads the certificate without a restart', async () => {
      const { server, port } = await start({ tls: { cert: pki.cert, key: pki.key } })
      const serial = async (): Promise<string> => await new Promise((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(pki.ca), servername: 'localhost' }, () => { resolve(s.getPeerCertificate().serialNumber); s.end() })
        s.on('error', reject)
      })
      const before = await serial()
      server.reload(buildConfig({ tls: { cert: pki.cert2, key: pki.key2 } }, 'test'))
      const after = await serial()
      assert.notEqual(after, before)
      assert.ok(logs.some((l) => l.includes('"tls_reloaded"')))
    })
  })

  describe('limits', () => {
    it('refuses ports over the per-address (429) and total (503) limits, counted', async () => {
      const { server, port } = await start({ limits: { maxPortsPerAddress: 2, maxPorts: 3 } })
      const url = `ws://127.0.0.1:${port}/`
      clients.push(await TestClient.raw(url), await TestClient.raw(url))
      assert.equal(await upgradeStatus(url), 429)
      assert.equal(server.rejectedBy.limit_address, 1)
      const tight = await start({ limits: { maxPorts: 1 } })
      clients.push(await TestClient.raw(`ws://127.0.0.1:${tight.port}/`))
      assert.equal(await upgradeStatus(`ws://127.0.0.1:${tight.port}/`), 503)
      assert.equal(tight.server.rejectedBy.limit_ports, 1)
    })
  })

  describe('resumable ports', () => {
    async function hello (url: string, body: Record<string, unknown>): Promise<{ ws: WebSocket, welcome: Record<string, unknown> }> {
      const ws = new WebSocket(url, [SUBPROTOCOL_V1], { maxPayload: MAX_MESSAGE_SIZE })
      ws.on('error', () => {})
      await onceWithin(ws, 'open')
      ws.send(JSON.stringify({ type: 'hello', version: 1, ...body }))
      const [data] = await onceWithin<[Buffer]>(ws, 'message')
      return { ws, welcome: JSON.parse(data.toString()) as Record<string, unknown> }
    }

    it('parks a port whose link went silent and gives it back, fdb entries and all, to its resume token', async function () {
      const { server, port } = await start({ pingInterval: 1 })
      const url = `ws://127.0.0.1:${port}/`
      const first = await hello(url, { name: 'roamer' })
      assert.equal(typeof first.welcome.resume, 'string')
      const watcher = await TestClient.raw(url)
      clients.push(watcher)
      first.ws.send(Buffer.concat([Buffer.from([0, 0, 0, 60]), eth(BROADCAST, MAC_A)]))
      await waitFor(() => watcher.frames.length === 1)
      ;(first.ws as unknown as { _socket: { pause: () => void } })._socket.pause() // the link goes silent
      await waitFor(() => logs.some((l) => l.includes('"port_parked"')), 5000, 'parked')
      assert.equal(server.switch.fdb.lookup(1, 0x020000000001)?.name, 'roamer', 'the fdb entry stays while parked')
      watcher.take()
      const floodedBefore = server.switch.stats.floodedUnknown
      const back = await hello(url, { name: 'roamer', resume: first.welcome.resume })
      assert.equal(back.welcome.resumed, true)
      assert.equal(back.welcome.port, first.welcome.port)
      const got: Buffer[] = []
      back.ws.on('message', (d: Buffer) => got.push(d))
      watcher.send([eth(MAC_A, MAC_B)])
      await waitFor(() => got.length === 1, 3000, 'unicast reaches the resumed port')
      assert.equal(server.switch.stats.floodedUnknown, floodedBefore, 'no flooding after the resume')
      back.ws.terminate(); first.ws.terminate()
    })

    it('removes at once a port whose agent closed the connection (a killed agent is not parked)', async () => {
      const { server, port } = await start({})
      const url = `ws://127.0.0.1:${port}/`
      const c = await hello(url, { name: 'gone' })
      c.ws.send(Buffer.concat([Buffer.from([0, 0, 0, 60]), eth(BROADCAST, MAC_A)]))
      await waitFor(() => server.switch.fdb.size === 1)
      c.ws.terminate() // the process died: its kernel closes the socket
      await waitFor(() => server.ports().length === 0 && server.switch.fdb.size === 0, 2000, 'port and fdb gone')
      assert.ok(!logs.some((l) => l.includes('"port_parked"')))
    })
  })

  describe('graceful drain', () => {
    it('an agent moves to the next switch URL when its switch drains (1001)', async function () {
      const one = await start({})
      const two = await start({})
      const a = agent([`ws://127.0.0.1:${one.port}/`, `ws://127.0.0.1:${two.port}/`])
      await waitFor(() => a.uplink.isUp && one.server.ports().length === 1)
      await one.server.close()
      await waitFor(() => two.server.ports().length === 1, 5000, 'reconnected to the second switch')
      assert.equal(a.uplink.url, `ws://127.0.0.1:${two.port}/`)
    })
  })
})
