/**
 * Drain (daemon/drain.ts) on a real switchd: POST /api/v1/drain makes the
 * replica not ready (/readyz 503 "draining"), refuses every port's upgrade with
 * 503 (what makes a balancer try the next upstream), and closes every
 * WebSocket port (native path and JS path, raw and tapswitch.v1) and handshake
 * with 4006; an agent reconnects at once (not on its backoff) to its next
 * URL; a drain is idempotent and undrain serves again; SIGTERM drains and
 * exits. Its attack: tests: who may drain, and that a drained replica cannot
 * be made to take a port by a client that skips the balancer.
 */

import assert from 'node:assert/strict'
import * as path from 'node:path'
import WebSocket, { WebSocketServer } from 'ws'
import type { AddressInfo } from 'node:net'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { TapDevice } from '../../src/common/tap'
import { Uplink } from '../../src/common/uplink'
import { Agent } from '../../src/agent/agent'
import { CLOSE_DRAINING, DRAINING_REASON, SUBPROTOCOL_V1, MAX_MESSAGE_SIZE } from '../../src/common/protocol'
import type { DrainJson } from '../../src/common/api-types'
import { setLogSink } from '../../src/common/log'
import { fakeTapBinding } from '../helpers/fake-tap'
import { TestClient, upgradeStatus } from '../helpers/client'
import { waitFor, httpRequest, onceWithin } from '../helpers/net'
import { spawnLogged, waitForLine, exitWithin } from '../helpers/proc'

const ROOT = path.join(__dirname, '..', '..')
const ADMIN = 'admin-token-0123456789abcdef0123456789'
const CLIENT = 'client-token-0123456789abcdef'
/** Longer than any wait here: an uplink that took its backoff after a drain would miss every waitFor. */
const BACKOFF = { reconnectMin: 100, reconnectMax: 100 }

type Line = Record<string, unknown> & { event: string }

