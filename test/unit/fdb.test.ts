import assert from 'node:assert/strict'
import { Fdb } from '../../src/switch/fdb'
import { FakePort } from '../helpers/fake-port'
import { setLogSink } from '../../src/common/log'

const A = 0x020000000001
const B = 0x020000000002
const C = 0x020000000003

describe('Fdb', () => {
  let restore: (line: string) => void
  beforeEach(() => { restore = setLogSink(() => {}) })
  afterEach(() => { setLogSink(restore) })

  describe('#learn() / #lookup()', () => {
    it('looks up the port a MAC was learned on', () => {
      const fdb = new Fdb({}, 100)
      const p1 = new FakePort(1, 'p1')
      fdb.learn(A, p1)
      assert.equal(fdb.lookup(A), p1)
      assert.equal(fdb.lookup(B), undefined)
      assert.equal(fdb.stats.learned, 1)
      assert.equal(p1.fdbEntries, 1)
    })

    it('moves a MAC to its new port at once and counts the move', () => {
      const fdb = new Fdb({}, 100)
      const p1 = new FakePort(1, 'p1')
      const p2 = new FakePort(2, 'p2')
      fdb.learn(A, p1)
      fdb.learn(A, p2)
      assert.equal(fdb.lookup(A), p2)
      assert.equal(fdb.stats.moved, 1)
      assert.equal(fdb.stats.learned, 1)
      assert.equal(p1.fdbEntries, 0)
      assert.equal(p2.fdbEntries, 1)
      assert.equal(fdb.size, 1)
    })
  })

  describe('#expire()', () => {
    it('removes entries idle longer than ageingTime, and not before', () => {
      const fdb = new Fdb({ ageingTime: 10 }, 100)
      const p1 = new FakePort(1, 'p1')
      fdb.learn(A, p1)
      fdb.tick(110)
      assert.equal(fdb.expire(), 0)
      assert.equal(fdb.lookup(A), p1)
      fdb.tick(111)
      assert.equal(fdb.lookup(A), undefined, 'lookup ignores a stale entry before expire() runs')
      assert.equal(fdb.expire(), 1)
      assert.equal(fdb.size, 0)
      assert.equal(fdb.stats.expired, 1)
      assert.equal(p1.fdbEntries, 0)
    })

    it('keeps a MAC that keeps sending', () => {
      const fdb = new Fdb({ ageingTime: 10 }, 100)
      const p1 = new FakePort(1, 'p1')
      for (let t = 100; t <= 150; t += 5) {
        fdb.tick(t)
        fdb.learn(A, p1)
        fdb.expire()
      }
      assert.equal(fdb.lookup(A), p1)
      assert.equal(fdb.stats.expired, 0)
    })

    it('relearns a MAC after it expired', () => {
      const fdb = new Fdb({ ageingTime: 5 }, 100)
      const p1 = new FakePort(1, 'p1')
      const p2 = new FakePort(2, 'p2')
      fdb.learn(A, p1)
      fdb.tick(200)
      fdb.learn(A, p2)
      assert.equal(fdb.lookup(A), p2)
      assert.equal(p1.fdbEntries, 0)
      assert.equal(p2.fdbEntries, 1)
    })
  })

  describe('capacity', () => {
    it('evicts the least recently refreshed entry when full', () => {
      const fdb = new Fdb({ maxEntries: 2 }, 100)
      const p1 = new FakePort(1, 'p1')
      fdb.learn(A, p1)
      fdb.tick(101)
      fdb.learn(B, p1)
      fdb.tick(102)
      fdb.learn(A, p1) // refreshes A: B is now the oldest
      fdb.learn(C, p1)
      assert.equal(fdb.size, 2)
      assert.equal(fdb.lookup(B), undefined)
      assert.equal(fdb.lookup(A), p1)
      assert.equal(fdb.lookup(C), p1)
      assert.equal(fdb.stats.evicted, 1)
      assert.equal(p1.fdbEntries, 2)
    })
  })

  describe('#deletePort()', () => {
    it('forgets only the MACs of that port', () => {
      const fdb = new Fdb({}, 100)
      const p1 = new FakePort(1, 'p1')
      const p2 = new FakePort(2, 'p2')
      fdb.learn(A, p1)
      fdb.learn(B, p1)
      fdb.learn(C, p2)
      assert.equal(fdb.deletePort(p1), 2)
      assert.equal(fdb.lookup(A), undefined)
      assert.equal(fdb.lookup(B), undefined)
      assert.equal(fdb.lookup(C), p2)
      assert.equal(p1.fdbEntries, 0)
    })
  })

  describe('#rows()', () => {
    it('lists live entries with their age', () => {
      const fdb = new Fdb({}, 100)
      const p1 = new FakePort(1, 'p1')
      fdb.learn(A, p1)
      fdb.tick(103)
      assert.deepEqual(fdb.rows().map((r) => [r.mac, r.port.name, r.age]), [[A, 'p1', 3]])
    })
  })
})
