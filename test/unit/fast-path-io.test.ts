import assert from 'node:assert/strict'
import { Switch } from '../../src/switch/core/switch'
import { FastPath, MAX_FLOWS, type FastPathBinding, type FastPathPort } from '../../src/switch/io/fast-path'
import { FakePort } from '../helpers/fake-port'
import { eth, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'
import type * as Native from '../../native'

const A = parseInt(MAC_A, 16)
const B = parseInt(MAC_B, 16)

/** The native FastPath's contract in memory: flows by index, per-slot counters the test sets as the thread would. */
class FakeNative implements Native.FastPath {
  static last: FakeNative
  flows: Array<{ inSlot: number, dst: number, src: number, outSlot: number, hits: number } | undefined> = []
  slots: Array<{ fd: number, stats: number[] } | undefined> = []
  flushes = 0
  closed = false
  constructor (readonly onMiss: (slot: number, slab: Buffer, start: number, end: number) => void, readonly maxFlows: number) { FakeNative.last = this }
  addPort (fd: number): number { this.slots.push({ fd, stats: [0, 0, 0, 0, 0] }); return this.slots.length - 1 }
  addWsPort (fd: number): number { return this.addPort(fd) }
  sendWs (): number { return 0 }
  wsBuffered (): number { return 0 }
  wsFootprint (): number { return 0 }
  removePort (slot: number): void { this.slots[slot] = undefined; this.flush() }
  install (inSlot: number, dst: number, src: number, outSlot: number): number {
    const i = this.flows.findIndex((f) => f?.inSlot === inSlot && f.dst === dst && f.src === src)
    if (i >= 0) return i
    const free = this.flows.findIndex((f) => f === undefined)
    const at = free >= 0 ? free : this.flows.length
    if (at >= this.maxFlows) return -1
    this.flows[at] = { inSlot, dst, src, outSlot, hits: 0 }
    return at
  }

  remove (flow: number): void { this.flows[flow] = undefined }
  flush (): void { this.flushes++; this.flows = [] }
  flowHits (out: Float64Array): void { this.flows.forEach((f, i) => { out[i] = f?.hits ?? 0 }) }
  portStats (slot: number, out: Float64Array): void { out.set(this.slots[slot]?.stats ?? [0, 0, 0, 0, 0]) }
  stats (out: Float64Array): void { out.fill(0) }
  close (): void { this.closed = true }
  /** The thread forwarded `n` frames of `len` bytes on flow `i`. */
  hit (i: number, n: number, len: number): void {
    const f = this.flows[i] as NonNullable<FakeNative['flows'][number]>
    f.hits += n
    const rx = (this.slots[f.inSlot] as { stats: number[] }).stats
    const tx = (this.slots[f.outSlot] as { stats: number[] }).stats
    rx[0] = (rx[0] as number) + n; rx[1] = (rx[1] as number) + n * len
    tx[2] = (tx[2] as number) + n; tx[3] = (tx[3] as number) + n * len
  }
}

const binding: FastPathBinding = {
  FastPath: FakeNative,
  PORT_STAT_COUNT: 5,
  FASTPATH_STAT_COUNT: 4
}

class MissPort extends FakePort implements FastPathPort {
  batches = 0
  receiveMisses (): void { this.batches++ }
}

describe('io/fast-path.ts: flows from the slow path, counters and ages at the tick', () => {
  let sw: Switch
  let a: MissPort, b: MissPort
  let fp: FastPath
  let nat: FakeNative
  let restore: (line: string) => void

  beforeEach(() => {
    restore = setLogSink(() => {})
    sw = new Switch({ ageingTime: 3 }, 1000)
    a = new MissPort(1, 'a'); b = new MissPort(2, 'b')
    sw.addPort(a); sw.addPort(b)
    fp = new FastPath(binding, sw)
    nat = FakeNative.last
    fp.add(a, 10, false); fp.add(b, 11, false)
    sw.receiveFrame(a, eth(BROADCAST, MAC_A))
    sw.receiveFrame(b, eth(MAC_A, MAC_B))
    sw.receiveFrame(a, eth(MAC_B, MAC_A))
  })
  afterEach(() => { fp.close(); setLogSink(restore) })

  it('installs one flow per direction the slow path forwarded, in the native table', () => {
    assert.equal(fp.size, 2)
    assert.deepEqual(nat.flows.map((f) => f === undefined ? undefined : [f.inSlot, f.dst, f.src, f.outSlot]), [[1, A, B, 0], [0, B, A, 1]])
  })

  it('misses are handed to their port by slot', () => {
    nat.onMiss(1, Buffer.alloc(8), 0, 8)
    assert.equal(b.batches, 1)
    assert.equal(a.batches, 0)
    nat.onMiss(7, Buffer.alloc(8), 0, 8)
  })

  it('the tick adds what the thread forwarded to the ports and the network, once', () => {
    const rx = a.rxFrames; const tx = b.txFrames; const fwd = sw.stats.forwarded
    nat.hit(1, 10, 100)
    sw.tick(1100)
    assert.equal(a.rxFrames - rx, 10)
    assert.equal(a.rxBytes >= 1000, true)
    assert.equal(b.txFrames - tx, 10)
    assert.equal(sw.stats.forwarded - fwd, 10)
    sw.tick(1200)
    assert.equal(a.rxFrames - rx, 10, 'not twice')
  })

  it('MACs only the fast path carries are not aged out; once it stops, they are', () => {
    for (let t = 1100; t <= 9000; t += 100) {
      nat.hit(0, 1, 60); nat.hit(1, 1, 60)
      sw.tick(t)
    }
    assert.equal(sw.fdb.lookup(1, A), a)
    assert.equal(sw.fdb.lookup(1, B), b)
    for (let t = 9100; t <= 14000; t += 100) sw.tick(t)
    assert.equal(sw.fdb.lookup(1, A), undefined, 'aged out without hits')
    assert.equal(fp.size, 0, 'and their flows went with them')
  })

  it('the tick drops a flow whose rule no longer holds even if no event said so', () => {
    assert.equal(fp.size, 2)
    b.rateBps = 1000 // set behind the switch's back: no invalidate()
    sw.tick(1100)
    assert.equal(fp.size, 0)
    assert.equal(nat.flows.filter((f) => f !== undefined).length, 0)
  })

  it('a port removed leaves the native table and takes every flow', () => {
    fp.remove(b, 1)
    assert.equal(fp.size, 0)
    assert.equal(nat.slots[1], undefined)
    assert.equal(b.fastPath, null)
  })

  it('attack: the flow table is capped; past it the slow path carries the rest', () => {
    assert.ok(MAX_FLOWS <= 4096)
    // A native table that is full answers -1: nothing is recorded, nothing breaks.
    fp.flush()
    nat.flows = new Array(MAX_FLOWS).fill({ inSlot: 9, dst: 0, src: 0, outSlot: 9, hits: 0 })
    sw.receiveFrame(a, eth(MAC_B, MAC_A))
    assert.equal(fp.size, 0)
  })
})