describe('drain (integration)', () => {
  const servers: SwitchServer[] = []
  const clients: TestClient[] = []
  const agents: Agent[] = []
  const logs: Line[] = []
  let restore: (line: string) => void

  beforeEach(() => { logs.length = 0; restore = setLogSink((l) => { logs.push(JSON.parse(l) as Line) }) })
  afterEach(async () => {
    for (const a of agents.splice(0)) await a.stop()
    for (const c of clients.splice(0)) c.close()
    for (const s of servers.splice(0)) await s.close()
    setLogSink(restore)
  })

  async function start (raw: Record<string, unknown> = {}): Promise<{ server: SwitchServer, port: number }> {
    const server = new SwitchServer({ config: buildConfig({ dynamicNetworks: true, ...raw }, 'test'), host: '127.0.0.1', port: 0 })
    servers.push(server)
    return { server, port: (await server.listen()).port }
  }
  const track = (c: TestClient): TestClient => { clients.push(c); return c }
  const drain = async (port: number, body = '{}', headers: Record<string, string> = {}): Promise<{ status: number, json: DrainJson }> => {
    const r = await httpRequest(port, 'POST', '/api/v1/drain', { 'content-type': 'application/json', ...headers }, body)
    return { status: r.status, json: JSON.parse(r.body) as DrainJson }
  }
  function agent (urls: string[], name: string): Agent {
    const dev = TapDevice.open(fakeTapBinding, { name: `tsw-d${agents.length}` })
    const a = new Agent(dev, new Uplink({ url: urls[0] as string, urls, name, ...BACKOFF }), 1500)
    agents.push(a)
    a.start()
    return a
  }

  it('drains: /readyz 503 "draining", upgrades 503, every port and handshake closed with 4006; an agent goes to its next URL at once', async () => {
    const a = await start()
    const b = await start()
    const urlA = `ws://127.0.0.1:${a.port}/net/lab`
    const native = track(await TestClient.batched(urlA, { name: 'native' }))
    const raw = track(await TestClient.raw(urlA))
    const js = track(await TestClient.batched(urlA, { name: 'js', capabilities: ['offload'] }))
    // A handshake that has not said hello yet.
    const pending = new WebSocket(urlA, [SUBPROTOCOL_V1])
    pending.on('error', () => {})
    await onceWithin(pending, 'open')
    const pendingClosed = onceWithin<[number, Buffer]>(pending, 'close')
    const ag = agent([urlA, `ws://127.0.0.1:${b.port}/net/lab`], 'vm1')
    await waitFor(() => ag.uplink.isUp, 30_000, 'the agent up on A')
    assert.equal(a.server.ports().length, 4)
    assert.equal((await httpRequest(a.port, 'GET', '/readyz')).status, 200)

    const r = await drain(a.port)
    assert.equal(r.status, 200)
    assert.deepEqual(r.json, { draining: true, closed: 5 })
    // Answered once they are closed: the replica holds no WebSocket port.
    assert.deepEqual(a.server.ports(), [])
    for (const c of [native, raw, js]) assert.equal(await c.closed(), CLOSE_DRAINING)
    const [code, reason] = await pendingClosed
    assert.deepEqual([code, reason.toString()], [CLOSE_DRAINING, DRAINING_REASON])
    const ready = await httpRequest(a.port, 'GET', '/readyz')
    assert.deepEqual([ready.status, ready.body], [503, 'draining\n'])
    assert.equal((await httpRequest(a.port, 'GET', '/healthz')).status, 200, 'alive: a liveness probe must not restart it')
    assert.equal(await upgradeStatus(urlA), 503)
    assert.equal(await upgradeStatus(urlA, {}, [SUBPROTOCOL_V1]), 503)
    assert.equal(a.server.rejectedBy.draining, 2)

    // The agent: at once (its backoff is 100 s), to the next URL, where it is a port.
    await waitFor(() => ag.uplink.isUp && ag.uplink.url.includes(`:${b.port}/`), 30_000, 'the agent up on B')
    const retry = logs.filter((l) => l.event === 'uplink_retry')
    assert.deepEqual(retry.map((l) => [l.delay_seconds, l.reason]), [[0, 'draining']])
    assert.deepEqual(b.server.ports().map((p) => [p.name, p.network.name]), [['vm1', 'lab']])
    assert.ok(logs.some((l) => l.event === 'uplink_lost' && l.code === CLOSE_DRAINING && /draining/.test(String(l.hint))))
  })

  it('is idempotent, and undrain serves again', async () => {
    const a = await start()
    const url = `ws://127.0.0.1:${a.port}/net/lab`
    track(await TestClient.batched(url, { name: 'p1' }))
    assert.deepEqual((await drain(a.port)).json, { draining: true, closed: 1 })
    // Two at once, and one more: nothing more to close, still draining.
    const [x, y] = await Promise.all([drain(a.port, '{"drain": true}'), drain(a.port)])
    assert.deepEqual([x.json, y.json], [{ draining: true, closed: 0 }, { draining: true, closed: 0 }])
    assert.equal(a.server.draining, true)
    assert.deepEqual((await drain(a.port, '{"drain": false}')).json, { draining: false, closed: 0 })
    assert.equal((await httpRequest(a.port, 'GET', '/readyz')).status, 200)
    const back = track(await TestClient.batched(url, { name: 'p2' }))
    assert.equal(back.welcome?.name, 'p2')
    assert.deepEqual(a.server.ports().map((p) => p.name), ['p2'])
  })

  it('SIGTERM drains (ports closed with 4006), then switchd exits 0', async () => {
    const p = spawnLogged('switchd', process.execPath, [path.join(ROOT, 'bin', 'switchd.js'), '--listen', '127.0.0.1:0', '--log-format', 'json'], () => {})
    try {
      const line = await waitForLine(p, 'switchd', (l) => l.includes('"listening"'), 30_000)
      const port = (JSON.parse(line.slice(line.indexOf('{'))) as { port: number }).port
      const native = track(await TestClient.batched(`ws://127.0.0.1:${port}/net/lab`, { name: 'a' }))
      const raw = track(await TestClient.raw(`ws://127.0.0.1:${port}/`))
      p.child.kill('SIGTERM')
      assert.equal(await native.closed(), CLOSE_DRAINING)
      assert.equal(await raw.closed(), CLOSE_DRAINING)
      assert.equal(await exitWithin(p.child, 30_000), true, 'switchd exited')
      assert.equal(p.child.exitCode, 0)
      assert.ok(p.lines.some((l) => l.includes('"drained"') && l.includes('"closed":2')), p.lines.join('\n'))
    } finally {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL')
    }
  })

  it('attack: a switch that welcomes and closes with 4006 in a loop gets one reconnect at once, then the usual backoff (no tight loop)', async () => {
    // Not a switchd: a server that says welcome and drains at once, every time.
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => SUBPROTOCOL_V1 })
    let dials = 0
    wss.on('connection', (ws) => {
      dials++
      ws.once('message', () => {
        ws.send(JSON.stringify({ type: 'welcome', version: 1, port: dials, name: 'x', maxFrameSize: 1518, maxMessageSize: MAX_MESSAGE_SIZE, pingInterval: 3 }))
        ws.close(CLOSE_DRAINING, DRAINING_REASON)
      })
    })
    await onceWithin(wss, 'listening')
    const up = new Uplink({ url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`, reconnectMin: 0.05, reconnectMax: 0.2 })
    try {
      up.start()
      await waitFor(() => dials >= 4, 30_000, 'four dials')
      const retries = logs.filter((l) => l.event === 'uplink_retry').slice(0, 3)
      assert.deepEqual(retries[0] !== undefined ? [retries[0].delay_seconds, retries[0].reason] : [], [0, 'draining'])
      for (const r of retries.slice(1)) assert.ok((r.delay_seconds as number) >= 0.05 && r.reason === undefined, JSON.stringify(r))
    } finally {
      await up.close()
      wss.close()
    }
  })

  it('attack: only the admin may drain: no token, a client token or a wrong admin token is 401, and the replica keeps serving', async () => {
    const a = await start({ adminToken: ADMIN, tokens: [{ id: 'c', token: CLIENT, network: 'lab' }] })
    for (const auth of [undefined, `Bearer ${CLIENT}`, `Bearer ${ADMIN}x`]) {
      const r = await drain(a.port, '{}', auth === undefined ? {} : { authorization: auth })
      assert.equal(r.status, 401, String(auth))
    }
    assert.equal(a.server.draining, false)
    assert.equal((await httpRequest(a.port, 'GET', '/readyz')).status, 200)
    assert.equal((await drain(a.port, '{}', { authorization: `Bearer ${ADMIN}` })).status, 200)
    assert.equal(a.server.draining, true)
  })

  it('attack: a web page in the operator\'s browser cannot drain (Origin refused, a form post refused), even on an open loopback API', async () => {
    const a = await start()
    const cases: Array<Record<string, string>> = [
      { origin: 'http://evil.example', 'content-type': 'application/json' },
      { origin: 'null', 'content-type': 'application/json' },
      // A form or fetch without preflight sends text/plain: not JSON, refused before the body is read.
      { 'content-type': 'text/plain' },
      { 'sec-fetch-site': 'cross-site', 'content-type': 'application/json' }
    ]
    for (const headers of cases) {
      const r = await httpRequest(a.port, 'POST', '/api/v1/drain', headers, '{}')
      assert.equal(r.status, 403, JSON.stringify(headers))
    }
    assert.equal(a.server.draining, false)
    assert.equal((await httpRequest(a.port, 'GET', '/readyz')).status, 200)
  })

  it('attack: a client that skips the balancer cannot make a drained replica take a port: raw, tapswitch, with a valid token or a resume token, all 503', async () => {
    const a = await start({ resumeGrace: 60, adminToken: ADMIN, tokens: [{ id: 'c', token: CLIENT, network: 'lab' }] })
    const admin = { authorization: `Bearer ${ADMIN}` }
    const url = `ws://127.0.0.1:${a.port}/net/lab`
    const auth = { headers: { authorization: `Bearer ${CLIENT}` } }
    const c = track(await TestClient.batched(`${url}?token=${CLIENT}`, { name: 'vm1' }))
    const resume = c.welcome?.resume
    assert.ok(resume !== undefined)
    await drain(a.port, '{}', admin)
    assert.equal(await c.closed(), CLOSE_DRAINING)
    assert.equal(await upgradeStatus(url, auth), 503)
    assert.equal(await upgradeStatus(`${url}?token=${CLIENT}`), 503)
    assert.equal(await upgradeStatus(url, auth, [SUBPROTOCOL_V1]), 503)
    // The resume token never reaches a hello: the upgrade is refused first, and the port is gone (not parked).
    assert.equal(a.server.ports().length, 0)
    assert.equal(a.server.rejectedBy.draining, 3)
    // Had the drain left it parked, an undrain would let it resume here; it does not: a new port.
    await drain(a.port, '{"drain": false}', admin)
    const again = track(await TestClient.batched(`${url}?token=${CLIENT}`, { name: 'vm1', resume }))
    assert.notEqual(again.welcome?.resumed, true)
  })
})
