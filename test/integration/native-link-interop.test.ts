/**
 * The native link against a switch we control (a `ws` WebSocketServer that
 * sends what each test says, down to raw bytes on its socket): fragments,
 * pings between them, data before the welcome, broken batches, a close in
 * the middle of a batch, a batch in many TCP writes, a switch that stops
 * reading. Every case runs twice, over the native link and over `ws` (the JS
 * path), and must come out the same: the link behaves as the `ws` client did.
 */

import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import * as net from 'node:net'
import { createHash } from 'node:crypto'
import { WebSocketServer, type WebSocket } from 'ws'
import { Uplink, type UplinkOptions } from '../../src/common/uplink'
import { Agent } from '../../src/agent/agent'
import { linkBindingOf } from '../../src/agent/native-link'
import { loadNative } from '../../src/common/native'
import { SUBPROTOCOL_V1, MAX_MESSAGE_SIZE, encodeBatch, decodeBatch, countRecords } from '../../src/common/protocol'

const countOf = (b: Buffer): number => Math.max(0, countRecords(b))
import { PairTap } from '../helpers/pair-tap'
import { waitFor, onceWithin, sleep } from '../helpers/net'
import { eth, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'
import { encodeFrame, OP_BINARY, OP_PING, OP_TEXT } from '../helpers/rawws'
import { setLogSink } from '../../src/common/log'

const links = linkBindingOf(loadNative('tests'))

function welcome (pingInterval = 30): string {
  return JSON.stringify({ type: 'welcome', version: 1, port: 1, name: 'fake', maxFrameSize: 1518, maxMessageSize: MAX_MESSAGE_SIZE, pingInterval, capabilities: [] })
}

/** A switch we control: each connection's hello goes to `onHello`; close codes it got are kept. */
class FakeSwitch {
  readonly wss: WebSocketServer
  readonly closes: number[] = []
  readonly pongs: number[] = []
  readonly received: Buffer[] = []
  conns: WebSocket[] = []
  onHello: (ws: WebSocket) => void = (ws) => { ws.send(welcome()) }

  constructor (opts: { autoPong?: boolean } = {}) {
    this.wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: MAX_MESSAGE_SIZE, handleProtocols: () => SUBPROTOCOL_V1, autoPong: opts.autoPong ?? true })
    this.wss.on('connection', (ws) => {
      this.conns.push(ws)
      ws.on('error', () => {})
      ws.on('pong', () => { this.pongs.push(Date.now()) })
      ws.on('close', (code) => { this.closes.push(code) })
      ws.once('message', () => {
        this.onHello(ws)
        ws.on('message', (data: Buffer, isBinary) => { if (isBinary) this.received.push(Buffer.from(data)) })
      })
    })
  }

  get port (): number { return (this.wss.address() as AddressInfo).port }
  get last (): WebSocket { return this.conns[this.conns.length - 1] as WebSocket }
  raw (ws: WebSocket): net.Socket { return (ws as unknown as { _socket: net.Socket })._socket }

  async close (): Promise<void> {
    for (const c of this.conns) c.terminate()
    await new Promise<void>((resolve) => { this.wss.close(() => { resolve() }) })
  }
}

