/**
 * An uplink closed for good (agent stopping, a trunk or mesh link going
 * away) never dials again, whatever was under way when close() came: a dial
 * not yet connected, or a hello whose welcome arrives after close(). A
 * stopped uplink that came back kept redialling a switch that was no longer
 * there, and joined whatever took that port next. Asserted on the uplink's
 * state, its events and log lines, and the dials the switch saw.
 */

import assert from 'node:assert/strict'
import { WebSocketServer, type WebSocket } from 'ws'
import type { AddressInfo } from 'node:net'
import { Uplink } from '../../src/common/uplink'
import { SUBPROTOCOL_V1, MAX_MESSAGE_SIZE } from '../../src/common/protocol'
import { setLogSink } from '../../src/common/log'
import { onceWithin, waitFor, sleep } from '../helpers/net'

type Line = Record<string, unknown> & { level: string, event: string }

const WELCOME = JSON.stringify({ type: 'welcome', version: 1, port: 1, name: 'x', maxFrameSize: 1518, maxMessageSize: MAX_MESSAGE_SIZE, pingInterval: 3 })
// Far above the retry's delay (0.01 s, full jitter): a dial the uplink scheduled would have come.
const NO_DIAL_MS = 500

describe('uplink close (integration)', () => {
  let wss: WebSocketServer
  let url: string
  let dials: number
  let onHello: (ws: WebSocket) => void
  let uplinks: Uplink[]
  let restore: (line: string) => void
  const logs: Line[] = []

  beforeEach(async () => {
    logs.length = 0
    uplinks = []
    dials = 0
    onHello = () => {}
    restore = setLogSink((l) => { logs.push(JSON.parse(l) as Line) })
    // Not a switchd: a server that counts dials and lets each test answer the hello.
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => SUBPROTOCOL_V1 })
    wss.on('connection', (ws) => {
      dials++
      ws.once('message', () => { onHello(ws) })
    })
    await onceWithin(wss, 'listening')
    url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`
  })
  afterEach(async () => {
    for (const u of uplinks) await u.close()
    for (const c of wss.clients) c.terminate()
    await new Promise<void>((resolve) => { wss.close(() => { resolve() }) })
    setLogSink(restore)
  })

  function uplink (): Uplink {
    const u = new Uplink({ url, reconnectMin: 0.01, reconnectMax: 0.01 })
    uplinks.push(u)
    return u
  }
  const ours = (event: string): Line[] => logs.filter((l) => l.event === event && l.url === url)

  it('a welcome that arrives after close() does not bring the uplink back: closed, no up, no retry, no dial', async () => {
    const u = uplink()
    let ups = 0
    u.on('up', () => { ups++ })
    let closing: Promise<void> | undefined
    // The welcome leaves before the uplink's close frame exists: the uplink reads it after close().
    onHello = (ws) => {
      ws.send(WELCOME)
      closing = u.close()
    }
    u.start()
    await waitFor(() => closing !== undefined, undefined, 'the hello')
    await closing
    assert.equal(u.state, 'closed')
    assert.equal(ups, 0, 'no up after close()')
    assert.equal(u.isUp, false)
    assert.deepEqual(ours('uplink_connected'), [])
    assert.deepEqual(ours('uplink_lost'), [])
    assert.deepEqual(ours('uplink_retry'), [], 'no retry scheduled after close()')
    await sleep(NO_DIAL_MS)
    assert.equal(dials, 1, 'no dial after close()')
    assert.equal(u.state, 'closed')
  })

  it('close() while the dial is under way (not yet connected): closed, no retry, no dial after', async () => {
    const u = uplink()
    u.start()
    const closing = u.close()
    await closing
    assert.equal(u.state, 'closed')
    assert.deepEqual(ours('uplink_retry'), [])
    await sleep(NO_DIAL_MS)
    assert.equal(dials, 0, 'the aborted dial and no other reached the server')
  })

  it('attack: close() while the dial is under way says nothing false: no uplink_error "retrying with backoff" for the dial close() aborted', async () => {
    const u = uplink()
    u.start()
    await u.close()
    // The aborted dial's error comes on the next tick: let it come.
    await sleep(NO_DIAL_MS)
    assert.deepEqual(ours('uplink_error'), [], 'a stopped uplink retries nothing, and aborting its own dial is no failure')
  })

  it('close() while a retry waits: closed, and the retry never dials', async () => {
    const u = uplink()
    // Refuse the attempt before the welcome: the uplink schedules a retry, and close() comes right after (a microtask, before any timer).
    onHello = (ws) => { ws.close(1011, 'try again') }
    let closing: Promise<void> | undefined
    setLogSink((l) => {
      const line = JSON.parse(l) as Line
      logs.push(line)
      if (line.event === 'uplink_retry' && closing === undefined) queueMicrotask(() => { closing = u.close() })
    })
    u.start()
    await waitFor(() => closing !== undefined, undefined, 'a retry scheduled')
    await closing
    assert.equal(u.state, 'closed')
    await sleep(NO_DIAL_MS)
    assert.equal(dials, 1, 'no dial after close()')
    assert.equal(ours('uplink_retry').length, 1)
  })
})
