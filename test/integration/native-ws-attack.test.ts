/**
 * Attacks on the WebSocket ports the native fast path carries (issue 24,
 * attack review): what the slow path would drop must not be forwarded as a
 * native hit. Each test makes a flow first (one frame the slow path
 * forwards), then sends what the slow path refuses, then a barrier frame.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import type * as net from 'node:net'
import * as path from 'node:path'
import { spawnLogged, waitForLine, type Logged } from '../helpers/proc'
import { TestClient } from '../helpers/client'
import { waitFor } from '../helpers/net'
import { tcpFrame } from '../helpers/tcp'
import { CAP_OFFLOAD } from '../../src/common/protocol'
import { R_BAD_OFFLOAD } from '../../src/switch/core/reasons'
import type { BatchPort } from '../../src/switch/io/ws-port'
import type { FastPath } from '../../src/switch/io/fast-path'
import { type RawWs, encodeFrame, OP_TEXT, OP_BINARY } from '../helpers/rawws'
import { eth, BROADCAST, MAC_A, MAC_B, MAC_C } from '../helpers/frames'
import { encodeBatch } from '../../src/common/protocol'
import { useSwitchd, helloFrame } from '../helpers/switchd-fixture'

const SWITCHD = path.resolve(__dirname, '../../bin/switchd.js')
const A = Buffer.from('020000000a01', 'hex')
const B = Buffer.from('020000000b02', 'hex')
const BCAST = Buffer.alloc(6, 0xff)

describe('switchd: attacks on natively carried WebSocket ports (issue 24)', function () {
  this.timeout(30_000)
  const sd = useSwitchd()

  function port (name: string): BatchPort { return sd.port(name) as BatchPort }
  async function offload (name: string): Promise<TestClient> {
    const c = await sd.batched({ name, capabilities: [CAP_OFFLOAD] })
    await waitFor(() => sd.native(name), 10_000, `${name} carried natively`)
    return c
  }

  /** Two offload ports with a native flow a -> b (B learned on b, A on a, one frame forwarded by the slow path). */
  async function flowAB (): Promise<{ a: TestClient, b: TestClient }> {
    const a = await offload('a')
    const b = await offload('b')
    b.send([tcpFrame({ dst: BCAST, src: B, payload: Buffer.alloc(10) }).record])
    await waitFor(() => a.frames.length === 1, 10_000, 'b learned')
    a.take()
    a.send([tcpFrame({ dst: B, src: A, payload: Buffer.alloc(10), seq: 1 }).record])
    await waitFor(() => b.frames.length === 1, 10_000, 'the slow path forwarded a -> b')
    b.take()
    assert.equal((port('a').fastPath as FastPath).size, 1, 'a flow a -> b')
    return { a, b }
  }

  /** Send `bad` (records the slow path drops as bad_offload), then a good barrier record; b must get only the barrier. */
  async function refused (bad: Buffer[]): Promise<void> {
    const { a, b } = await flowAB()
    const before = port('a').drops[R_BAD_OFFLOAD]
    const barrier = tcpFrame({ dst: B, src: A, payload: Buffer.alloc(10), seq: 99 }).record
    a.send([...bad, barrier])
    await waitFor(() => b.frames.length >= 1, 10_000, 'the barrier')
    const got = b.take()
    assert.equal(got.length, 1, `only the barrier reaches b (got ${got.length} records)`)
    assert.ok((got[0] as Buffer).equals(barrier), 'the barrier intact')
    assert.equal((port('a').drops[R_BAD_OFFLOAD]) - before, bad.length, 'each bad record counted as bad_offload')
  }

  it('attack: a NEEDS_CSUM record whose csum_start lies in the Ethernet header or past the frame is not forwarded natively', async () => {
    const low = tcpFrame({ dst: B, src: A, payload: Buffer.alloc(10), seq: 2 }).record
    low.writeUInt16LE(4, 6) // csum_start 4: inside the MACs
    const past = tcpFrame({ dst: B, src: A, payload: Buffer.alloc(10), seq: 3 }).record
    past.writeUInt16LE(past.length, 6) // csum_start + csum_offset + 2 beyond the frame
    await refused([low, past])
  })

  it('attack: a GSO record the slow path refuses (mss under TCP_MIN_MSS, a csum_offset not TCP\'s, headers that are not TCP, too many segments) is not forwarded natively', async () => {
    const tiny = tcpFrame({ dst: B, src: A, payload: Buffer.alloc(4000), seq: 4, mss: 8 }).record
    const offset = tcpFrame({ dst: B, src: A, payload: Buffer.alloc(4000), seq: 5, mss: 1448 }).record
    offset.writeUInt16LE(6, 8) // csum_offset 6: UDP's, on a TCP GSO type
    const notTcp = tcpFrame({ dst: B, src: A, payload: Buffer.alloc(4000), seq: 6, mss: 1448 }).record
    notTcp[10 + 14 + 9] = 17 // IP protocol UDP under a TCPv4 GSO type
    const many = tcpFrame({ dst: B, src: A, payload: Buffer.alloc(60000), seq: 7, mss: 100 }).record // 600 segments > 256
    await refused([tiny, offset, notTcp, many])
    // A good GSO record still takes the native path (the check is not simply "never").
    const fp = port('a').fastPath as FastPath
    sd.switchd.syncFastPaths()
    const before = fp.stats().forwarded
    const good = tcpFrame({ dst: B, src: A, payload: Buffer.alloc(20000), seq: 8, mss: 1448 }).record
    const b = sd.clients[1] as TestClient
    sd.clients[0]?.send([good])
    await waitFor(() => b.frames.length === 1, 10_000, 'the good GSO record')
    assert.ok((b.take()[0] as Buffer).equals(good))
    sd.switchd.syncFastPaths()
    assert.equal(fp.stats().forwarded - before, 1, 'forwarded natively')
  })
})

