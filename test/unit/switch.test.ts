import assert from 'node:assert/strict'
import { Switch } from '../../src/switch/core/switch'
import { encodeBatch } from '../../src/common/protocol'
import { FakePort } from '../helpers/fake-port'
import { eth, frame, BROADCAST, MAC_A, MAC_B, MAC_C, MAC_D } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'
import { R_BAD_SOURCE, R_HAIRPIN, R_MALFORMED, R_OVERSIZE, R_RUNT } from '../../src/switch/core/reasons'

describe('Switch', () => {
  let sw: Switch
  let a: FakePort, b: FakePort, c: FakePort
  let restore: (line: string) => void

  beforeEach(() => {
    restore = setLogSink(() => {})
    sw = new Switch({}, 100)
    a = new FakePort(1, 'a'); b = new FakePort(2, 'b'); c = new FakePort(3, 'c')
    sw.addPort(a); sw.addPort(b); sw.addPort(c)
  })
  afterEach(() => { setLogSink(restore) })

  it('floods broadcast to every port except ingress', () => {
    const f = eth(BROADCAST, MAC_A)
    sw.receiveFrame(a, f)
    assert.equal(a.sent.length, 0)
    assert.deepEqual(b.take(), [f])
    assert.deepEqual(c.take(), [f])
    assert.equal(sw.stats.floodedBroadcast, 1)
  })

  it('floods multicast and counts it as multicast', () => {
    sw.receiveFrame(a, eth('333300000001', MAC_A))
    assert.equal(b.sent.length, 1)
    assert.equal(c.sent.length, 1)
    assert.equal(sw.stats.floodedMulticast, 1)
  })

  it('floods unknown unicast to every port except ingress', () => {
    sw.receiveFrame(a, eth(MAC_D, MAC_A))
    assert.equal(a.sent.length, 0)
    assert.equal(b.sent.length, 1)
    assert.equal(c.sent.length, 1)
    assert.equal(sw.stats.floodedUnknown, 1)
  })

  it('forwards known unicast to exactly one port once learned', () => {
    sw.receiveFrame(b, eth(BROADCAST, MAC_B)) // learn B on b
    a.take(); c.take()
    const f = eth(MAC_B, MAC_A, 7)
    sw.receiveFrame(a, f)
    assert.deepEqual(b.take(), [f])
    assert.equal(c.sent.length, 0)
    assert.equal(sw.stats.forwarded, 1)
    // and the reply goes back to a alone, learned from the first frame
    sw.receiveFrame(b, eth(MAC_A, MAC_B))
    assert.equal(a.take().length, 1)
    assert.equal(c.sent.length, 0)
  })

  it('never sends a frame back out its ingress port (hairpin drop)', () => {
    sw.receiveFrame(a, eth(BROADCAST, MAC_A))
    sw.receiveFrame(a, eth(BROADCAST, MAC_C)) // C also behind a
    b.take(); c.take()
    sw.receiveFrame(a, eth(MAC_C, MAC_A))
    assert.equal(a.sent.length, 0)
    assert.equal(b.sent.length, 0)
    assert.equal(c.sent.length, 0)
    assert.equal(a.drops[R_HAIRPIN], 1)
    assert.equal(sw.stats.drops[R_HAIRPIN], 1)
  })

  it('drops and counts runts shorter than 14 bytes', () => {
    sw.receiveFrame(a, frame('ffffffffffff 020000'))
    sw.receiveFrame(a, Buffer.alloc(0))
    assert.equal(b.sent.length + c.sent.length, 0)
    assert.equal(a.drops[R_RUNT], 2)
    assert.equal(sw.stats.drops[R_RUNT], 2)
  })

  it('forwards a 14-byte header-only frame (no minimum payload on the wire)', () => {
    sw.receiveFrame(a, frame(`${BROADCAST} ${MAC_A} 88b5`))
    assert.equal(b.sent.length, 1)
  })

  it('drops frames with a group or zero source address, without learning them', () => {
    sw.receiveFrame(a, eth(BROADCAST, '010000000001'))
    sw.receiveFrame(a, eth(BROADCAST, 'ffffffffffff'))
    sw.receiveFrame(a, eth(BROADCAST, '000000000000'))
    assert.equal(b.sent.length, 0)
    assert.equal(a.drops[R_BAD_SOURCE], 3)
    assert.equal(sw.fdb.size, 0)
  })

  it('drops frames over the maximum frame size', () => {
    const big = new Switch({ maxFrameSize: 1518 }, 100)
    const p = new FakePort(1, 'p'); const q = new FakePort(2, 'q')
    big.addPort(p); big.addPort(q)
    big.receiveFrame(p, eth(BROADCAST, MAC_A, 0, 1518))
    big.receiveFrame(p, eth(BROADCAST, MAC_A, 0, 1519))
    assert.equal(q.sent.length, 1)
    assert.equal(p.drops[R_OVERSIZE], 1)
    assert.equal(big.stats.drops[R_OVERSIZE], 1)
  })

  it('handles every frame of a batch and flushes each egress port once', () => {
    sw.receiveFrame(b, eth(BROADCAST, MAC_B))
    sw.receiveFrame(c, eth(BROADCAST, MAC_C))
    a.take(); b.take(); c.take()
    b.flushes = 0; c.flushes = 0
    const frames = [eth(MAC_B, MAC_A, 1), eth(MAC_C, MAC_A, 2), eth(MAC_B, MAC_A, 3), frame('0102'), eth(BROADCAST, MAC_A, 4)]
    assert.equal(sw.receiveBatch(a, encodeBatch(frames)), true)
    assert.deepEqual(b.take().map((f) => f[14]), [1, 3, 4])
    assert.deepEqual(c.take().map((f) => f[14]), [2, 4])
    assert.equal(b.flushes, 1)
    assert.equal(c.flushes, 1)
    assert.equal(a.drops[R_RUNT], 1)
    assert.equal(a.rxFrames, 5)
  })

  it('rejects a batch whose framing is broken and forwards none of it', () => {
    const good = encodeBatch([eth(BROADCAST, MAC_A)])
    const truncated = Buffer.concat([good, Buffer.from([0, 0, 0, 60, 1, 2, 3])])
    assert.equal(sw.receiveBatch(a, truncated), false)
    assert.equal(sw.receiveBatch(a, Buffer.from([0, 0])), false)
    assert.equal(b.sent.length, 0)
    assert.equal(a.drops[R_MALFORMED], 2)
    assert.equal(sw.stats.drops[R_MALFORMED], 2)
  })

  it('forgets a port\'s MACs when it leaves, so traffic to them floods again', () => {
    sw.receiveFrame(b, eth(BROADCAST, MAC_B))
    assert.equal(sw.removePort(b), 1)
    c.take()
    sw.receiveFrame(a, eth(MAC_B, MAC_A))
    assert.equal(c.sent.length, 1)
    assert.equal(b.sent.length, 0, 'b gets nothing once it left')
    assert.equal(sw.ports.length, 2)
  })

  it('ages out entries on tick, after which unicast floods again', () => {
    const s = new Switch({ ageingTime: 5 }, 100_000)
    const p = new FakePort(1, 'p'); const q = new FakePort(2, 'q'); const r = new FakePort(3, 'r')
    s.addPort(p); s.addPort(q); s.addPort(r)
    s.receiveFrame(q, eth(BROADCAST, MAC_B))
    s.receiveFrame(p, eth(MAC_B, MAC_A))
    assert.equal(r.take().length, 1, 'only the broadcast reached r')
    s.tick(106_000)
    assert.equal(s.fdb.size, 0)
    s.receiveFrame(p, eth(MAC_B, MAC_A))
    assert.equal(r.take().length, 1, 'unknown again: flooded')
  })
})
