/**
 * The spanning tree over trunks, on Switch objects joined by simulated
 * trunks: BPDUs and frames cross in a queue pumped by the test, the clock is
 * the test's. A broadcast that could circle forever is bounded by the pump's
 * budget, so a loop shows up as a count, not a hang.
 */

import { portState } from '../../src/switch/core/port'
import assert from 'node:assert/strict'
import { Switch } from '../../src/switch/core/switch'
import { FORWARD_DELAY_MS, HELLO_MS, MAX_AGE_MS, compareVectors, parseBpdu } from '../../src/switch/core/stp'
import { FakePort } from '../helpers/fake-port'
import { eth, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'
import { Fabric, TrunkEnd } from '../helpers/fabric'

const ID_A = '1000aaaaaaaaaaaa'
const ID_B = '8000bbbbbbbbbbbb'
const ID_C = '8000cccccccccccc'

describe('spanning tree over trunks', () => {
  let restore: (line: string) => void
  beforeEach(() => { restore = setLogSink(() => {}) })
  afterEach(() => { setLogSink(restore) })

  it('a new trunk discards until the forward delay has passed, then forwards', () => {
    const f = new Fabric([ID_A, ID_B])
    const [ab, ba] = f.link(0, 1)
    assert.equal(portState(ab), 'discarding')
    assert.equal(portState(ba), 'discarding')
    f.run(FORWARD_DELAY_MS - 300)
    assert.equal(ab.stp?.forwarding, false, 'still waiting')
    f.run(600)
    assert.equal(ab.stp?.forwarding, true)
    assert.equal(ba.stp?.forwarding, true)
    assert.equal(ab.blocked, 0)
    assert.equal(ba.stp?.role, 'root')
    assert.equal(ab.stp?.role, 'designated')
    const [a, b] = f.switches as [Switch, Switch]
    assert.equal(a.stp.rootId, ID_A)
    assert.equal(b.stp.rootId, ID_A)
    assert.equal(b.stp.rootCost, 1)
    assert.equal(b.stp.rootPort, ba)
  })

  it('frames cross a forwarding trunk and learning works on both switches', () => {
    const f = new Fabric([ID_A, ID_B])
    const [, ba] = f.link(0, 1)
    f.run(FORWARD_DELAY_MS + 500)
    const [h0, h1] = f.hosts as [FakePort, FakePort]
    const [a, b] = f.switches as [Switch, Switch]
    a.receiveFrame(h0, eth(BROADCAST, MAC_A))
    f.wire.pump()
    assert.equal(h1.take().length, 1)
    b.receiveFrame(h1, eth(MAC_A, MAC_B))
    f.wire.pump()
    assert.equal(h0.take().length, 1, 'unicast back over the trunk')
    assert.equal(b.fdb.lookup(1, 0x020000000001), ba, 'B learned A behind its trunk')
  })

  it('a triangle of trunks blocks exactly one trunk end and a broadcast arrives once everywhere', () => {
    const f = new Fabric([ID_A, ID_B, ID_C])
    f.link(0, 1); f.link(1, 2); const [ac, ca] = f.link(0, 2)
    f.run(FORWARD_DELAY_MS + 2000)
    const discarding = f.trunks().filter((p) => p.stp?.forwarding !== true)
    assert.equal(discarding.length, 1, `one alternate: ${discarding.map((p) => p.name).join(',')}`)
    // B and C tie on cost to the root A; the link between them is cut at the worse bridge, C.
    assert.equal(discarding[0]?.name, 't21')
    assert.equal(ac.stp?.forwarding, true)
    assert.equal(ca.stp?.role, 'root')
    const [a] = f.switches as [Switch]
    a.receiveFrame(f.hosts[0] as FakePort, eth(BROADCAST, MAC_A))
    const left = f.wire.pump(1000)
    assert.equal(left, 0, 'no frame still circling')
    assert.equal((f.hosts[1] as FakePort).take().length, 1)
    assert.equal((f.hosts[2] as FakePort).take().length, 1)
    assert.equal((f.hosts[0] as FakePort).take().length, 0, 'nothing back to the sender')
  })

  it('without the tree (trunks as plain ports) the same triangle storms: the test can tell', () => {
    const f = new Fabric([ID_A, ID_B, ID_C])
    const links = [f.link(0, 1), f.link(1, 2), f.link(0, 2)]
    // Make every trunk end a plain forwarding port, as if the spanning tree were off, and the flap detector
    // and the MAC-move hold (which drops a loop's copies of a MAC still live on its port) too.
    for (const sw of f.switches) { sw.fdb.loopMoves = 1_000_000; sw.fdb.moveHold = 0 }
    for (const [x, y] of links) {
      for (const e of [x, y]) { e.sw.stp.removePort(e); e.stp = null; e.blocked = 0 }
    }
    ;(f.switches[0] as Switch).receiveFrame(f.hosts[0] as FakePort, eth(BROADCAST, MAC_A))
    assert.ok(f.wire.pump(1000) > 0, 'frames still circling after 1000 deliveries')
  })

  it('when a forwarding trunk fails, the alternate takes over after the forward delay and MACs relearn', () => {
    const f = new Fabric([ID_A, ID_B, ID_C])
    const ab = f.link(0, 1); f.link(1, 2); f.link(0, 2)
    f.run(FORWARD_DELAY_MS + 2000)
    const [a, b, c] = f.switches as [Switch, Switch, Switch]
    const [h0, h1, h2] = f.hosts as [FakePort, FakePort, FakePort]
    // B's host is learned at A via the A-B trunk.
    b.receiveFrame(h1, eth(BROADCAST, MAC_B))
    f.wire.pump()
    assert.equal(a.fdb.lookup(1, 0x020000000002), ab[0])
    const tcBefore = c.stp.topologyChanges
    f.cut(ab)
    f.run(200)
    assert.equal(a.fdb.lookup(1, 0x020000000002), undefined, 'the failed trunk took its MACs with it')
    assert.ok(c.stp.topologyChanges > tcBefore, 'C heard of the topology change')
    const bc = b.stp.ports.find((p) => p.name === 't12') as TrunkEnd
    const cb = c.stp.ports.find((p) => p.name === 't21') as TrunkEnd
    assert.equal(cb.stp?.forwarding, false, 'the old alternate waits out the forward delay')
    f.run(FORWARD_DELAY_MS + 1000)
    assert.equal(bc.stp?.forwarding, true)
    assert.equal(cb.stp?.forwarding, true)
    assert.equal(b.stp.rootCost, 2, 'B now reaches the root through C')
    // A host behind B is reachable from A again, through C.
    h0.take(); h2.take()
    a.receiveFrame(h0, eth(MAC_B, MAC_A))
    f.wire.pump()
    assert.equal(h1.take().length, 1)
    b.receiveFrame(h1, eth(MAC_A, MAC_B))
    f.wire.pump()
    assert.equal(h0.take().length, 1)
  })

  it('forgets a neighbour that goes silent (max age) and recomputes', () => {
    const f = new Fabric([ID_A, ID_B])
    const [ab, ba] = f.link(0, 1)
    f.run(FORWARD_DELAY_MS + 500)
    assert.equal((f.switches[1] as Switch).stp.rootId, ID_A)
    ab.up = false // A's BPDUs stop reaching B, but B still has the port
    f.run(MAX_AGE_MS + HELLO_MS)
    assert.equal(ba.stp?.info, undefined)
    assert.equal((f.switches[1] as Switch).stp.rootId, ID_B, 'B is its own root again')
  })

  it('a trunk from a switch back to itself is never forwarding', () => {
    const f = new Fabric([ID_A])
    const sw = f.switches[0] as Switch
    const x = new TrunkEnd(50, 'x', sw, f.wire)
    const y = new TrunkEnd(51, 'y', sw, f.wire)
    x.peer = y; y.peer = x
    sw.addPort(x, true); sw.addPort(y, true)
    f.run(FORWARD_DELAY_MS * 3)
    assert.equal(x.stp?.forwarding, false)
    assert.equal(y.stp?.forwarding, false)
  })

  it('an operator enable keeps a discarding trunk blocked', () => {
    const f = new Fabric([ID_A, ID_B])
    const [ab] = f.link(0, 1)
    const a = f.switches[0] as Switch
    a.disablePort(ab)
    a.enablePort(ab)
    assert.equal(portState(ab), 'discarding', 'still discarding: the tree has not let it forward yet')
    f.run(FORWARD_DELAY_MS + 500)
    assert.equal(ab.blocked, 0)
  })

  it('rejects malformed BPDUs (counted) and orders vectors field by field', () => {
    assert.equal(parseBpdu({ type: 'bpdu', root: 'zz', cost: 0, bridge: ID_A, port: 1 }), undefined)
    assert.equal(parseBpdu({ type: 'bpdu', root: ID_A, cost: -1, bridge: ID_A, port: 1 }), undefined)
    assert.equal(parseBpdu({ type: 'bpdu', root: ID_A, cost: 0, bridge: ID_A, port: 1.5 }), undefined)
    assert.deepEqual(parseBpdu({ type: 'bpdu', root: ID_A, cost: 2, bridge: ID_B, port: 7, tc: [[ID_C, 3], ['x', 1], 5] })?.tc, [[ID_C, 3]])
    const f = new Fabric([ID_A, ID_B])
    const [ab] = f.link(0, 1)
    assert.equal((f.switches[0] as Switch).stp.receive(ab, JSON.stringify({ type: 'bpdu', root: 'nope' })), false)
    assert.equal(ab.stp?.badBpdus, 1)
    const v = { root: ID_A, cost: 1, bridge: ID_B, port: 2 }
    assert.ok(compareVectors(v, { ...v, root: ID_B }) < 0)
    assert.ok(compareVectors(v, { ...v, cost: 2 }) < 0)
    assert.ok(compareVectors(v, { ...v, bridge: ID_C }) < 0)
    assert.ok(compareVectors(v, { ...v, port: 3 }) < 0)
    assert.equal(compareVectors(v, { ...v }), 0)
  })
})