describe('switchd: a hand-made client racing the takeover (issue 24)', function () {
  this.timeout(60_000)
  const sd = useSwitchd()
  function numbered (i: number): Buffer { const f = eth(MAC_B, MAC_A, i & 0xff); f[15] = i >> 8; return f }

  async function peerB (): Promise<TestClient> {
    const b = await sd.batched({ name: 'b' })
    b.send([eth(BROADCAST, MAC_B, 1)])
    await waitFor(() => sd.port('b')?.fdbEntries === 1, 10_000, 'b learned')
    return b
  }

  async function pipelined (spread: boolean): Promise<void> {
    const b = await peerB()
    const r = await sd.rawWs()
    const N = 400
    const frames = Array.from({ length: N }, (_, i) => numbered(i))
    const wire = frames.map((f) => encodeFrame(OP_BINARY, encodeBatch([f])))
    if (!spread) r.write(Buffer.concat([helloFrame('hand'), ...wire]))
    else {
      // Across the welcome and the takeover: a few messages per turn of our loop.
      r.write(helloFrame('hand'))
      for (let i = 0; i < N; i += 4) {
        r.write(Buffer.concat(wire.slice(i, i + 4)))
        await new Promise((resolve) => setImmediate(resolve))
      }
    }
    // The barrier: once b has it, every earlier frame has been decided.
    const barrier = numbered(N)
    await r.until(() => r.messages.some((m) => m.opcode === OP_TEXT && m.data.toString().includes('"welcome"')), 10_000)
    await waitFor(() => sd.native('hand'), 10_000, 'carried natively')
    r.write(encodeFrame(OP_BINARY, encodeBatch([barrier])))
    await waitFor(() => b.frames.some((f) => f.equals(barrier)), 10_000, 'the barrier')
    const got = b.take()
    assert.equal(r.closeCode, undefined, 'the port stays open')
    // Frames sent before the welcome may be refused (the port did not exist), but none twice, none out of order, none mangled.
    const idx = got.map((f) => frames.findIndex((x) => x.equals(f)))
    assert.equal(idx.at(-1), -1, 'the barrier last')
    const seen = idx.slice(0, -1)
    assert.ok(seen.every((i) => i >= 0), 'nothing but the frames sent')
    for (let i = 1; i < seen.length; i++) assert.ok((seen[i] as number) > (seen[i - 1] as number), `in order, once each: ${seen[i - 1]} then ${seen[i]}`)
    const hand = sd.port('hand') as BatchPort
    assert.equal(seen.length + (hand.drops.reduce((a, n) => a + n, 0)), N, `every frame forwarded or counted (got ${seen.length})`)
  }

  it('attack: binary frames pipelined right behind the hello, in one write: each forwarded once, in order, or counted', async () => {
    await pipelined(false)
  })

  it('attack: binary frames pipelined behind the hello across the welcome and the takeover: each forwarded once, in order, or counted', async () => {
    await pipelined(true)
  })
})

