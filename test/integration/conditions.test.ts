/**
 * Link conditions and failure drills through the admin API and switchctl,
 * with a real switchd and real WebSocket ports (docs/CONDITIONS.md).
 */
import assert from 'node:assert/strict'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { TapDevice } from '../../src/common/tap'
import { Uplink } from '../../src/common/uplink'
import { Agent } from '../../src/agent/agent'
import { TestClient } from '../helpers/client'
import { fakeTapBinding, type FakeTap } from '../helpers/fake-tap'
import { switchctl } from '../helpers/ctl'
import { waitFor } from '../helpers/net'
import { eth, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'
import type { PortConditionJson, PortJson } from '../../src/common/api-types'
import { R_CONDITION, R_CONDITION_QUEUE, R_LINK_DOWN } from '../../src/switch/core/reasons'

const TOKEN = 'test-admin-token-0123456789'

/** A guard against a hang only: every wait below is for a count, a frame or a message, and switchctl runs as a child process each time. */
const HANG_GUARD_MS = 60_000

describe('link conditions and drills (integration)', function () {
  this.timeout(HANG_GUARD_MS * 2)
  let server: SwitchServer
  let http: string
  let ws: string
  let clients: TestClient[]
  let restore: (line: string) => void

  async function start (config: Record<string, unknown> = {}): Promise<void> {
    server = new SwitchServer({ config: buildConfig({ adminToken: TOKEN, ...config }, 'test'), host: '127.0.0.1', port: 0 })
    const port = (await server.listen()).port
    http = `http://127.0.0.1:${port}`
    ws = `ws://127.0.0.1:${port}`
  }

  beforeEach(async () => {
    restore = setLogSink(() => {})
    clients = []
    await start()
  })
  afterEach(async () => {
    for (const c of clients) c.close()
    await server.close()
    setLogSink(restore)
  })

  async function named (name: string): Promise<TestClient> { const c = await TestClient.batched(ws + '/', { name }); clients.push(c); return c }
  const ctl = async (...args: string[]): Promise<{ code: number, out: string, err: string }> => {
    const r = await switchctl(['--url', http, '--token', TOKEN, ...args])
    return { code: r.code, out: r.stdout.toString(), err: r.stderr }
  }
  async function api (method: string, path: string, body?: unknown, token = TOKEN): Promise<Response> {
    return await fetch(http + path, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
  }

  it('switchctl condition set delays frames toward the endpoint; show, ports and metrics say so; clear ends it', async () => {
    const a = await named('a'); const b = await named('b')
    const set = await ctl('condition', 'set', 'b', '--delay', '150ms', '--direction', 'out')
    assert.equal(set.code, 0, set.err)
    assert.match(set.out, /out 150ms/)
    const t0 = performance.now()
    a.send([eth(BROADCAST, MAC_A)])
    await waitFor(() => b.frames.length === 1, HANG_GUARD_MS)
    // A lower bound only: a loaded machine may deliver later, never earlier.
    const took = performance.now() - t0
    assert.ok(took >= 145, `arrived after ${took} ms`)
    const show = await ctl('condition', 'show')
    assert.match(show.out, /^b\s+default\s+-\s+150ms/m)
    const ports = JSON.parse((await ctl('--json', 'ports')).out) as PortJson[]
    assert.equal(ports.find((p) => p.name === 'b')?.condition?.framesDelayed, 1)
    assert.match((await ctl('ports')).out, /out 150ms/)
    const metrics = await (await fetch(http + '/metrics', { headers: { authorization: `Bearer ${TOKEN}` } })).text()
    assert.match(metrics, /^switchd_port_condition_delayed_frames_total\{network="default",port="b",replica="[^"]*"\} 1$/m)
    assert.match(metrics, /^switchd_port_condition_queue_frames\{network="default",port="b",direction="out",replica="[^"]*"\} 0$/m)
    assert.equal((await ctl('condition', 'clear', 'b')).code, 0)
    assert.deepEqual(JSON.parse((await ctl('--json', 'condition', 'show')).out), [])
    a.send([eth(BROADCAST, MAC_A)])
    await waitFor(() => b.frames.length === 2, HANG_GUARD_MS)
  })

  it('loss 100 % toward the switch drops and counts; a barrier after clearing arrives', async () => {
    const a = await named('a'); const b = await named('b')
    assert.equal((await api('POST', '/api/v1/ports/a/condition', { direction: 'in', loss: '100%' })).status, 200)
    a.send([eth(BROADCAST, MAC_A, 1), eth(BROADCAST, MAC_A, 2)])
    await waitFor(() => server.ports().find((p) => p.name === 'a')?.drops[R_CONDITION] === 2, HANG_GUARD_MS)
    assert.equal((await api('DELETE', '/api/v1/ports/a/condition?direction=in')).status, 200)
    a.send([eth(BROADCAST, MAC_A, 3)])
    await waitFor(() => b.frames.length === 1, HANG_GUARD_MS)
    assert.equal(b.frames[0]?.[14], 3, 'only the barrier: the lost ones never arrived')
    const text = await (await fetch(http + '/metrics', { headers: { authorization: `Bearer ${TOKEN}` } })).text()
    assert.match(text, /^switchd_frames_dropped_total\{network="default",reason="condition",replica="[^"]*"\} 2$/m)
  })

  it('link down: the agent\'s TAP loses carrier, frames stop both ways; up: carrier back and frames pass', async () => {
    const port = new URL(ws).port
    const dev = TapDevice.open(fakeTapBinding, { name: 'tsw-cond0', mtu: 1500 })
    const agent = new Agent(dev, new Uplink({ url: `ws://127.0.0.1:${port}/`, name: 'm', reconnectMin: 0.05, reconnectMax: 0.2 }), 1500)
    agent.start()
    try {
      const a = await named('a')
      await waitFor(() => agent.uplink.isUp, HANG_GUARD_MS)
      const tap = dev.tap as FakeTap
      const down = await ctl('link', 'down', 'm')
      assert.equal(down.code, 0, down.err)
      assert.match(down.out, /state down/)
      await waitFor(() => !tap.carrier, HANG_GUARD_MS, 'carrier off')
      a.send([eth(BROADCAST, MAC_A, 1)])
      tap.inject([eth(BROADCAST, MAC_B, 2)])
      await waitFor(() => server.ports().find((p) => p.name === 'm')?.drops[R_LINK_DOWN] === 1, HANG_GUARD_MS)
      assert.equal((await ctl('link', 'up', 'm')).code, 0)
      await waitFor(() => tap.carrier, HANG_GUARD_MS, 'carrier on')
      a.send([eth(BROADCAST, MAC_A, 3)])
      await waitFor(() => tap.written.length >= 1, HANG_GUARD_MS)
      assert.deepEqual(tap.written.map((f) => f[14]), [3], 'nothing sent while down arrived later')
    } finally {
      await agent.stop()
    }
  })

  it('link down one direction and a flap, shown by condition show; link up ends the flap', async () => {
    const a = await named('a'); const b = await named('b')
    assert.equal((await ctl('link', 'down', 'b', '--direction', 'out')).code, 0)
    a.send([eth(BROADCAST, MAC_A, 1)])
    b.send([eth(BROADCAST, MAC_B, 2)])
    await waitFor(() => a.frames.length === 1, HANG_GUARD_MS)
    await waitFor(() => server.ports().find((p) => p.name === 'b')?.drops[R_LINK_DOWN] === 1, HANG_GUARD_MS)
    assert.match((await ctl('condition', 'show')).out, /^b\s+default\s+-\s+down/m)
    const flap = await ctl('link', 'down', 'b', '--flap', '0.2s/0.5s')
    assert.equal(flap.code, 0, flap.err)
    const rows = JSON.parse((await ctl('--json', 'condition', 'show')).out) as PortConditionJson[]
    assert.deepEqual(rows[0]?.flap, { down: 0.2, every: 0.5 })
    const p = server.ports().find((x) => x.name === 'b')
    // The agent is told of each edge (a link message its TAP's carrier follows): count them rather than
    // sample the port's state, whose 0.3 s up windows a loaded machine's polling may step over.
    const edges = (up: boolean): number => b.texts.filter((t) => t === JSON.stringify({ type: 'link', up })).length
    await waitFor(() => edges(false) >= 2 && edges(true) >= 1, HANG_GUARD_MS, 'down, up between flaps, down again')
    assert.equal((await ctl('link', 'up', 'b')).code, 0)
    assert.equal(p?.blocked, 0)
    assert.equal(p?.condOut, null, 'up both ways ends the one-way drill too')
    assert.deepEqual(JSON.parse((await ctl('--json', 'condition', 'show')).out), [])
  })

  it('a condition from the configuration applies to the ports its profile matches', async () => {
    await server.close()
    await start({ profiles: [{ match: 'slow-*', claimable: true, condition: { direction: 'out', delay: '20ms', loss: '1%' } }] })
    await named('slow-1'); await named('fast-1')
    const rows = JSON.parse((await ctl('--json', 'condition', 'show')).out) as PortConditionJson[]
    assert.deepEqual(rows.map((r) => [r.port, r.in, r.out?.delay, r.out?.loss]), [['slow-1', undefined, 20, 1]])
  })

  it('attack: absurd values are refused with the key named, and nothing changes', async () => {
    await named('a')
    for (const [body, key] of [
      [{ delay: -5 }, 'condition.delay'], [{ delay: 1e12 }, 'condition.delay'], [{ delay: 'NaN' }, 'condition.delay'], [{ rate: 0 }, 'condition.rate'],
      [{ queueBytes: 1e12 }, 'condition.queueBytes'], [{ loss: 200 }, 'condition.loss'], [{ evil: 1 }, 'condition.evil'], [{ direction: 'sideways' }, 'direction']
    ] as const) {
      const r = await api('POST', '/api/v1/ports/a/condition', body)
      assert.equal(r.status, 400, JSON.stringify(body))
      assert.ok(((await r.json()) as { error: string }).error.startsWith(`${key}:`), JSON.stringify(body))
    }
    for (const flap of ['0/8s', '9s/8s', '1s/1000000s', 'often']) {
      const r = await api('POST', '/api/v1/ports/a/link', { state: 'down', flap })
      assert.equal(r.status, 400, flap)
    }
    assert.equal((await api('POST', '/api/v1/ports/nobody/condition', { delay: 1 })).status, 404)
    const bad = await ctl('condition', 'set', 'a', '--rate', '0')
    assert.equal(bad.code, 1)
    assert.match(bad.err, /condition\.rate/)
    assert.deepEqual(JSON.parse((await ctl('--json', 'condition', 'show')).out), [])
  })

  it('attack: without the admin token, or from a web page, no one sets a condition or takes a link down', async () => {
    await named('a')
    assert.equal((await api('POST', '/api/v1/ports/a/condition', { loss: 100 }, 'not-the-token-0123456789')).status, 401)
    assert.equal((await fetch(http + '/api/v1/ports/a/link', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"state":"down"}' })).status, 401)
    const page = await fetch(http + '/api/v1/ports/a/link', { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, origin: 'https://evil.example', 'content-type': 'application/json' }, body: '{"state":"down"}' })
    assert.equal(page.status, 403)
    assert.equal(server.ports()[0]?.blocked, 0)
    assert.equal(server.ports()[0]?.condIn, null)
  })

  it('attack: a flood into a delayed port holds no more than the queue cap, and the rest is counted', async () => {
    const a = await named('a'); const b = await named('b')
    assert.equal((await api('POST', '/api/v1/ports/b/condition', { direction: 'out', delay: '60s', queueFrames: 200, queueBytes: '64kb' })).status, 200)
    const burst = Array.from({ length: 100 }, (_, i) => eth(BROADCAST, MAC_A, i, 1000))
    for (let i = 0; i < 100; i++) a.send(burst)
    const p = server.ports().find((x) => x.name === 'b')
    await waitFor(() => p !== undefined && p.framesDelayed + p.drops[R_CONDITION_QUEUE] === 10_000, HANG_GUARD_MS, 'all offered')
    assert.ok(p?.condOut !== null && p?.condOut !== undefined)
    assert.ok(p.condOut.queuedBytes <= 65536, `${p.condOut.queuedBytes} bytes held`)
    assert.ok(p.condOut.queuedFrames <= 200)
    assert.equal(b.frames.length, 0)
  })
})
