import assert from 'node:assert/strict'
import { DROP_REASONS, NOT_FRAME_DROPS, portDrops, portDropDetail, networkDrops } from '../../src/switch/core/drops'
import { SwitchStats } from '../../src/switch/core/switch'
import { FakePort } from '../helpers/fake-port'

/** Numeric fields named drop* of an object. */
function dropFields (o: object): string[] {
  return Object.entries(o).filter(([k, v]) => k.startsWith('drop') && typeof v === 'number').map(([k]) => k)
}

describe('drop reasons (one table)', () => {
  it('names every drop counter of a port exactly once, or says why it is no frame drop', () => {
    const listed = DROP_REASONS.flatMap((d) => d.port as readonly string[])
    assert.equal(new Set(listed).size, listed.length, 'a port counter in two reasons')
    for (const f of dropFields(new FakePort(1, 'p'))) {
      assert.ok(listed.includes(f) || f in NOT_FRAME_DROPS, `Port.${f} is in no drop reason`)
    }
  })

  it('has a network counter for every reason, and every network drop counter belongs to one', () => {
    const stats = new SwitchStats()
    const used = DROP_REASONS.map((d) => d.network as string)
    for (const f of used) assert.equal(typeof (stats as unknown as Record<string, unknown>)[f], 'number', `SwitchStats.${f}`)
    for (const f of dropFields(stats)) assert.ok(used.includes(f), `SwitchStats.${f} is in no drop reason`)
  })

  it('sums a port\'s counters by reason, and shows each counter by its API name', () => {
    const p = new FakePort(1, 'p')
    p.dropStormBroadcast = 2; p.dropStormUnknownUnicast = 3; p.dropPortSecurity = 4; p.dropBackpressure = 5
    const d = portDrops(p)
    assert.equal(d.storm, 5)
    assert.equal(d.port_security, 4)
    assert.deepEqual(Object.keys(d), DROP_REASONS.map((r) => r.reason))
    const api = portDropDetail(p)
    assert.deepEqual([api.stormBroadcast, api.stormUnknownUnicast, api.portSecurity, api.badSource], [2, 3, 4, 0])
    const stats = new SwitchStats()
    stats.dropBackpressureRetired = 7
    assert.equal(networkDrops(stats, [p]).backpressure, 12, 'ports that left plus ports still there')
  })
})
