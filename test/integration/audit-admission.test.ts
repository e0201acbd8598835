/**
 * Issue 21, fair admission, against a real switchd on 127.0.0.1: what one
 * client address may hold before it is known (connections not yet upgraded,
 * handshakes, parked ports, guesses of the admin token, log lines), and
 * grants checked again when the port is made. Each `attack:` test fails on
 * 14ad2cc. Every client here is on loopback, which is one address (the
 * per-address tests across two addresses are test/e2e/admission.e2e.ts).
 */
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import * as http from 'node:http'
import * as net from 'node:net'
import WebSocket from 'ws'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { AuthThrottle, FAILURE_BURST } from '../../src/switch/control/throttle'
import { CONSOLE_SUBPROTOCOL, BEARER_PREFIX } from '../../src/switch/control/auth'
import { CLIENT_BURST, CLIENT_WINDOW_MS, setLogSink } from '../../src/common/log'
import { SUBPROTOCOL_V1, MAX_MESSAGE_SIZE, encodeBatch } from '../../src/common/protocol'
import type { DropsJson } from '../../src/common/api-types'
import type { WebSocket as WsSocket } from 'ws'
import { TestClient, upgradeStatus } from '../helpers/client'
import { onceWithin, waitFor, httpRequest } from '../helpers/net'
import { eth, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'

const ADMIN = 'admission-admin-token-0123456789'
const T_A = 'alpha-admission-0123456789abcdef'
const T_W = 'watch-admission-0123456789abcdef'

/** A WebSocket in tapswitch mode that has not said hello yet. */
async function handshake (url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, [SUBPROTOCOL_V1], { perMessageDeflate: false, maxPayload: MAX_MESSAGE_SIZE })
  ws.on('error', () => {})
  await onceWithin(ws, 'open')
  return ws
}

/** The close code and reason of `ws`, once it closes. */
async function closeOf (ws: WebSocket, ms = 3000): Promise<[number, string]> {
  const [code, reason] = await onceWithin<[number, Buffer]>(ws, 'close', ms)
  return [code, reason.toString()]
}

