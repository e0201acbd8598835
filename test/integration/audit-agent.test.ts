/**
 * Issue 12: tap-agent facing a hostile switchd. A fake switch (a bare ws
 * server on 127.0.0.1:0) welcomes the agent and then sends what a real one
 * never would; a plain Unix socket stands in for QEMU on the agent's side.
 * The agent must neither crash nor grow its memory without bound.
 */

import assert from 'node:assert/strict'
import * as net from 'node:net'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import type { AddressInfo } from 'node:net'
import WebSocket, { WebSocketServer } from 'ws'
import { listenForQemu, type ModeHandle } from '../../src/agent/modes'
import { agentRegistry } from '../../src/agent/metrics'
import { SUBPROTOCOL_V1, PROTOCOL_VERSION, MAX_MESSAGE_SIZE, encodeBatch } from '../../src/common/protocol'
import { setLogSink } from '../../src/common/log'
import { waitFor, onceWithin, sleep } from '../helpers/net'
import { eth, BROADCAST, MAC_A } from '../helpers/frames'
import { FrameReader } from '../helpers/stream-peer'

describe('audit: tap-agent against a hostile switchd (integration)', function () {
  let wss: WebSocketServer
  let url: string
  let dir: string
  let peer: WebSocket | undefined
  const handles: ModeHandle[] = []
  const sockets: net.Socket[] = []
  const logs: string[] = []
  let restore: (line: string) => void

  beforeEach(async () => {
    logs.length = 0
    restore = setLogSink((l) => { logs.push(l) })
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-audit-agent-'))
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, handleProtocols: () => SUBPROTOCOL_V1 })
    await onceWithin(wss, 'listening')
    url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`
    peer = undefined
    wss.on('connection', (ws) => {
      ws.on('error', () => {})
      ws.once('message', () => {
        ws.send(JSON.stringify({ type: 'welcome', version: PROTOCOL_VERSION, port: 1, name: 'vm1', maxFrameSize: 1518, maxMessageSize: MAX_MESSAGE_SIZE, pingInterval: 30, capabilities: [] }))
        peer = ws
      })
    })
  })

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-30).join('\n') + '\n')
    for (const s of sockets.splice(0)) s.destroy()
    for (const h of handles.splice(0)) await h.stop()
    for (const c of wss.clients) c.terminate()
    await new Promise<void>((resolve) => { wss.close(() => { resolve() }) })
    fs.rmSync(dir, { recursive: true, force: true })
    await sleep(20)
    setLogSink(restore)
  })

  /** tap-agent --qemu-listen unix:… --name vm1 with a fake QEMU attached, once the hostile switch has welcomed it. */
  async function agentWithQemu (): Promise<{ h: ModeHandle, qemu: FrameReader, sw: WebSocket }> {
    const sockPath = path.join(dir, 'vm1.sock')
    const h = await listenForQemu({ kind: 'unix', path: sockPath }, { url, reconnectMin: 5, reconnectMax: 5 }, 'vm1')
    handles.push(h)
    const sock = net.connect(sockPath)
    sockets.push(sock)
    sock.on('error', () => {})
    await onceWithin(sock, 'connect')
    await waitFor(() => peer !== undefined && h.agents()[0]?.uplink.isUp === true, 3000, 'the agent welcomed')
    return { h, qemu: new FrameReader(sock, 4), sw: peer as WebSocket }
  }

  it('attack: a batch whose record runs past the end neither crashes tap-agent nor reaches QEMU; the next one does', async () => {
    const { h, qemu, sw } = await agentWithQemu()
    const good = encodeBatch([eth(BROADCAST, MAC_A, 1)])
    // A lone 3-byte tail, and a record that claims more bytes than follow.
    sw.send(Buffer.from([0, 0, 0]))
    const long = Buffer.from(good)
    long.writeUInt32BE(1000, 0)
    sw.send(long)
    sw.send(Buffer.concat([good, Buffer.from([0, 0])]))
    sw.send(encodeBatch([eth(BROADCAST, MAC_A, 2)])) // barrier
    await waitFor(() => qemu.frames.length >= 1, 3000, 'the barrier at QEMU')
    await sleep(0)
    assert.deepEqual(qemu.take().map((f) => f[14]), [2], 'only the well-formed batch reaches QEMU')
    const uplink = h.agents()[0]?.uplink
    assert.equal(uplink?.stats.rxMalformed, 3)
    const text = await agentRegistry(h.agents()[0] as NonNullable<ReturnType<ModeHandle['agents']>[number]>).metrics()
    assert.match(text, /tap_agent_uplink_refused_total\{kind="malformed_batch"\} 3/)
  })

  it('attack: a switch that pings and never reads cannot grow tap-agent\'s send queue without bound', async () => {
    const { h, sw } = await agentWithQemu()
    const uplink = h.agents()[0]?.uplink
    assert.ok(uplink !== undefined)
    // Stop reading what the agent sends: its pongs queue in the kernel, then in ws.
    const raw = (sw as unknown as { _socket: net.Socket })._socket
    raw.pause()
    const payload = Buffer.alloc(125, 0x55)
    const pings = 60_000 // ~7.9 MB of pongs: well past the kernel's socket buffers and the 1 MiB high-water mark
    for (let i = 0; i < pings; i++) sw.ping(payload)
    sw.send(encodeBatch([eth(BROADCAST, MAC_A, 9)])) // barrier: after it arrives, every ping has been handled
    await waitFor(() => (uplink.stats.rxMessages) >= 1, 10_000, 'the barrier at the agent')
    assert.ok(uplink.bufferedAmount <= 1024 * 1024 + 256, `tap-agent queued ${uplink.bufferedAmount} bytes of pongs`)
    assert.ok(uplink.stats.pongsDropped > 0, 'the unanswered pings are counted')
    raw.resume()
  })
})
