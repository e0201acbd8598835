import assert from 'node:assert/strict'
import {
  LinkCondition, Prng, readCondition, conditionVerdict, conditionJson, type ConditionParams, type HeldFrame,
  V_PASS, V_LOST, V_QUEUED, V_QUEUE_FULL, V_DUPLICATED, V_CORRUPTED, V_REORDERED, V_DOWN
} from '../../src/switch/core/condition'
import { DIR_IN, DIR_OUT } from '../../src/switch/core/port'
import { buildConfig } from '../../src/switch/control/config'

const FRAME = Buffer.alloc(100, 0xab)

function cond (json: Record<string, unknown>): LinkCondition {
  return new LinkCondition(readCondition({ seed: 42, ...json }, 'condition'))
}

/** A released frame as it was when take() returned it (take()'s view is reused). */
interface Released { seq: number, due: number, op: number, vid: number, bytes: Buffer, header: Buffer | undefined }

function copyOf (f: HeldFrame): Released {
  return { seq: f.seq, due: f.due, op: f.op, vid: f.vid, bytes: Buffer.from(f.buf.subarray(f.off, f.off + f.len)), header: f.hdrOff < 0 ? undefined : Buffer.from(f.buf.subarray(f.hdrOff, f.off)) }
}

/** Everything held, released in order (takes until `untilMs`). */
function drain (c: LinkCondition, untilMs: number): Released[] {
  const out: Released[] = []
  for (let f = c.take(untilMs); f !== undefined; f = c.take(untilMs)) out.push(copyOf(f))
  return out
}

