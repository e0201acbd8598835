/**
 * Switch.receiveFrameAt (issue 26): one frame at an offset of a larger
 * message (a VXLAN datagram after its header), decided where it lies; a port
 * with an edge (link conditions) gets it through the edge like receiveFrame.
 */

import assert from 'node:assert/strict'
import { Switch } from '../../src/switch/core/switch'
import { setCondition } from '../../src/switch/core/link'
import { DIR_IN } from '../../src/switch/core/port'
import { NO_IMPAIRMENT } from '../../src/switch/core/condition'
import { R_RUNT } from '../../src/switch/core/reasons'
import { FakePort } from '../helpers/fake-port'
import { eth, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'

describe('Switch#receiveFrameAt()', () => {
  let sw: Switch
  let a: FakePort, b: FakePort
  beforeEach(() => {
    sw = new Switch({}, 100)
    a = new FakePort(1, 'a')
    b = new FakePort(2, 'b')
    sw.addPort(a); sw.addPort(b)
  })

  it('decides the frame at [off, off + len) of the message, and learns its source', () => {
    const msg = Buffer.concat([Buffer.from('0800000000002a00', 'hex'), eth(BROADCAST, MAC_A, 7), Buffer.from('trailer')])
    sw.receiveFrameAt(a, msg, 8, 60)
    const got = b.take()
    assert.equal(got.length, 1)
    assert.deepEqual(got[0], eth(BROADCAST, MAC_A, 7), 'the frame alone, neither header nor trailer')
    assert.equal(sw.fdb.peek(1, parseInt(MAC_A, 16))?.port, a)
    assert.equal(b.flushes, 1, 'flushed at the end of the message')
    assert.equal(a.rxBytes, 60)
  })

  it('with flush false, queues for the egress port and leaves the one flush to the caller (several datagrams, one batch)', () => {
    for (let i = 0; i < 3; i++) sw.receiveFrameAt(a, Buffer.concat([Buffer.alloc(8), eth(BROADCAST, MAC_A, i)]), 8, 60, false)
    assert.equal(b.flushes, 0, 'nothing sent yet')
    sw.flushDirty()
    assert.equal(b.flushes, 1, 'one flush for the three')
    assert.deepEqual(b.take().map((f) => f[14]), [0, 1, 2])
  })

  it('counts a frame shorter than an Ethernet header as a runt', () => {
    const msg = Buffer.alloc(8 + 13)
    sw.receiveFrameAt(a, msg, 8, 13)
    assert.equal(a.drops[R_RUNT], 1)
    assert.equal(b.take().length, 0)
  })

  it('hands the frame to the port\'s edge when it has link conditions, which may hold it', () => {
    let now = 0
    sw.preciseClock = () => now
    setCondition(sw, a, DIR_IN, { ...NO_IMPAIRMENT, delayMs: 50 })
    assert.ok(a.edge !== null)
    const msg = Buffer.concat([Buffer.alloc(8), eth(MAC_B, MAC_A, 3)])
    sw.receiveFrameAt(a, msg, 8, 60)
    assert.equal(b.take().length, 0, 'held by the delay')
    msg.fill(0xee) // the transport may reuse its buffer: the edge kept what it needs
    now = 60
    sw.releaseHeld(a, DIR_IN, now)
    const got = b.take()
    assert.equal(got.length, 1)
    assert.equal(got[0]?.[14], 3)
  })
})
