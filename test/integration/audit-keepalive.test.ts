/**
 * Audit (issue 12, finding 6): a client that sends and never reads must not
 * grow switchd's memory. Replies (jor1k pongs, WebSocket pongs) go only to a
 * peer that reads, and a port whose peer reads nothing for a keepalive round
 * is closed with 4004 whatever it sends.
 */

import assert from 'node:assert/strict'
import type { Socket } from 'node:net'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import type { WsPort } from '../../src/switch/io/ws-port'
import { TestClient } from '../helpers/client'
import { waitFor } from '../helpers/net'
import { eth, BROADCAST, MAC_A } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'

const HIGH_WATER_MARK = 16 * 1024

/**
 * How long a sender keeps going before we give up: a guard against a hang only. The port's close
 * takes a few keepalive rounds after the kernel's socket buffers have filled, which on a loaded
 * machine can be many seconds; the test waits for the close, never for a time.
 */
const HANG_GUARD_MS = 120_000

describe('audit: keepalive and replies to a peer that does not read', function () {
  this.timeout(HANG_GUARD_MS + 30_000)
  let server: SwitchServer
  let url: string
  const clients: TestClient[] = []
  const logs: string[] = []
  let restore: (line: string) => void

  beforeEach(async () => {
    logs.length = 0
    restore = setLogSink((l) => { logs.push(l) })
    server = new SwitchServer({ config: buildConfig({ pingInterval: 1, portBuffer: HIGH_WATER_MARK, limits: { notReadingTimeout: 1 } }, 'test'), host: '127.0.0.1', port: 0 })
    url = `ws://127.0.0.1:${(await server.listen()).port}/`
  })
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close()
    await server.close()
    setLogSink(restore)
  })

  /**
   * Keep `send` going (a burst every few ms) with the client's socket paused,
   * until the port is gone (or the hang guard passes); returns the most the
   * server ever buffered for the port.
   */
  async function sendWithoutReading (c: TestClient, send: () => void): Promise<number> {
    ;(c.ws as unknown as { _socket: Socket })._socket.pause()
    await waitFor(() => server.ports().length === 1)
    const port = server.ports()[0] as WsPort
    let most = 0
    const deadline = Date.now() + HANG_GUARD_MS
    while (server.ports().length === 1 && Date.now() < deadline && c.ws.readyState === c.ws.OPEN) {
      // ws buffers what the kernel does not take yet: keep the client's own queue short.
      if (c.ws.bufferedAmount < 1024 * 1024) send()
      most = Math.max(most, port.bufferedBytes())
      await new Promise((resolve) => setTimeout(resolve, 2))
    }
    return most
  }

  it('attack: a raw client sending ping: texts without reading cannot grow switchd\'s buffers, and its port is closed (4004)', async () => {
    const c = await TestClient.raw(url)
    clients.push(c)
    const ping = 'ping:' + 'x'.repeat(250)
    const most = await sendWithoutReading(c, () => { for (let i = 0; i < 200; i++) c.ws.send(ping) })
    assert.ok(most <= HIGH_WATER_MARK + 512, `buffered for the port stayed at the high-water mark (most ${most})`)
    // The sender stops when its socket dies (switchd's close ends in a reset); the port's removal may come a tick later.
    await waitFor(() => server.ports().length === 0, 30_000, 'the port closed although it kept sending')
    assert.equal(server.portTable.closedNotReading, 1)
    assert.ok(server.portTable.repliesDropped > 0)
    assert.ok(logs.some((l) => l.includes('"port_not_reading"')))
  })

  it('attack: a client sending WebSocket pings without reading cannot grow switchd\'s buffers, and its port is closed (4004)', async () => {
    const c = await TestClient.raw(url)
    clients.push(c)
    const data = Buffer.alloc(125, 7)
    const frame = eth(BROADCAST, MAC_A, 1)
    // A frame with each burst: under the old keepalive, any message kept the port alive.
    const most = await sendWithoutReading(c, () => { for (let i = 0; i < 200; i++) c.ws.ping(data); c.ws.send(frame) })
    assert.ok(most <= HIGH_WATER_MARK + 512, `buffered for the port stayed at the high-water mark (most ${most})`)
    // The sender stops when its socket dies (switchd's close ends in a reset); the port's removal may come a tick later.
    await waitFor(() => server.ports().length === 0, 30_000, 'the port closed although it kept sending')
    assert.equal(server.portTable.closedNotReading, 1)
    assert.ok(server.portTable.repliesDropped > 0)
  })
})
