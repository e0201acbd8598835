import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import WebSocket from 'ws'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { useSwitchd } from '../helpers/switchd-fixture'
import { TestClient } from '../helpers/client'
import { eth, frame, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'
import type { BatchPort } from '../../src/switch/io/ws-port'
import { RawWs, encodeFrame, OP_TEXT, OP_BINARY, OP_CONT, OP_PING, OP_PONG, OP_CLOSE } from '../helpers/rawws'
import { SUBPROTOCOL_V1, MAX_MESSAGE_SIZE, encodeBatch, decodeBatch, parseWelcome, type Welcome } from '../../src/common/protocol'
import { buildConfig } from '../../src/switch/control/config'
import { portView } from '../../src/switch/control/api/views'
import { R_BACKPRESSURE } from '../../src/switch/core/reasons'
import { makePki } from '../helpers/tls'
import { onceWithin, waitFor } from '../helpers/net'

describe('switchd: WebSocket ports carried by the native fast path (issue 24)', () => {
  const sd = useSwitchd()
  const batched = async (hello?: Record<string, unknown>): Promise<TestClient> => await sd.batched(hello)
  const port = (name: string): BatchPort => sd.port(name) as BatchPort
  const native = (name: string): boolean => sd.native(name)

  it('3 ports: known unicast is forwarded natively (the port counters and the hit counter move), floods reach all', async () => {
    const [a, b, c] = [await batched({ name: 'a' }), await batched({ name: 'b' }), await batched({ name: 'c' })]
    await waitFor(() => native('a') && native('b') && native('c'), 10_000, 'native')
    a.send([eth(BROADCAST, MAC_A, 1)])
    await waitFor(() => b.frames.length === 1 && c.frames.length === 1, 10_000, 'flood')
    b.take(); c.take()
    b.send([eth(MAC_A, MAC_B, 2)])
    await waitFor(() => a.frames.length === 1, 10_000, 'reply')
    a.take()
    // The slow path forwarded it once: a flow each way now.
    a.send([eth(MAC_B, MAC_A, 3)])
    await waitFor(() => b.frames.length === 1, 10_000, 'a->b')
    b.take()
    const fp = port('a').fastPath as NonNullable<BatchPort['fastPath']>
    const before = fp.stats().forwarded
    const N = 64
    const frames = Array.from({ length: N }, (_, i) => eth(MAC_B, MAC_A, 100 + i))
    let messages = 0
    b.ws.on('message', (_d: Buffer, binary: boolean) => { if (binary) messages++ })
    a.send(frames)
    b.send([eth(MAC_A, MAC_B, 99)])
    await waitFor(() => b.frames.length === N && a.frames.length === 1, 10_000, 'burst')
    assert.deepEqual(b.take(), frames)
    assert.equal(messages, 1, 'a batch of 64 forwarded natively leaves as one message')
    assert.equal(c.frames.length, 0)
    sd.switchd.syncFastPaths()
    assert.ok(fp.stats().forwarded - before >= N, `forwarded natively: ${fp.stats().forwarded - before}`)
    assert.ok(port('b').txFrames >= N + 2)
  })
})

describe('switchd: the native WebSocket reader against a hand-made client (issue 24)', () => {
  const sd = useSwitchd()
  const portNamed = (name: string): BatchPort | undefined => sd.port(name)
  const handMade = async (name: string): Promise<RawWs> => await sd.handMade(name)

  /** A peer that learned MAC_B, and the hand-made port that learned MAC_A (so a frame to MAC_B is known unicast). */
  async function pair (): Promise<{ r: RawWs, b: TestClient }> {
    const r = await handMade('hand')
    const b = await sd.batched({ name: 'b' })
    await waitFor(() => sd.native('b'), 10_000, 'b native')
    b.send([eth(BROADCAST, MAC_B, 1)])
    await r.until(() => r.messages.some((m) => m.opcode === OP_BINARY), 10_000)
    return { r, b }
  }

  it('a batch split over many TCP writes arrives whole', async () => {
    const { r, b } = await pair()
    const frames = Array.from({ length: 20 }, (_, i) => eth(MAC_B, MAC_A, i))
    const wire = encodeFrame(OP_BINARY, encodeBatch(frames))
    for (let i = 0; i < wire.length; i += 7) {
      r.write(wire.subarray(i, i + 7))
      await new Promise((resolve) => setImmediate(resolve))
    }
    await waitFor(() => b.frames.length === 20, 10_000, 'frames')
    assert.deepEqual(b.take(), frames)
  })

  it('fragmented text with pings between the fragments: each ping answered, the text read whole', async () => {
    const { r } = await pair()
    const before = sd.switchd.portTable.controlIgnored
    const text = Buffer.from(JSON.stringify({ type: 'something-new', pad: 'x'.repeat(300) }))
    r.write(encodeFrame(OP_TEXT, text.subarray(0, 100), { fin: false }))
    r.write(encodeFrame(OP_PING, Buffer.from('p1')))
    r.write(encodeFrame(OP_CONT, text.subarray(100, 200), { fin: false }))
    r.write(encodeFrame(OP_PING, Buffer.from('p2')))
    r.write(encodeFrame(OP_CONT, text.subarray(200), { fin: true }))
    await waitFor(() => sd.switchd.portTable.controlIgnored === before + 1, 10_000, 'text read')
    await r.until(() => r.messages.filter((m) => m.opcode === OP_PONG).length === 2, 10_000)
    assert.deepEqual(r.messages.filter((m) => m.opcode === OP_PONG).map((m) => m.data.toString()), ['p1', 'p2'])
    assert.equal(r.closeCode, undefined)
  })

  it('a close between the fragments of a batch: answered, the port goes, nothing of the batch is forwarded', async () => {
    const { r, b } = await pair()
    const batch = encodeBatch([eth(MAC_B, MAC_A, 1), eth(MAC_B, MAC_A, 2)])
    r.write(encodeFrame(OP_BINARY, batch.subarray(0, 30), { fin: false }))
    const close = Buffer.alloc(2); close.writeUInt16BE(1000)
    r.write(encodeFrame(OP_CLOSE, close))
    assert.equal(await r.closed(10_000), 1000)
    await waitFor(() => portNamed('hand') === undefined, 10_000, 'port gone')
    assert.equal(b.frames.length, 0)
  })

  it('attack: a frame longer than the largest message is refused with 1009 before its payload is read', async () => {
    const r = await handMade('big')
    r.write(encodeFrame(OP_BINARY, Buffer.alloc(16), { declaredLength: BigInt(MAX_MESSAGE_SIZE + 1) }))
    assert.equal(await r.closed(10_000), 1009)
    await waitFor(() => portNamed('big') === undefined, 10_000, 'port gone')
  })

  it('attack: an unmasked frame from the client is refused with 1002', async () => {
    const r = await handMade('bare')
    r.write(encodeFrame(OP_BINARY, encodeBatch([eth(BROADCAST, MAC_A, 1)]), { mask: false }))
    assert.equal(await r.closed(10_000), 1002)
    await waitFor(() => portNamed('bare') === undefined, 10_000, 'port gone')
  })

  it('attack: a batch whose records do not tile the message: its port is closed with 1002, as on the JS path', async () => {
    const { r, b } = await pair()
    const good = encodeBatch([eth(MAC_B, MAC_A, 1)])
    const bad = Buffer.concat([good, Buffer.from([0, 0, 0, 200, 1, 2, 3])])
    r.write(encodeFrame(OP_BINARY, bad))
    assert.equal(await r.closed(10_000), 1002)
    r.write(encodeFrame(OP_BINARY, encodeBatch([eth(MAC_B, MAC_A, 9)])))
    await waitFor(() => portNamed('hand') === undefined, 10_000, 'port gone')
    // What came before the bad record is forwarded, as the JS path does; nothing after it.
    assert.ok(b.frames.every((f) => !f.equals(eth(MAC_B, MAC_A, 9))))
  })
})

describe('switchd: the sessions of natively carried ports (issue 24)', function () {
  this.timeout(180_000)
  let server: SwitchServer
  let url: string
  const closers: Array<() => void> = []
  const logs: string[] = []
  let restore: (line: string) => void

  async function start (config: Record<string, unknown>, scheme = 'ws'): Promise<void> {
    server = new SwitchServer({ config: buildConfig(config, 'test'), host: '127.0.0.1', port: 0 })
    url = `${scheme}://${scheme === 'wss' ? 'localhost' : '127.0.0.1'}:${(await server.listen()).port}/`
  }
  function portNamed (name: string): BatchPort | undefined { return server.ports().find((p) => p.name === name) as BatchPort | undefined }
  async function client (hello: Record<string, unknown>, opts: WebSocket.ClientOptions = {}): Promise<{ ws: WebSocket, welcome: Welcome, got: Buffer[] }> {
    const ws = new WebSocket(url, [SUBPROTOCOL_V1], { perMessageDeflate: false, maxPayload: MAX_MESSAGE_SIZE, ...opts })
    ws.on('error', () => {})
    closers.push(() => { ws.terminate() })
    await onceWithin(ws, 'open')
    ws.send(JSON.stringify({ type: 'hello', version: 1, ...hello }))
    const [data] = await onceWithin<[Buffer]>(ws, 'message')
    const got: Buffer[] = []
    ws.on('message', (d: Buffer, binary: boolean) => { if (binary) got.push(...decodeBatch(d).map((f) => Buffer.from(f))) })
    return { ws, welcome: parseWelcome(data.toString()), got }
  }

  beforeEach(() => { logs.length = 0; restore = setLogSink((l) => { logs.push(l) }) })
  afterEach(async () => {
    for (const c of closers.splice(0)) c()
    await server.close()
    setLogSink(restore)
  })

  it('a natively carried port whose link went silent is parked, and its resume is carried natively again', async () => {
    await start({ pingInterval: 1, resumeGrace: 60 })
    const first = await client({ name: 'roamer' })
    const peer = await client({ name: 'peer' })
    await waitFor(() => portNamed('roamer')?.fastPath != null && portNamed('peer')?.fastPath != null, 10_000, 'native')
    assert.equal(portView(portNamed('roamer') as BatchPort).path, 'native')
    first.ws.send(encodeBatch([eth(BROADCAST, MAC_A, 1)]))
    await waitFor(() => peer.got.length === 1, 10_000, 'flood')
    ;(first.ws as unknown as { _socket: { pause: () => void } })._socket.pause() // no pong: keepalive finds it dead
    await waitFor(() => logs.some((l) => l.includes('"port_parked"')), 30_000, 'parked')
    assert.equal(portNamed('roamer')?.fastPath, null)
    const back = await client({ name: 'roamer', resume: first.welcome.resume })
    assert.equal(back.welcome.resumed, true)
    await waitFor(() => portNamed('roamer')?.fastPath != null, 10_000, 'the resumed connection carried natively')
    peer.ws.send(encodeBatch([eth(MAC_A, MAC_B, 2)]))
    await waitFor(() => back.got.length === 1, 10_000, 'unicast reaches the resumed port')
    assert.deepEqual(back.got, [eth(MAC_A, MAC_B, 2)])
  })

  it('attack: a natively carried port whose peer reads nothing is closed with 4004, and switchd buffers no more than its mark', async () => {
    const HWM = 64 * 1024
    await start({ pingInterval: 1, portBuffer: HWM, limits: { notReadingTimeout: 1 } })
    const deaf = await client({ name: 'deaf' })
    const sender = await client({ name: 'sender' })
    await waitFor(() => portNamed('deaf')?.fastPath != null && portNamed('sender')?.fastPath != null, 10_000, 'native')
    deaf.ws.send(encodeBatch([eth(BROADCAST, MAC_A, 1)]))
    await waitFor(() => sender.got.length === 1, 10_000, 'learned')
    ;(deaf.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
    const port = portNamed('deaf') as BatchPort
    const batch = encodeBatch(Array.from({ length: 40 }, (_, i) => frame(`${MAC_A} ${MAC_B} 88b5`, 1400 + (i & 1))))
    let most = 0
    const deadline = Date.now() + 120_000
    while (portNamed('deaf') !== undefined && Date.now() < deadline) {
      if (sender.ws.bufferedAmount < 1024 * 1024) sender.ws.send(batch)
      most = Math.max(most, port.bufferedBytes())
      await new Promise((resolve) => setTimeout(resolve, 2))
    }
    await waitFor(() => portNamed('deaf') === undefined, 30_000, 'closed')
    assert.equal(server.portTable.closedNotReading, 1)
    assert.ok(most <= HWM + 4 * MAX_MESSAGE_SIZE, `buffered for the port: most ${most}`)
    assert.ok(port.drops[R_BACKPRESSURE] > 0)
  })

  it('a TLS listener keeps its ports on the JS path', async function () {
    this.timeout(60_000)
    const pki = makePki()
    await start({ tls: { cert: pki.cert, key: pki.key } }, 'wss')
    const ca = fs.readFileSync(pki.ca)
    const a = await client({ name: 'a' }, { ca })
    const b = await client({ name: 'b' }, { ca })
    a.ws.send(encodeBatch([eth(BROADCAST, MAC_A, 1)]))
    await waitFor(() => b.got.length === 1, 10_000, 'flood')
    assert.equal(portNamed('a')?.fastPath, null)
    assert.equal(portView(portNamed('a') as BatchPort).path, 'js')
    assert.ok(server.nativePorts.fallbacks.tls >= 2)
  })

  it('fastPath: false keeps WebSocket ports on the JS path', async () => {
    await start({ fastPath: false })
    const a = await client({ name: 'a' })
    const b = await client({ name: 'b' })
    a.ws.send(encodeBatch([eth(BROADCAST, MAC_A, 1)]))
    await waitFor(() => b.got.length === 1, 10_000, 'flood')
    assert.equal(portNamed('a')?.fastPath, null)
    assert.equal(server.nativePorts.carried, 0)
    assert.equal(server.switch.fastPath, null)
  })
})
