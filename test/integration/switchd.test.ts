import assert from 'node:assert/strict'
import WebSocket from 'ws'
import { SwitchServer, type ServerOptions } from '../../src/switch/daemon/switchd'
import { TestClient } from '../helpers/client'
import { onceWithin, waitFor } from '../helpers/net'
import { eth, BROADCAST, MAC_A, MAC_B, MAC_C } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'
import { MAX_MESSAGE_SIZE, SUBPROTOCOL_V1, encodeBatch } from '../../src/common/protocol'
import { R_BACKPRESSURE, R_MALFORMED, R_OVERSIZE } from '../../src/switch/core/reasons'

describe('switchd (integration)', () => {
  let server: SwitchServer
  let url: string
  let clients: TestClient[]
  let restore: (line: string) => void
  const logs: string[] = []

  async function start (opts: ServerOptions = {}): Promise<void> {
    server = new SwitchServer({ host: '127.0.0.1', port: 0, ...opts })
    const addr = await server.listen()
    url = `ws://127.0.0.1:${addr.port}/`
  }
  async function raw (): Promise<TestClient> { const c = await TestClient.raw(url); clients.push(c); return c }
  async function batched (hello?: Record<string, unknown>): Promise<TestClient> { const c = await TestClient.batched(url, hello); clients.push(c); return c }

  beforeEach(async () => {
    logs.length = 0
    restore = setLogSink((l) => { logs.push(l) })
    clients = []
    await start()
  })
  afterEach(async () => {
    for (const c of clients) c.close()
    await server.close()
    setLogSink(restore)
  })

  describe('raw mode', () => {
    it('floods a broadcast to every other port and forwards the learned reply to one', async () => {
      const [a, b, c] = [await raw(), await raw(), await raw()]
      await waitFor(() => server.ports().length === 3)
      const hello = eth(BROADCAST, MAC_A, 1)
      a.send([hello])
      await waitFor(() => b.frames.length === 1 && c.frames.length === 1, 3000, 'flood')
      assert.deepEqual(b.take(), [hello])
      c.take()
      const reply = eth(MAC_A, MAC_B, 2)
      b.send([reply])
      await waitFor(() => a.frames.length === 1, 3000, 'reply')
      assert.deepEqual(a.take(), [reply])
      // b is learned now: a -> b is unicast, c sees nothing
      a.send([eth(MAC_B, MAC_A, 3)])
      await waitFor(() => b.frames.length === 1, 3000, 'unicast')
      // Barrier: a broadcast from b reaches a and c after anything the unicast could have sent them.
      b.send([eth(BROADCAST, MAC_B, 4)])
      await waitFor(() => a.frames.length >= 1 && c.frames.length >= 1, 3000, 'the barrier')
      assert.deepEqual(c.take().map((f) => f[14]), [4], 'c saw only the barrier: the unicast was not flooded')
      assert.deepEqual(a.take().map((f) => f[14]), [4], 'nothing comes back out the ingress port')
      for (const cl of [a, b, c]) assert.deepEqual(cl.texts, [], 'raw clients never get text')
    })

    it('ignores (and counts) other text messages without closing the port', async () => {
      const [a, b] = [await raw(), await raw()]
      a.ws.send('hello')
      a.send([eth(BROADCAST, MAC_A)])
      await waitFor(() => b.frames.length === 1)
      assert.equal(server.textIgnored, 1)
      assert.deepEqual(a.texts, [])
    })

    it('answers a jor1k text ping:X with pong:X to that client only', async () => {
      const [jor1k, v86] = [await raw(), await raw()]
      jor1k.ws.send('ping:1234')
      await waitFor(() => jor1k.texts.length === 1)
      assert.deepEqual(jor1k.texts, ['pong:1234'])
      v86.send([eth(BROADCAST, MAC_B)])
      await waitFor(() => jor1k.frames.length === 1)
      assert.deepEqual(v86.texts, [], 'a client that sends no text never gets any')
      assert.equal(server.portTable.pongsSent, 1)
    })

    it('counts and drops oversize frames but keeps the port', async () => {
      const [a, b] = [await raw(), await raw()]
      a.send([eth(BROADCAST, MAC_A, 0, 1519), eth(BROADCAST, MAC_A, 1, 1518)])
      await waitFor(() => b.frames.length === 1)
      assert.equal(b.frames[0]?.length, 1518)
      const pa = server.ports().find((p) => p.kind === 'raw' && p.rxFrames === 2)
      assert.equal(pa?.drops[R_OVERSIZE], 1)
    })
  })

  describe('tapswitch mode', () => {
    it('answers hello with a welcome carrying the port and limits', async () => {
      const a = await batched({ name: 'host-a', mtu: 1500 })
      const w = a.welcome
      assert.ok(w)
      assert.equal(w.name, 'host-a')
      assert.equal(w.maxFrameSize, 1518)
      assert.equal(w.maxMessageSize, MAX_MESSAGE_SIZE)
      assert.equal(typeof w.port, 'number')
      const b = await batched({ name: 'host-a' })
      assert.equal(b.welcome?.name, `host-a-${String(b.welcome?.port)}`, 'names are unique among connected ports')
    })

    it('exchanges frames with raw clients on the same segment, both ways', async () => {
      const agent = await batched({ name: 'agent' })
      const browser = await raw()
      const frames = [eth(BROADCAST, MAC_A, 1), eth(BROADCAST, MAC_A, 2), eth(MAC_C, MAC_A, 3)]
      agent.send(frames)
      await waitFor(() => browser.frames.length === 3, 3000, 'batch -> raw')
      assert.deepEqual(browser.take(), frames)
      const back = [eth(MAC_A, MAC_B, 4), eth(MAC_A, MAC_B, 5)]
      browser.send(back)
      await waitFor(() => agent.frames.length === 2, 3000, 'raw -> batch')
      assert.deepEqual(agent.take(), back)
    })

    it('carries a batch from one agent to another as a batch', async () => {
      const a = await batched({ name: 'a' })
      const b = await batched({ name: 'b' })
      const frames = Array.from({ length: 32 }, (_, i) => eth(BROADCAST, MAC_A, i, 60 + i * 40))
      a.send(frames)
      await waitFor(() => b.frames.length === 32)
      assert.deepEqual(b.take(), frames)
    })
  })

  describe('malformed input', () => {
    it('closes only the port that sent a broken batch (1002); the others keep working', async () => {
      const bad = await batched({ name: 'bad' })
      const a = await batched({ name: 'a' })
      const r = await raw()
      bad.ws.send(Buffer.from([0, 0, 1, 0, 1, 2, 3]))
      assert.equal(await bad.closed(), 1002)
      a.send([eth(BROADCAST, MAC_A)])
      await waitFor(() => r.frames.length === 1)
      assert.equal(server.switch.stats.drops[R_MALFORMED], 1)
      assert.equal(server.ports().length, 2)
    })

    it('closes a port that sends data before its hello (1002)', async () => {
      const ws = new WebSocket(url, [SUBPROTOCOL_V1])
      ws.on('error', () => {})
      await onceWithin(ws, 'open')
      ws.send(encodeBatch([eth(BROADCAST, MAC_A)]))
      const [code] = await onceWithin<[number]>(ws, 'close')
      assert.equal(code, 1002)
    })

    it('closes a port whose hello is invalid (4002)', async () => {
      const ws = new WebSocket(url, [SUBPROTOCOL_V1])
      ws.on('error', () => {})
      await onceWithin(ws, 'open')
      ws.send('{"type":"hello","version":99}')
      const [code] = await onceWithin<[number]>(ws, 'close')
      assert.equal(code, 4002)
    })

    it('closes a port that never says hello (4001)', async () => {
      await server.close()
      await start({ helloTimeout: 0.2 })
      const ws = new WebSocket(url, [SUBPROTOCOL_V1])
      ws.on('error', () => {})
      const [code] = await onceWithin<[number]>(ws, 'close')
      assert.equal(code, 4001)
    })

    it('closes a port whose message exceeds the largest legal message (1009)', async () => {
      const big = await batched({ name: 'big' })
      const r = await raw()
      big.ws.send(Buffer.alloc(MAX_MESSAGE_SIZE + 1))
      assert.equal(await big.closed(), 1009)
      const other = await batched({ name: 'other' })
      other.send([eth(BROADCAST, MAC_A)])
      await waitFor(() => r.frames.length === 1)
    })

    it('refuses an unknown subprotocol with HTTP 400 before the upgrade', async () => {
      const ws = new WebSocket(url, ['chat'])
      ws.on('error', () => {})
      const [, res] = await onceWithin<[unknown, { statusCode: number }]>(ws, 'unexpected-response')
      assert.equal(res.statusCode, 400)
      assert.equal(server.rejected, 1)
      ws.terminate()
    })
  })

  describe('backpressure', () => {
    it('drops frames to a port that stops reading, keeps its buffer bounded and keeps serving the others', async function () {
      await server.close()
      const hwm = 128 * 1024
      await start({ highWaterMark: hwm })
      const sender = await batched({ name: 'sender' })
      const slow = await batched({ name: 'slow' })
      const fast = await raw()
      await waitFor(() => server.ports().length === 3)
      slow.ws.pause() // stops reading from its socket; TCP buffers fill, then ws queues on the switch
      const slowPort = server.ports().find((p) => p.name === 'slow')
      assert.ok(slowPort)
      const frame = eth(BROADCAST, MAC_A, 0, 1500)
      const batch = encodeBatch(Array.from({ length: 32 }, () => frame))
      const rounds = 600 // 19,200 frames, ~29 MB towards the slow port
      let maxBuffered = 0
      let fastReceived = 0
      for (let i = 0; i < rounds; i++) {
        sender.ws.send(batch)
        if (i % 20 === 19) {
          const expected = (i + 1) * 32
          await waitFor(() => { fastReceived += fast.take().length; return fastReceived === expected }, 5000, 'the fast port gets every frame')
          maxBuffered = Math.max(maxBuffered, slowPort.bufferedBytes())
        }
      }
      assert.ok(slowPort.drops[R_BACKPRESSURE] > 0, 'drops are counted')
      assert.ok(maxBuffered <= hwm + MAX_MESSAGE_SIZE, `buffer stayed bounded (${maxBuffered} bytes)`)
      assert.ok(logs.some((l) => l.includes('"backpressure_start"')), 'the start of congestion is logged')
      assert.ok(logs.filter((l) => l.includes('"backpressure_start"')).length < 20, 'logged on edges, not per drop')
    })
  })

  describe('keepalive and shutdown', () => {
    it('drops a peer that stops answering pings within two intervals', async function () {
      await server.close()
      await start({ pingInterval: 1 })
      const dead = await raw()
      await waitFor(() => server.ports().length === 1)
      dead.ws.pause()
      await waitFor(() => server.ports().length === 0, 4000, 'dead port dropped')
      assert.ok(logs.some((l) => l.includes('"port_dead"')))
    })

    it('forgets the MACs of a port that leaves', async () => {
      const a = await raw()
      const b = await raw()
      a.send([eth(BROADCAST, MAC_A)])
      await waitFor(() => b.frames.length === 1)
      assert.equal(server.switch.fdb.size, 1)
      a.close()
      await waitFor(() => server.switch.fdb.size === 0, 3000, 'fdb flushed')
    })

    it('closes every port with 1001 on shutdown', async () => {
      const a = await raw()
      const b = await batched({ name: 'b' })
      await server.close()
      assert.equal(await a.closed(), 1001)
      assert.equal(await b.closed(), 1001)
    })

    it('serves /healthz', async () => {
      const res = await fetch(url.replace('ws:', 'http:') + 'healthz')
      assert.equal(res.status, 200)
    })
  })
})
