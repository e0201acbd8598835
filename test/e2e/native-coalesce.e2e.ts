/**
 * tap-agent's native link coalesces a flood's TAP reads (--coalesce-usecs),
 * on a real TAP. The switch is played by this test (ws): it welcomes the
 * agent and counts the frames that come up. The agent is stopped (SIGSTOP)
 * while a station in the TAP's namespace queues a backlog deeper than a burst
 * (400 datagrams, within the TAP's queue of 500), then let go: the backlog
 * must come up whole and in order, none dropped at the TAP, with at most a
 * wait per 128 frames (LOCAL-TAPS.md: a backlog is read 128 frames a wait). Then a second agent
 * pair through switchd with --offload off (1500-byte frames, bursts of up to
 * 128): 16 MiB of TCP arrive intact with waits counted, and the agent idles
 * at no CPU after. Counts and barriers, never speed. Addresses are
 * TEST-NET-1, only inside the test's namespaces; everything is removed after.
 */

import assert from 'node:assert/strict'
import * as path from 'node:path'
import type { ChildProcess } from 'node:child_process'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'
import { run, stopChild } from '../../src/lab/lab'
import { SUBPROTOCOL_V1, MAX_MESSAGE_SIZE, decodeBatch } from '../../src/common/protocol'
import { requireRoot } from '../helpers/root'
import { spawnLogged, waitForLine, pingUntilAnswered, tcpThrough, cpuInIdleSecond, type Logged } from '../helpers/proc'
import { onceWithin, waitFor } from '../helpers/net'
import { metricValue } from '../helpers/metrics-text'

const ROOT = path.join(__dirname, '..', '..')
const AGENT = path.join(ROOT, 'bin', 'tap-agent.js')
const SWITCHD = path.join(ROOT, 'bin', 'switchd.js')
const PORT = 7001
const MARK = 'coalesce-backlog-'
async function metric (port: number, name: string): Promise<number> {
  return metricValue(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), name, { tap: 'tsw0' })
}

async function metricsPortOf (a: Logged, who: string): Promise<number> {
  return Number(/"port":(\d+)/.exec(await waitForLine(a, who, (l) => l.includes('"event":"metrics_listening"')))?.[1])
}

/** TX drops of a device in a namespace (what its queue could not hold). */
async function txDropped (ns: string, dev: string): Promise<number> {
  const j = JSON.parse(await run('ip', ['-n', ns, '-s', '-j', 'link', 'show', dev])) as Array<{ stats64: { tx: { dropped: number } } }>
  return j[0]?.stats64.tx.dropped ?? -1
}


