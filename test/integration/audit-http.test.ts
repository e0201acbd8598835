/**
 * Issue 12, the HTTP surface: each test is an attack from the audit against a
 * real switchd on 127.0.0.1, and fails on 296a119.
 */
import assert from 'node:assert/strict'
import * as http from 'node:http'
import * as net from 'node:net'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { MAX_STATIC_ENTRIES } from '../../src/switch/core/fdb'
import { TestClient, upgradeStatus } from '../helpers/client'
import { onceWithin, waitFor } from '../helpers/net'
import { setLogSink } from '../../src/common/log'

const ADMIN = 'audit-admin-token-0123456789'
const CLIENT = 'audit-client-token-0123456789'

function staticEntries (server: SwitchServer): number {
  return server.switch.fdb.rows().filter((r) => r.isStatic).length
}

interface Answer { status: number, body: string }

/** One HTTP request with exactly these headers (Host included), to 127.0.0.1. */
function request (port: number, method: string, path: string, headers: http.OutgoingHttpHeaders = {}, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false, timeout: 3000 }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { text += d })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: text }) })
    })
    req.on('timeout', () => { req.destroy(new Error(`${method} ${path}: no answer within 3 s`)) })
    req.on('error', reject)
    req.end(body)
  })
}

describe('audit: the HTTP surface (integration)', () => {
  let servers: SwitchServer[]
  let clients: TestClient[]
  let sockets: net.Socket[]
  let restore: (line: string) => void

  beforeEach(() => {
    restore = setLogSink(() => {})
    servers = []; clients = []; sockets = []
  })
  afterEach(async () => {
    for (const s of sockets) s.destroy()
    for (const c of clients) c.close()
    for (const s of servers) await s.close()
    setLogSink(restore)
  })

  async function start (raw: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<{ server: SwitchServer, port: number }> {
    const server = new SwitchServer({ config: buildConfig(raw, 'test'), host: '127.0.0.1', port: 0, ...extra })
    servers.push(server)
    return { server, port: (await server.listen()).port }
  }

  function tcp (port: number): Promise<net.Socket> {
    const s = net.connect(port, '127.0.0.1')
    sockets.push(s)
    s.on('error', () => {})
    s.resume() // read (and drop) answers: a paused socket never sees the server's end, nor closes
    return onceWithin(s, 'connect').then(() => s)
  }

  describe('finding 3: the admin API is never open beside client tokens', () => {
    it('attack: with client tokens and no admin token, switchd refuses to start rather than serve an open /api', async () => {
      const server = new SwitchServer({ config: buildConfig({ tokens: [{ id: 'c', token: CLIENT }] }, 'test'), host: '127.0.0.1', port: 0 })
      servers.push(server)
      await assert.rejects(server.listen(), (err: Error & { code?: string }) => err.code === 'TSW_ERR_CONFIG' && /--admin-token/.test(err.message) && /--no-api/.test(err.message))
    })

    it('attack: with client tokens and api:false, /api (capture included) answers 404 to anyone', async () => {
      const { port } = await start({ api: false, tokens: [{ id: 'c', token: CLIENT }] })
      assert.equal((await request(port, 'GET', '/api/v1/ports')).status, 404)
      assert.equal((await request(port, 'GET', '/api/v1/capture?duration=1')).status, 404)
      assert.equal((await request(port, 'GET', '/metrics')).status, 426, '/metrics is not served without an admin token here')
    })

    it('attack: anonymous /metrics beside an admin token is refused (401)', async () => {
      const { port } = await start({ adminToken: ADMIN })
      assert.equal((await request(port, 'GET', '/metrics')).status, 401)
      const ok = await request(port, 'GET', '/metrics', { authorization: `Bearer ${ADMIN}` })
      assert.equal(ok.status, 200)
      assert.match(ok.body, /^switchd_connections_rejected_total\{reason="bad_origin",replica="[^"]*"\} 0$/m)
    })

    it('attack: --metrics-listen beyond loopback without an admin token refuses to start', async () => {
      const server = new SwitchServer({ config: buildConfig({ metricsListen: '0.0.0.0:0' }, 'test'), host: '127.0.0.1', port: 0 })
      servers.push(server)
      await assert.rejects(server.listen(), (err: Error & { code?: string }) => err.code === 'TSW_ERR_CONFIG' && /--admin-token/.test(err.message))
    })
  })

  describe('finding 4: browsers cannot reach in', () => {
    it("attack: a web page's WebSocket (Origin: http://evil.example) cannot join the LAN", async () => {
      const { server, port } = await start()
      assert.equal(await upgradeStatus(`ws://127.0.0.1:${port}/`, { origin: 'http://evil.example' }), 403)
      assert.equal(server.rejectedBy.bad_origin, 1)
      assert.equal(server.ports().length, 0)
      assert.equal(await upgradeStatus(`ws://127.0.0.1:${port}/`), 101, 'non-browser clients send no Origin and still connect')
    })

    it('lets a browser VM served from an allowed origin connect (allowedOrigins)', async () => {
      const { port } = await start({ allowedOrigins: ['http://localhost:8000'] })
      assert.equal(await upgradeStatus(`ws://127.0.0.1:${port}/`, { origin: 'http://localhost:8000' }), 101)
      assert.equal(await upgradeStatus(`ws://127.0.0.1:${port}/`, { origin: 'http://localhost:8001' }), 403)
    })

    it('attack: a text/plain POST (no preflight) from a web page cannot disconnect a port or pin a MAC', async () => {
      const { server, port } = await start()
      const victim = await TestClient.batched(`ws://127.0.0.1:${port}/`, { name: 'victim' })
      clients.push(victim)
      await waitFor(() => server.ports().length === 1)
      const page = { 'content-type': 'text/plain', origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' }
      assert.equal((await request(port, 'POST', '/api/v1/ports/victim/disconnect', page, '{}')).status, 403)
      const pin = JSON.stringify({ mac: '02:00:00:00:00:99', port: 'victim' })
      assert.equal((await request(port, 'POST', '/api/v1/fdb/static', page, pin)).status, 403)
      // Even without the Origin (a form post from an opaque origin), text/plain is not JSON.
      assert.equal((await request(port, 'POST', '/api/v1/ports/victim/disconnect', { 'content-type': 'text/plain' }, '{}')).status, 403)
      assert.equal((await request(port, 'GET', '/api/v1/ports', { 'sec-fetch-site': 'cross-site' })).status, 403)
      assert.equal(server.rejectedBy.bad_origin, 4)
      assert.equal(staticEntries(server), 0)
      // A barrier: the JSON request the operator's tool sends does work, so the port was still up before it.
      assert.equal((await request(port, 'POST', '/api/v1/ports/victim/disable', { 'content-type': 'application/json' })).status, 200)
      assert.equal(server.ports().length, 1)
    })

    it('attack: DNS rebinding: no request or upgrade whose Host is the attacker\'s name is answered', async () => {
      const { server, port } = await start()
      assert.equal((await request(port, 'GET', '/api/v1/ports', { host: `evil.example:${port}` })).status, 421)
      assert.equal((await request(port, 'GET', '/metrics', { host: 'evil.example' })).status, 421)
      assert.equal(await upgradeStatus(`ws://127.0.0.1:${port}/`, { headers: { host: `evil.example:${port}` } }), 421)
      assert.equal(server.rejectedBy.bad_host, 3)
      assert.equal((await request(port, 'GET', '/api/v1/ports', { host: `localhost:${port}` })).status, 200)
      assert.equal((await request(port, 'GET', '/api/v1/ports', { host: `[::1]:${port}` })).status, 200)
    })

    it('answers a Host named in allowedHosts', async () => {
      const { port } = await start({ allowedHosts: ['switch.example.org'] })
      assert.equal((await request(port, 'GET', '/healthz', { host: `switch.example.org:${port}` })).status, 200)
      assert.equal((await request(port, 'GET', '/healthz', { host: `other.example.org:${port}` })).status, 421)
    })
  })

  describe('finding 13: refused handshakes do not leak networks', () => {
    it('attack: 300 bad upgrade requests to /net/x<i> do not use up maxNetworks', async function () {
      const { server, port } = await start()
      const before = server.networks.all().length
      for (let batch = 0; batch < 300; batch += 50) {
        await Promise.all(Array.from({ length: 50 }, async (_, j) => {
          const s = await tcp(port)
          const done = onceWithin(s, 'close', 5000)
          // A bad Sec-WebSocket-Key: ws answers 400 itself.
          s.write(`GET /net/x${batch + j} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            'Sec-WebSocket-Key: bad\r\nSec-WebSocket-Version: 13\r\n\r\n')
          await done
        }))
      }
      assert.equal(server.networks.all().length, before)
      const c = await TestClient.raw(`ws://127.0.0.1:${port}/net/real`)
      clients.push(c)
      await waitFor(() => server.networks.get('real')?.ports.length === 1)
      c.close()
      await waitFor(() => server.networks.all().length === before, 3000, 'the network to go with its last port')
    })
  })

  describe('finding 16: caps on captures, static entries and unfinished connections', () => {
    it('attack: a fifth concurrent capture is refused (429, limits.maxCaptures)', async () => {
      const { server, port } = await start()
      const open: http.ClientRequest[] = []
      try {
        for (let i = 0; i < 4; i++) {
          const req = http.get({ host: '127.0.0.1', port, path: '/api/v1/capture?duration=10', agent: false })
          req.on('error', () => {})
          open.push(req)
          const [res] = await onceWithin<[http.IncomingMessage]>(req, 'response')
          assert.equal(res.statusCode, 200)
        }
        assert.equal(server.captures.size, 4)
        assert.equal((await request(port, 'GET', '/api/v1/capture?duration=10')).status, 429)
      } finally {
        for (const r of open) r.destroy()
      }
      await waitFor(() => server.captures.size === 0)
    })

    it('attack: run-time static entries stop at MAX_STATIC_ENTRIES (409)', async function () {
      const { server, port } = await start()
      const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 8 })
      const post = (i: number): Promise<number> => new Promise((resolve, reject) => {
        const mac = `02:00:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`
        const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/api/v1/fdb/static', agent: keepAlive, headers: { 'content-type': 'application/json' } }, (res) => {
          res.resume(); res.on('end', () => { resolve(res.statusCode ?? 0) })
        })
        req.on('error', reject)
        req.end(JSON.stringify({ mac, port: 'nowhere', detached: true }))
      })
      try {
        for (let i = 0; i < MAX_STATIC_ENTRIES; i += 64) {
          const codes = await Promise.all(Array.from({ length: Math.min(64, MAX_STATIC_ENTRIES - i) }, (_, j) => post(i + j)))
          assert.ok(codes.every((c) => c === 201), `entry ${i}: ${codes.join(',')}`)
        }
        assert.equal(staticEntries(server), MAX_STATIC_ENTRIES)
        assert.equal(await post(MAX_STATIC_ENTRIES + 1), 409)
        assert.equal(staticEntries(server), MAX_STATIC_ENTRIES)
      } finally {
        keepAlive.destroy()
      }
    })

    it('attack: a client that never finishes its request headers is cut off after handshakeTimeout', async () => {
      const { port } = await start({ limits: { handshakeTimeout: 1 } })
      const s = await tcp(port)
      s.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ')
      await onceWithin(s, 'close', 3500)
    })

    it('attack: idle connections beyond an address\'s share of limits.maxPending are closed at once, and counted', async () => {
      const { server, port } = await start({ limits: { maxPending: 8, maxPendingPerAddress: 5 } })
      for (let i = 0; i < 5; i++) await tcp(port)
      const extra = await tcp(port)
      await onceWithin(extra, 'close', 2000)
      assert.equal(server.rejectedBy.limit_pending_address, 1)
      for (const s of sockets) s.destroy()
      sockets.length = 0
      // Once they are gone, new connections are served again.
      let status = 0
      const deadline = Date.now() + 2000
      while (status !== 200 && Date.now() < deadline) status = await request(port, 'GET', '/healthz').then((a) => a.status, () => 0)
      assert.equal(status, 200)
    })
  })
})
