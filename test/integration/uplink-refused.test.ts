/**
 * An uplink switchd refuses (a wrong token, a policy) says so once, with the
 * fix, and slows down; a welcome resets it. Asserted on the attempts counted
 * by switchd, the log lines and the delays the uplink computed, never on how
 * long anything took.
 *
 * The log sink is the process's, and a port switchd gets from the OS may be
 * one an earlier test's switchd had: each agent's URL carries a mark of its
 * own (switchd reads only ?token= of the query), and the lines and attempts
 * counted are those with it, so nothing else in the process can add to them.
 */

import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { TapDevice } from '../../src/common/tap'
import { Uplink, type UplinkOptions } from '../../src/common/uplink'
import { Agent } from '../../src/agent/agent'
import { REFUSALS_BEFORE_SLOW, REFUSED_MIN } from '../../src/common/uplink-advice'
import { fakeTapBinding } from '../helpers/fake-tap'
import { waitFor } from '../helpers/net'
import { setLogSink } from '../../src/common/log'
import { CAP_TRUNK } from '../../src/common/protocol'

const TOKEN = 'good-token-0123456789abcdef'
const CONFIG = { api: false, tokens: [{ id: 'agent', token: TOKEN }] }

type Line = Record<string, unknown> & { level: string, event: string }