describe('e2e: tap-agent native link coalescing (real TAPs)', function () {
  this.timeout(120_000)
  const id = process.pid % 100000
  const log: string[] = []
  const children: ChildProcess[] = []
  const namespaces: string[] = []
  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(log.slice(-40).join('\n') + '\n')
  })
  after(async () => {
    for (const c of children) { c.kill('SIGCONT'); c.kill('SIGKILL') }
    for (const ns of namespaces) await run('ip', ['netns', 'del', ns]).catch(() => {})
  })

  async function netns (name: string): Promise<string> {
    await run('ip', ['netns', 'add', name])
    namespaces.push(name)
    await run('ip', ['-n', name, 'link', 'set', 'lo', 'up'])
    return name
  }

  it('attack: a backlog deeper than a burst comes up whole, in order, none dropped, with at most a wait per 128 frames (the agent stopped while it queued)', async function () {
    requireRoot(this)
    const ns = await netns(`tswco${id}`)
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: MAX_MESSAGE_SIZE, handleProtocols: () => SUBPROTOCOL_V1 })
    await onceWithin(wss, 'listening')
    const marks: number[] = []
    let welcomed = false
    wss.on('connection', (ws) => {
      ws.on('error', () => {})
      ws.once('message', () => {
        ws.send(JSON.stringify({ type: 'welcome', version: 1, port: 1, name: 'played', maxFrameSize: 1518, maxMessageSize: MAX_MESSAGE_SIZE, pingInterval: 30, capabilities: [] }))
        welcomed = true
        ws.on('message', (data, binary) => {
          if (!binary) return
          for (const f of decodeBatch(data as Buffer)) {
            const at = f.indexOf(MARK)
            if (at >= 0) marks.push(Number(f.subarray(at + MARK.length, at + MARK.length + 4).toString()))
          }
        })
      })
    })
    let agent: Logged | undefined
    try {
      agent = spawnLogged('agent', process.execPath, [AGENT, '--url', `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`, '--tap', 'tsw0', '--netns', ns,
        '--address', '192.0.2.2/24', '--name', 'coal', '--offload', 'off', '--coalesce-usecs', '200', '--metrics-listen', '127.0.0.1:0'], (l) => { log.push(l) })
      children.push(agent.child)
      assert.match(await waitForLine(agent, 'agent', (l) => l.includes('"event":"uplink_connected"'), 30_000), /"path":"native"/)
      const mport = await metricsPortOf(agent, 'agent')
      await waitFor(() => welcomed, 10_000, 'the welcome')
      // A neighbour that needs no ARP: every datagram is one frame straight into the TAP's queue.
      await run('ip', ['-n', ns, 'neigh', 'replace', '192.0.2.9', 'lladdr', '02:00:00:00:00:09', 'dev', 'tsw0'])
      const N = 400
      const waitsBefore = await metric(mport, 'tap_agent_link_coalesce_waits_total')
      const droppedBefore = await txDropped(ns, 'tsw0')
      const pid = agent.child.pid as number
      process.kill(pid, 'SIGSTOP')
      try {
        await run('ip', ['netns', 'exec', ns, process.execPath, '-e', `
          const s = require('dgram').createSocket('udp4'); let left = ${N}
          for (let i = 0; i < ${N}; i++) s.send('${MARK}' + String(i).padStart(4, '0'), ${PORT}, '192.0.2.9', () => { if (--left === 0) s.close() })`], 30_000)
        assert.equal(await txDropped(ns, 'tsw0'), droppedBefore, 'the TAP\'s queue held the whole backlog')
      } finally {
        process.kill(pid, 'SIGCONT')
      }
      await waitFor(() => marks.length >= N, 30_000, `${N} datagrams at the switch`)
      assert.deepEqual(marks, Array.from({ length: N }, (_, i) => i), 'every datagram, in order')
      // 400 frames are four bursts (128 x 3 + 16): a wait after each of 32 frames or more, so at most
      // ceil(400 / 128) waits hold the backlog's tail.
      assert.ok(await metric(mport, 'tap_agent_link_coalesce_waits_total') - waitsBefore <= Math.ceil(N / 128), 'more waits than 128-frame bursts')
    } finally {
      if (agent !== undefined) { agent.child.kill('SIGCONT'); await stopChild(agent.child) }
      for (const c of wss.clients) c.terminate()
      await new Promise<void>((resolve) => { wss.close(() => { resolve() }) })
    }
  })

  it('--offload off, --coalesce-usecs 200: 16 MiB of TCP arrive intact with waits counted, then the agent idles at no CPU', async function () {
    requireRoot(this)
    const nsA = await netns(`tswcoa${id}`)
    const nsB = await netns(`tswcob${id}`)
    const sw = spawnLogged('switchd', process.execPath, [SWITCHD, '--listen', '127.0.0.1:0'], (l) => { log.push(l) })
    children.push(sw.child)
    const agents: Logged[] = []
    try {
      const line = await waitForLine(sw, 'switchd', (l) => l.includes('"event":"listening"'))
      const url = `ws://127.0.0.1:${/"port":(\d+)/.exec(line)?.[1] ?? '0'}/`
      for (const [who, ns, addr] of [['agent-a', nsA, '192.0.2.1/24'], ['agent-b', nsB, '192.0.2.2/24']] as const) {
        const a = spawnLogged(who, process.execPath, [AGENT, '--url', url, '--tap', 'tsw0', '--netns', ns, '--address', addr, '--name', who,
          '--offload', 'off', '--coalesce-usecs', '200', '--metrics-listen', '127.0.0.1:0'], (l) => { log.push(l) })
        agents.push(a)
        children.push(a.child)
        assert.match(await waitForLine(a, who, (l) => l.includes('"event":"uplink_connected"'), 30_000), /"path":"native"/)
      }
      const ports = await Promise.all(agents.map(async (a, i) => await metricsPortOf(a, `agent-${i}`)))
      assert.match(await pingUntilAnswered(nsA, '192.0.2.2', 3), / 3 received/)
      const BYTES = 16 * 1024 * 1024
      const { sent, got } = await tcpThrough(nsA, nsB, '192.0.2.2', 5557, BYTES, children)
      assert.equal(got.n, BYTES)
      assert.equal(got.hash, sent.hash)
      assert.ok(await metric(ports[0] as number, 'tap_agent_link_coalesce_waits_total') > 0, 'the sender\'s agent never waited')
      // After the flood: the link thread sleeps in poll with no timeout (no wait re-armed, no spin).
      const { used, threads } = await cpuInIdleSecond(agents[0]?.child.pid as number)
      assert.ok(used < 0.2, 'the agent used CPU in an idle second after the flood')
      for (const t of threads) if (t.used !== undefined) assert.ok(t.used < 0.1, `thread ${t.tid} spun in an idle second after the flood`)
    } finally {
      for (const a of agents) await stopChild(a.child)
      await stopChild(sw.child)
    }
  })
})
