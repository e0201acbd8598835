/**
 * tap-agent's native link coalesces a flood's TAP reads (issue 24,
 * --coalesce-usecs): after a burst of 32 frames or more it reads the TAP again
 * only USEC µs later, while the switch's frames keep flowing down. Asserted by
 * counts and barriers (every frame arrives; the waits counted), never by time.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import { NativeRig } from '../helpers/native-rig'
import { Agent } from '../../src/agent/agent'
import { linkBindingOf, LINK_COALESCE_WAITS, LINK_STAT_COUNT, LINK_UP_BURSTS, LINK_UP_FRAMES } from '../../src/agent/native-link'
import { loadNative, STAT_COUNT } from '../../src/common/native'
import { agentRegistry } from '../../src/agent/metrics'
import { agentPlan, SPECS } from '../../src/agent/options'
import { parseCli } from '../../src/common/cli'
import { PairTap } from '../helpers/pair-tap'
import { TestClient } from '../helpers/client'
import { waitFor } from '../helpers/net'
import { eth, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'

const links = linkBindingOf(loadNative('tests'))

describe('tap-agent native link: a flood\'s TAP reads are coalesced (integration)', () => {
  const rig = new NativeRig()
  let agent: Agent | undefined
  let client: TestClient | undefined
  let restoreLog: (line: string) => void

  beforeEach(() => { restoreLog = setLogSink(() => {}) })
  afterEach(async () => {
    await rig.close()
    agent = client = undefined
    setLogSink(restoreLog)
  })

  /** A switchd, a native agent on a PairTap reading a flood's TAP again `usecs` µs later, and a client. */
  async function start (usecs: number): Promise<PairTap> {
    const tap = await rig.start('coal', (t, uplink) => new Agent(t, uplink, 0, false, links, false, false, usecs))
    agent = rig.agent
    client = rig.client
    return tap
  }

  function waits (): number {
    agent?.fold()
    return agent?.stats.coalesceWaits ?? -1
  }

  /** `n` frames into the TAP at once, each numbered in its payload; resolves when all reached the client. */
  async function flood (tap: PairTap, n: number): Promise<void> {
    const seen = client?.frames.length ?? 0
    const frames = Array.from({ length: n }, (_, i) => { const f = eth(BROADCAST, MAC_A, 0, 64); f.writeUInt32BE(i, 20); return f })
    await tap.feed(frames)
    await waitFor(() => (client?.frames.length ?? 0) >= seen + n, undefined, `${n} frames at the client`)
    const got = (client?.frames ?? []).slice(seen)
    assert.deepEqual(got.map((f) => f.readUInt32BE(20)), frames.map((_, i) => i), 'every frame, in order')
  }

  it('a flood goes up whole and in order, its bursts waiting between TAP reads (counted)', async () => {
    const tap = await start(200)
    await flood(tap, 4096)
    assert.ok(waits() > 0, 'no wait counted for a flood of 4,096 frames')
    const text = await agentRegistry(agent as Agent).metrics()
    assert.match(text, new RegExp(`tap_agent_link_coalesce_waits_total\\{tap="coal0"\\} ${waits()}\\n`))
  })

  it('a lone frame never waits: 64 frames one at a time count no wait', async () => {
    const tap = await start(200)
    for (let i = 0; i < 64; i++) {
      const seen = client?.frames.length ?? 0
      tap.inject([eth(BROADCAST, MAC_A)])
      await waitFor(() => (client?.frames.length ?? 0) >= seen + 1, undefined, `frame ${i} at the client`)
    }
    assert.equal(waits(), 0)
  })

  it('--coalesce-usecs 0: the flood goes up whole and no wait is counted', async () => {
    const tap = await start(0)
    await flood(tap, 4096)
    assert.equal(waits(), 0)
  })

  it('attack: while a flood\'s TAP waits (200 µs each burst), the switch\'s frames still reach the TAP, every one', async () => {
    const tap = await start(200)
    const seen = tap.received.length
    const down = Array.from({ length: 64 }, (_, i) => { const f = eth(MAC_A, MAC_B, 0, 64); f.writeUInt32BE(i, 20); return f })
    const up = flood(tap, 8192)
    for (const f of down) client?.send([f])
    await tap.waitReceived(seen + down.length)
    await up
    assert.deepEqual(tap.received.slice(seen).map((f) => f.readUInt32BE(20)), down.map((_, i) => i))
    assert.ok(waits() > 0)
  })

  it('--coalesce-usecs (TAP_AGENT_COALESCE_USECS) is 50 by default, 0 to 200; --udp-runs is off by default', () => {
    const base = ['--url', 'ws://127.0.0.1:1/', '--tap', 'tsw0']
    const plan = (argv: string[], env: Record<string, string> = {}): ReturnType<typeof agentPlan> => agentPlan(parseCli(SPECS, [...base, ...argv], env, 'tap-agent'))
    assert.equal(plan([]).coalesceUsecs, 50)
    assert.equal(plan(['--coalesce-usecs', '0']).coalesceUsecs, 0)
    assert.equal(plan([], { TAP_AGENT_COALESCE_USECS: '200' }).coalesceUsecs, 200)
    for (const bad of ['-1', '201', '2.5', 'soon']) assert.throws(() => plan([`--coalesce-usecs=${bad}`]), /--coalesce-usecs .*: expected an integer from 0 to 200/)
    assert.equal(plan([]).udpRuns, false)
    assert.equal(plan(['--udp-runs']).udpRuns, true)
    assert.equal(plan([], { TAP_AGENT_UDP_RUNS: '1' }).udpRuns, true)
  })

  it('attack: the binding refuses a coalesceUsecs that is not a whole number of µs from 0 to 200', () => {
    assert.ok(links !== undefined)
    const tap = new PairTap('coal-bad')
    const [sock] = loadNative('tests').socketPair()
    const link = new links.WsLink(sock, tap.fd, false, true, 1 << 20, null, () => {})
    try {
      for (const bad of [-1, 1.5, Number.NaN, 201, 1001, 1e9]) assert.throws(() => { link.start(false, 0, false, bad) }, RangeError, String(bad))
      assert.throws(() => { (link.start as unknown as (a: boolean, b: number, c: boolean, d: string) => void)(false, 0, false, '50') }, TypeError)
    } finally {
      link.close()
      tap.close()
    }
  })
  // A backlog is read 128 frames a wait (LOCAL-TAPS.md: a flood the path cannot carry is better dropped
  // at the sending TAP than read ahead at once): the bound on a frame's wait is the queue's depth / 128
  // waits, and nothing is lost or reordered. Queued before start() (the TAP is not read until then),
  // 200 frames are two bursts every time (the pair's queue holds about 250 such frames;
  // test/e2e/native-coalesce.e2e.ts queues 400 on a TAP).
  it('attack: a backlog deeper than a burst is read 128 frames a wait: one wait a burst of 32 or more, every frame in order', async () => {
    assert.ok(links !== undefined)
    const N = 200
    const tap = new PairTap('coal-deep')
    const [sock, peer] = loadNative('tests').socketPair()
    const link = new links.WsLink(sock, tap.fd, false, true, 1 << 20, null, () => {})
    const stats = (): Float64Array => {
      const l = new Float64Array(LINK_STAT_COUNT)
      link.stats(l, new Float64Array(STAT_COUNT))
      return l
    }
    try {
      tap.inject(Array.from({ length: N }, (_, i) => { const f = eth(BROADCAST, MAC_A, 0, 64); f.writeUInt32BE(i, 20); return f }))
      link.start(false, 0, false, 200)
      await waitFor(() => (stats()[LINK_UP_FRAMES] as number) >= N, undefined, `${N} frames sent up`)
      assert.equal(stats()[LINK_UP_BURSTS], 2, '128 + 72')
      // One wait after each burst of 32 frames or more (LOCAL-TAPS.md: a backlog is read 128 frames a wait).
      assert.equal(stats()[LINK_COALESCE_WAITS], 2, 'a wait after the 128 and one after the 72')
    } finally {
      link.close()
      tap.close()
      fs.closeSync(sock)
      fs.closeSync(peer)
    }
  })
})
