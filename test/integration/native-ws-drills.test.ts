/**
 * A decision that changes takes effect at once on ports the native fast
 * path carries (issue 24): a disable, a link down, a link condition and a
 * capture each flush the flows before the API answers, and no frame is
 * forwarded natively after that. Bounded by a count and a barrier frame:
 * frames sent after the call, then a broadcast a third port must receive
 * (the same ingress socket, read in order), then the counters.
 */

import assert from 'node:assert/strict'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { TestClient } from '../helpers/client'
import { waitFor } from '../helpers/net'
import { eth, BROADCAST, MAC_A, MAC_B, MAC_C } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'
import type { BatchPort } from '../../src/switch/io/ws-port'
import type { FastPath } from '../../src/switch/io/fast-path'

const TOKEN = 'test-admin-token-0123456789'
const N = 32

describe('switchd: drills on natively carried WebSocket ports take effect at once (issue 24)', function () {
  this.timeout(120_000)
  let server: SwitchServer
  let http: string
  let a: TestClient, b: TestClient, c: TestClient
  let restore: (line: string) => void

  function portNamed (name: string): BatchPort { return server.ports().find((p) => p.name === name) as BatchPort }
  function fastPath (): FastPath { return server.switch.fastPath as FastPath }
  async function api (method: string, path: string, body?: unknown): Promise<Response> {
    return await fetch(http + path, { method, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
  }

  beforeEach(async () => {
    restore = setLogSink(() => {})
    server = new SwitchServer({ config: buildConfig({ adminToken: TOKEN }, 'test'), host: '127.0.0.1', port: 0 })
    const port = (await server.listen()).port
    http = `http://127.0.0.1:${port}`
    const url = `ws://127.0.0.1:${port}/`
    a = await TestClient.batched(url, { name: 'a' })
    b = await TestClient.batched(url, { name: 'b' })
    c = await TestClient.batched(url, { name: 'c' })
    await waitFor(() => ['a', 'b', 'c'].every((n) => portNamed(n)?.fastPath != null), 10_000, 'carried natively')
    // Each learns its MAC; then a unicast each way installs the flows between a and b.
    for (const [cl, mac] of [[a, MAC_A], [b, MAC_B], [c, MAC_C]] as const) cl.send([eth(BROADCAST, mac, 1)])
    await waitFor(() => a.frames.length === 2 && b.frames.length === 2 && c.frames.length === 2, 10_000, 'learned')
    a.send([eth(MAC_B, MAC_A, 2)]); b.send([eth(MAC_A, MAC_B, 2)])
    await waitFor(() => a.frames.length === 3 && b.frames.length === 3, 10_000, 'unicast')
    assert.ok(fastPath().size >= 2, 'flows between a and b')
    // A flow carries frames natively now.
    a.send([eth(MAC_B, MAC_A, 3)])
    await waitFor(() => b.frames.length === 4, 10_000, 'native unicast')
    for (const cl of [a, b, c]) cl.take()
  })
  afterEach(async () => {
    for (const cl of [a, b, c]) cl?.close()
    await server.close()
    setLogSink(restore)
  })

  /** N frames a->b after the drill, then a barrier broadcast c must get; returns b's tx frames and the native total moved meanwhile. */
  async function sendAfter (): Promise<{ tx: number, native: number }> {
    server.syncFastPaths()
    const tx0 = portNamed('b').txFrames
    const fwd0 = fastPath().stats().forwarded
    a.send(Array.from({ length: N }, (_, i) => eth(MAC_B, MAC_A, 100 + i)))
    a.send([eth(BROADCAST, MAC_A, 999)])
    await waitFor(() => c.frames.some((f) => f.equals(eth(BROADCAST, MAC_A, 999))), 10_000, 'barrier')
    server.syncFastPaths()
    return { tx: portNamed('b').txFrames - tx0, native: fastPath().stats().forwarded - fwd0 }
  }

  /** After the drill is undone: a barrier b must get, so whatever was written to b before it has arrived. */
  async function barrierToB (): Promise<void> {
    a.send([eth(BROADCAST, MAC_A, 998)])
    await waitFor(() => b.frames.some((f) => f.equals(eth(BROADCAST, MAC_A, 998))), 10_000, 'barrier to b')
  }

  it('disable: no flow is left, nothing reaches the port', async () => {
    assert.equal((await api('POST', '/api/v1/ports/b/disable')).status, 200)
    assert.equal(fastPath().size, 0)
    const moved = await sendAfter()
    assert.deepEqual(moved, { tx: 0, native: 0 })
    assert.equal((await api('POST', '/api/v1/ports/b/enable')).status, 200)
    await barrierToB()
    assert.equal(b.frames.filter((f) => f.subarray(0, 6).equals(Buffer.from(MAC_B, 'hex'))).length, 0)
  })

  it('link down: no flow is left, nothing reaches the port', async () => {
    assert.equal((await api('POST', '/api/v1/ports/b/link', { state: 'down' })).status, 200)
    assert.equal(fastPath().size, 0)
    const moved = await sendAfter()
    assert.deepEqual(moved, { tx: 0, native: 0 })
    assert.equal((await api('POST', '/api/v1/ports/b/link', { state: 'up' })).status, 200)
    await barrierToB()
    assert.equal(b.frames.filter((f) => f.subarray(0, 6).equals(Buffer.from(MAC_B, 'hex'))).length, 0)
  })

  it('a link condition: every frame after the call goes through it (held, not forwarded natively)', async () => {
    assert.equal((await api('POST', '/api/v1/ports/b/condition', { direction: 'out', delay: 60_000 })).status, 200)
    assert.equal(fastPath().size, 0)
    const moved = await sendAfter()
    assert.equal(moved.native, 0)
    // All N and the barrier are held by b's condition.
    await waitFor(() => portNamed('b').framesDelayed === N + 1, 10_000, 'held')
    assert.equal(b.frames.length, 0)
  })

  it('a capture: every frame after it started reaches the slow path and the capture', async () => {
    const res = await fetch(`${http}/api/v1/capture?count=${N}&duration=30`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(60_000) })
    assert.equal(res.status, 200)
    const body = res.arrayBuffer()
    assert.equal(fastPath().size, 0, 'no flow while capturing')
    const moved = await sendAfter()
    assert.equal(moved.native, 0)
    const pcap = Buffer.from(await body)
    let frames = 0
    for (let off = 24; off + 16 <= pcap.length; off += 16 + pcap.readUInt32LE(off + 8)) frames++
    assert.equal(frames, N)
  })
})
