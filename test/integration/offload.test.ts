/**
 * Offload through a real switchd: virtio-net headers on the records of the
 * ports that asked for them, GSO frames forwarded intact between those, and
 * only frames a wire could carry for everyone else. Then the agent's side:
 * a TAP (fake binding) that follows each welcome.
 */

import assert from 'node:assert/strict'
import { WebSocketServer, type WebSocket } from 'ws'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { TapDevice } from '../../src/common/tap'
import { Uplink } from '../../src/common/uplink'
import { Agent } from '../../src/agent/agent'
import { agentRegistry } from '../../src/agent/metrics'
import { CAP_OFFLOAD, MAX_MESSAGE_SIZE, SUBPROTOCOL_V1, decodeBatch, type Hello } from '../../src/common/protocol'
import { setLogSink } from '../../src/common/log'
import { FakeTap, fakeTapBinding } from '../helpers/fake-tap'
import { TestClient } from '../helpers/client'
import { waitFor } from '../helpers/net'
import { eth, BROADCAST, MAC_C } from '../helpers/frames'
import { tcpFrame, parseSegment, pattern } from '../helpers/tcp'
import { R_BAD_OFFLOAD } from '../../src/switch/core/reasons'

const MSS = 1448

describe('offload (integration)', () => {
  let server: SwitchServer | undefined
  let url: string
  let clients: TestClient[]
  let restore: (line: string) => void
  const logs: string[] = []

  beforeEach(async () => {
    logs.length = 0
    restore = setLogSink((l) => { logs.push(l) })
    clients = []
    server = new SwitchServer({ host: '127.0.0.1', port: 0 })
    url = `ws://127.0.0.1:${(await server.listen()).port}/`
  })
  afterEach(async () => {
    for (const c of clients) c.close()
    await server?.close()
    server = undefined
    setLogSink(restore)
  })

  async function client (kind: 'raw' | 'plain' | 'offload', name: string): Promise<TestClient> {
    const c = kind === 'raw' ? await TestClient.raw(url) : await TestClient.batched(url, { name, capabilities: kind === 'offload' ? [CAP_OFFLOAD] : [] })
    clients.push(c)
    return c
  }

  it('grants offload to who asks, forwards a GSO record intact between offload ports, and gives the others only valid frames <= the MTU', async () => {
    const sender = await client('offload', 'sender')
    const peer = await client('offload', 'peer')
    const plain = await client('plain', 'plain')
    const browser = await client('raw', '')
    assert.deepEqual(sender.welcome?.capabilities, [CAP_OFFLOAD])
    assert.deepEqual(plain.welcome?.capabilities, [])
    await waitFor(() => server?.ports().length === 4, 3000, 'four ports')

    // Unknown unicast: flooded to all three.
    const payload = pattern(20000, 3)
    const { record } = tcpFrame({ payload, mss: MSS, seq: 5 })
    sender.send([record])
    const segments = Math.ceil(payload.length / MSS)
    await waitFor(() => peer.frames.length === 1 && plain.frames.length === segments && browser.frames.length === segments, 3000, 'the flood')
    assert.deepEqual(peer.take(), [record], 'the other offload port gets the record, header and all')
    for (const c of [plain, browser]) {
      const frames = c.take()
      for (const f of frames) {
        assert.ok(f.length <= 1514, `a ${f.length}-byte frame`)
        const s = parseSegment(f)
        assert.ok(s.ipChecksumOk && s.tcpChecksumOk, 'valid checksums')
      }
      assert.deepEqual(Buffer.concat(frames.map((f) => parseSegment(f).payload)), payload)
      assert.deepEqual(frames.map((f) => parseSegment(f).seq), frames.map((_, i) => 5 + i * MSS))
    }

    // The other way: frames from plain ports reach offload ports behind a zero header.
    const hello = eth(BROADCAST, MAC_C, 7)
    plain.send([hello])
    await waitFor(() => sender.frames.length === 1 && peer.frames.length === 1, 3000, 'plain to offload')
    assert.deepEqual(sender.take(), [Buffer.concat([Buffer.alloc(10), hello])])

    const text = await (await fetch(url.replace('ws:', 'http:') + 'metrics')).text()
    assert.match(text, /^switchd_offload_fallback_frames_total\{network="default",kind="segmented",replica="[^"]*"\} 1$/m)
    assert.match(text, /^switchd_frames_dropped_total\{network="default",reason="bad_offload",replica="[^"]*"\} 0$/m)
  })

  it('drops a malformed offload record (counted) and keeps the port', async () => {
    const sender = await client('offload', 'sender')
    const browser = await client('raw', '')
    await waitFor(() => server?.ports().length === 2, 3000, 'two ports')
    const bad = tcpFrame({ payload: pattern(3000), mss: MSS }).record
    bad[1] = 3 // UDP GSO: never offered, never accepted
    sender.send([bad, Buffer.concat([Buffer.alloc(10), eth(BROADCAST, MAC_C, 1)])])
    await waitFor(() => browser.frames.length === 1, 3000, 'the good frame')
    assert.equal(browser.take()[0]?.[14], 1)
    assert.equal(server?.switch.stats.drops[R_BAD_OFFLOAD], 1)
    assert.equal(sender.closeCode, undefined)
  })

  describe('tap-agent', () => {
    let agent: Agent | undefined
    let fake: WebSocketServer | undefined
    afterEach(async () => {
      await agent?.stop()
      agent = undefined
      await new Promise<void>((resolve) => { if (fake === undefined) resolve(); else fake.close(() => { resolve() }) })
      fake = undefined
    })

    /** A switch that welcomes without granting offload and keeps every batch it gets. */
    async function plainSwitch (): Promise<{ port: number, hellos: Hello[], batches: Buffer[] }> {
      const out = { port: 0, hellos: [] as Hello[], batches: [] as Buffer[] }
      const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => SUBPROTOCOL_V1 })
      fake = wss
      wss.on('connection', (ws: WebSocket) => {
        ws.on('message', (data: Buffer, isBinary: boolean) => {
          if (isBinary) { out.batches.push(Buffer.from(data)); return }
          out.hellos.push(JSON.parse(data.toString()) as Hello)
          ws.send(JSON.stringify({ type: 'welcome', version: 1, port: 1, name: 'x', maxFrameSize: 1518, maxMessageSize: MAX_MESSAGE_SIZE, pingInterval: 3, capabilities: [] }))
        })
      })
      await new Promise((resolve) => wss.once('listening', resolve))
      out.port = (wss.address() as { port: number }).port
      return out
    }

    it('asks for offload, switches the TAP to offload records on the welcome, and back to plain on failover to a switch that does not grant it', async function () {
      const other = await plainSwitch()
      const dev = TapDevice.open(fakeTapBinding, { name: 'tsw-off0', mtu: 1500, offload: 'auto' })
      const tap = dev.tap as FakeTap
      assert.equal(dev.offloadCapable, true)
      assert.deepEqual(tap.offloadCalls, ['offload:15', 'offload:0'], 'tried at open, then left off')
      const uplink = new Uplink({ url, urls: [url, `ws://127.0.0.1:${other.port}/`], name: 'agent-a', reconnectMin: 0.05, reconnectMax: 0.1 })
      agent = new Agent(dev, uplink, 1500)
      const a = agent
      const browser = await client('raw', '')
      agent.start()
      await waitFor(() => a.uplink.isUp, 3000, 'uplink up')
      assert.equal(a.offload, true)
      assert.deepEqual(tap.offloadCalls.slice(2), ['records:true', 'offload:15'], 'records carry headers before the kernel may hand over GSO frames')
      assert.ok(logs.some((l) => l.includes('"uplink_connected"') && l.includes('"offload":true')))
      assert.match(await agentRegistry(a).metrics(), /^tap_agent_offload\{tap="tsw-off0"\} 1$/m)

      // A GSO burst from the "kernel" crosses as it is; the raw port gets segments.
      await waitFor(() => server?.ports().length === 2, 3000, 'both ports')
      const payload = pattern(8000)
      tap.inject([tcpFrame({ payload, mss: MSS }).record])
      await waitFor(() => browser.frames.length === Math.ceil(8000 / MSS), 3000, 'segments at the raw port')
      assert.deepEqual(Buffer.concat(browser.take().map((f) => parseSegment(f).payload)), payload)
      // And the switch's frames come into the TAP with a header.
      const reply = eth(BROADCAST, MAC_C, 5)
      browser.send([reply])
      await waitFor(() => tap.written.length === 1, 3000, 'into the TAP')
      assert.deepEqual(tap.written[0], Buffer.concat([Buffer.alloc(10), reply]))

      // switchd goes away (1001): the agent fails over to a switch that grants nothing.
      await server?.close()
      server = undefined
      await waitFor(() => other.hellos.length === 1 && a.uplink.isUp, 5000, 'failover')
      assert.deepEqual(other.hellos[0]?.capabilities, [CAP_OFFLOAD], 'it still asks')
      assert.equal(a.offload, false)
      assert.deepEqual(tap.offloadCalls.slice(4), ['offload:0', 'records:false'], 'the kernel stops offloading before records go plain')
      assert.match(await agentRegistry(a).metrics(), /^tap_agent_offload\{tap="tsw-off0"\} 0$/m)
      const plainFrame = eth(BROADCAST, MAC_C, 6)
      tap.inject([plainFrame])
      await waitFor(() => other.batches.length === 1, 3000, 'a batch at the other switch')
      assert.deepEqual(decodeBatch(other.batches[0] as Buffer), [plainFrame])
    })

    it('--offload off (the default of TapDevice.open) opens a TAP that neither asks nor changes mode', async () => {
      const dev = TapDevice.open(fakeTapBinding, { name: 'tsw-off1', mtu: 1500 })
      const tap = dev.tap as FakeTap
      assert.equal(tap.vnetHdr, false)
      agent = new Agent(dev, new Uplink({ url, name: 'agent-b', reconnectMin: 0.05, reconnectMax: 0.1 }), 1500)
      const a = agent
      const browser = await client('raw', '')
      agent.start()
      await waitFor(() => a.uplink.isUp, 3000, 'uplink up')
      // Barrier: a frame from the switch reaches the TAP after the welcome was acted on; plain, no header.
      const hello = eth(BROADCAST, MAC_C, 7)
      browser.send([hello])
      await waitFor(() => tap.written.length === 1, 3000, 'into the TAP')
      assert.deepEqual(tap.written, [hello])
      assert.deepEqual(a.uplink.welcome?.capabilities, [])
      assert.deepEqual(tap.offloadCalls, [])
      assert.equal(server?.ports().find((p) => p.name === 'agent-b')?.offload, false)
    })
  })
})