describe('LinkCondition (pure, seeded)', () => {
  it('Prng: the same seed gives the same sequence, in [0, 1)', () => {
    const a = new Prng(7); const b = new Prng(7)
    for (let i = 0; i < 1000; i++) { const x = a.next(); assert.equal(x, b.next()); assert.ok(x >= 0 && x < 1) }
  })

  it('random loss: 10 % of 100,000 frames lose 10 % ± 0.5 %, and the same seed loses the same frames', () => {
    const c1 = cond({ loss: '10%' }); const c2 = cond({ loss: 10 })
    let lost = 0
    for (let i = 0; i < 100_000; i++) {
      const v = c1.admit(FRAME, 0, 100, -1, 0, 0, i)
      assert.equal(v, c2.admit(FRAME, 0, 100, -1, 0, 0, i))
      if (v === V_LOST) lost++; else assert.equal(v, V_PASS)
    }
    assert.ok(lost > 9500 && lost < 10500, `lost ${lost}`)
  })

  it('Gilbert-Elliott: losses come in bursts with mean length 1/r', () => {
    const c = cond({ burst: { p: 1, r: 25 } })
    let lost = 0; let bursts = 0; let prev = false
    const n = 200_000
    for (let i = 0; i < n; i++) {
      const l = c.admit(FRAME, 0, 100, -1, 0, 0, i) === V_LOST
      if (l) { lost++; if (!prev) bursts++ }
      prev = l
    }
    const mean = lost / bursts
    assert.ok(mean > 3.5 && mean < 4.5, `mean burst ${mean}`)
    // Stationary loss p / (p + r) = 1/26.
    assert.ok(Math.abs(lost / n - 1 / 26) < 0.005, `loss ${lost / n}`)
  })

  it('delay: a frame is held (a copy) and leaves after exactly the delay', () => {
    const c = cond({ delay: '20ms' })
    const buf = Buffer.from(FRAME)
    assert.equal(c.admit(buf, 0, 100, -1, 3, 10, 1000), V_QUEUED)
    buf.fill(0) // the ingress buffer is reused
    assert.equal(c.nextDue(), 1020)
    assert.equal(c.take(1019.9), undefined)
    const f = copyOf(c.take(1020) as HeldFrame)
    assert.deepEqual(f.bytes, FRAME)
    assert.equal(f.op, 3); assert.equal(f.vid, 10)
    assert.equal(c.queuedFrames, 0); assert.equal(c.queuedBytes, 0)
  })

  it('jitter without reordering keeps order; with jitterReorders frames overtake', () => {
    const fifo = cond({ delay: 20, jitter: 15 })
    for (let i = 0; i < 1000; i++) fifo.admit(Buffer.from([i & 255]), 0, 1, -1, 0, 0, i * 0.1)
    const seqs = drain(fifo, 1e9).map((f) => f.seq)
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b))
    const wild = cond({ delay: 20, jitter: 15, jitterReorders: true })
    for (let i = 0; i < 1000; i++) wild.admit(Buffer.from([i & 255]), 0, 1, -1, 0, 0, i * 0.1)
    const out = drain(wild, 1e9)
    const dues = out.map((f) => f.due)
    assert.deepEqual(dues, [...dues].sort((a, b) => a - b), 'released by due time')
    assert.ok(out.some((f, i) => i > 0 && f.seq < (out[i - 1] as Released).seq), 'some frames overtook')
    for (const f of out) assert.ok(f.due - (f.seq * 0.1) >= 5 - 1e-9 && f.due - f.seq * 0.1 <= 35 + 1e-9)
  })

  it('rate: frames leave one serialisation time apart, and the backlog is bounded', () => {
    // 1500 B at 12 Mbit/s = 1 ms each.
    const c = cond({ rate: '12mbit', backlog: 15000 })
    const big = Buffer.alloc(1500)
    let queued = 0; let full = 0
    for (let i = 0; i < 20; i++) {
      const v = c.admit(big, 0, 1500, -1, 0, 0, 0)
      if (v === V_QUEUED) queued++; else if (v === V_QUEUE_FULL) full++
    }
    assert.equal(queued, 10, 'backlog 15000 B holds 10 frames')
    assert.equal(full, 10)
    const dues = drain(c, 1e9).map((f) => f.due)
    assert.deepEqual(dues, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    // The link has drained by 10 ms: a frame then leaves 1 ms later.
    assert.equal(c.admit(big, 0, 1500, -1, 0, 0, 50), V_QUEUED)
    assert.equal(c.nextDue(), 51)
  })

  it('reorder: that share of frames skips the delay', () => {
    const c = cond({ delay: 100, reorder: '25%' })
    let skipped = 0
    for (let i = 0; i < 10_000; i++) if ((c.admit(FRAME, 0, 100, -1, 0, 0, 0) & V_REORDERED) !== 0) skipped++
    assert.ok(skipped > 2300 && skipped < 2700, `${skipped}`)
    assert.equal(drain(c, 0).length, skipped, 'the skipped ones are due at once')
  })

  it('duplicate and corrupt: a copy each, the corrupted one differs by one bit past the header', () => {
    const c = cond({ duplicate: 100, corrupt: 100 })
    const v = c.admit(FRAME, 0, 100, -1, 0, 0, 0)
    assert.equal(v, V_QUEUED | V_DUPLICATED | V_CORRUPTED)
    const [a, b] = drain(c, 0) as [Released, Released]
    let bits = 0
    for (let i = 0; i < 100; i++) { let x = (a.bytes[i] as number) ^ (FRAME[i] as number); while (x !== 0) { bits += x & 1; x >>= 1 } }
    assert.equal(bits, 1)
    assert.deepEqual(a.bytes.subarray(0, 14), FRAME.subarray(0, 14))
    assert.deepEqual(b.bytes, FRAME)
    assert.deepEqual(FRAME, Buffer.alloc(100, 0xab), 'the original is untouched')
  })

  it('keeps the virtio-net header with the frame', () => {
    const c = cond({ delay: 1 })
    const msg = Buffer.concat([Buffer.alloc(10, 7), FRAME])
    c.admit(msg, 10, 100, 0, 0, 0, 0)
    const f = copyOf(c.take(1) as HeldFrame)
    assert.deepEqual(f.header, Buffer.alloc(10, 7))
    assert.deepEqual(f.bytes, FRAME)
  })

  it('attack: a flood into a delayed port holds no more than queueFrames and queueBytes', () => {
    const c = cond({ delay: '60s', queueFrames: 500, queueBytes: '64kb' })
    let full = 0
    for (let i = 0; i < 100_000; i++) if (c.admit(FRAME, 0, 100, -1, 0, 0, i / 100) === V_QUEUE_FULL) full++
    assert.ok(c.queuedFrames <= 500 && c.queuedBytes <= 65536)
    assert.equal(full, 100_000 - c.queuedFrames)
  })

  it('a direction that is down drops everything; the verdict says so without drawing', () => {
    const c = cond({ loss: 50 })
    const port = { condIn: null, condOut: c }
    assert.equal(conditionVerdict(port, DIR_IN).action, 'none')
    assert.equal(conditionVerdict(port, DIR_OUT).action, 'conditioned')
    c.down = true
    assert.equal(c.admit(FRAME, 0, 100, -1, 0, 0, 0), V_DOWN)
    assert.equal(conditionVerdict(port, DIR_OUT).action, 'down')
  })

  describe('the configuration key', () => {
    it('reads one condition with a direction, or one per direction, in any port policy', () => {
      const cfg = buildConfig({
        port: { condition: { in: { rate: '1mbit' }, out: null } },
        profiles: [{ match: 'wan-*', condition: { direction: 'out', delay: '40ms' } }]
      }, 'test')
      assert.equal(cfg.defaultPolicy.condition?.in?.rate, 1e6)
      assert.equal(cfg.defaultPolicy.condition?.out, null)
      assert.equal(cfg.profiles[0]?.policy.condition?.in, null)
      assert.equal(cfg.profiles[0]?.policy.condition?.out?.delayMs, 40)
    })

    for (const [cond, key] of [
      [{ delay: -1 }, 'profiles[0].condition.delay'], [{ in: { rate: 0 } }, 'profiles[0].condition.in.rate'],
      [{ direction: 'up' }, 'profiles[0].condition.direction'], [{ in: {}, delay: 1 }, 'profiles[0].condition']
    ] as const) {
      it(`attack: refuses ${JSON.stringify(cond)} naming ${key}`, () => {
        assert.throws(() => buildConfig({ profiles: [{ match: 'x', condition: cond }] }, 'test'), (err: Error & { code?: string }) => {
          assert.equal(err.code, 'TSW_ERR_CONFIG')
          assert.ok(err.message.startsWith(`test: ${key}:`), err.message)
          return true
        })
      })
    }
  })

  describe('readCondition()', () => {
    it('reads units and gives them back in ms, percent and bits/s', () => {
      const p: ConditionParams = readCondition({ delay: '1.5s', jitter: 5, loss: '1%', rate: '10mbit' }, 'c')
      assert.equal(p.delayMs, 1500); assert.equal(p.jitterMs, 5); assert.equal(p.loss, 0.01); assert.equal(p.rate, 10_000_000)
      assert.equal(p.backlogBytes, 62500, '50 ms of the rate')
      assert.deepEqual(conditionJson(p), { delay: 1500, jitter: 5, jitterReorders: false, loss: 1, rate: 10_000_000, backlog: 62500, queueFrames: 10000, queueBytes: 8388608 })
    })

    for (const [bad, key] of [
      [{ delay: -1 }, 'c.delay'], [{ delay: Number.NaN }, 'c.delay'], [{ delay: 1e12 }, 'c.delay'], [{ delay: '20 parsecs' }, 'c.delay'],
      [{ loss: 101 }, 'c.loss'], [{ loss: '-1%' }, 'c.loss'], [{ rate: 0 }, 'c.rate'], [{ rate: '0mbit' }, 'c.rate'], [{ rate: Infinity }, 'c.rate'],
      [{ queueBytes: 1e15 }, 'c.queueBytes'], [{ queueFrames: 1e9 }, 'c.queueFrames'], [{ queueFrames: 1.5 }, 'c.queueFrames'],
      [{ burst: { p: 1, r: 0 } }, 'c.burst.r'], [{ loss: 1, burst: { p: 1 } }, 'c.loss'], [{ delya: 1 }, 'c.delya'], [{ jitterReorders: 'yes' }, 'c.jitterReorders']
    ] as const) {
      it(`attack: refuses ${JSON.stringify(bad)} naming ${key}`, () => {
        assert.throws(() => readCondition(bad, 'c'), (err: Error & { code?: string }) => {
          assert.equal(err.code, 'TSW_ERR_CONFIG')
          assert.ok(err.message.startsWith(`${key}:`), err.message)
          return true
        })
      })
    }
  })
})
