/**
 * Attacks on the WebSocket ports the native fast path carries (issue 24,
 * attack review): what the slow path would drop must not be forwarded as a
 * native hit. Each test makes a flow first (one frame the slow path
 * forwards), then sends what the slow path refuses, then a barrier frame.
 */

import assert from 'node:assert/strict'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { TestClient } from '../helpers/client'
import { waitFor } from '../helpers/net'
import { tcpFrame } from '../helpers/tcp'
import { setLogSink } from '../../src/common/log'
import { CAP_OFFLOAD } from '../../src/common/protocol'
import { R_BAD_OFFLOAD } from '../../src/switch/core/reasons'
import type { BatchPort } from '../../src/switch/io/ws-port'

const A = Buffer.from('020000000a01', 'hex')
const B = Buffer.from('020000000b02', 'hex')
const BCAST = Buffer.alloc(6, 0xff)

describe('switchd: attacks on natively carried WebSocket ports (issue 24)', function () {
  this.timeout(30_000)
  let server: SwitchServer
  let url: string
  let clients: TestClient[]
  let restore: (line: string) => void

  beforeEach(async () => {
    restore = setLogSink(() => {})
    clients = []
    server = new SwitchServer({ host: '127.0.0.1', port: 0 })
    url = `ws://127.0.0.1:${(await server.listen()).port}/`
  })
  afterEach(async () => {
    for (const c of clients) c.close()
    await server.close()
    setLogSink(restore)
  })

  function port (name: string): BatchPort { return server.ports().find((p) => p.name === name) as BatchPort }
  async function offload (name: string): Promise<TestClient> {
    const c = await TestClient.batched(url, { name, capabilities: [CAP_OFFLOAD] })
    clients.push(c)
    await waitFor(() => port(name)?.fastPath != null, 10_000, `${name} carried natively`)
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
    assert.equal((port('a').fastPath as NonNullable<BatchPort['fastPath']>).size, 1, 'a flow a -> b')
    return { a, b }
  }

  /** Send `bad` (records the slow path drops as bad_offload), then a good barrier record; b must get only the barrier. */
  async function refused (bad: Buffer[]): Promise<void> {
    const { a, b } = await flowAB()
    const before = port('a').drops[R_BAD_OFFLOAD] as number
    const barrier = tcpFrame({ dst: B, src: A, payload: Buffer.alloc(10), seq: 99 }).record
    a.send([...bad, barrier])
    await waitFor(() => b.frames.length >= 1, 10_000, 'the barrier')
    const got = b.take()
    assert.equal(got.length, 1, `only the barrier reaches b (got ${got.length} records)`)
    assert.ok((got[0] as Buffer).equals(barrier), 'the barrier intact')
    assert.equal((port('a').drops[R_BAD_OFFLOAD] as number) - before, bad.length, 'each bad record counted as bad_offload')
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
    const fp = port('a').fastPath as NonNullable<BatchPort['fastPath']>
    server.syncFastPaths()
    const before = fp.stats().forwarded
    const good = tcpFrame({ dst: B, src: A, payload: Buffer.alloc(20000), seq: 8, mss: 1448 }).record
    const b = clients[1] as TestClient
    clients[0]?.send([good])
    await waitFor(() => b.frames.length === 1, 10_000, 'the good GSO record')
    assert.ok((b.take()[0] as Buffer).equals(good))
    server.syncFastPaths()
    assert.equal(fp.stats().forwarded - before, 1, 'forwarded natively')
  })
})
