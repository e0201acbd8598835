import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { Uplink, type UplinkOptions } from '../../src/common/uplink'
import { Agent } from '../../src/agent/agent'
import { linkBindingOf } from '../../src/agent/native-link'
import { loadNative } from '../../src/common/native'
import { PairTap } from '../helpers/pair-tap'
import { TestClient } from '../helpers/client'
import { waitFor } from '../helpers/net'
import { eth, BROADCAST, MAC_A, MAC_B, MAC_C } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'
import { buildConfig } from '../../src/switch/control/config'
import { makePki, type TestPki } from '../helpers/tls'
import { agentPlan, SPECS } from '../../src/agent/options'
import { parseCli } from '../../src/common/cli'
import { agentRegistry } from '../../src/agent/metrics'
import { threadsNamed } from '../helpers/proc'

const links = linkBindingOf(loadNative('tests'))

describe('tap-agent native link (integration, a TAP-like socket pair)', () => {
  let server: SwitchServer | undefined
  const agents: Agent[] = []
  const taps: PairTap[] = []
  let clients: TestClient[]
  let restore: (line: string) => void
  const logs: string[] = []

  async function startServer (opts: Record<string, unknown> = {}): Promise<number> {
    server = new SwitchServer({ host: '127.0.0.1', port: 0, ...opts })
    return (await server.listen()).port
  }

  function startAgent (port: number, name: string, native = true, extra: Partial<UplinkOptions> = {}): { agent: Agent, tap: PairTap } {
    const tap = new PairTap(name)
    const uplink = new Uplink({ url: `ws://127.0.0.1:${port}/`, name, mtu: 1500, reconnectMin: 0.05, reconnectMax: 0.2, ...extra })
    const agent = new Agent(tap, uplink, 0, false, native ? links : undefined)
    agent.start()
    agents.push(agent)
    taps.push(tap)
    return { agent, tap }
  }

  function connected (name: string): Record<string, unknown> | undefined {
    for (const l of logs) {
      const o = JSON.parse(l) as Record<string, unknown>
      if ((o.event === 'uplink_connected' || o.event === 'uplink_resumed') && o.name === name) return o
    }
    return undefined
  }

  beforeEach(() => {
    logs.length = 0
    restore = setLogSink((l) => { logs.push(l) })
    clients = []
  })
  afterEach(async () => {
    for (const c of clients) c.close()
    for (const a of agents.splice(0)) await a.stop()
    taps.splice(0)
    await server?.close()
    server = undefined
    setLogSink(restore)
  })

  it('has native links in this addon', () => { assert.ok(links !== undefined) })

  it('carries frames both ways through a native link, and says so at the welcome', async () => {
    const port = await startServer()
    const { agent, tap } = startAgent(port, 'native-a')
    await waitFor(() => agent.uplink.isUp, undefined, 'uplink up')
    assert.equal(connected('native-a')?.path, 'native')
    await waitFor(() => !tap.reading, undefined, 'the agent stops its own TAP reader')
    const client = await TestClient.batched(`ws://127.0.0.1:${port}/`, { name: 'client-b' })
    clients.push(client)
    // Host -> switch: the agent's TAP reads a frame, the link sends it up; flooded to the client.
    tap.inject([eth(BROADCAST, MAC_A)])
    await waitFor(() => client.frames.length >= 1, undefined, 'the broadcast at the client')
    assert.deepEqual(client.take()[0], eth(BROADCAST, MAC_A))
    // Switch -> host: learned MAC_A, so a unicast to it is forwarded to the agent's port and written to its TAP.
    client.send([eth(MAC_A, MAC_B), eth(MAC_A, MAC_B, 0, 1514)])
    await tap.waitReceived(2)
    assert.deepEqual(tap.received[0], eth(MAC_A, MAC_B))
    assert.deepEqual(tap.received[1], eth(MAC_A, MAC_B, 0, 1514))
    agent.fold()
    assert.equal(agent.stats.upFrames, 1)
    assert.equal(agent.stats.downFrames, 2)
    assert.equal(agent.uplink.stats.rxMessages >= 1, true)
    assert.equal(agent.endpointStats().txFrames, 2)
    assert.equal(agent.endpointStats().rxFrames, 1)
    // /metrics reads the same, folded in at scrape time.
    const text = await agentRegistry(agent).metrics()
    assert.match(text, /tap_agent_tap_receive_frames_total\{tap="native-a"\} 1\n/)
    assert.match(text, /tap_agent_tap_transmit_frames_total\{tap="native-a"\} 2\n/)
    assert.match(text, /tap_agent_uplink_received_bytes_total \d+/)
    assert.doesNotMatch(text, /tap_agent_uplink_received_bytes_total 0\n/)
  })

  it('names its threads: one tsw-link per native link, gone once the agent stops; switchd\'s is tsw-datapath', async () => {
    // /proc/self/task/*/comm: what top -H and ps -L show an operator.
    const named = (name: string): number => threadsNamed(name).length
    const before = named('tsw-link')
    const port = await startServer()
    const { agent } = startAgent(port, 'native-named')
    await waitFor(() => agent.uplink.isUp && connected('native-named')?.path === 'native', undefined, 'native link up')
    await waitFor(() => named('tsw-link') === before + 1, undefined, 'the link thread named tsw-link')
    await waitFor(() => named('tsw-datapath') >= 1, undefined, 'switchd\'s fast-path thread named tsw-datapath')
    await agent.stop()
    agents.splice(agents.indexOf(agent), 1)
    await waitFor(() => named('tsw-link') === before, undefined, 'the link thread joined once the agent stopped')
  })

  it('native and JS agents reach each other, unicast and broadcast', async () => {
    const port = await startServer()
    const a = startAgent(port, 'agent-native', true)
    const b = startAgent(port, 'agent-js', false)
    await waitFor(() => a.agent.uplink.isUp && b.agent.uplink.isUp, undefined, 'both up')
    assert.equal(connected('agent-native')?.path, 'native')
    assert.equal(connected('agent-js')?.path, 'js')
    a.tap.inject([eth(BROADCAST, MAC_A)])
    await b.tap.waitReceived(1)
    b.tap.inject([eth(MAC_A, MAC_B)])
    await a.tap.waitReceived(1)
    a.tap.inject([eth(MAC_B, MAC_A, 0, 1000), eth(MAC_C, MAC_A)])
    await b.tap.waitReceived(3)
    assert.deepEqual(b.tap.received.map((f) => f.length), [60, 1000, 60])
    assert.deepEqual(a.tap.received[0], eth(MAC_A, MAC_B))
  })

  it('resumes its port after the switch dropped a silent link, and carries frames again', async () => {
    const port = await startServer({ pingInterval: 1 })
    const { agent, tap } = startAgent(port, 'native-r')
    await waitFor(() => agent.uplink.isUp, undefined, 'up')
    const client = await TestClient.batched(`ws://127.0.0.1:${port}/`, { name: 'client-r' })
    clients.push(client)
    // The link goes silent: the switch's pings go unanswered, so it terminates the connection and parks the port.
    const sock = agent.uplink.path.sock
    assert.ok(sock !== undefined)
    sock.pong = () => {}
    await waitFor(() => tap.reading, undefined, 'the agent reads its TAP again once the link ended')
    await waitFor(() => agent.uplink.stats.connects >= 2, undefined, 'reconnected')
    assert.equal(agent.uplink.stats.resumes, 1)
    await waitFor(() => !tap.reading, undefined, 'the new link reads the TAP')
    tap.inject([eth(BROADCAST, MAC_A)])
    await waitFor(() => client.frames.length >= 1, undefined, 'frame after the resume')
    assert.equal(logs.filter((l) => l.includes('"uplink_resumed"') && l.includes('"path":"native"')).length, 1)
  })
  it('--no-fast-path (or TAP_AGENT_NO_FAST_PATH) keeps the JS path', () => {
    const base = ['--url', 'ws://127.0.0.1:1/']
    assert.equal(agentPlan(parseCli(SPECS, base, {}, 'tap-agent')).fastPath, true)
    assert.equal(agentPlan(parseCli(SPECS, [...base, '--no-fast-path'], {}, 'tap-agent')).fastPath, false)
    assert.equal(agentPlan(parseCli(SPECS, base, { TAP_AGENT_NO_FAST_PATH: '1' }, 'tap-agent')).fastPath, false)
  })

  describe('over wss://', () => {
    let pki: TestPki
    before(function () { this.timeout(30_000); pki = makePki() })
    after(() => { fs.rmSync(pki.dir, { recursive: true, force: true }) })

    it('falls back to the JS path (TLS), says why, and carries frames', async () => {
      const port = await startServer({ config: buildConfig({ tls: { cert: pki.cert, key: pki.key } }, 'test') })
      const { agent, tap } = startAgent(port, 'native-tls', true, { url: `wss://127.0.0.1:${port}/`, tls: { ca: fs.readFileSync(pki.ca) } })
      await waitFor(() => agent.uplink.isUp, undefined, 'up')
      const line = connected('native-tls')
      assert.equal(line?.path, 'js')
      assert.equal(line?.fallback, 'TLS')
      assert.equal(tap.reading, true, 'the agent reads its TAP itself')
      tap.inject([eth(BROADCAST, MAC_A)])
      await waitFor(() => agent.stats.upFrames >= 1, undefined, 'the frame sent over the JS path')
    })
  })
})
