import assert from 'node:assert/strict'
import * as v8 from 'node:v8'
import * as vm from 'node:vm'
import { HeldQueue, HeldBudget, RECORD_BYTES, type HeldFrame } from '../../src/switch/core/held-queue'
import { LinkCondition, Prng, readCondition, V_QUEUED, V_QUEUE_FULL } from '../../src/switch/core/condition'
import { Switch } from '../../src/switch/core/switch'
import { setCondition } from '../../src/switch/core/link'
import { DIR_OUT, DEFAULT_POLICY } from '../../src/switch/core/port'
import { FakePort } from '../helpers/fake-port'
import { buildConfig } from '../../src/switch/control/config'
import { Networks } from '../../src/switch/control/networks'

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void

/** Heap and external (ArrayBuffer) bytes in use after a full collection. */
function inUse (): number {
  gc(); gc()
  const m = process.memoryUsage()
  return m.heapUsed + m.external
}

/** The power of two at or above n (at least 64): the most slots a queue of n frames has. */
function slots (n: number): number { let s = 64; while (s < n) s *= 2; return s }

/** A frame whose bytes say which it is: seq in bytes 14..17, the rest a pattern of it. */
function frameOf (seq: number, len: number): Buffer {
  const b = Buffer.alloc(len, seq & 0xff)
  if (len >= 18) b.writeUInt32BE(seq, 14)
  return b
}

