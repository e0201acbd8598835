import assert from 'node:assert/strict'
import { Switch, type FrameTap } from '../../src/switch/core/switch'
import { revalidate, type FastPathHooks, type FastPathStats } from '../../src/switch/core/fastpath'
import { setLinkDown, setCondition } from '../../src/switch/core/link'
import { DIR_IN, DIR_OUT, MODE_TRUNK, DEFAULT_POLICY, type Port } from '../../src/switch/core/port'
import { FakePort } from '../helpers/fake-port'
import { eth, tagged, BROADCAST, MAC_A, MAC_B, MAC_C } from '../helpers/frames'
import { NO_IMPAIRMENT } from '../../src/switch/core/condition'
import { setLogSink } from '../../src/common/log'

const A = parseInt(MAC_A, 16)
const B = parseInt(MAC_B, 16)

/** Records what the switch asks of the fast path; installs what the rule allows, as io/fast-path.ts does. */
class RecordingFastPath implements FastPathHooks {
  flows = new Set<string>()
  offers = 0
  flushes = 0
  syncs = 0
  constructor (private readonly sw: Switch) {}
  offer (ingress: Port, egress: Port, vid: number, dst: number, src: number): void {
    this.offers++
    if (revalidate(this.sw, ingress, egress, vid, dst, src)) this.flows.add(`${ingress.name}>${egress.name}`)
  }

  flush (): void { this.flushes++; this.flows.clear() }
  sync (): void { this.syncs++ }
  stats (): FastPathStats { return { flows: this.flows.size, forwarded: 0, misses: 0, missDropped: 0 } }
}

