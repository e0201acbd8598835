/**
 * Attacks on tap-agent's native link (issue 24) from a hostile switch, found
 * by review: what each costs the agent, measured by what the process holds
 * (its fds), never by time.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'
import { Uplink } from '../../src/common/uplink'
import { Agent } from '../../src/agent/agent'
import { linkBindingOf } from '../../src/agent/native-link'
import { loadNative } from '../../src/common/native'
import { SUBPROTOCOL_V1, MAX_MESSAGE_SIZE } from '../../src/common/protocol'
import { PairTap } from '../helpers/pair-tap'
import { waitFor, onceWithin } from '../helpers/net'
import { setLogSink } from '../../src/common/log'

const links = linkBindingOf(loadNative('tests'))
const WELCOME = JSON.stringify({ type: 'welcome', version: 1, port: 1, name: 'fake', maxFrameSize: 1518, maxMessageSize: MAX_MESSAGE_SIZE, pingInterval: 30, capabilities: [] })

/** This process's open sockets (/proc/self/fd). */
function sockets (): number {
  let n = 0
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try { if (fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:')) n++ } catch { /* closed meanwhile */ }
  }
  return n
}

describe('tap-agent native link: attacks from the switch (integration)', () => {
  let wss: WebSocketServer
  let agent: Agent | undefined
  let restore: (line: string) => void

  beforeEach(async () => {
    restore = setLogSink(() => {})
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: MAX_MESSAGE_SIZE, handleProtocols: () => SUBPROTOCOL_V1 })
    await onceWithin(wss, 'listening')
  })
  afterEach(async () => {
    await agent?.stop()
    agent = undefined
    for (const c of wss.clients) c.terminate()
    await new Promise<void>((resolve) => { wss.close(() => { resolve() }) })
    setLogSink(restore)
  })

  it('attack: a switch that welcomes and drops the agent over and over leaves no socket open per ended link (not until a GC)', async () => {
    const ROUNDS = 60
    let welcomed = 0
    wss.on('connection', (ws) => {
      ws.on('error', () => {})
      ws.once('message', () => { ws.send(WELCOME); welcomed++; setImmediate(() => { ws.close(4000, 'again') }) })
    })
    const uplink = new Uplink({ url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`, name: 'churn', reconnectMin: 0.001, reconnectMax: 0.002 })
    agent = new Agent(new PairTap(), uplink, 0, false, links)
    agent.start()
    await waitFor(() => welcomed >= 2 && uplink.path.path === 'native', undefined, 'the native link')
    const before = sockets()
    const from = welcomed
    await waitFor(() => welcomed >= from + ROUNDS, 60_000, `${ROUNDS} reconnects`)
    // Each ended link closed its socket at its end: what is open is the current connection's (both
    // ends here: the switch is in this process) and the next one's, not one per link ended.
    const grown = sockets() - before
    assert.ok(grown <= 8, `${grown} more sockets open after ${ROUNDS} links ended`)
    assert.ok((agent.uplink.stats.connects) >= ROUNDS, 'every welcome counted')
  })

  it('attack: a text right after a bad welcome does not shut the gate again: the closing handshake completes (not at the welcome timeout)', async () => {
    const closes: number[] = []
    let logged = false
    setLogSink((l) => { if (l.includes('"uplink_closed"')) logged = true })
    wss.on('connection', (ws) => {
      ws.on('error', () => {})
      ws.on('close', (code) => { closes.push(code) })
      // A bad welcome and a second text at once: the agent closes 1002 on the first; ws echoes its close.
      ws.once('message', () => { ws.send('{"type":"nonsense"}'); ws.send('{"type":"more"}') })
    })
    // The welcome timer (handshakeTimeout + 1 s) far beyond the wait below: only the handshake can end it.
    const uplink = new Uplink({ url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`, name: 'gate', handshakeTimeout: 300, reconnectMin: 60, reconnectMax: 60 })
    agent = new Agent(new PairTap(), uplink, 0, false, links)
    agent.start()
    await waitFor(() => closes.length >= 1, undefined, 'the switch saw the close')
    assert.equal(closes[0], 1002)
    await waitFor(() => logged, undefined, 'the agent saw the switch\'s close reply (uplink_closed)')
    assert.equal(uplink.path.path, 'native')
  })

  it('attack: a close whose reason is not UTF-8 is answered 1007, as ws answers it, not taken as the switch\'s word', async () => {
    const closes: number[] = []
    wss.on('connection', (ws) => {
      ws.on('error', () => {})
      ws.on('close', (code) => { closes.push(code) })
      ws.once('message', () => {
        ws.send(WELCOME)
        // A close frame written by hand: code 4000, a reason of 0xff 0xfe (never UTF-8).
        setImmediate(() => { (ws as unknown as { _socket: { write: (b: Buffer) => void } })._socket.write(Buffer.from([0x88, 0x04, 0x0f, 0xa0, 0xff, 0xfe])) })
      })
    })
    const uplink = new Uplink({ url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`, name: 'utf8', reconnectMin: 60, reconnectMax: 60 })
    agent = new Agent(new PairTap(), uplink, 0, false, links)
    agent.start()
    await waitFor(() => closes.length >= 1, undefined, 'the agent\'s close')
    assert.equal(closes[0], 1007)
    assert.equal(uplink.path.path, 'native')
  })
})