for (const native of [true, false]) {
  describe(`tap-agent against a fake switch, ${native ? 'native link' : 'JS path'} (interop)`, () => {
    let sw: FakeSwitch
    let agent: Agent | undefined
    let tap: PairTap
    let restore: (line: string) => void
    const logs: string[] = []

    async function start (extra: Partial<UplinkOptions> = {}, opts: { autoPong?: boolean } = {}): Promise<void> {
      sw = new FakeSwitch(opts)
      await onceWithin(sw.wss, 'listening')
      tap = new PairTap()
      const uplink = new Uplink({ url: `ws://127.0.0.1:${sw.port}/`, name: 'interop', reconnectMin: 5, reconnectMax: 5, ...extra })
      agent = new Agent(tap, uplink, 0, false, native ? links : undefined)
      agent.start()
    }
    const path = (): string => agent?.uplink.path.path ?? ''

    beforeEach(() => {
      logs.length = 0
      restore = setLogSink((l) => { logs.push(l) })
    })
    afterEach(async () => {
      await agent?.stop()
      agent = undefined
      await sw.close()
      setLogSink(restore)
    })

    it('takes a welcome in three fragments with a ping between them, answers the ping, then carries a batch', async () => {
      await start()
      sw.onHello = (ws) => {
        const text = welcome()
        ws.send(text.slice(0, 10), { fin: false })
        ws.ping(Buffer.from('between'))
        ws.send(text.slice(10, 40), { fin: false })
        ws.send(text.slice(40), { fin: true })
      }
      await waitFor(() => agent?.uplink.isUp === true, undefined, 'up')
      assert.equal(path(), native ? 'native' : 'js')
      await waitFor(() => sw.pongs.length >= 1, undefined, 'the pong')
      sw.last.send(encodeBatch([eth(MAC_A, MAC_B), eth(BROADCAST, MAC_B, 0, 1400)]))
      await tap.waitReceived(2)
      assert.deepEqual(tap.received.map((f) => f.length), [60, 1400])
      // And the other way, after the welcome only.
      tap.inject([eth(MAC_B, MAC_A)])
      await waitFor(() => sw.received.length >= 1, undefined, 'a batch at the switch')
      assert.deepEqual(sw.received[0], encodeBatch([eth(MAC_B, MAC_A)]))
    })

    it('masks with random keys when asked (--mask always): the switch reads every batch as it was sent', async () => {
      await start({ mask: 'always' })
      await waitFor(() => agent?.uplink.isUp === true, undefined, 'up')
      await waitFor(() => !native || !tap.reading, undefined, 'the link reads the TAP')
      const frames = Array.from({ length: 300 }, (_, i) => eth(BROADCAST, MAC_A, 0, 60 + (i * 37) % 1400))
      await tap.feed(frames)
      await waitFor(() => sw.received.reduce((n, b) => n + countOf(b), 0) >= frames.length, undefined, 'every frame at the switch')
      const got: Buffer[] = []
      for (const b of sw.received) got.push(...decodeBatch(b))
      assert.deepEqual(got, frames)
    })

    it('hands control messages after the welcome up at once (a link drill), between batches', async () => {
      await start()
      await waitFor(() => agent?.uplink.isUp === true, undefined, 'up')
      sw.last.send(encodeBatch([eth(MAC_A, MAC_B)]))
      sw.last.send(JSON.stringify({ type: 'link', up: false }))
      sw.last.send(encodeBatch([eth(MAC_A, MAC_B, 0, 200)]))
      await waitFor(() => agent?.linkDown === true, undefined, 'link down')
      await tap.waitReceived(2)
      sw.last.send(JSON.stringify({ type: 'link', up: true }))
      await waitFor(() => agent?.linkDown === false, undefined, 'link up')
    })

    it('closes with 1002 "data before welcome" when a batch comes first', async () => {
      await start()
      sw.onHello = (ws) => { ws.send(encodeBatch([eth(MAC_A, MAC_B)])) }
      await waitFor(() => sw.closes.length >= 1, undefined, 'the close')
      assert.equal(sw.closes[0], 1002)
      assert.equal(tap.received.length, 0)
    })

    it('drops and counts a batch whose record runs past its end, and keeps the connection', async () => {
      await start()
      await waitFor(() => agent?.uplink.isUp === true, undefined, 'up')
      const bad = encodeBatch([eth(MAC_A, MAC_B), eth(MAC_A, MAC_B)])
      bad.writeUInt32BE(61, 64) // the second record claims one byte more than there is
      sw.last.send(bad)
      sw.last.send(Buffer.from([0, 0, 0])) // a length cut short
      sw.last.send(encodeBatch([eth(MAC_A, MAC_B, 0, 100)]))
      await tap.waitReceived(1)
      agent?.fold()
      assert.equal(agent?.uplink.stats.rxMalformed, 2)
      assert.deepEqual(tap.received.map((f) => f.length), [100])
      assert.equal(agent?.uplink.isUp, true)
    })

    it('takes a batch written one byte per TCP write', async () => {
      await start()
      await waitFor(() => agent?.uplink.isUp === true, undefined, 'up')
      const frames = [eth(MAC_A, MAC_B), eth(MAC_A, MAC_B, 0, 300), eth(MAC_A, MAC_B, 0, 1514)]
      const wire = encodeFrame(OP_BINARY, encodeBatch(frames), { mask: false })
      const s = sw.raw(sw.last)
      s.setNoDelay(true)
      for (let i = 0; i < wire.length; i += 1 + (i % 97)) {
        s.write(wire.subarray(i, Math.min(wire.length, i + 1 + (i % 97))))
        if (i % 7 === 0) await sleep(0)
      }
      await tap.waitReceived(3)
      assert.deepEqual(tap.received, frames)
    })

    it('answers a close that comes in the middle of a fragmented batch, and writes none of it', async () => {
      await start()
      await waitFor(() => agent?.uplink.isUp === true, undefined, 'up')
      const batch = encodeBatch([eth(MAC_A, MAC_B), eth(MAC_A, MAC_B)])
      sw.last.send(batch.subarray(0, 64), { fin: false })
      sw.last.close(4000, 'going')
      await waitFor(() => sw.closes.length >= 1, undefined, 'the closing handshake')
      assert.equal(sw.closes[0], 4000, 'our close frame echoed the code')
      await waitFor(() => logs.some((l) => l.includes('"uplink_lost"')), undefined, 'uplink_lost')
      assert.ok(logs.some((l) => l.includes('"uplink_lost"') && l.includes('"code":4000')))
      assert.equal(tap.received.length, 0)
    })

    it('counts bursts dropped while the switch does not read, within the high-water mark', async () => {
      await start({ highWaterMark: 64 * 1024 })
      await waitFor(() => agent?.uplink.isUp === true, undefined, 'up')
      await waitFor(() => !native || !tap.reading, undefined, 'the link reads the TAP')
      sw.raw(sw.last).pause()
      const big = eth(BROADCAST, MAC_A, 0, 1500)
      // Bounded by a count: the socket's kernel buffers fill first, then the queue, then bursts are refused.
      for (let i = 0; i < 40_000 && (agent?.stats.droppedBackpressure ?? 0) === 0; i++) {
        try { tap.inject([big]) } catch { await sleep(1) }
        if (i % 200 === 0) { await sleep(1); agent?.fold() }
      }
      agent?.fold()
      assert.ok((agent?.stats.droppedBackpressure ?? 0) > 0, 'bursts were refused and counted')
      assert.ok((agent?.uplink.bufferedAmount ?? 0) <= 64 * 1024 + MAX_MESSAGE_SIZE + 14, 'the queue stays bounded')
    })

    it('attack: a message claiming more than the largest allowed closes with 1009 before its payload is waited for', async () => {
      await start()
      await waitFor(() => agent?.uplink.isUp === true, undefined, 'up')
      sw.raw(sw.last).write(encodeFrame(OP_BINARY, Buffer.alloc(16), { mask: false, declaredLength: 1n << 40n }))
      await waitFor(() => sw.closes.length >= 1, undefined, 'the close')
      assert.equal(sw.closes[0], 1009)
    })

    it('attack: a masked frame from the switch closes with 1002', async () => {
      await start()
      await waitFor(() => agent?.uplink.isUp === true, undefined, 'up')
      sw.raw(sw.last).write(encodeFrame(OP_BINARY, encodeBatch([eth(MAC_A, MAC_B)]), { mask: true }))
      await waitFor(() => sw.closes.length >= 1, undefined, 'the close')
      assert.equal(sw.closes[0], 1002)
      assert.equal(tap.received.length, 0)
    })

    it('attack: a switch that pings and never reads gets pongs only within the high-water mark; the rest are counted', async () => {
      await start({ highWaterMark: 16 * 1024 })
      await waitFor(() => agent?.uplink.isUp === true, undefined, 'up')
      const s = sw.raw(sw.last)
      s.pause()
      const ping = encodeFrame(OP_PING, Buffer.alloc(125, 0x70), { mask: false })
      const chunk = Buffer.concat(Array.from({ length: 1000 }, () => ping))
      // Bounded by a count: enough pongs to fill the kernel's buffers, then our queue's mark.
      for (let i = 0; i < 200 && (agent?.uplink.stats.pongsDropped ?? 0) === 0; i++) {
        s.write(chunk)
        await sleep(5)
      }
      await waitFor(() => (agent?.uplink.stats.pongsDropped ?? 0) > 0, undefined, 'pongs dropped')
      assert.ok((agent?.uplink.bufferedAmount ?? 0) <= 16 * 1024 + MAX_MESSAGE_SIZE + 14, 'the queue stays bounded')
    })

    it('parses what came in the same read as the upgrade\'s answer (a ping and the welcome: the prefill) first', async () => {
      // A raw switch: the 101, a ping and the welcome in ONE write, so they arrive before ws's 'open'.
      const server = net.createServer((c) => {
        c.on('error', () => {})
        let head = ''
        c.on('data', (d: Buffer) => {
          if (head.includes('\r\n\r\n')) { rawGot.push(d); return }
          head += d.toString('latin1')
          const key = /sec-websocket-key: *(\S+)/i.exec(head)?.[1]
          if (key === undefined || !head.includes('\r\n\r\n')) return
          const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
          c.write(Buffer.concat([
            Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: ${SUBPROTOCOL_V1}\r\n\r\n`),
            encodeFrame(OP_PING, Buffer.from('early'), { mask: false }),
            encodeFrame(OP_TEXT, Buffer.from(welcome()), { mask: false })
          ]))
        })
      })
      const rawGot: Buffer[] = []
      await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
      try {
        await start({ url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/` })
        await waitFor(() => agent?.uplink.isUp === true, undefined, 'up')
        // The hello and the pong (opcode 0xa) come back masked: find the pong's header among what we got.
        await waitFor(() => Buffer.concat(rawGot).includes(0x8a), undefined, 'the pong')
        assert.equal(path(), native ? 'native' : 'js')
      } finally {
        await agent?.stop()
        agent = undefined
        server.close()
      }
    })

    it('presumes a switch that stays silent dead (the watchdog) and closes with 4003', async function () {
      await start({}, { autoPong: false })
      sw.onHello = (ws) => { ws.send(welcome(1)) }
      await waitFor(() => agent?.uplink.isUp === true, undefined, 'up')
      await waitFor(() => logs.some((l) => l.includes('"uplink_dead"')), 20_000, 'uplink_dead')
      await waitFor(() => sw.closes.length >= 1, undefined, 'the close')
      assert.ok(sw.closes[0] === 4003 || sw.closes[0] === 1006, `closed with ${String(sw.closes[0])}`)
    })
  })
}
