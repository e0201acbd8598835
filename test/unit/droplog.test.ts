import assert from 'node:assert/strict'
import { DropLog } from '../../src/switch/core/droplog'
import { DROP_REASONS, R_RUNT, R_VLAN, R_LINK_LOCAL, reasonIndex } from '../../src/switch/core/drops'
import { Switch } from '../../src/switch/core/switch'
import { Fdb, LEARN_OK } from '../../src/switch/core/fdb'
import { linkLocalGroup, forwardsGroup } from '../../src/switch/core/classify'
import { parseFrameSpec } from '../../src/common/framespec'
import { setLogSink } from '../../src/common/log'
import { FakePort } from '../helpers/fake-port'
import { eth, frame, BROADCAST, MAC_A } from '../helpers/frames'

const A = 0x020000000001

/** The ring's columns, to check their sizes. */
function columns (log: DropLog): Array<{ length: number }> {
  const o = log as unknown as Record<string, { length: number }>
  return ['time', 'src', 'dst', 'vid', 'reason', 'network', 'port'].map((k) => o[k] as { length: number })
}

describe('DropLog (the drop ring)', () => {
  it('keeps the last `size` drops, oldest first, with a cursor', () => {
    const log = new DropLog(4)
    for (let i = 1; i <= 6; i++) log.add(i * 10, 'n', `p${i}`, i, 100 + i, i, R_VLAN)
    const all = log.read()
    assert.deepEqual(all.records.map((r) => r.seq), [3, 4, 5, 6])
    assert.equal(all.lost, 2)
    assert.deepEqual(all.records[0], { seq: 3, timeMs: 30, network: 'n', port: 'p3', src: 3, dst: 103, vid: 3, reason: R_VLAN })
    assert.deepEqual(log.read(4).records.map((r) => r.seq), [5, 6])
    assert.equal(log.read(4).lost, 0)
    assert.deepEqual(log.read(6).records, [])
    assert.deepEqual(log.read(0, 1).records.map((r) => r.seq), [6], 'limit keeps the newest')
    assert.deepEqual(log.read(99).records, [], 'a cursor from the future (switchd restarted) reads nothing')
  })

  it('refuses a size out of range', () => {
    assert.throws(() => new DropLog(0), RangeError)
    assert.throws(() => new DropLog(1e9), RangeError)
  })

  it('attack: a dropping flood cannot make the ring cost more than its fixed size', () => {
    const restore = setLogSink(() => {})
    try {
      const sw = new Switch({ dropLog: new DropLog(256) }, 0)
      const a = new FakePort(1, 'a'); sw.addPort(a)
      const sizes = columns(sw.dropLog).map((c) => c.length)
      const runt = Buffer.alloc(5)
      const badVlan = frame('ffffffffffff 020000000001 8100 0014 88b5', 60)
      for (let i = 0; i < 100_000; i++) sw.receiveFrame(a, i % 2 === 0 ? runt : badVlan)
      assert.equal(sw.dropLog.seq, 100_000)
      assert.deepEqual(columns(sw.dropLog).map((c) => c.length), sizes)
      assert.ok(sizes.every((n) => n === 256))
      assert.equal(sw.dropLog.read().records.length, 256)
    } finally { setLogSink(restore) }
  })

  it('has a reason index for every reason of the drops table', () => {
    assert.equal(DROP_REASONS[R_RUNT]?.reason, 'runt')
    assert.equal(DROP_REASONS[R_LINK_LOCAL]?.reason, 'link_local')
    assert.ok(DROP_REASONS.length < 256, 'reasons fit the ring\'s Uint8Array')
    assert.throws(() => reasonIndex('nope'))
  })
})

describe('IEEE link-local groups', () => {
  it('recognises 01:80:c2:00:00:00 to 0f and nothing else', () => {
    assert.equal(linkLocalGroup(frame('0180c2000000'), 0), 0)
    assert.equal(linkLocalGroup(frame('0180c200000e'), 0), 0x0e)
    assert.equal(linkLocalGroup(frame('0180c2000010'), 0), -1)
    assert.equal(linkLocalGroup(frame('0180c2000021'), 0), -1)
    assert.equal(linkLocalGroup(frame('01005e000001'), 0), -1)
  })

  it('forwards STP only while the network runs no spanning tree of its own', () => {
    assert.equal(forwardsGroup(0x0001, 0, 0), true)
    assert.equal(forwardsGroup(0x0001, 0, 1), false)
    assert.equal(forwardsGroup(0x4004, 0x0e, 3), true, 'other groups do not depend on trunks')
    assert.equal(forwardsGroup(0x4004, 0x03, 0), false)
  })

  it('drops and counts a group the network does not forward; floods one it does', () => {
    const restore = setLogSink(() => {})
    try {
      const sw = new Switch({}, 0)
      const a = new FakePort(1, 'a'); const b = new FakePort(2, 'b'); sw.addPort(a); sw.addPort(b)
      const lacp = eth('0180c2000002', MAC_A)
      sw.receiveFrame(a, lacp)
      assert.equal(b.sent.length, 0)
      assert.equal(a.drops[R_LINK_LOCAL], 1)
      assert.equal(sw.stats.drops[R_LINK_LOCAL], 1)
      sw.groupFwdMask |= 1 << 2
      sw.receiveFrame(a, lacp)
      assert.equal(b.take().length, 1)
      sw.receiveFrame(a, eth(BROADCAST, MAC_A))
      assert.equal(b.take().length, 1, 'broadcast is no link-local group')
    } finally { setLogSink(restore) }
  })
})

