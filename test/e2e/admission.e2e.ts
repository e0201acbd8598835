/**
 * Issue 21, fair admission across client addresses: what one address holds
 * before it is known (connections not yet upgraded, consoles, parked ports,
 * wrong admin tokens, log lines) is its share, and another address still gets
 * in. Every client on the host's loopback is one address, so switchd runs in
 * a network namespace of its own with four addresses on its `lo`
 * (192.0.2.1 switchd, .2 the attacker, .3 the operator, .4 a bystander), and the clients run
 * there too (test/helpers/ns-client.ts). Nothing leaves the namespace.
 *
 * Each `attack:` test fails on 14ad2cc, where one pool served every address.
 */

import { until } from '../helpers/net'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { run, stopChild } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { spawnLogged, waitForLine, type Logged } from '../helpers/proc'
import { NsClient, type NsAnswer } from '../helpers/ns-client'
import { CLIENT_BURST, CLIENT_WINDOW_MS } from '../../src/common/log'

const ROOT = path.join(__dirname, '..', '..')
const NS = 'vsw-adm'
const SWITCHD = '192.0.2.1'
const ATTACKER = '192.0.2.2'
const OPERATOR = '192.0.2.3'
/** An address that does nothing but the one thing a test watches. */
const BYSTANDER = '192.0.2.4'
const PORT = 8080
const BASE = `http://${SWITCHD}:${PORT}`
const WS = `ws://${SWITCHD}:${PORT}`
const ADMIN = 'e2e-admission-admin-0123456789'
const bearer = (t: string): string => 'bearer.' + Buffer.from(t).toString('base64url')