describe('uplink refused (integration)', () => {
  let server: SwitchServer
  let port: number
  let agents: Agent[]
  let restore: (line: string) => void
  /** The URL of this test's agent (one agent a test), and the upgrades switchd got: to it, and in all. */
  let url: string
  let upgrades: { ours: number, all: number }
  const logs: Line[] = []
  const ours = (): Line[] => logs.filter((l) => l.url === url)
  const events = (event: string): Line[] => ours().filter((l) => l.event === event)

  beforeEach(() => {
    logs.length = 0
    agents = []
    restore = setLogSink((l) => { logs.push(JSON.parse(l) as Line) })
  })
  afterEach(async () => {
    for (const a of agents) await a.stop()
    await server?.close()
    setLogSink(restore)
  })

  async function start (raw: unknown): Promise<void> {
    server = new SwitchServer({ config: buildConfig(raw, 'test'), host: '127.0.0.1', port: 0 })
    port = (await server.listen()).port
    upgrades = { ours: 0, all: 0 }
    url = `ws://127.0.0.1:${port}/?test=uplink-refused-${Math.random().toString(36).slice(2)}`
    server.http.on('upgrade', (req: IncomingMessage) => {
      upgrades.all++
      if (`ws://127.0.0.1:${port}${req.url ?? ''}` === url) upgrades.ours++
    })
  }
  function agent (opts: Partial<UplinkOptions>): Agent {
    const dev = TapDevice.open(fakeTapBinding, { name: `tsw-r${agents.length}` })
    const a = new Agent(dev, new Uplink({ url, reconnectMin: 0.05, reconnectMax: 0.2, ...opts }), 1500)
    agents.push(a)
    a.start()
    return a
  }

  it('an agent with a wrong token: 3 refusals, one clear error, then a retry 15 s or more away', async () => {
    await start(CONFIG)
    agent({ token: 'wrong-token-0123456789abcdef' })
    await waitFor(() => events('uplink_retry').some((l) => l.refused_in_a_row === REFUSALS_BEFORE_SLOW), 20_000, 'the slow retry')
    assert.equal(upgrades.ours, REFUSALS_BEFORE_SLOW, 'switchd saw 3 attempts')
    assert.equal(server.rejectedBy.unauthorized, upgrades.all, 'and refused each as unauthorized')
    const errors = events('uplink_refused')
    assert.equal(errors.length, 1)
    assert.equal(errors[0]?.level, 'error')
    assert.equal(errors[0]?.kind, 'token')
    assert.match(String(errors[0]?.hint), /^switchd refuses the token: check --token or TAP_AGENT_TOKEN/)
    // Each failed attempt was a warn with the fix, not an info with an empty hint.
    const failures = events('uplink_error')
    assert.equal(failures.length, REFUSALS_BEFORE_SLOW)
    for (const f of failures) { assert.equal(f.level, 'warn'); assert.match(String(f.hint), /refuses the token/) }
    // The usual backoff before, the slow one after.
    const retries = events('uplink_retry')
    assert.equal(retries.length, REFUSALS_BEFORE_SLOW)
    for (const r of retries.slice(0, -1)) assert.ok((r.delay_seconds as number) <= 0.2, JSON.stringify(r))
    assert.ok((retries[REFUSALS_BEFORE_SLOW - 1]?.delay_seconds as number) >= REFUSED_MIN / 2, JSON.stringify(retries[REFUSALS_BEFORE_SLOW - 1]))
  })

  it('says it once per streak, and a welcome resets the count', async () => {
    await start(CONFIG)
    const a = agent({ token: 'wrong-token-0123456789abcdef', refusedMin: 0.05, refusedMax: 0.1 })
    await waitFor(() => upgrades.ours >= 2 * REFUSALS_BEFORE_SLOW, 20_000, 'more attempts')
    assert.equal(events('uplink_refused').length, 1, 'once, however many refusals follow')
    assert.ok(a.uplink.refusedInARow >= 2 * REFUSALS_BEFORE_SLOW - 1)
    a.uplink.opts.token = TOKEN
    await waitFor(() => a.uplink.isUp, 20_000, 'connected with the right token')
    assert.equal(a.uplink.refusedInARow, 0)
    // A new streak is said again.
    a.uplink.opts.token = 'wrong-token-0123456789abcdef'
    a.uplink.drop(1000, 'test')
    await waitFor(() => events('uplink_refused').length === 2, 20_000, 'the second streak')
    // After the welcome, the first retry was on the usual backoff again.
    const upAt = ours().findIndex((l) => l.event === 'uplink_connected')
    const first = ours().slice(upAt).find((l) => l.event === 'uplink_retry') as Line
    assert.equal(first.refused_in_a_row, 0)
    assert.ok((first.delay_seconds as number) <= 0.2, JSON.stringify(first))
  })

  it('counts a close before the welcome for policy (1008) as a refusal, and says switchd\'s reason', async () => {
    await start({})
    // Without tokens, trunks are opt-in: switchd closes the hello with 1008.
    agent({ capabilities: [CAP_TRUNK], refusedMin: 0.05, refusedMax: 0.1 })
    await waitFor(() => events('uplink_refused').length === 1, 20_000, 'the error')
    const closes = events('uplink_closed')
    assert.equal(closes.length, REFUSALS_BEFORE_SLOW)
    for (const c of closes) { assert.equal(c.code, 1008); assert.equal(c.level, 'warn'); assert.match(String(c.reason), /trunks are opt-in/) }
    const error = events('uplink_refused')[0] as Line
    assert.equal(error.kind, 'policy')
    assert.match(String(error.hint), /^switchd refuses this port: trunks are opt-in/)
  })

  it('a refused connection (nothing listening) is a warn with a hint, and no refusal: the usual backoff', async () => {
    await start({})
    await server.close()
    const a = agent({})
    await waitFor(() => events('uplink_error').length >= REFUSALS_BEFORE_SLOW + 1, 20_000, 'several attempts')
    for (const e of events('uplink_error')) {
      assert.equal(e.level, 'warn')
      assert.equal(e.error, 'ECONNREFUSED')
      assert.match(String(e.hint), new RegExp(`^nothing listens at 127\\.0\\.0\\.1:${port}: start switchd there`))
    }
    assert.equal(a.uplink.refusedInARow, 0)
    assert.equal(events('uplink_refused').length, 0)
    for (const r of events('uplink_retry')) assert.ok((r.delay_seconds as number) <= 0.2)
  })
})