describe('duplicate MAC detection', () => {
  let lines: string[]
  let restore: (line: string) => void
  beforeEach(() => { lines = []; restore = setLogSink((l) => { lines.push(l) }) })
  afterEach(() => { setLogSink(restore) })
  const dups = (): Array<Record<string, unknown>> => lines.filter((l) => l.includes('"duplicate_mac"')).map((l) => JSON.parse(l) as Record<string, unknown>)

  it('reports two ports taking turns with one MAC, with both names, once a minute', () => {
    const fdb = new Fdb({ loopMoves: 5, loopWindow: 1000, moveHold: 1000, name: 'lab' }, 0)
    const p1 = new FakePort(1, 'vm1'); const p2 = new FakePort(2, 'vm2')
    let t = 0
    for (let i = 0; i < 20; i++) {
      fdb.tick(t += 400)
      fdb.learn(1, A, i % 2 === 0 ? p1 : p2)
    }
    assert.equal(fdb.stats.duplicates, 1)
    assert.deepEqual([dups()[0]?.network, dups()[0]?.ports, dups()[0]?.mac, dups()[0]?.vlan], ['lab', 'vm1,vm2', '02:00:00:00:00:01', 1])
    assert.equal(fdb.stats.flaps, 0, 'not a loop')
    fdb.tick(t += 61_000)
    for (let i = 0; i < 10; i++) { fdb.tick(t += 400); fdb.learn(1, A, i % 2 === 0 ? p1 : p2) }
    assert.equal(fdb.stats.duplicates, 2, 'reported again after a minute')
  })

  it('does not report a migration (one move), nor one move there and back', () => {
    const fdb = new Fdb({ moveHold: 1000 }, 0)
    const p1 = new FakePort(1, 'a'); const p2 = new FakePort(2, 'b')
    fdb.learn(1, A, p1)
    fdb.tick(5000)
    assert.equal(fdb.learn(1, A, p2), LEARN_OK)
    for (let t = 5000; t < 20_000; t += 500) { fdb.tick(t); fdb.learn(1, A, p2) }
    fdb.tick(30_000)
    fdb.learn(1, A, p1)
    assert.equal(fdb.stats.duplicates, 0)
    assert.deepEqual(dups(), [])
  })

  it('reports a loop as a loop, not as a duplicate', () => {
    const fdb = new Fdb({ loopMoves: 5, loopWindow: 1000, moveHold: 0 }, 0)
    const p1 = new FakePort(1, 'a'); const p2 = new FakePort(2, 'b')
    let t = 0
    for (let i = 0; i < 40; i++) { fdb.tick(t += 20); fdb.learn(1, A, i % 2 === 0 ? p1 : p2) }
    assert.ok(fdb.stats.flaps > 0)
    assert.equal(fdb.stats.duplicates, 0)
  })
})

describe('frame specs', () => {
  it('builds the frame a spec describes', () => {
    const f = parseFrameSpec('dst=lldp,src=02:00:00:00:00:01,vlan=10,pcp=5,type=lldp,len=64')
    assert.equal(f.length, 64)
    assert.equal(f.subarray(0, 12).toString('hex'), '0180c200000e020000000001')
    assert.equal(f.readUInt16BE(12), 0x8100)
    assert.equal(f.readUInt16BE(14), (5 << 13) | 10)
    assert.equal(f.readUInt16BE(16), 0x88cc)
    const g = parseFrameSpec('DST=broadcast, src=02-00-00-00-00-01 ,type=0x88b5')
    assert.equal(g.length, 60)
    assert.equal(g.readUInt16BE(12), 0x88b5)
    assert.deepEqual(parseFrameSpec('ff ff ff ff ff ff 02 00 00 00 00 01 08 06'), frame('ffffffffffff 020000000001 0806'))
  })

  it('attack: refuses malformed and oversized specs with TSW_ERR_FRAME_SPEC', () => {
    for (const bad of ['', 'dst=', 'src=02:00:00:00:00:01', 'dst=broadcast,src=broadcast,x=1', 'dst=broadcast,src=02:00:00:00:00:01,pcp=1',
      'dst=broadcast,src=02:00:00:00:00:01,vlan=1e3', 'dst=broadcast,src=02:00:00:00:00:01,len=10', 'abc', 'zz', 'ab'.repeat(10_000),
      'x'.repeat(1_000_000), 'dst=broadcast,src=02:00:00:00:00:01,type=' + '9'.repeat(400)]) {
      assert.throws(() => parseFrameSpec(bad), (err: Error & { code?: string }) => err.code === 'TSW_ERR_FRAME_SPEC', bad.slice(0, 60))
    }
  })
})