describe('HeldQueue: the memory link conditions hold', () => {
  it('attack: 100,000 held 60-byte frames take the memory the condition says, within its documented bound', () => {
    const params = readCondition({ delay: '60s', queueFrames: 100_000, seed: 1 }, 'condition')
    const frame = frameOf(1, 60)
    const before = inUse()
    const c = new LinkCondition(params)
    let held = 0
    for (let i = 0; i < 100_000; i++) if ((c.admit(frame, 0, 60, -1, 0, 0, i / 1000) & V_QUEUED) !== 0) held++
    const real = inUse() - before
    assert.equal(held, 100_000)
    assert.equal(c.queuedFrames, 100_000)
    // docs/CONDITIONS.md: queueBytes + RECORD_BYTES per slot (queueFrames rounded up to a power of two).
    const bound = params.queueBytes + RECORD_BYTES * slots(params.queueFrames)
    assert.ok(c.memoryBytes <= bound, `charged ${c.memoryBytes} > bound ${bound}`)
    // What the process really holds for them: at most the charge, with room for the measurement's noise.
    assert.ok(real <= c.memoryBytes * 1.25 + 1024 * 1024, `the queue holds ${real} bytes of heap and external memory, but says ${c.memoryBytes} (${(real / 100_000).toFixed(0)} B a frame)`)
    c.discard()
  })

  it('releases in (due, seq) order with every byte intact, through wraps, holes and trims, never past its bounds', () => {
    const rng = new Prng(7)
    for (let round = 0; round < 20; round++) {
      // Odd rounds: rings past FIRST_RING, which a trim shrinks once they hold a quarter or less.
      const maxBytes = 2048 + Math.floor(rng.next() * (round % 2 === 0 ? 16384 : 262144))
      const maxFrames = 1 + Math.floor(rng.next() * 100)
      const q = new HeldQueue(maxFrames, maxBytes, null, '')
      const pending = new Map<number, { due: number, bytes: Buffer, header: Buffer | undefined, op: number, vid: number }>()
      let seq = 0
      let now = 0
      for (let step = 0; step < 3000; step++) {
        if (rng.next() < 0.55) {
          const len = 1 + Math.floor(rng.next() * (rng.next() < 0.1 ? 4000 : 200))
          const hdr = rng.next() < 0.3 ? 10 : 0
          const msg = Buffer.concat([Buffer.alloc(hdr, 0xee), frameOf(seq, len)])
          // Dues out of admission order: holes appear when a later frame leaves first.
          const due = now + Math.floor(rng.next() * 50)
          if (!q.reserve(hdr + len)) continue
          q.put(msg, hdr, len, hdr > 0 ? 0 : -1, seq & 3, seq & 4095, due)
          msg.fill(0) // the caller's buffer is reused at once
          pending.set(seq, { due, bytes: frameOf(seq, len), header: hdr > 0 ? Buffer.alloc(hdr, 0xee) : undefined, op: seq & 3, vid: seq & 4095 })
          seq++
        } else {
          now += Math.floor(rng.next() * 10)
          for (let f = q.take(now); f !== undefined; f = q.take(now)) {
            let first: [number, number] | undefined
            for (const [s, p] of pending) if (p.due <= now && (first === undefined || p.due < first[1] || (p.due === first[1] && s < first[0]))) first = [s, p.due]
            assert.ok(first !== undefined, 'released a frame not yet due')
            assert.equal(f.seq, first[0], 'released by (due, seq)')
            const want = pending.get(f.seq) as { bytes: Buffer, header: Buffer | undefined, op: number, vid: number }
            assert.deepEqual(f.buf.subarray(f.off, f.off + f.len), want.bytes, `frame ${f.seq}'s bytes`)
            assert.deepEqual(f.hdrOff < 0 ? undefined : f.buf.subarray(f.hdrOff, f.off), want.header)
            assert.equal(f.op, want.op); assert.equal(f.vid, want.vid)
            pending.delete(f.seq)
          }
          for (const p of pending.values()) assert.ok(p.due > now, 'a due frame was left behind')
          if (rng.next() < 0.05) q.trim()
        }
        assert.equal(q.frames, pending.size)
        assert.ok(q.bytes <= maxBytes, `${q.bytes} bytes in use > ${maxBytes}`)
        assert.ok(q.memory <= maxBytes + RECORD_BYTES * slots(maxFrames))
      }
      q.free()
      assert.equal(q.memory, 0)
    }
  })

  it('after warm-up holds and releases without allocating: the same ring, the same memory', () => {
    const c = new LinkCondition(readCondition({ delay: 10, seed: 3 }, 'condition'))
    const frame = frameOf(9, 1000)
    for (let t = 0; t < 100; t++) c.admit(frame, 0, 1000, -1, 0, 0, t)
    const ring = (c.take(1e9) as HeldFrame).buf
    const memory = c.memoryBytes
    for (let t = 100; t < 100_000; t++) {
      assert.equal(c.admit(frame, 0, 1000, -1, 0, 0, t), V_QUEUED)
      const f = c.take(t)
      if (f !== undefined) assert.equal(f.buf, ring)
    }
    assert.equal(c.memoryBytes, memory)
  })

  it('an idle queue gives its memory back at the first trim with nothing held or taken since the one before', () => {
    const budget = new HeldBudget(1 << 30, 1 << 30)
    const c = new LinkCondition(readCondition({ delay: 5, seed: 3 }, 'condition'), 3, budget, '192.0.2.1')
    c.admit(frameOf(1, 100), 0, 100, -1, 0, 0, 0)
    assert.ok(c.memoryBytes > 0)
    assert.equal(budget.used, c.memoryBytes)
    assert.equal(budget.of('192.0.2.1'), c.memoryBytes)
    c.trim() // holds a frame
    assert.ok(c.memoryBytes > 0)
    c.take(10)
    c.admit(frameOf(2, 100), 0, 100, -1, 0, 0, 10)
    c.take(20)
    c.trim() // empty, but took a frame since the last trim
    assert.ok(c.memoryBytes > 0)
    c.trim()
    assert.equal(c.memoryBytes, 0)
    assert.equal(budget.used, 0)
    assert.equal(budget.of('192.0.2.1'), 0)
  })

  it('attack: a queue that keeps a trickle after a burst does not keep the burst\'s memory: its client\'s other queue is refused for a second at most', () => {
    // Found by the gateway model fuzz: a VM's ingress queue grew to its address's allowance in a burst, then one ARP every
    // 500 ms kept it from ever being idle at a trim; every reply to that VM (its egress queue, the same client) was refused.
    const budget = new HeldBudget(4 * 1024 * 1024, 1024 * 1024)
    const params = readCondition({ delay: 5 }, 'condition')
    const a = new LinkCondition(params, 1, budget, '198.51.100.1')
    const b = new LinkCondition(params, 2, budget, '198.51.100.1')
    const big = frameOf(1, 1514)
    const small = frameOf(2, 60)
    let t = 0
    for (let i = 0; i < 1000; i++) a.admit(big, 0, 1514, -1, 0, 0, t)
    while (a.take(t + 10) !== undefined);
    assert.equal(budget.of('198.51.100.1'), 1024 * 1024, 'the burst took the client\'s allowance')
    let refused = 0
    for (let second = 0; second < 10; second++, t += 1000) {
      for (const dt of [0, 500]) { a.admit(small, 0, 60, -1, 0, 0, t + dt); while (a.take(t + dt + 10) !== undefined); }
      if (b.admit(small, 0, 60, -1, 0, 0, t) === V_QUEUE_FULL) refused++
      while (b.take(t + 10) !== undefined);
      a.trim(); b.trim()
    }
    assert.ok(refused <= 1, `the other queue of the client was refused ${refused} times in 10 s`)
    assert.ok(a.memoryBytes <= 64 * 1024, `the trickling queue keeps ${a.memoryBytes} bytes`)
    assert.equal(budget.used, a.memoryBytes + b.memoryBytes)
  })

  it('attack: a queue that gave its memory back keeps none of it (the ring of the last frame it released, or the ring it grew out of)', () => {
    // Twelve idle queues that each held 8 MiB once: their charge is back, and so must the memory be.
    // Before: the view of each queue's last released frame kept its 8 MiB ring, ~100 MB the budget said was free.
    const budget = new HeldBudget(1 << 30, 1 << 30)
    const frame = frameOf(1, 1500)
    const before = inUse()
    const idle: LinkCondition[] = []
    for (let p = 0; p < 12; p++) {
      const c = new LinkCondition(readCondition({ delay: 10, seed: 1 }, 'condition'), 1, budget, '192.0.2.7')
      for (let i = 0; i < 5500; i++) c.admit(frame, 0, 1500, -1, 0, 0, 0)
      assert.ok(c.memoryBytes >= 8 * 1024 * 1024, `held ${c.memoryBytes}`)
      while (c.take(1e9) !== undefined) {}
      c.trim(); c.trim()
      assert.equal(c.memoryBytes, 0)
      idle.push(c)
    }
    const kept = inUse() - before
    assert.equal(budget.used, 0)
    assert.ok(kept < 8 * 1024 * 1024, `${idle.length} idle queues keep ${kept} bytes the budget counts as given back`)
    // A queue that grows while a released frame's view is out: the old ring goes with the growth.
    const g = new LinkCondition(readCondition({ delay: '60s', seed: 2 }, 'condition'), 2, budget, '192.0.2.8')
    const start = inUse()
    for (let i = 0; i < 600; i++) g.admit(frame, 0, 1500, -1, 0, 0, i)
    assert.ok(g.take(1e9) !== undefined)
    for (let i = 600; i < 5500; i++) g.admit(frame, 0, 1500, -1, 0, 0, i)
    const real = inUse() - start
    assert.ok(real <= g.memoryBytes + 1024 * 1024, `the queue holds ${real} bytes, charged ${g.memoryBytes}`)
    for (const c of [...idle, g]) c.discard()
    assert.equal(budget.used, 0)
  })

  it('attack: one client\'s ports share one allowance; another client and the total are untouched by it', () => {
    const budget = new HeldBudget(4 * 1024 * 1024, 1024 * 1024)
    const params = readCondition({ delay: '60s', queueBytes: '8mb', seed: 5 }, 'condition')
    const frame = frameOf(1, 1500)
    const fill = (c: LinkCondition): number => { let n = 0; for (let i = 0; i < 4000; i++) if (c.admit(frame, 0, 1500, -1, 0, 0, 0) === V_QUEUED) n++; return n }
    const a1 = new LinkCondition(params, 5, budget, '198.51.100.1')
    const a2 = new LinkCondition(params, 5, budget, '198.51.100.1')
    fill(a1)
    assert.ok(budget.of('198.51.100.1') <= 1024 * 1024)
    assert.ok(a1.memoryBytes > 512 * 1024, 'the first port got the allowance')
    const before = budget.refused
    const held2 = fill(a2)
    assert.ok(a1.memoryBytes + a2.memoryBytes <= 1024 * 1024, 'the second port of the same client shares it')
    assert.ok(budget.refused > before)
    assert.ok(held2 < 700, `${held2} frames`)
    // Another client still gets its own share, up to the total.
    const others = Array.from({ length: 5 }, (_, i) => new LinkCondition(params, 5, budget, `203.0.113.${i}`))
    for (const o of others) fill(o)
    assert.ok(others[0] !== undefined && others[0].memoryBytes > 512 * 1024, 'another client is not crowded out')
    assert.ok(budget.used <= 4 * 1024 * 1024, `${budget.used} bytes in all`)
    for (const c of [a1, a2, ...others]) c.discard()
    assert.equal(budget.used, 0)
  })

  it('a condition replaced, cleared, or whose port left gives its memory back to the budget', () => {
    const sw = new Switch({ name: 't' })
    const p = new FakePort(1, 'p')
    p.applyPolicy(DEFAULT_POLICY)
    p.clientKey = '192.0.2.9'
    sw.addPort(p)
    const params = readCondition({ delay: 100, seed: 1 }, 'condition')
    setCondition(sw, p, DIR_OUT, params)
    p.condOut?.admit(frameOf(1, 64), 0, 64, -1, 0, 0, 0)
    assert.ok(sw.heldBudget.of('192.0.2.9') > 0)
    setCondition(sw, p, DIR_OUT, params)
    assert.equal(sw.heldBudget.used, 0, 'replaced')
    p.condOut?.admit(frameOf(1, 64), 0, 64, -1, 0, 0, 0)
    setCondition(sw, p, DIR_OUT, null)
    assert.equal(sw.heldBudget.used, 0, 'cleared')
    setCondition(sw, p, DIR_OUT, params)
    p.condOut?.admit(frameOf(1, 64), 0, 64, -1, 0, 0, 0)
    assert.ok(sw.heldBudget.used > 0)
    sw.removePort(p)
    assert.equal(sw.heldBudget.used, 0, 'the port left')
  })

  it('a queue at its bound refuses what does not fit, and takes frames again once the head has moved', () => {
    const q = new HeldQueue(1000, 4096, null, '')
    const f = frameOf(1, 1000)
    let n = 0
    while (q.reserve(1000)) { q.put(f, 0, 1000, -1, 0, 0, n); n++ }
    assert.equal(n, 4)
    assert.equal(new LinkCondition(readCondition({ delay: 1, queueBytes: 2048 }, 'c')).admit(frameOf(1, 3000), 0, 3000, -1, 0, 0, 0), V_QUEUE_FULL)
    q.take(0)
    assert.ok(q.reserve(1000), 'the space of the frame that left')
  })

  it('limits.conditionBytes and conditionBytesPerAddress: read, checked, shared by every network, and changed by a reload', () => {
    const cfg = buildConfig({ dynamicNetworks: true, limits: { conditionBytes: 1_000_000, conditionBytesPerAddress: 250_000 } }, 'test')
    const nets = new Networks(cfg, () => 0)
    const lab = nets.open('lab')
    assert.ok(typeof lab !== 'string')
    assert.equal(lab.heldBudget, nets.get('default')?.heldBudget, 'one budget for every network')
    assert.deepEqual([lab.heldBudget.total, lab.heldBudget.perClient], [1_000_000, 250_000])
    nets.reload(buildConfig({ dynamicNetworks: true }, 'test'), () => undefined)
    assert.deepEqual([lab.heldBudget.total, lab.heldBudget.perClient], [256 * 1024 * 1024, 64 * 1024 * 1024], 'the defaults')
    for (const [limits, key] of [[{ conditionBytes: -1 }, 'limits.conditionBytes'], [{ conditionBytesPerAddress: '1mb' }, 'limits.conditionBytesPerAddress']] as const) {
      assert.throws(() => buildConfig({ limits }, 'test'), (err: Error & { code?: string }) => err.code === 'TSW_ERR_CONFIG' && err.message.startsWith(`test: ${key}:`))
    }
  })
})