describe('e2e: fair admission across client addresses', function () {
  this.timeout(120_000)
  const logs: string[] = []
  let dir: string
  let switchd: Logged | undefined
  let client: NsClient

  async function send (cmd: Parameters<NsClient['send']>[0]): Promise<NsAnswer> {
    const a = await client.send(cmd)
    assert.ok(a.ok, `${cmd.op}: ${a.error ?? ''}`)
    return a
  }

  /** Poll an async check until it holds (every 50 ms, at most `ms`). */

  async function metric (reason: string): Promise<number> {
    const res = await fetchFrom(OPERATOR, '/metrics')
    assert.equal(res.status, 200)
    return Number(new RegExp(`^switchd_connections_rejected_total\\{reason="${reason}",replica="[^"]*"\\} (\\d+)$`, 'm').exec(String(res.body))?.[1] ?? NaN)
  }

  async function fetchFrom (from: string, p: string, headers: Record<string, string> = { authorization: `Bearer ${ADMIN}` }): Promise<NsAnswer> {
    return await send({ op: 'http', from, url: BASE + p, headers })
  }

  before(async function () {
    requireRoot(this)
    await run('ip', ['netns', 'del', NS]).catch(() => {})
    await run('ip', ['netns', 'add', NS])
    await run('ip', ['-n', NS, 'link', 'set', 'lo', 'up'])
    for (const a of [SWITCHD, ATTACKER, OPERATOR, BYSTANDER]) await run('ip', ['-n', NS, 'addr', 'add', `${a}/32`, 'dev', 'lo'])
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-admission-e2e-'))
    const config = path.join(dir, 'switchd.json')
    fs.writeFileSync(config, JSON.stringify({
      listen: `${SWITCHD}:${PORT}`, adminToken: ADMIN, allowAnonymous: true, pingInterval: 1, resumeGrace: 60,
      // A sixteenth of 64: each address may hold 4 connections not yet upgraded.
      limits: { maxPending: 64, maxPortsPerAddress: 3 }
    }))
    switchd = spawnLogged('switchd', 'ip', ['netns', 'exec', NS, process.execPath, path.join(ROOT, 'bin', 'switchd.js'), '--config', config], (l) => { logs.push(l) })
    await waitForLine(switchd, 'switchd', (l) => l.includes('"event":"listening"'))
    client = new NsClient(NS, (l) => { logs.push(l) })
  })

  after(async () => {
    await client?.stop()
    await stopChild(switchd?.child)
    await run('ip', ['netns', 'del', NS]).catch(() => {})
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
  })

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-30).join('\n') + '\n')
    if (client === undefined) return
    await send({ op: 'release' })
    // Barrier: switchd has seen them go once the attacker's address is served again.
    await until(async () => (await fetchFrom(ATTACKER, '/healthz', {})).status === 200, 10_000, 'the attacker\'s held connections gone')
  })

  it('attack: one address holding 80 half-written requests keeps its share (4), and another address still joins, uses /api, the console and /healthz', async () => {
    const before = await metric('limit_pending_address')
    await send({ op: 'hold', from: ATTACKER, host: SWITCHD, port: PORT, n: 80 })
    await until(async () => (await send({ op: 'held' })).open === 4, 20_000, 'the attacker down to its share')
    const join = await send({ op: 'port', from: OPERATOR, url: WS + '/', hello: { name: 'operator-vm' } })
    assert.equal((join.welcome as { name?: string } | undefined)?.name, 'operator-vm')
    assert.equal((await fetchFrom(OPERATOR, '/api/v1/ports')).status, 200)
    assert.equal((await fetchFrom(OPERATOR, '/healthz', {})).status, 200)
    const console = await send({ op: 'upgrade', from: OPERATOR, url: WS + '/api/v1/events', protocols: ['tapswitch.console', bearer(ADMIN)] })
    assert.equal(console.status, 101)
    assert.equal(console.protocol, 'tapswitch.console')
    assert.equal(await metric('limit_pending_address') - before, 76)
    assert.equal(await metric('limit_pending'), 0, 'the pool was never full')
    await send({ op: 'close', id: console.id as number })
    await send({ op: 'close', id: join.id as number })
  })

  it('attack: sockets without the token get no console, and consoles are shared per address: the operator always gets in', async () => {
    for (let i = 0; i < 8; i++) assert.equal((await send({ op: 'upgrade', from: ATTACKER, url: WS + '/api/v1/events', protocols: ['tapswitch.console'] })).status, 401)
    const mine: number[] = []
    for (let i = 0; i < 4; i++) {
      const c = await send({ op: 'upgrade', from: ATTACKER, url: WS + '/api/v1/events', protocols: ['tapswitch.console', bearer(ADMIN)] })
      assert.equal(c.status, 101)
      mine.push(c.id as number)
    }
    assert.equal((await send({ op: 'upgrade', from: ATTACKER, url: WS + '/api/v1/events', protocols: ['tapswitch.console', bearer(ADMIN)] })).status, 429)
    const operator = await send({ op: 'upgrade', from: OPERATOR, url: WS + '/api/v1/events', protocols: ['tapswitch.console', bearer(ADMIN)] })
    assert.equal(operator.status, 101)
    for (const id of [...mine, operator.id as number]) await send({ op: 'close', id })
  })

  it('attack: parked ports count against their address; the operator still joins, and a resume from another address moves the port (if it fits there)', async () => {
    const parked = []
    for (let i = 0; i < 3; i++) {
      const p = await send({ op: 'port', from: ATTACKER, url: WS + '/', hello: { name: `ghost${i}` } })
      assert.ok(p.welcome !== undefined, JSON.stringify(p))
      parked.push(p)
      await send({ op: 'pause', id: p.id as number })
    }
    // While all three are connected the upgrade itself is refused (429); once they go silent (parked) it is let in,
    // as it may be a resume, and the new port is refused beside the parked ones.
    let fourth: NsAnswer = { ok: false }
    await until(async () => (fourth = await send({ op: 'port', from: ATTACKER, url: WS + '/', hello: { name: 'fourth' } })).status !== 429, 30_000, 'the ports parked')
    assert.deepEqual([fourth.closed, fourth.reason], [1008, 'at most 3 ports per client address, parked ones included'])
    const operator = await send({ op: 'port', from: OPERATOR, url: WS + '/', hello: { name: 'operator-vm2' } })
    assert.equal((operator.welcome as { name?: string }).name, 'operator-vm2')
    // A resume must fit where it comes from: the operator's address holds 3 (one of them parked, so the upgrade is let in).
    const token = (parked[0]?.welcome as { resume: string }).resume
    const filler1 = await send({ op: 'port', from: OPERATOR, url: WS + '/', hello: { name: 'filler1' } })
    const filler2 = await send({ op: 'port', from: OPERATOR, url: WS + '/', hello: { name: 'filler2' } })
    await send({ op: 'pause', id: filler2.id as number })
    let full: NsAnswer = { ok: false }
    await until(async () => (full = await send({ op: 'port', from: OPERATOR, url: WS + '/', hello: { name: 'ghost0', resume: token } })).status !== 429, 30_000, 'filler2 parked')
    assert.deepEqual([full.closed, full.reason], [1008, 'at most 3 ports per client address, parked ones included'], 'neither resumed nor a new port')
    await send({ op: 'close', id: filler1.id as number })
    // With room there, the resume of ghost0 from the operator's address moves it (3 of 3 there, 2 left here).
    let moved: NsAnswer = { ok: false }
    await until(async () => (moved = await send({ op: 'port', from: OPERATOR, url: WS + '/', hello: { name: 'ghost0', resume: token } })).closed === undefined, 5000, 'filler1 gone')
    assert.equal((moved.welcome as { resumed?: boolean }).resumed, true)
    // Now the attacker has room for one more port again.
    const again = await send({ op: 'port', from: ATTACKER, url: WS + '/', hello: { name: 'fifth' } })
    assert.ok(again.welcome !== undefined, JSON.stringify(again))
    for (const p of [...parked, operator, moved, again, filler2]) if (typeof p.id === 'number') await send({ op: 'close', id: p.id })
  })

  it('attack: an address guessing the admin token is throttled (429, Retry-After); the operator\'s right token is never slowed', async () => {
    // Bounded by a count: 30 guesses cannot all fit the budget unless they took minutes (one more every 6 s).
    let last: NsAnswer = { ok: false }
    for (let i = 0; i < 30 && last.status !== 429; i++) last = await fetchFrom(ATTACKER, '/api/v1/networks', { authorization: `Bearer guess-${i}-0123456789abcdef` })
    assert.equal(last.status, 429)
    assert.ok(Number((last.headers as Record<string, string>)['retry-after']) > 0)
    assert.equal((await fetchFrom(OPERATOR, '/api/v1/networks')).status, 200)
  })

  it('attack: an address refused again and again cannot hide another address\'s refusal from the log', async () => {
    const started = Date.now()
    for (let i = 0; i < 150; i++) {
      assert.equal((await send({ op: 'upgrade', from: ATTACKER, url: WS + '/', headers: { origin: 'http://evil.example' } })).status, 403)
    }
    assert.equal((await send({ op: 'upgrade', from: BYSTANDER, url: WS + '/', headers: { origin: 'http://other.example' } })).status, 403)
    // Barrier: a line switchd writes after the bystander's refusal.
    assert.equal((await send({ op: 'upgrade', from: BYSTANDER, url: WS + '/net/x%zz' })).status, 404)
    await until(async () => logs.some((l) => l.includes('"event":"connection_rejected"') && l.includes('"reason":"bad_path"')), 5000, 'the barrier line')
    const rejected = logs.filter((l) => l.includes('"event":"connection_rejected"') && l.includes('"reason":"bad_origin"'))
    assert.ok(rejected.some((l) => l.includes(`"remote":"${BYSTANDER}"`)), 'the bystander\'s refusal is in the log')
    const windows = Math.ceil((Date.now() - started) / CLIENT_WINDOW_MS) + 1
    const attacker = rejected.filter((l) => l.includes(`"remote":"${ATTACKER}"`)).length
    assert.ok(attacker <= CLIENT_BURST * windows, `${attacker} lines of the attacker's in ${windows} window(s)`)
  })
})