describe('switchd: text that closes a natively carried port stops its frames at once (issue 24)', function () {
  this.timeout(60_000)
  const sd = useSwitchd()

  /** A hand-made port 'hand' (MAC_A) carried natively, with a native flow to b (MAC_B). */
  async function flow (): Promise<{ r: RawWs, b: TestClient }> {
    const r = await sd.handMade('hand', { native: false })
    const b = await sd.batched({ name: 'b' })
    await waitFor(() => sd.native('hand') && sd.native('b'), 10_000, 'carried natively')
    b.send([eth(BROADCAST, MAC_B, 1)])
    await r.until(() => r.messages.some((m) => m.opcode === OP_BINARY), 10_000)
    r.write(encodeFrame(OP_BINARY, encodeBatch([eth(MAC_B, MAC_A, 2)])))
    await waitFor(() => b.frames.length === 1, 10_000, 'the slow path forwarded hand -> b')
    b.take()
    assert.equal((sd.port('hand')?.fastPath as FastPath).size, 1, 'a flow hand -> b')
    return { r, b }
  }

  /** `text`, then batches to b until the port closes: none may reach b (the JS path reads nothing after the text closed it). */
  async function closesAtOnce (text: Buffer, code: number, oneWrite: boolean): Promise<void> {
    const { r, b } = await flow()
    const batch = encodeFrame(OP_BINARY, encodeBatch([eth(MAC_B, MAC_A, 9)]))
    if (oneWrite) r.write(Buffer.concat([text, batch, batch, batch]))
    else {
      r.write(text)
      for (let i = 0; i < 200 && r.closeCode === undefined; i++) {
        r.write(batch)
        await new Promise((resolve) => setImmediate(resolve))
      }
    }
    assert.equal(await r.closed(10_000), code)
    // The barrier: a broadcast from a third port, after the close.
    const c = await sd.batched({ name: 'c' })
    c.send([eth(BROADCAST, MAC_C, 3)])
    await waitFor(() => b.frames.length >= 1, 10_000, 'the barrier')
    assert.deepEqual(b.take().map((f) => f[14]), [3], 'nothing hand sent after its text reached b')
  }

  const BPDU = Buffer.from(JSON.stringify({ type: 'bpdu', root: '0000000000000001', cost: 0, bridge: '0000000000000002', port: 1, tc: [] }))
  it('attack: a BPDU and a batch in one write: BPDU guard closes the port (4005) and the batch is not forwarded natively', async () => {
    await closesAtOnce(encodeFrame(OP_TEXT, BPDU), 4005, true)
  })
  it('attack: a BPDU, then batches as fast as the client can: none is forwarded natively after it', async () => {
    await closesAtOnce(encodeFrame(OP_TEXT, BPDU), 4005, false)
  })
  it('attack: text that is not UTF-8 and a batch in one write: closed with 1007, the batch not forwarded natively', async () => {
    await closesAtOnce(encodeFrame(OP_TEXT, Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), 1007, true)
  })
})

/** Poll an async `check` until it holds (bounded by `ms`). */
async function until (check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** Open fds, threads and RSS (KiB) of `pid`. */
function footprint (pid: number): { fds: number, threads: number, rssKiB: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1])
  return { fds: fs.readdirSync(`/proc/${pid}/fd`).length, threads: field('Threads'), rssKiB: field('VmRSS') }
}

describe('switchd: 1000 natively carried ports come and go (issue 24)', function () {
  this.timeout(300_000)

  it('attack: 1000 connect/hello/disconnect cycles (clean closes, resets, mid-frame cuts) leave no fd, thread or growing memory behind', async () => {
    const p: Logged = spawnLogged('switchd', process.execPath, [SWITCHD, '--listen', '127.0.0.1:0'], () => {})
    try {
      const line = await waitForLine(p, 'switchd', (l) => l.includes('"listening"'), 30_000)
      const tcpPort = (JSON.parse(line.slice(line.indexOf('{'))) as { port: number }).port
      const url = `ws://127.0.0.1:${tcpPort}/`
      const pid = p.child.pid as number
      const GROUP = 20
      const ROUNDS = 50
      let base: ReturnType<typeof footprint> | undefined
      let carried = 0
      for (let r = 0; r < ROUNDS; r++) {
        const clients = await Promise.all(Array.from({ length: GROUP }, async (_, i) => await TestClient.batched(url, { name: `c${r}-${i}` })))
        if (r % 10 === 0) {
          // Every port of the round is carried natively before it goes.
          await until(async () => {
            const ports = await (await fetch(`http://127.0.0.1:${tcpPort}/api/v1/ports`)).json() as Array<{ path: string }>
            return ports.length === GROUP && ports.every((q) => q.path === 'native')
          }, 10_000, 'carried natively')
          carried += GROUP
        }
        for (const [i, c] of clients.entries()) {
          c.send([eth(BROADCAST, (0x020000200000 + i).toString(16), 1)])
          const how = (r + i) % 3
          if (how === 0) c.ws.close(1000)
          else if (how === 1) c.close()
          else {
            // Half a frame, then the connection cut: the reader holds a partial frame when it goes.
            const s = (c.ws as unknown as { _socket: net.Socket })._socket
            s.write(Buffer.from([0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4, 9, 9]))
            s.destroy()
          }
        }
        await until(async () => {
          const ports = await (await fetch(`http://127.0.0.1:${tcpPort}/api/v1/ports`)).json() as unknown[]
          return ports.length === 0
        }, 30_000, `round ${r}: every port gone`)
        if (r === 4) base = footprint(pid)
      }
      assert.equal(carried, GROUP * 5)
      // The sockets' fds and the ports' buffers go with them; the network's one thread stays.
      const b = base as ReturnType<typeof footprint>
      await waitFor(() => footprint(pid).fds <= b.fds, 10_000, `fds back to ${b.fds} (now ${footprint(pid).fds})`)
      const end = footprint(pid)
      assert.equal(end.threads, b.threads, 'threads')
      assert.ok(end.rssKiB - b.rssKiB < 48 * 1024, `RSS after 100 cycles ${b.rssKiB} KiB, after 1000 ${end.rssKiB} KiB`)
    } finally {
      p.child.kill('SIGTERM')
    }
  })
})
