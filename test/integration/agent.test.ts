import assert from 'node:assert/strict'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { TapDevice } from '../../src/common/tap'
import { Uplink } from '../../src/common/uplink'
import { Agent } from '../../src/agent/agent'
import { FakeTap, fakeTapBinding } from '../helpers/fake-tap'
import { TestClient } from '../helpers/client'
import { waitFor } from '../helpers/net'
import { eth, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'

describe('tap-agent (integration, fake TAP)', () => {
  let server: SwitchServer | undefined
  let agent: Agent | undefined
  let clients: TestClient[]
  let restore: (line: string) => void
  const logs: string[] = []

  async function startServer (port = 0): Promise<number> {
    server = new SwitchServer({ host: '127.0.0.1', port })
    return (await server.listen()).port
  }
  function startAgent (port: number): { agent: Agent, tap: FakeTap } {
    const dev = TapDevice.open(fakeTapBinding, { name: 'tsw-test0', mtu: 1500 })
    const uplink = new Uplink({ url: `ws://127.0.0.1:${port}/`, name: 'agent-a', mtu: 1500, reconnectMin: 0.05, reconnectMax: 0.2 })
    agent = new Agent(dev, uplink)
    agent.start()
    return { agent, tap: dev.tap as FakeTap }
  }

  beforeEach(() => {
    logs.length = 0
    restore = setLogSink((l) => { logs.push(l) })
    clients = []
  })
  afterEach(async () => {
    for (const c of clients) c.close()
    await agent?.stop()
    await server?.close()
    agent = undefined
    server = undefined
    setLogSink(restore)
  })

  it('opens and configures the TAP through the binding', async () => {
    const port = await startServer()
    const { tap } = startAgent(port)
    assert.equal(tap.name, 'tsw-test0')
    assert.equal(tap.mtu, 1500)
    assert.equal(tap.up, true)
    await waitFor(() => agent?.uplink.isUp === true, 3000, 'uplink up')
    assert.equal(server?.ports()[0]?.name, 'agent-a')
  })

  it('carries a TAP read burst to the switch as one message and switch frames back into the TAP', async () => {
    const port = await startServer()
    const { agent: a, tap } = startAgent(port)
    const browser = await TestClient.raw(`ws://127.0.0.1:${port}/`)
    clients.push(browser)
    await waitFor(() => a.uplink.isUp && server?.ports().length === 2, 3000, 'both ports up')
    const burst = [eth(BROADCAST, MAC_A, 1), eth(BROADCAST, MAC_A, 2), eth(MAC_B, MAC_A, 3)]
    tap.inject(burst)
    await waitFor(() => browser.frames.length === 3, 3000, 'burst delivered')
    assert.deepEqual(browser.take(), burst)
    assert.equal(a.uplink.stats.txMessages, 1, 'one message per burst')
    assert.equal(a.stats.upFrames, 3)
    const reply = eth(MAC_A, MAC_B, 4)
    browser.send([reply])
    await waitFor(() => tap.written.length === 1, 3000, 'frame written to the TAP')
    assert.deepEqual(tap.written[0], reply)
    assert.equal(a.stats.downFrames, 1)
  })

  it('keeps the TAP up and counts frames while the switch is away, then reconnects', async function () {
    const port = await startServer()
    const { agent: a, tap } = startAgent(port)
    await waitFor(() => a.uplink.isUp, 3000, 'uplink up')
    await server?.close()
    await waitFor(() => !a.uplink.isUp, 3000, 'uplink down')
    tap.inject([eth(BROADCAST, MAC_A), eth(BROADCAST, MAC_A)])
    assert.equal(a.stats.droppedDisconnected, 2)
    assert.notEqual(tap.fd, -1, 'the TAP stays open')
    assert.ok(logs.some((l) => l.includes('"uplink_lost"')))
    await startServer(port)
    await waitFor(() => a.uplink.isUp, 5000, 'reconnected')
    const browser = await TestClient.raw(`ws://127.0.0.1:${port}/`)
    clients.push(browser)
    await waitFor(() => server?.ports().length === 2, 3000, 'both ports up')
    tap.inject([eth(BROADCAST, MAC_A, 9)])
    await waitFor(() => browser.frames.length === 1, 3000, 'traffic flows again')
    assert.equal(a.uplink.stats.connects, 2)
  })
})
