/**
 * Audit (issue 12): the spanning tree against a hostile trunk peer, on
 * simulated trunks (test/helpers/fabric.ts) with the test's clock.
 */

import assert from 'node:assert/strict'
import type { Switch } from '../../src/switch/core/switch'
import { FORWARD_DELAY_MS, MAX_AGE_MS, TC_ADVERTISE_MAX } from '../../src/switch/core/stp'
import { parseControl } from '../../src/common/protocol'
import type { FakePort } from '../helpers/fake-port'
import { eth, BROADCAST, MAC_A } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'
import { Fabric, TrunkEnd } from '../helpers/fabric'

const ID_A = '1000aaaaaaaaaaaa'
const ID_B = '8000bbbbbbbbbbbb'
const ID_C = '8000cccccccccccc'

/** A triangle A-B-C, converged: one trunk end (C's to B) discards. */
function triangle (): Fabric {
  const f = new Fabric([ID_A, ID_B, ID_C])
  f.link(0, 1); f.link(1, 2); f.link(0, 2)
  f.run(FORWARD_DELAY_MS + 2000)
  return f
}

/** A trunk on `sw` whose far end is the test: what it is sent is only measured. */
function hostile (sw: Switch, f: Fabric, id: number): TrunkEnd {
  const h = new TrunkEnd(id, 'evil', sw, f.wire)
  h.up = false
  sw.addPort(h, true)
  return h
}

function bpdu (fields: Record<string, unknown>): string {
  return JSON.stringify({ type: 'bpdu', cost: 0, port: 1, tc: [], ...fields })
}

/** The triangle still blocks exactly one end, and a broadcast from A's host arrives once at each other host. */
function assertLoopFree (f: Fabric): void {
  const discarding = f.trunks().filter((p) => p.name !== 'evil' && p.stp?.forwarding !== true)
  assert.deepEqual(discarding.map((p) => p.name), ['t21'], 'the tree still blocks the redundant trunk')
  for (const h of f.hosts) h.take()
  ;(f.switches[0] as Switch).receiveFrame(f.hosts[0] as FakePort, eth(BROADCAST, MAC_A))
  assert.equal(f.wire.pump(1000), 0, 'no frame still circling')
  assert.equal((f.hosts[1] as FakePort).take().length, 1)
  assert.equal((f.hosts[2] as FakePort).take().length, 1)
}

describe('audit: spanning tree against a hostile trunk peer', () => {
  let restore: (line: string) => void
  const logs: string[] = []
  beforeEach(() => { logs.length = 0; restore = setLogSink((l) => { logs.push(l) }) })
  afterEach(() => { setLogSink(restore) })

  it('attack: 720 BPDUs with fresh topology-change origins in 4 s do not grow our BPDUs, flush at will, flood the log, or open the loop', () => {
    const f = triangle()
    const a = f.switches[0] as Switch
    const evil = hostile(a, f, 100)
    f.run(FORWARD_DELAY_MS + 500)
    logs.length = 0
    const flushesBefore = f.switches.map((sw) => sw.stp.tcFlushes)
    let origin = 0
    for (let step = 0; step < 40; step++) {
      for (let i = 0; i < 18; i++) {
        const tc: Array<[string, number]> = []
        for (let k = 0; k < 32; k++) tc.push([(origin++).toString(16).padStart(16, 'e'), 1])
        a.stp.receive(evil, bpdu({ root: 'ffff000000000001', bridge: 'ffff0000000000ee', tc }))
      }
      f.run(100)
    }
    for (const end of f.trunks()) {
      assert.ok(end.longestControl < 1024, `${end.name} sent a BPDU of ${end.longestControl} characters`)
    }
    const bpduNow = parseControl(JSON.stringify(a.stp.bpduFor(evil)))
    assert.ok(Array.isArray(bpduNow?.tc) && (bpduNow?.tc as unknown[]).length <= TC_ADVERTISE_MAX)
    f.switches.forEach((sw, i) => {
      const flushes = sw.stp.tcFlushes - (flushesBefore[i] as number)
      assert.ok(flushes <= 6, `switch ${i} flushed its trunks ${flushes} times in 4 s`)
    })
    assert.ok((evil.stp?.bpdusDropped ?? 0) >= 600, 'BPDUs over the port\'s rate are counted and ignored')
    assert.ok(logs.length < 200, `${logs.length} log lines`)
    assertLoopFree(f)
  })
})

describe('audit: root guard', () => {
  let restore: (line: string) => void
  beforeEach(() => { restore = setLogSink(() => {}) })
  afterEach(() => { setLogSink(restore) })

  it('attack: a root-guarded trunk peer on two switches claiming root 0000000000000001 does not move their trunk to alternate', () => {
    const f = new Fabric([ID_B, ID_C])
    const [bc, cb] = f.link(0, 1)
    f.run(FORWARD_DELAY_MS + 1000)
    const evil = f.switches.map((sw, i) => hostile(sw, f, 100 + i))
    for (const e of evil) (e.stp as NonNullable<typeof e.stp>).rootGuard = true
    const claim = bpdu({ root: '0000000000000001', bridge: '0000000000000002' })
    for (let t = 0; t < FORWARD_DELAY_MS + 2000; t += 100) {
      f.switches.forEach((sw, i) => { sw.stp.receive(evil[i] as TrunkEnd, claim) })
      f.run(100)
    }
    assert.equal(bc.stp?.forwarding, true)
    assert.equal(cb.stp?.forwarding, true)
    for (const e of evil) {
      assert.equal(e.stp?.forwarding, false, 'the claiming port discards')
      assert.equal(e.stp?.rootInconsistent, true)
      assert.equal(e.sw.stp.rootId, ID_B, 'the root is still B')
    }
    // The claims stop: after max age the ports are consistent again and forward as designated ports.
    f.run(MAX_AGE_MS + FORWARD_DELAY_MS + 500)
    for (const e of evil) assert.deepEqual([e.stp?.rootInconsistent, e.stp?.role, e.stp?.forwarding], [false, 'designated', true])
  })
})
