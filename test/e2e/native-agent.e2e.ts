/**
 * Issue 24: tap-agent's native link against real TAPs. switchd and two
 * tap-agents (each TAP in a namespace of its own, offloads on), the agents'
 * connections carried by their native links: ping both ways, 32 MiB of TCP
 * (TSO frames as large records) arriving intact (SHA-256 of the bytes on both
 * ends), and an idle agent whose link thread sleeps in poll(2). Addresses are
 * TEST-NET-1, only inside the test's namespaces; everything is removed after.
 */

import assert from 'node:assert/strict'
import * as path from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { run, stopChild } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { spawnLogged, waitForLine, pingUntilAnswered, tcpThrough, cpuInIdleSecond, type Logged } from '../helpers/proc'

const ROOT = path.join(__dirname, '..', '..')
const AGENT = path.join(ROOT, 'bin', 'tap-agent.js')
const SWITCHD = path.join(ROOT, 'bin', 'switchd.js')
const BYTES = 32 * 1024 * 1024


describe('e2e: tap-agent native link (real TAPs, offloads)', function () {
  this.timeout(120_000)
  const id = process.pid % 100000
  const nsA = `tswnl-a${id}`
  const nsB = `tswnl-b${id}`
  const log: string[] = []
  let sw: Logged | undefined
  const agents: Logged[] = []
  const children: ChildProcess[] = []

  before(async function () {
    requireRoot(this)
    for (const ns of [nsA, nsB]) {
      await run('ip', ['netns', 'add', ns])
      await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
    }
    sw = spawnLogged('switchd', process.execPath, [SWITCHD, '--listen', '127.0.0.1:0'], (l) => { log.push(l) })
    const line = await waitForLine(sw, 'switchd', (l) => l.includes('"event":"listening"'))
    const url = `ws://127.0.0.1:${/"port":(\d+)/.exec(line)?.[1] ?? '0'}/`
    for (const [who, ns, addr] of [['agent-a', nsA, '192.0.2.1/24'], ['agent-b', nsB, '192.0.2.2/24']] as const) {
      const a = spawnLogged(who, process.execPath, [AGENT, '--url', url, '--tap', 'tsw0', '--netns', ns, '--address', addr, '--name', who, '--offload', 'on'], (l) => { log.push(l) })
      agents.push(a)
      await waitForLine(a, who, (l) => l.includes('"event":"uplink_connected"'), 30_000)
    }
  })

  after(async () => {
    for (const c of children) c.kill('SIGKILL')
    for (const a of agents) await stopChild(a.child)
    await stopChild(sw?.child)
    for (const ns of [nsA, nsB]) await run('ip', ['netns', 'del', ns]).catch(() => {})
  })

  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(log.slice(-40).join('\n') + '\n')
  })

  it('carries each uplink over the native link, with offload granted', () => {
    for (const a of agents) {
      const line = a.lines.find((l) => l.includes('"event":"uplink_connected"')) ?? ''
      assert.match(line, /"path":"native"/)
      assert.match(line, /"offload":true/)
    }
  })

  it('ping both ways', async () => {
    assert.match(await pingUntilAnswered(nsA, '192.0.2.2', 3), / 3 received/)
    assert.match(await pingUntilAnswered(nsB, '192.0.2.1', 3), / 3 received/)
  })

  it('32 MiB of TCP with offloads arrive intact (SHA-256 on both ends)', async () => {
    const { sent, got } = await tcpThrough(nsA, nsB, '192.0.2.2', 5556, BYTES, children)
    assert.equal(got.n, BYTES)
    assert.equal(got.hash, sent.hash)
    assert.equal(got.hash.length, createHash('sha256').digest('hex').length)
  })

  it('an idle agent costs no CPU: under 0.2 s in a second, no thread spinning', async () => {
    const { used, threads } = await cpuInIdleSecond(agents[0]?.child.pid as number)
    assert.ok(used < 0.2, `the agent used ${used} s of CPU in an idle second`)
    for (const t of threads) if (t.used !== undefined) assert.ok(t.used < 0.1, `thread ${t.tid} used ${t.used} s in an idle second`)
    assert.ok(threads.length > 1)
  })
})
