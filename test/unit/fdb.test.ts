import assert from 'node:assert/strict'
import { Fdb, LEARN_OK, LEARN_LIMIT, LEARN_FLAP, LEARN_PINNED, LEARN_HELD } from '../../src/switch/core/fdb'
import { FakePort } from '../helpers/fake-port'
import { setLogSink } from '../../src/common/log'

const A = 0x020000000001
const B = 0x020000000002
const C = 0x020000000003
const S = 100_000 // the clock is in ms; tests start at 100 s

function port (id: number, maxMacs = 256): FakePort {
  const p = new FakePort(id, `p${id}`)
  p.maxMacs = maxMacs
  return p
}

describe('Fdb', () => {
  let restore: (line: string) => void
  beforeEach(() => { restore = setLogSink(() => {}) })
  afterEach(() => { setLogSink(restore) })

  describe('#learn() / #lookup()', () => {
    it('looks up the port a MAC was learned on, per VLAN', () => {
      const fdb = new Fdb({}, S)
      const p1 = port(1); const p2 = port(2)
      assert.equal(fdb.learn(1, A, p1), LEARN_OK)
      assert.equal(fdb.learn(2, A, p2), LEARN_OK, 'the same MAC in another VLAN is another entry')
      assert.equal(fdb.lookup(1, A), p1)
      assert.equal(fdb.lookup(2, A), p2)
      assert.equal(fdb.lookup(3, A), undefined)
      assert.equal(fdb.lookup(1, B), undefined)
      assert.equal(fdb.stats.learned, 2)
      assert.equal(fdb.size, 2)
      assert.equal(p1.fdbEntries, 1)
    })

    it('moves a MAC to its new port once the old one has been quiet for moveHold, and counts the move', () => {
      const fdb = new Fdb({ moveHold: 1000 }, S)
      const p1 = port(1); const p2 = port(2)
      fdb.learn(1, A, p1)
      assert.equal(fdb.learn(1, A, p2), LEARN_HELD, 'p1 sent A just now')
      assert.equal(fdb.lookup(1, A), p1)
      fdb.tick(S + 1000)
      assert.equal(fdb.learn(1, A, p2), LEARN_OK)
      assert.equal(fdb.lookup(1, A), p2)
      assert.equal(fdb.stats.moved, 1)
      assert.equal(p1.fdbEntries, 0)
      assert.equal(p2.fdbEntries, 1)
      assert.equal(fdb.size, 1)
    })
  })

  describe('#expire()', () => {
    it('removes entries idle longer than ageingTime, and not before', () => {
      const fdb = new Fdb({ ageingTime: 10 }, S)
      const p1 = port(1)
      fdb.learn(1, A, p1)
      fdb.tick(S + 10_000)
      assert.equal(fdb.expire(), 0)
      assert.equal(fdb.lookup(1, A), p1)
      fdb.tick(S + 10_001)
      assert.equal(fdb.lookup(1, A), undefined, 'lookup ignores a stale entry before expire() runs')
      assert.equal(fdb.expire(), 1)
      assert.equal(fdb.size, 0)
      assert.equal(fdb.stats.expired, 1)
      assert.equal(p1.fdbEntries, 0)
      assert.equal(fdb.bookOf(p1).size, 0)
    })

    it('keeps a MAC that keeps sending', () => {
      const fdb = new Fdb({ ageingTime: 10 }, S)
      const p1 = port(1)
      for (let t = S; t <= S + 50_000; t += 5000) {
        fdb.tick(t)
        fdb.learn(1, A, p1)
        fdb.expire()
      }
      assert.equal(fdb.lookup(1, A), p1)
      assert.equal(fdb.stats.expired, 0)
    })

    it('relearns a MAC after it expired, counting the old entry as expired', () => {
      const fdb = new Fdb({ ageingTime: 5 }, S)
      const p1 = port(1); const p2 = port(2)
      fdb.learn(1, A, p1)
      fdb.tick(S + 100_000)
      fdb.learn(1, A, p2)
      assert.equal(fdb.lookup(1, A), p2)
      assert.equal(p1.fdbEntries, 0)
      assert.equal(p2.fdbEntries, 1)
      assert.equal(fdb.size, 1)
      assert.equal(fdb.stats.expired, 1)
    })
  })

  describe('capacity', () => {
    it('when full, evicts the oldest entry of the port holding the most', () => {
      const fdb = new Fdb({ maxEntries: 4 }, S)
      const quiet = port(1); const noisy = port(2)
      fdb.learn(1, A, quiet)
      fdb.learn(1, B, quiet)
      fdb.tick(S + 1000)
      fdb.learn(1, 0x0a0000000001, noisy)
      fdb.learn(1, 0x0a0000000002, noisy)
      fdb.tick(S + 2000)
      fdb.learn(1, 0x0a0000000001, noisy) // refreshed: ...02 is now noisy's oldest
      fdb.learn(1, 0x0a0000000003, noisy) // a 2-2 tie goes against the learner: noisy loses ...02
      fdb.learn(1, 0x0a0000000004, noisy)
      assert.equal(fdb.size, 4)
      assert.equal(fdb.lookup(1, A), quiet, 'the quiet port keeps its entries')
      assert.equal(fdb.lookup(1, B), quiet)
      assert.equal(fdb.lookup(1, 0x0a0000000004), noisy)
      assert.equal(fdb.stats.evicted, 2)
    })

    it('a port spraying random MACs cannot push out the others', () => {
      const fdb = new Fdb({ maxEntries: 100 }, S)
      const ports = [port(1), port(2), port(3)]
      for (const [i, p] of ports.entries()) for (let m = 0; m < 10; m++) fdb.learn(1, 0x020000000000 + i * 256 + m, p)
      const sprayer = port(4, 100_000)
      for (let m = 0; m < 10_000; m++) fdb.learn(1, 0x0e0000000000 + m, sprayer)
      assert.equal(fdb.size, 100)
      for (const p of ports) assert.equal(p.fdbEntries, 10)
      assert.equal(sprayer.fdbEntries, 70)
    })
  })

  describe('port security', () => {
    it('refuses a new MAC beyond the port\'s limit, and a move onto a full port', () => {
      const fdb = new Fdb({ moveHold: 0 }, S)
      const p1 = port(1, 2); const p2 = port(2)
      assert.equal(fdb.learn(1, A, p1), LEARN_OK)
      assert.equal(fdb.learn(1, B, p1), LEARN_OK)
      assert.equal(fdb.learn(1, C, p1), LEARN_LIMIT)
      assert.equal(fdb.learn(1, A, p1), LEARN_OK, 'known MACs still pass')
      fdb.learn(1, C, p2)
      assert.equal(fdb.learn(1, C, p1), LEARN_LIMIT)
      assert.equal(fdb.lookup(1, C), p2)
      assert.equal(fdb.stats.limited, 2)
    })
  })

  describe('static entries', () => {
    it('never age, are not learned elsewhere, and do not count against the port', () => {
      const fdb = new Fdb({ ageingTime: 5 }, S)
      const router = port(1, 1); const other = port(2)
      fdb.addStatic(1, A, router)
      assert.equal(fdb.learn(1, A, other), LEARN_PINNED)
      fdb.tick(S + 1_000_000)
      fdb.expire()
      assert.equal(fdb.lookup(1, A), router)
      assert.equal(router.fdbEntries, 0)
      assert.equal(fdb.learn(1, B, router), LEARN_OK, 'the static MAC does not use up the limit')
      fdb.clearStatic()
      assert.equal(fdb.lookup(1, A), undefined)
    })
  })

  describe('loop detection', () => {
    it('reports a MAC moving back and forth loopMoves times within the window', () => {
      const fdb = new Fdb({ loopMoves: 4, loopWindow: 1000, moveHold: 0 }, S)
      const p1 = port(1); const p2 = port(2)
      fdb.learn(1, A, p1)
      assert.equal(fdb.learn(1, A, p2), LEARN_OK)
      assert.equal(fdb.learn(1, A, p1), LEARN_OK)
      assert.equal(fdb.learn(1, A, p2), LEARN_OK)
      assert.equal(fdb.learn(1, A, p1), LEARN_FLAP)
      assert.equal(fdb.flapFrom, p2)
      assert.equal(fdb.stats.flaps, 1)
    })

    it('does not report moves spread out over more than the window (a migrating VM)', () => {
      const fdb = new Fdb({ loopMoves: 3, loopWindow: 1000, moveHold: 0 }, S)
      const p1 = port(1); const p2 = port(2)
      fdb.learn(1, A, p1)
      for (let i = 1; i <= 10; i++) {
        fdb.tick(S + i * 600)
        assert.equal(fdb.learn(1, A, i % 2 === 1 ? p2 : p1), LEARN_OK)
      }
      assert.equal(fdb.stats.flaps, 0)
    })
  })

  describe('#deletePort() / #flushVlan()', () => {
    it('forgets only the MACs of that port, in every VLAN', () => {
      const fdb = new Fdb({}, S)
      const p1 = port(1); const p2 = port(2)
      fdb.learn(1, A, p1)
      fdb.learn(2, B, p1)
      fdb.learn(1, C, p2)
      assert.equal(fdb.deletePort(p1), 2)
      assert.equal(fdb.lookup(1, A), undefined)
      assert.equal(fdb.lookup(2, B), undefined)
      assert.equal(fdb.lookup(1, C), p2)
      assert.equal(p1.fdbEntries, 0)
      assert.equal(fdb.size, 1)
    })

    it('flushVlan forgets one VLAN\'s dynamic entries only', () => {
      const fdb = new Fdb({}, S)
      const p1 = port(1)
      fdb.learn(1, A, p1)
      fdb.learn(2, A, p1)
      fdb.addStatic(1, C, p1)
      assert.equal(fdb.flushVlan(1), 1)
      assert.equal(fdb.lookup(1, A), undefined)
      assert.equal(fdb.lookup(2, A), p1)
      assert.equal(fdb.lookup(1, C), p1, 'static entries survive a flush')
    })
  })

  describe('#rows()', () => {
    it('lists live entries with their VLAN and age', () => {
      const fdb = new Fdb({}, S)
      const p1 = port(1)
      fdb.learn(10, A, p1)
      fdb.tick(S + 3000)
      assert.deepEqual(fdb.rows().map((r) => [r.vid, r.mac, r.port.name, r.age, r.isStatic]), [[10, A, 'p1', 3, false]])
    })
  })
})