describe('audit: fair admission (integration)', () => {
  let servers: SwitchServer[]
  let sockets: Array<{ destroy: () => void }>
  let logs: string[]
  let restore: (line: string) => void

  beforeEach(() => {
    logs = []
    restore = setLogSink((l) => { logs.push(l) })
    servers = []; sockets = []
  })
  afterEach(async () => {
    for (const s of sockets) s.destroy()
    for (const s of servers) await s.close()
    setLogSink(restore)
  })

  async function start (raw: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<{ server: SwitchServer, port: number }> {
    const server = new SwitchServer({ config: buildConfig(raw, 'test'), host: '127.0.0.1', port: 0, closeTimeout: 0.2, ...extra })
    servers.push(server)
    return { server, port: (await server.listen()).port }
  }

  /** A TCP connection from `from` (any 127/8 address is this host) that writes half a request and waits. */
  async function halfRequest (port: number, from = '127.0.0.1'): Promise<net.Socket> {
    const s = net.connect({ port, host: '127.0.0.1', localAddress: from })
    sockets.push(s)
    s.on('error', () => {})
    s.resume()
    await onceWithin(s, 'connect')
    s.write('GET /api/v1/ports HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ')
    return s
  }

  function track<T extends { terminate: () => void } | { close: () => void }> (c: T): T {
    sockets.push({ destroy: () => { 'terminate' in c ? c.terminate() : c.close() } })
    return c
  }

  describe('finding 7: connections not yet upgraded are shared per client address', () => {
    it('attack: one address holding half-written requests takes at most its share (maxPendingPerAddress), never the pool', async function () {
      this.timeout(30_000)
      // maxPending 64: the default share is a sixteenth, 4.
      const { server, port } = await start({ limits: { maxPending: 64 } })
      const metrics = await httpRequest(port, 'GET', '/metrics')
      assert.match(metrics.body, /^switchd_connections_rejected_total\{reason="limit_pending_address",replica="[^"]*"\} 0$/m, 'the reason is there at 0 from the start')
      const held: net.Socket[] = []
      for (let i = 0; i < 40; i++) held.push(await halfRequest(port))
      let closed = 0
      for (const s of held) if (s.closed) closed++; else s.once('close', () => { closed++ })
      // Barrier: every refused one has been closed, and switchd counts exactly the share as pending.
      await waitFor(() => closed === 36, 15_000, '36 of 40 closed')
      assert.equal(server.pendingConnections.from('127.0.0.1'), 4)
      assert.equal(server.pendingConnections.total, 4, 'the pool (64) is not taken')
      assert.equal(server.rejectedBy.limit_pending_address, 36)
      assert.equal(server.rejectedBy.limit_pending, 0)
    })

    it('attack: a local process cannot multiply its share by binding other addresses of 127/8', async function () {
      this.timeout(30_000)
      const { server, port } = await start({ limits: { maxPending: 64 } })
      const held: net.Socket[] = []
      for (let i = 2; i < 22; i++) held.push(await halfRequest(port, `127.0.0.${i}`))
      await waitFor(() => held.filter((s) => s.closed).length === 16, 15_000, '16 of 20 closed')
      assert.equal(server.pendingConnections.total, 4)
      assert.equal(server.rejectedBy.limit_pending_address, 16)
    })

    it('refuses a share as large as the pool (one address could take it all), naming the key', () => {
      assert.throws(() => buildConfig({ limits: { maxPending: 10, maxPendingPerAddress: 10 } }, 'test'), /limits\.maxPendingPerAddress: expected an integer from 1 to 9/)
      assert.equal(buildConfig({}, 'test').limits.maxPendingPerAddress, 64)
      assert.equal(buildConfig({ limits: { maxPending: 10 } }, 'test').limits.maxPendingPerAddress, 1)
    })
  })

  describe('finding 9: a grant is checked again when its port is made', () => {
    it('attack: a token revoked by a reload between the upgrade and the hello gets no port', async () => {
      const { server, port } = await start({ api: false, tokens: [{ token: T_A }, { token: T_W }] })
      const watcher = track(await TestClient.raw(`ws://127.0.0.1:${port}/?token=${T_W}`))
      const ws = track(await handshake(`ws://127.0.0.1:${port}/?token=${T_A}`))
      assert.equal(server.reload(buildConfig({ api: false, tokens: [{ token: T_W }] }, 'test')), true)
      const closed = closeOf(ws)
      ws.send(JSON.stringify({ type: 'hello', version: 1, name: 'late' }))
      for (let i = 0; i < 5; i++) ws.send(encodeBatch([eth(BROADCAST, MAC_A, i)]))
      assert.deepEqual(await closed, [1008, 'token revoked'])
      assert.equal(server.ports().length, 1, 'only the watcher')
      assert.equal(server.rejectedBy.unauthorized, 1)
      // Barrier: a frame the watcher itself sends back to the network is all there is.
      const other = track(await TestClient.raw(`ws://127.0.0.1:${port}/?token=${T_W}`))
      other.send([eth(BROADCAST, MAC_B, 99)])
      await waitFor(() => watcher.frames.length >= 1, 3000, 'barrier')
      assert.deepEqual(watcher.frames.map((f) => f[14]), [99], 'none of the 5 frames was delivered')
    })

    it('attack: a token moved to another network, or stripped of its trunk right, by a reload before the hello is refused there', async () => {
      const tokens = [{ token: T_A, trunk: true }]
      const { server, port } = await start({ api: false, tokens })
      const moved = track(await handshake(`ws://127.0.0.1:${port}/?token=${T_A}`))
      server.reload(buildConfig({ api: false, tokens: [{ token: T_A, network: 'other', trunk: true }] }, 'test'))
      const movedClose = closeOf(moved)
      moved.send(JSON.stringify({ type: 'hello', version: 1 }))
      assert.deepEqual(await movedClose, [1008, 'token now for network "other"'])
      server.reload(buildConfig({ api: false, tokens }, 'test'))
      const trunk = track(await handshake(`ws://127.0.0.1:${port}/?token=${T_A}`))
      server.reload(buildConfig({ api: false, tokens: [{ token: T_A }] }, 'test'))
      const trunkClose = closeOf(trunk)
      trunk.send(JSON.stringify({ type: 'hello', version: 1, capabilities: ['trunk'] }))
      assert.equal((await trunkClose)[0], 1008)
      assert.equal(server.rejectedBy.forbidden_network, 1)
      assert.equal(server.rejectedBy.trunk_refused, 1)
      assert.equal(server.ports().length, 0)
    })

    it('gives a port the pin its token has when the port is made', async () => {
      const { server, port } = await start({ api: false, tokens: [{ token: T_A, name: 'old-pin' }] })
      const ws = track(await handshake(`ws://127.0.0.1:${port}/?token=${T_A}`))
      server.reload(buildConfig({ api: false, tokens: [{ token: T_A, name: 'new-pin' }] }, 'test'))
      ws.send(JSON.stringify({ type: 'hello', version: 1 }))
      const [welcome] = await onceWithin<[Buffer]>(ws, 'message')
      assert.equal((JSON.parse(welcome.toString()) as { name: string }).name, 'new-pin')
      assert.deepEqual(server.ports().map((p) => p.name), ['new-pin'])
    })

    it('attack: a raw upgrade that straddles a reload (its grant checked before, its port made after) gets no port', async () => {
      const { server } = await start({ api: false, tokens: [{ token: T_A }, { token: T_W }] })
      // The grant as the upgrade found it, then the reload, then the port: what ws's callback would do if it came late.
      const stale = server.config.tokens.values().next().value
      assert.ok(stale !== undefined)
      server.reload(buildConfig({ api: false, tokens: [{ token: T_W }] }, 'test'))
      const ws = Object.assign(new EventEmitter(), { protocol: '', bufferedAmount: 0, closed: [] as unknown[], close (...a: unknown[]) { this.closed.push(a) }, terminate () {}, ping () {}, pong () {}, send () {} })
      const req = { socket: { remoteAddress: '127.0.0.1', remotePort: 1 } }
      server.portTable.attach(ws as unknown as WsSocket, req as unknown as http.IncomingMessage, server.switch, stale)
      assert.deepEqual(ws.closed, [[1008, 'token revoked']])
      assert.equal(server.ports().length, 0)
    })
  })

  describe('finding 10: parked ports count against their address', () => {
    it('attack: an address cannot pass maxPortsPerAddress by letting its ports go silent (parked)', async function () {
      this.timeout(40_000)
      const { server, port } = await start({ pingInterval: 1, resumeGrace: 60, limits: { maxPortsPerAddress: 3 } })
      const url = `ws://127.0.0.1:${port}/`
      const silent: TestClient[] = []
      for (let i = 0; i < 3; i++) silent.push(track(await TestClient.batched(url, { name: `ghost${i}` })))
      for (const c of silent) (c.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
      await waitFor(() => server.ports().filter((p) => (p as { parked?: boolean }).parked === true).length === 3, 20_000, 'three parked')
      // A resume may come from here: the upgrade is let in, but a new port does not fit beside the parked ones.
      const fourth = track(await handshake(url))
      const refused = closeOf(fourth)
      fourth.send(JSON.stringify({ type: 'hello', version: 1, name: 'fourth' }))
      assert.deepEqual(await refused, [1008, 'at most 3 ports per client address, parked ones included'])
      assert.equal(server.rejectedBy.limit_address, 1)
      assert.equal(server.ports().length, 3)
      // The owner of a parked port resumes it from here: the port moves, nothing more is counted.
      const back = track(await TestClient.batched(url, { name: 'ghost0', resume: silent[0]?.welcome?.resume }))
      assert.equal(back.welcome?.resumed, true)
      assert.equal(server.portTable.portsFrom('127.0.0.1'), 3)
      assert.equal(server.portTable.countFrom('127.0.0.1'), 1, 'the resumed port is connected again; two still parked')
    })
  })

  describe('found on the way: dynamic networks are shared per address too', () => {
    it('attack: one address cannot create every dynamic network (maxNetworks) and keep others from theirs', async () => {
      const { server, port } = await start({ maxNetworks: 32 })
      track(await TestClient.raw(`ws://127.0.0.1:${port}/net/mine1`))
      track(await TestClient.raw(`ws://127.0.0.1:${port}/net/mine2`))
      assert.equal(await upgradeStatus(`ws://127.0.0.1:${port}/net/mine3`), 429)
      assert.equal(server.rejectedBy.limit_networks, 1)
      assert.equal(await upgradeStatus(`ws://127.0.0.1:${port}/net/mine1`), 101, 'joining one it holds is fine')
    })
  })

  describe('finding 13a: failed admin-token guesses are throttled per address', () => {
    it('attack: guesses beyond the budget get 429 with Retry-After for the API, /metrics and the console, whatever they guess', async () => {
      // A stopped clock: the budget never refills during the test, however slow the machine.
      const throttle = new AuthThrottle(() => 0)
      const { server, port } = await start({ adminToken: ADMIN }, { authThrottle: throttle })
      const bearer = (t: string): http.OutgoingHttpHeaders => ({ authorization: `Bearer ${t}` })
      for (let i = 0; i < 3; i++) assert.equal((await httpRequest(port, 'GET', '/api/v1/networks', bearer(ADMIN))).status, 200, 'the right token is never counted')
      assert.equal((await httpRequest(port, 'GET', '/api/v1/networks')).status, 401, 'no token: not a guess')
      for (let i = 0; i < FAILURE_BURST; i++) assert.equal((await httpRequest(port, 'GET', '/api/v1/networks', bearer(`guess-${i}-0123456789abcdef`))).status, 401)
      const over = await httpRequest(port, 'GET', '/api/v1/networks', bearer('guess-x-0123456789abcdef'))
      assert.equal(over.status, 429)
      assert.ok(Number(over.headers['retry-after']) > 0, 'Retry-After')
      assert.equal((await httpRequest(port, 'GET', '/api/v1/networks', bearer(ADMIN))).status, 429, 'a throttled guesser learns nothing, even from the right token')
      assert.equal((await httpRequest(port, 'GET', '/metrics', bearer('guess-y-0123456789abcdef'))).status, 429)
      assert.equal(await upgradeStatus(`ws://127.0.0.1:${port}/api/v1/events`, {}, [CONSOLE_SUBPROTOCOL, BEARER_PREFIX + Buffer.from(ADMIN).toString('base64url')]), 429)
      assert.equal(server.rejectedBy.unauthorized, FAILURE_BURST)
      assert.equal(server.rejectedBy.auth_throttled, 4)
      assert.equal(throttle.failures, FAILURE_BURST)
    })
  })

  describe('finding 13b: per-connection log lines are limited per client address', () => {
    it('attack: connecting and leaving at any rate writes a bounded number of lines', async function () {
      this.timeout(60_000)
      const { port } = await start()
      const url = `ws://127.0.0.1:${port}/`
      const started = Date.now()
      for (let i = 0; i < 200; i++) {
        const c = await TestClient.raw(url)
        c.ws.close()
        await c.closed()
      }
      // A barrier: switchd has logged all it will for them once a refusal it must log is answered.
      assert.equal(await upgradeStatus(url, { origin: 'http://evil.example' }), 403)
      const windows = Math.ceil((Date.now() - started) / CLIENT_WINDOW_MS) + 1
      const perClient = logs.filter((l) => /"event":"(port_up|port_down|connection_rejected)"/.test(l)).length
      assert.ok(perClient <= CLIENT_BURST * windows, `${perClient} lines for 400 events in ${windows} window(s) (at most ${CLIENT_BURST} each)`)
      assert.ok(perClient >= CLIENT_BURST, 'the address\'s budget was written in full first')
    })
  })

  describe('finding 13d: each network has its own drop log', () => {
    it('attack: drops a client causes at will in its network do not push another network\'s drops out of /api/v1/drops', async function () {
      this.timeout(20_000)
      const { port } = await start({ networks: { victim: {}, noisy: {} } })
      const victim = track(await TestClient.raw(`ws://127.0.0.1:${port}/net/victim`))
      const victimSink = track(await TestClient.raw(`ws://127.0.0.1:${port}/net/victim`))
      const noisy = track(await TestClient.raw(`ws://127.0.0.1:${port}/net/noisy`))
      const sink = track(await TestClient.raw(`ws://127.0.0.1:${port}/net/noisy`))
      victim.send([Buffer.alloc(5), eth(BROADCAST, MAC_B, 1)]) // a runt (dropped and recorded), then a barrier
      await waitFor(() => victimSink.frames.length === 1, 5000, 'the victim\'s barrier')
      for (let i = 0; i < 3000; i++) noisy.send([Buffer.alloc(5)])
      // Barrier: a frame sent after the runts reached the sink, so every runt was handled.
      noisy.send([eth(BROADCAST, MAC_A, 7)])
      await waitFor(() => sink.frames.length === 1, 10_000, 'barrier')
      const mine = JSON.parse((await httpRequest(port, 'GET', '/api/v1/drops?network=victim')).body) as DropsJson
      assert.deepEqual(mine.drops.map((d) => [d.seq, d.network, d.reason]), [[1, 'victim', 'runt']])
      assert.equal(mine.lost, 0)
      // Every network's, in order: the newest `size` of them, and what the noisy network pushed out of its own log.
      const merged = JSON.parse((await httpRequest(port, 'GET', '/api/v1/drops')).body) as DropsJson
      assert.equal(merged.last, 3001)
      assert.equal(merged.drops.length, merged.size)
      assert.equal(merged.lost, 3000 - merged.size)
      const seqs = merged.drops.map((d) => d.seq)
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b))
      const since = JSON.parse((await httpRequest(port, 'GET', `/api/v1/drops?since=${merged.last}`)).body) as DropsJson
      assert.deepEqual(since.drops, [])
    })
  })

  describe('finding 13e: every response switchd writes carries nosniff', () => {
    it('attack: API answers and errors, /healthz, /readyz, /metrics, the 426 text and refused upgrades cannot be sniffed', async () => {
      const { port } = await start({ adminToken: ADMIN })
      const answers = [
        await httpRequest(port, 'GET', '/api/v1/networks', { authorization: `Bearer ${ADMIN}` }),
        await httpRequest(port, 'GET', '/api/v1/networks'),
        await httpRequest(port, 'GET', '/api/v1/nope', { authorization: `Bearer ${ADMIN}` }),
        await httpRequest(port, 'GET', '/healthz'),
        await httpRequest(port, 'GET', '/readyz'),
        await httpRequest(port, 'GET', '/metrics', { authorization: `Bearer ${ADMIN}` }),
        await httpRequest(port, 'GET', '/metrics'),
        await httpRequest(port, 'GET', '/net/lab'),
        await httpRequest(port, 'GET', '/'),
        await httpRequest(port, 'GET', '/healthz', { host: 'evil.example' }),
        // Upgrades refused by us, and one ws itself finds malformed (a bad key).
        await httpRequest(port, 'GET', '/', { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13', origin: 'http://evil.example' }),
        await httpRequest(port, 'GET', '/', { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'bad', 'sec-websocket-version': '13' }),
        await httpRequest(port, 'GET', '/api/v1/events', { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13', 'sec-websocket-protocol': CONSOLE_SUBPROTOCOL })
      ]
      assert.deepEqual(answers.map((a) => a.status), [200, 401, 404, 200, 200, 200, 401, 426, 302, 421, 403, 400, 401])
      for (const [i, a] of answers.entries()) {
        assert.equal(a.headers['x-content-type-options'], 'nosniff', `answer ${i} (${a.status})`)
        assert.equal(a.headers['cache-control'], 'no-store', `answer ${i} (${a.status})`)
      }
      // A request Node itself cannot parse is answered by us too.
      const s = net.connect(port, '127.0.0.1')
      sockets.push(s)
      let raw = ''
      s.on('data', (d: Buffer) => { raw += d.toString('latin1') })
      await onceWithin(s, 'connect')
      s.write('NOT A REQUEST\r\n\r\n')
      await onceWithin(s, 'close', 5000)
      assert.match(raw, /^HTTP\/1\.1 400 /)
      assert.match(raw, /\r\nx-content-type-options: nosniff\r\n/i)
    })
  })
})
