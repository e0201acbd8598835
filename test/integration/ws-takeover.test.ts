/**
 * src/common/ws-takeover.ts against a real `ws` on both ends: once taken
 * over, the fd carries raw RFC 6455 frames both ways, `ws` and Node's socket
 * read nothing more, bytes read but not parsed come back as the prefill, and
 * a connection that is not at a safe point is refused with the reason.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as net from 'node:net'
import { WebSocket, WebSocketServer } from 'ws'
import { takeOver, takeoverRefusal } from '../../src/common/ws-takeover'

function serve (): Promise<{ wss: WebSocketServer, url: string }> {
  return new Promise((resolve) => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 }, () => {
      resolve({ wss, url: `ws://127.0.0.1:${(wss.address() as net.AddressInfo).port}` })
    })
  })
}

/** Read from a non-blocking fd until `n` bytes came (bounded: 5 s). */
async function readFd (fd: number, n: number): Promise<Buffer> {
  const out: Buffer[] = []
  let got = 0
  const until = Date.now() + 5000
  while (got < n && Date.now() < until) {
    const b = Buffer.alloc(n - got)
    try {
      const k = fs.readSync(fd, b, 0, b.length, null)
      if (k === 0) break
      out.push(b.subarray(0, k))
      got += k
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }
  return Buffer.concat(out)
}

describe('ws-takeover (integration)', () => {
  let wss: WebSocketServer
  let url: string
  const open: WebSocket[] = []

  beforeEach(async () => { ({ wss, url } = await serve()) })
  afterEach(async () => {
    for (const w of open) w.terminate()
    open.length = 0
    await new Promise((resolve) => { wss.close(resolve) })
  })

  it('client side at open: the fd carries raw frames both ways; ws hears nothing more', async () => {
    const serverSide = new Promise<WebSocket>((resolve) => { wss.once('connection', resolve) })
    const client = new WebSocket(url)
    open.push(client)
    await new Promise((resolve) => { client.once('open', resolve) })
    const t = takeOver(client)
    assert.ok(t !== undefined, takeoverRefusal(client))
    const peer = await serverSide
    let heardByWs = 0
    client.on('message', () => { heardByWs++ })
    // Server -> client: an unmasked text frame arrives on the fd as bytes.
    const fromPeer = new Promise<void>((resolve) => { peer.send('hi', () => { resolve() }) })
    await fromPeer
    const raw = await readFd(t.fd, 4)
    assert.deepEqual([...raw], [0x81, 2, 0x68, 0x69])
    // Client -> server: a masked (zero mask) binary frame written on the fd is a message to the peer.
    const got = new Promise<Buffer>((resolve) => { peer.once('message', (d: Buffer) => { resolve(d) }) })
    fs.writeSync(t.fd, Buffer.from([0x82, 0x83, 0, 0, 0, 0, 1, 2, 3]))
    assert.deepEqual([...await got], [1, 2, 3])
    assert.equal(heardByWs, 0)
    t.socket.destroy()
  })

  it('server side: bytes read but not parsed come back as the prefill', async () => {
    const serverSide = new Promise<WebSocket>((resolve) => { wss.once('connection', resolve) })
    const client = new WebSocket(url)
    open.push(client)
    await new Promise((resolve) => { client.once('open', resolve) })
    const peer = await serverSide
    // Take over at the first message, in the same tick: the rest of what was read stays raw.
    const first = new Promise<Buffer>((resolve) => {
      peer.once('message', () => {
        const sock = (peer as unknown as { _socket: net.Socket })._socket
        sock.pause()
        queueMicrotask(() => { resolve(Buffer.alloc(0)) })
      })
    })
    client.send('one')
    await first
    assert.equal(takeoverRefusal(peer), undefined)
    const t = takeOver(peer)
    assert.ok(t !== undefined)
    // Written after the takeover: it reaches the fd, not ws.
    client.send(Buffer.from([9, 9]))
    const raw = await readFd(t.fd, 8)
    const all = t.prefill === null ? raw : Buffer.concat([t.prefill, raw])
    assert.equal(all[0], 0x82)
    assert.equal(all[1], 0x82) // masked, 2 bytes
    t.socket.destroy()
  })

  it('refuses a connection with bytes half-parsed, and says so', async () => {
    const serverSide = new Promise<WebSocket>((resolve) => { wss.once('connection', resolve) })
    const client = new WebSocket(url)
    open.push(client)
    await new Promise((resolve) => { client.once('open', resolve) })
    const peer = await serverSide
    // Half a frame: the header of a 10-byte binary message and 3 of its bytes.
    const sock = (client as unknown as { _socket: net.Socket })._socket
    sock.write(Buffer.from([0x82, 0x8a, 0, 0, 0, 0, 1, 2, 3]))
    const until = Date.now() + 5000
    while (takeoverRefusal(peer) === undefined && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 5))
    assert.equal(takeoverRefusal(peer), 'bytes half-parsed')
    assert.equal(takeOver(peer), undefined)
  })

  it('attack: a peer that sent more than the native reader takes ahead of its turn keeps the JS path', () => {
    // The shape takeoverRefusal reads of a ws WebSocket, at a safe point but with 70 KiB read ahead.
    const listener = function socketOnData (): void {}
    const names = ['socketOnClose', 'socketOnData', 'socketOnEnd', 'socketOnError']
    const socket = {
      encrypted: false,
      _handle: { fd: 99, readStop: () => 0, writeQueueSize: 0 },
      writableLength: 0,
      readable: true,
      destroyed: false,
      readableLength: 70 * 1024,
      listeners: (ev: string) => [Object.defineProperty(() => {}, 'name', { value: names.find((n) => n.toLowerCase().endsWith(ev)) ?? listener.name })]
    }
    const fake = { readyState: 1, OPEN: 1, _socket: socket, _receiver: { _state: 0, _bufferedBytes: 0, _fragments: [] }, _sender: { _bufferedBytes: 0 } }
    assert.equal(takeoverRefusal(fake as unknown as WebSocket), 'too much read ahead')
    socket.readableLength = 100
    assert.equal(takeoverRefusal(fake as unknown as WebSocket), undefined)
  })
})
