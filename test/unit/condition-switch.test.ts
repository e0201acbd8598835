import assert from 'node:assert/strict'
import { Switch } from '../../src/switch/core/switch'
import { DIR_IN, DIR_OUT, DEFAULT_POLICY, portState } from '../../src/switch/core/port'
import { readCondition } from '../../src/switch/core/condition'
import { setCondition, setLinkDown } from '../../src/switch/core/link'
import { encodeBatch } from '../../src/common/protocol'
import { FakePort } from '../helpers/fake-port'
import { eth, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'
import { R_CONDITION, R_LINK_DOWN, R_VLAN } from '../../src/switch/core/reasons'

/** A FakePort that records the wake-ups the switch asks for (the io timer's job). */
class WakingPort extends FakePort {
  readonly wakes: Array<[number, number]> = []
  links: boolean[] = []
  override wakeCondition (dir: number, due: number): void { this.wakes.push([dir, due]) }
  override linkChanged (up: boolean): void { this.links.push(up) }
}

describe('Switch with link conditions', () => {
  let sw: Switch
  let a: WakingPort, b: WakingPort
  let now: number
  let restore: (line: string) => void

  beforeEach(() => {
    restore = setLogSink(() => {})
    sw = new Switch({}, 0)
    now = 1000
    sw.preciseClock = () => now
    a = new WakingPort(1, 'a'); b = new WakingPort(2, 'b')
    sw.addPort(a); sw.addPort(b)
  })
  afterEach(() => { setLogSink(restore) })

  it('egress delay: the frame is held, a wake-up asked for, and it leaves at its due time as a copy', () => {
    setCondition(sw, b, DIR_OUT, readCondition({ delay: 20 }, 'c'))
    const f = eth(BROADCAST, MAC_A)
    sw.receiveFrame(a, f)
    assert.equal(b.sent.length, 0)
    assert.deepEqual(b.wakes, [[DIR_OUT, 1020]])
    f.fill(0) // the ingress buffer is reused
    assert.equal(sw.releaseHeld(b, DIR_OUT, 1019), 1020)
    assert.equal(b.sent.length, 0)
    assert.equal(sw.releaseHeld(b, DIR_OUT, 1020), Infinity)
    assert.deepEqual(b.take(), [eth(BROADCAST, MAC_A)])
    assert.equal(b.framesDelayed, 1)
  })

  it('ingress delay holds a batch before the decision; learning happens on release', () => {
    setCondition(sw, a, DIR_IN, readCondition({ delay: 5 }, 'c'))
    sw.receiveBatch(a, encodeBatch([eth(BROADCAST, MAC_A), eth(MAC_B, MAC_A)]))
    assert.equal(sw.fdb.size, 0, 'not learned yet: the frames are still on the wire')
    assert.equal(b.sent.length, 0)
    sw.releaseHeld(a, DIR_IN, 1005)
    assert.equal(b.sent.length, 2)
    assert.equal(sw.fdb.size, 1)
  })

  it('loss is counted as drop reason "condition" on the port and the network', () => {
    setCondition(sw, b, DIR_OUT, readCondition({ loss: 100 }, 'c'))
    sw.receiveFrame(a, eth(BROADCAST, MAC_A))
    assert.equal(b.sent.length, 0)
    assert.equal(b.drops[R_CONDITION], 1)
    assert.equal(sw.stats.drops[R_CONDITION], 1)
  })

  it('clearing a condition sends what it held at once, in order', () => {
    setCondition(sw, b, DIR_OUT, readCondition({ delay: 1000 }, 'c'))
    for (let i = 0; i < 3; i++) sw.receiveFrame(a, eth(BROADCAST, MAC_A, i))
    setCondition(sw, b, DIR_OUT, null)
    assert.equal(b.condOut, null)
    assert.deepEqual(b.take().map((x) => x[14]), [0, 1, 2])
  })

  it('link down both ways: BLOCK_LINK (state "down"), MACs forgotten, the far end told; up again forwards', () => {
    sw.receiveFrame(b, eth(BROADCAST, MAC_B))
    assert.equal(sw.fdb.size, 1)
    a.take()
    setLinkDown(sw, b, 'both', true)
    assert.equal(portState(b), 'down')
    assert.equal(sw.fdb.size, 0)
    assert.deepEqual(b.links, [false])
    sw.receiveFrame(a, eth(BROADCAST, MAC_A))
    sw.receiveFrame(b, eth(BROADCAST, MAC_B))
    assert.equal(b.sent.length, 0); assert.equal(a.sent.length, 0)
    assert.equal(b.drops[R_LINK_DOWN], 1, 'its own ingress')
    setLinkDown(sw, b, 'both', false)
    assert.deepEqual(b.links, [false, true])
    sw.receiveFrame(a, eth(BROADCAST, MAC_A))
    assert.equal(b.sent.length, 1)
  })

  it('link down one way drops that direction only, and up removes the empty condition', () => {
    setLinkDown(sw, b, DIR_OUT, true)
    sw.receiveFrame(a, eth(BROADCAST, MAC_A))
    sw.receiveFrame(b, eth(BROADCAST, MAC_B))
    assert.equal(b.sent.length, 0)
    assert.equal(a.sent.length, 1, 'b still sends')
    assert.equal(b.drops[R_LINK_DOWN], 1)
    assert.deepEqual(b.links, [], 'the carrier follows only a link down both ways')
    setLinkDown(sw, b, DIR_OUT, false)
    assert.equal(b.condOut, null)
  })

  it('a held frame for a port that went down meanwhile is dropped as link_down', () => {
    setCondition(sw, b, DIR_OUT, readCondition({ delay: 10 }, 'c'))
    sw.receiveFrame(a, eth(BROADCAST, MAC_A))
    setLinkDown(sw, b, 'both', true)
    sw.releaseHeld(b, DIR_OUT, 2000)
    assert.equal(b.sent.length, 0)
    assert.equal(b.drops[R_LINK_DOWN], 1)
  })

  it('attack: a frame held for a port that has since left its VLAN is not delivered (counted as vlan)', () => {
    // An operator moves b from VLAN 10 to VLAN 20 (a reload that keeps it connected): what was on its way
    // to it from VLAN 10, up to a whole delay (60 s at most), must not reach it afterwards.
    const v10 = { ...DEFAULT_POLICY, pvid: 10, vlans: [10] }
    a.applyPolicy(v10); b.applyPolicy(v10)
    setCondition(sw, b, DIR_OUT, readCondition({ delay: 60_000 }, 'c'))
    sw.receiveFrame(a, eth(BROADCAST, MAC_A, 1))
    b.applyPolicy({ ...DEFAULT_POLICY, pvid: 20, vlans: [20] })
    sw.invalidate()
    sw.releaseHeld(b, DIR_OUT, 1000 + 60_000)
    assert.equal(b.sent.length, 0, 'a VLAN 10 frame reached a port of VLAN 20')
    assert.equal(b.drops[R_VLAN], 1)
    assert.equal(sw.stats.drops[R_VLAN], 1)
    // A frame of its VLAN still goes.
    a.applyPolicy({ ...DEFAULT_POLICY, pvid: 20, vlans: [20] })
    sw.receiveFrame(a, eth(BROADCAST, MAC_A, 2))
    sw.releaseHeld(b, DIR_OUT, 1000 + 120_000)
    assert.deepEqual(b.take(), [eth(BROADCAST, MAC_A, 2)])
  })

  it('an offload port\'s held frames keep their virtio-net header, both ways', () => {
    a.offload = true; b.offload = true
    setCondition(sw, a, DIR_IN, readCondition({ delay: 5 }, 'c'))
    setCondition(sw, b, DIR_OUT, readCondition({ delay: 5 }, 'c'))
    const hdr = Buffer.alloc(10) // no GSO, no partial checksum: valid as it is
    sw.receiveBatch(a, encodeBatch([Buffer.concat([hdr, eth(BROADCAST, MAC_A, 7)])]))
    sw.releaseHeld(a, DIR_IN, 1005)
    assert.equal(b.sent.length, 0, 'held again on the way out')
    sw.releaseHeld(b, DIR_OUT, 1010)
    assert.deepEqual(b.take(), [Buffer.concat([hdr, eth(BROADCAST, MAC_A, 7)])])
  })

  it('a port that leaves drops what its conditions held', () => {
    setCondition(sw, b, DIR_OUT, readCondition({ delay: 10 }, 'c'))
    sw.receiveFrame(a, eth(BROADCAST, MAC_A))
    sw.removePort(b)
    assert.equal(b.condOut, null)
    assert.equal(sw.releaseHeld(b, DIR_OUT, 5000), Infinity)
  })
})