describe('fast path rule (core/fastpath.ts) and invalidation', () => {
  let sw: Switch
  let a: FakePort, b: FakePort, c: FakePort
  let fp: RecordingFastPath
  let restore: (line: string) => void

  beforeEach(() => {
    restore = setLogSink(() => {})
    sw = new Switch({}, 1000)
    a = new FakePort(1, 'a'); b = new FakePort(2, 'b'); c = new FakePort(3, 'c')
    sw.addPort(a); sw.addPort(b); sw.addPort(c)
    fp = new RecordingFastPath(sw)
    sw.fastPath = fp
    a.fastPath = fp; b.fastPath = fp
    // Both MACs learned: a's from a broadcast, b's from its reply.
    sw.receiveFrame(a, eth(BROADCAST, MAC_A))
    sw.receiveFrame(b, eth(MAC_A, MAC_B))
  })
  afterEach(() => { setLogSink(restore) })

  /** One known-unicast frame each way, so flows a>b and b>a exist. */
  function warm (): void {
    sw.receiveFrame(a, eth(MAC_B, MAC_A))
    sw.receiveFrame(b, eth(MAC_A, MAC_B))
    assert.deepEqual([...fp.flows].sort(), ['a>b', 'b>a'])
  }

  it('a known unicast between two fast-path ports installs a flow; a flood does not', () => {
    const offers = fp.offers
    sw.receiveFrame(a, eth(BROADCAST, MAC_A))
    assert.equal(fp.offers, offers, 'a flood is never offered')
    warm()
  })

  it('a port without a fast path is never offered (it pays one null check)', () => {
    sw.receiveFrame(c, eth(BROADCAST, MAC_C))
    const offers = fp.offers
    sw.receiveFrame(c, eth(MAC_A, MAC_C))
    sw.receiveFrame(a, eth(MAC_C, MAC_A))
    assert.equal(fp.offers, offers)
  })

  it('tagged frames, trunk ports, conditions, rates, blocked ports, captures and offload mismatch: no flow', () => {
    const ok = (): boolean => revalidate(sw, a, b, 1, B, A)
    assert.equal(ok(), true)
    const offers = fp.offers
    sw.receiveFrame(a, tagged(MAC_B, MAC_A, 0))
    assert.equal(fp.offers, offers, 'a priority-tagged frame is not offered')
    b.blocked = 1; assert.equal(ok(), false); b.blocked = 0
    a.rateBps = 1000; assert.equal(ok(), false); a.rateBps = 0
    b.offload = true; assert.equal(ok(), false); b.offload = false
    b.applyPolicy({ ...DEFAULT_POLICY, mode: MODE_TRUNK, vlans: [1, 2] }); assert.equal(ok(), false); b.applyPolicy(DEFAULT_POLICY)
    a.allowedMacs = new Set([B]); assert.equal(ok(), false); a.allowedMacs = null
    setCondition(sw, b, DIR_OUT, { ...NO_IMPAIRMENT, delayMs: 5 }); assert.equal(ok(), false); setCondition(sw, b, DIR_OUT, null)
    const tap: FrameTap = { offer () {} }
    sw.taps.push(tap); assert.equal(ok(), false); sw.taps.pop()
    assert.equal(revalidate(sw, a, a, 1, A, A), false, 'never a hairpin')
    assert.equal(revalidate(sw, a, b, 1, parseInt(MAC_C, 16), A), false, 'dst unknown')
    assert.equal(revalidate(sw, b, a, 1, B, A), false, 'src not learned on the ingress')
    assert.equal(ok(), true)
  })

  it('attack: a port sending a MAC that lives elsewhere (held, not moved) drops the home port\'s flows', () => {
    warm()
    // c claims a's MAC: held (a still sends it), but the claimant changed: a's frames must go through learn() again.
    sw.receiveFrame(c, eth(MAC_B, MAC_A))
    assert.equal(fp.flows.size, 0)
    assert.equal(revalidate(sw, a, b, 1, B, A), false, 'until a sends it again')
  })

  const events: Array<[string, () => void]> = [
    ['a new MAC learned', () => { sw.receiveFrame(c, eth(BROADCAST, MAC_C)) }],
    ['an fdb flush', () => { sw.fdb.flushVlan(1) }],
    ['expiry', () => { sw.tick(1000 + 301_000); sw.tick(1000 + 302_000) }],
    ['a port removed', () => { sw.removePort(c) }],
    ['a port added', () => { sw.addPort(new FakePort(9, 'z')) }],
    ['disable', () => { sw.disablePort(b) }],
    ['enable', () => { sw.enablePort(c) }],
    ['link down', () => { setLinkDown(sw, c, 'both', true) }],
    ['one direction down', () => { setLinkDown(sw, c, DIR_IN, true) }],
    ['a condition set', () => { setCondition(sw, c, DIR_IN, { ...NO_IMPAIRMENT, delayMs: 1 }) }],
    ['a static entry', () => { sw.addStatic({ vid: 1, mac: parseInt(MAC_C, 16), port: 'c' }) }],
    ['a loop block', () => { for (let i = 0; i < 10; i++) { sw.receiveFrame(c, eth(BROADCAST, MAC_A)); sw.receiveFrame(a, eth(BROADCAST, MAC_A)) } }]
  ]
  for (const [what, act] of events) {
    it(`${what} flushes every flow at once`, () => {
      warm()
      const before = sw.invalidations
      act()
      assert.ok(sw.invalidations > before, 'Switch.invalidate() ran')
      assert.equal(fp.flows.size, 0)
    })
  }

  it('a refresh of a known MAC does not flush (no work per frame)', () => {
    warm()
    const before = sw.invalidations
    sw.tick(3000)
    sw.receiveFrame(a, eth(MAC_B, MAC_A))
    sw.receiveFrame(b, eth(MAC_A, MAC_B))
    assert.equal(sw.invalidations, before)
    assert.ok(fp.syncs > 0, 'the tick syncs the fast path')
  })

  it('Fdb.touch refreshes the age of a MAC only the fast path carried, so it does not expire', () => {
    warm()
    for (let t = 1000; t <= 1000 + 400_000; t += 10_000) {
      sw.tick(t)
      assert.equal(sw.fdb.touch(1, A, a), true)
      sw.fdb.touch(1, B, b)
    }
    assert.equal(sw.fdb.lookup(1, A), a)
    assert.equal(sw.fdb.touch(1, A, b), false, 'never for another port')
  })
})
