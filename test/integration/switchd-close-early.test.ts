/**
 * A switchd closed while it still starts (SIGTERM during start-up, a test's
 * teardown) closes everything that start opens: close() waits for listen()
 * and then closes it all. Before, close() closed the endpoints opened so far
 * (none) and a trunk opened after it dialled for ever. Asserted on the trunk's
 * uplink state and the connections its peer saw, never on time.
 */

import assert from 'node:assert/strict'
import { WebSocketServer, type WebSocket } from 'ws'
import type { AddressInfo } from 'node:net'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { SUBPROTOCOL_V1 } from '../../src/common/protocol'
import { setLogSink } from '../../src/common/log'
import { waitFor } from '../helpers/net'

describe('switchd closed while it starts (integration)', () => {
  let peer: WebSocketServer
  let peerUrl: string
  const sockets: WebSocket[] = []
  let restore: (line: string) => void

  beforeEach(async () => {
    sockets.length = 0
    restore = setLogSink(() => {})
    // The trunk's far end: takes the upgrade, never welcomes.
    peer = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => SUBPROTOCOL_V1 })
    peer.on('connection', (ws) => { sockets.push(ws) })
    await new Promise<void>((resolve) => peer.once('listening', () => { resolve() }))
    peerUrl = `ws://127.0.0.1:${(peer.address() as AddressInfo).port}/`
  })
  afterEach(async () => {
    setLogSink(restore)
    for (const ws of sockets) ws.terminate()
    await new Promise<void>((resolve) => peer.close(() => { resolve() }))
  })

  it('close() during listen(): the trunk that start opened is closed for good, and its connection with it', async () => {
    const server = new SwitchServer({ config: buildConfig({ trunks: [{ url: peerUrl, name: 'trunk-early' }] }, 'test'), host: '127.0.0.1', port: 0 })
    const listening = server.listen()
    const closed = server.close()  // before listen() resolved: nothing was open yet
    await listening
    await closed
    assert.equal(server.trunks.length, 1, 'the trunk was opened by the start close() waited for')
    assert.equal(server.trunks[0]?.uplink.state, 'closed')
    assert.equal(server.isListening, false)
    // Whatever it dialled before close() reached it is closed from its side.
    await waitFor(() => sockets.every((ws) => ws.readyState === ws.CLOSED), 10_000, 'the trunk\'s connections closed')
  })

  it('attack: listen() after close() opens nothing (a close() first left a trunk dialling and the timers running for ever)', async () => {
    const server = new SwitchServer({ config: buildConfig({ trunks: [{ url: peerUrl, name: 'trunk-late' }] }, 'test'), host: '127.0.0.1', port: 0 })
    await server.close()
    await assert.rejects(server.listen(), { code: 'TSW_ERR_CLOSED' })
    assert.equal(server.isListening, false)
    assert.equal(server.trunks.length, 0, 'no trunk opened after close()')
    // Far above the trunk's first dial (at once on start): a dial would have reached the peer.
    await new Promise((resolve) => setTimeout(resolve, 500))
    assert.equal(sockets.length, 0, 'nothing dialled the peer')
  })

  it('attack: a second listen() after close() says closed rather than the first start\'s stale address', async () => {
    const server = new SwitchServer({ config: buildConfig({}, 'test'), host: '127.0.0.1', port: 0 })
    await server.listen()
    await server.close()
    await assert.rejects(server.listen(), { code: 'TSW_ERR_CLOSED' })
  })

  it('attack: a fleet CA that cannot be read fails the start as a configuration error naming --uplink-ca, and /readyz never says ready', async () => {
    const ca = '/nonexistent/tapswitch-fleet-ca.pem'
    const config = buildConfig({}, 'test', { replica: 'a', fleet: 'http://127.0.0.1:1', fleetToken: 'fleet-credential-0123456789abcdef-0123456789', uplinkCa: ca })
    const server = new SwitchServer({ config, host: '127.0.0.1', port: 0 })
    try {
      // main() says a TSW_ERR_CONFIG's message as it is; any other error is said as the listen address's ("listen 127.0.0.1:0: ENOENT").
      await assert.rejects(server.listen(), (err: Error & { code?: string }) => err.code === 'TSW_ERR_CONFIG' && err.message.includes('--uplink-ca') && err.message.includes(ca))
      assert.equal(server.isListening, false)
      const res = await fetch(`http://127.0.0.1:${server.address().port}/readyz`, { signal: AbortSignal.timeout(10_000) })
      await res.arrayBuffer()
      assert.equal(res.status, 503, 'not ready after a failed start')
    } finally {
      await server.close()
    }
  })

  it('a start that fails still lets close() finish', async () => {
    const first = new SwitchServer({ config: buildConfig({}, 'test'), host: '127.0.0.1', port: 0 })
    const { port } = await first.listen()
    // The same port: bind fails (EADDRINUSE), and close() neither hangs nor throws.
    const second = new SwitchServer({ config: buildConfig({}, 'test'), host: '127.0.0.1', port })
    const listening = second.listen()
    const closed = second.close()
    await assert.rejects(listening, /EADDRINUSE/)
    await closed
    await first.close()
  })
})
