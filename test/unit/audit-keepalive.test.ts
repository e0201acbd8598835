/**
 * Audit (issue 12, finding 6): keepalive judges a port on whether its peer
 * reads, not only on whether it talks. PortTable.keepalive() with fake ports
 * whose buffered bytes and transmit counters the test sets.
 */

import assert from 'node:assert/strict'
import { PortTable } from '../../src/switch/daemon/port-table'
import type { Networks } from '../../src/switch/control/networks'
import type { WsPort } from '../../src/switch/io/ws-port'
import { buildConfig } from '../../src/switch/control/config'
import { CLOSE_NOT_READING } from '../../src/common/protocol'
import { setLogSink } from '../../src/common/log'

const MARK = 1024 * 1024

interface Fake {
  id: number
  name: string
  parked: boolean
  alive: boolean
  highWaterMark: number
  buffered: number
  txBytes: number
  notReading: number
  lastBuffered: number
  lastTxBytes: number
  shut: number[]
  terminated: number
  bufferedBytes: () => number
  shutdown: (code: number) => void
  ws: { ping: () => void, terminate: () => void }
}

function fakePort (): Fake {
  const p: Fake = {
    id: 1,
    name: 'p',
    parked: false,
    alive: true,
    highWaterMark: MARK,
    buffered: 0,
    txBytes: 0,
    notReading: 0,
    lastBuffered: 0,
    lastTxBytes: 0,
    shut: [],
    terminated: 0,
    bufferedBytes: () => p.buffered,
    shutdown: (code) => { p.shut.push(code) },
    ws: { ping: () => {}, terminate: () => { p.terminated++ } }
  }
  return p
}

describe('audit: keepalive and a peer that does not read', () => {
  let restore: (line: string) => void
  let table: PortTable
  let now: number
  let config = buildConfig({ limits: { notReadingTimeout: 1 } }, 'test')
  beforeEach(() => {
    restore = setLogSink(() => {})
    config = buildConfig({ limits: { notReadingTimeout: 1 } }, 'test')
    table = new PortTable({} as unknown as Networks, () => config, () => {})
    now = 1000
  })
  afterEach(() => { setLogSink(restore) })

  function round (p: Fake): void {
    p.alive = true // it keeps sending: under the old keepalive that was enough to stay
    now += 1000
    table.keepalive(1, now)
  }

  it('attack: a peer that keeps sending but reads nothing for a whole round is closed with 4004, then cut', () => {
    const p = fakePort()
    table.ports.add(p as unknown as WsPort)
    p.buffered = 3 * MARK
    round(p)
    assert.deepEqual(p.shut, [], 'one look above the mark is not enough')
    round(p)
    assert.deepEqual(p.shut, [CLOSE_NOT_READING])
    assert.equal(table.closedNotReading, 1)
    round(p)
    assert.equal(p.terminated, 1, 'it did not read the close either')
  })

  it('gives a peer that stopped reading limits.notReadingTimeout (30 s by default) before closing it', () => {
    config = buildConfig({}, 'test')
    const p = fakePort()
    table.ports.add(p as unknown as WsPort)
    p.buffered = 3 * MARK
    for (let i = 0; i < 30; i++) round(p)
    assert.deepEqual(p.shut, [], 'a reader stuck for 29 s is congested, not dead')
    round(p)
    assert.deepEqual(p.shut, [CLOSE_NOT_READING])
  })

  it('keeps a congested peer that reads, however slowly (frames still go out, or its buffer shrinks)', () => {
    const p = fakePort()
    table.ports.add(p as unknown as WsPort)
    for (let i = 0; i < 6; i++) {
      p.buffered = MARK + 1000
      if (i % 2 === 0) p.txBytes += 1500 // it read a little, and a frame fit in
      else p.buffered = MARK + 500 - i // or nothing new fit, but the buffer shrank
      round(p)
    }
    assert.deepEqual(p.shut, [])
    assert.equal(p.terminated, 0)
  })
})
