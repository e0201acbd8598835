import assert from 'node:assert/strict'
import { SwitchServer, type ServerOptions } from '../../src/switch/daemon/switchd'
import { TestClient } from '../helpers/client'
import { waitFor } from '../helpers/net'
import { eth, BROADCAST, MAC_A, MAC_B, MAC_C } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'
import type { BatchPort } from '../../src/switch/io/ws-port'

describe('switchd: WebSocket ports carried by the native fast path (issue 24)', () => {
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
  async function batched (hello?: Record<string, unknown>): Promise<TestClient> { const c = await TestClient.batched(url, hello); clients.push(c); return c }
  function port (name: string): BatchPort { return server.ports().find((p) => p.name === name) as BatchPort }
  function native (name: string): boolean { return port(name)?.fastPath !== null && port(name)?.fastPath !== undefined }

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
    a.send(frames)
    b.send([eth(MAC_A, MAC_B, 99)])
    await waitFor(() => b.frames.length === N && a.frames.length === 1, 10_000, 'burst')
    assert.deepEqual(b.take(), frames)
    assert.equal(c.frames.length, 0)
    server.syncFastPaths()
    assert.ok(fp.stats().forwarded - before >= N, `forwarded natively: ${fp.stats().forwarded - before}`)
    assert.ok(port('b').txFrames >= N + 2)
  })
})
