/** The web console's drops view (src/ui/drop-groups.ts, reasons.ts) and its formatting (src/ui/format.ts), without a browser. */
import assert from 'node:assert/strict'
import { DROP_REASONS, portDropDetail } from '../../src/switch/core/drops'
import { REASONS, explain, portCounters } from '../../src/ui/reasons'
import { DropGroups, MAX_GROUPS } from '../../src/ui/drop-groups'
import { bitRate, bytes, count, duration, niceCeiling } from '../../src/ui/format'
import type { DropJson } from '../../src/common/api-types'

function drop (seq: number, port: string, reason: string, network = 'default'): DropJson {
  return { seq, time: new Date(1_700_000_000_000 + seq * 1000).toISOString(), network, port, src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02', vlan: 1, reason }
}

describe('console views', () => {
  it('explains every drop reason switchd has, and no other', () => {
    assert.deepEqual(Object.keys(REASONS).sort(), DROP_REASONS.map((d) => d.reason).sort())
    for (const d of DROP_REASONS) assert.ok(explain(d.reason).length > 10, d.reason)
    assert.equal(explain('toString'), 'see docs/METRICS.md', 'a name like an Object member is not a lookup hit')
  })

  it('sums for each reason exactly the port counters the API sends for it', () => {
    for (const [i, d] of DROP_REASONS.entries()) {
      // One counter of this reason set: the API's keys that carry it are the ones portCounters names.
      const keys = new Set<string>()
      for (let k = 0; k < (d.reason === 'storm' ? 3 : 1); k++) {
        const p = { drops: new Float64Array(DROP_REASONS.length), stormDrops: new Float64Array(3) }
        if (d.reason === 'storm') p.stormDrops[k] = 1; else p.drops[i] = 1
        const detail = portDropDetail(p as never)
        for (const key of Object.keys(detail)) if (detail[key] === 1) keys.add(key)
      }
      assert.deepEqual(portCounters(d.reason).sort(), [...keys].sort(), d.reason)
    }
  })

  it('folds the drop log by network, port and reason, reads on from the last record, and counts what it missed', () => {
    const g = new DropGroups()
    g.add({ last: 3, lost: 0, size: 1024, drops: [drop(1, 'a', 'runt'), drop(2, 'b', 'vlan'), drop(3, 'a', 'runt')] })
    assert.equal(g.since, 3)
    assert.deepEqual(g.rows().map((r) => [r.port, r.reason, r.count]), [['a', 'runt', 2], ['b', 'vlan', 1]])
    g.add({ last: 9, lost: 4, size: 1024, drops: [drop(8, 'b', 'vlan'), drop(9, 'a', 'runt', 'lab')] })
    assert.equal(g.since, 9)
    assert.equal(g.lost, 4)
    // Most recently seen first; the same port name in another network is another row.
    assert.deepEqual(g.rows().map((r) => [r.network, r.port, r.reason, r.count]), [['lab', 'a', 'runt', 1], ['default', 'b', 'vlan', 2], ['default', 'a', 'runt', 2]])
    assert.equal(g.rows()[1]?.last.seq, 8)
    assert.equal(g.total, 5)
  })

  it(`attack: a flood of port names keeps at most ${MAX_GROUPS} rows, the most recently seen`, () => {
    const g = new DropGroups()
    const drops = Array.from({ length: MAX_GROUPS + 500 }, (_, i) => drop(i + 1, `p${i}`, 'runt'))
    g.add({ last: drops.length, lost: 0, size: 1024, drops })
    assert.equal(g.rows().length, MAX_GROUPS)
    assert.equal(g.rows()[0]?.port, `p${MAX_GROUPS + 499}`)
    assert.equal(g.rows().at(-1)?.port, 'p500')
  })

  it('writes bytes, bit rates and counts with their units', () => {
    assert.equal(bytes(12), '12 B')
    assert.equal(bytes(1500), '1.50 kB')
    assert.equal(bytes(18_000), '18.0 kB')
    assert.equal(bytes(3_400_000_000), '3.40 GB')
    assert.equal(bitRate(0), '0 bit/s')
    assert.equal(bitRate(125_000), '1.00 Mbit/s')
    assert.equal(bitRate(1250), '10.0 kbit/s')
    assert.equal(count(0, 'frames/s'), '0 frames/s')
    assert.equal(count(1234, 'frames/s'), '1.23 k frames/s')
    assert.equal(duration(5), '5 s')
    assert.equal(duration(185), '3 min 5 s')
    assert.equal(duration(86_400 + 7200), '1 d 2 h')
  })

  it('rounds the charts\' shared scale up to 1, 2 or 5 times a power of ten', () => {
    assert.deepEqual([0, 0.3, 1, 1.1, 2, 3, 7, 10, 11, 999, 1000, 1001, 4200].map(niceCeiling), [1, 1, 1, 2, 2, 5, 10, 10, 20, 1000, 1000, 2000, 5000])
  })
})
