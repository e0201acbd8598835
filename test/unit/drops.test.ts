import assert from 'node:assert/strict'
import { DROP_REASONS, NOT_FRAME_DROPS, portDrops, portDropDetail, networkDrops, reasonIndex } from '../../src/switch/core/drops'
import { Switch, SwitchStats } from '../../src/switch/core/switch'
import { FakePort } from '../helpers/fake-port'
import { BLOCK_OPERATOR } from '../../src/switch/core/port'
import { S_DROP } from '../../src/switch/core/observe'
import { eth, BROADCAST, MAC_A } from '../helpers/frames'
import { R_BACKPRESSURE, R_PORT_SECURITY, R_DISABLED } from '../../src/switch/core/reasons'
import { KIND_BROADCAST, KIND_UNKNOWN_UNICAST } from '../../src/switch/core/storm'

/** Numeric fields named drop* of an object. */
function dropFields (o: object): string[] {
  return Object.entries(o).filter(([k, v]) => k.startsWith('drop') && typeof v === 'number').map(([k]) => k)
}

describe('drop reasons (one table)', () => {
  it('names every drop counter of a port exactly once, or says why it is no frame drop', () => {
    const port = new FakePort(1, 'p')
    assert.equal(port.drops.length, DROP_REASONS.length, 'one slot per reason')
    const listed = DROP_REASONS.flatMap((d) => d.detail)
    assert.equal(new Set(listed).size, listed.length, 'an API name in two reasons')
    assert.deepEqual(Object.keys(portDropDetail(port)), listed, 'the API shows every counter by its name')
    // Whatever drop* field a port still has of its own is no frame drop of the switch's.
    for (const f of dropFields(port)) assert.ok(f in NOT_FRAME_DROPS, `Port.${f} is in no drop reason`)
  })

  it('has a network counter for every reason, and every network drop counter belongs to one', () => {
    const stats = new SwitchStats()
    assert.equal(stats.drops.length, DROP_REASONS.length, 'one slot per reason')
    assert.deepEqual(dropFields(stats), [], 'no drop counter outside the table')
    for (const [i, d] of DROP_REASONS.entries()) assert.equal(reasonIndex(d.reason), i)
  })

  it('sums a port\'s counters by reason, and shows each counter by its API name', () => {
    const p = new FakePort(1, 'p')
    p.stormDrops[KIND_BROADCAST] = 2; p.stormDrops[KIND_UNKNOWN_UNICAST] = 3; p.drops[R_PORT_SECURITY] = 4; p.drops[R_BACKPRESSURE] = 5
    const d = portDrops(p)
    assert.equal(d.storm, 5)
    assert.equal(d.port_security, 4)
    assert.deepEqual(Object.keys(d), DROP_REASONS.map((r) => r.reason))
    const api = portDropDetail(p)
    assert.deepEqual([api.stormBroadcast, api.stormUnknownUnicast, api.portSecurity, api.badSource], [2, 3, 4, 0])
    const stats = new SwitchStats()
    stats.drops[R_BACKPRESSURE] = 7
    assert.equal(networkDrops(stats, [p]).backpressure, 12, 'ports that left plus ports still there')
  })

  it('Switch.drop(): one call counts the frame on the port and the network, logs it and tells the observer; a dry run only tells', () => {
    const sw = new Switch({}, 1000)
    const p = new FakePort(1, 'p')
    sw.addPort(p)
    const told: number[][] = []
    const frame = eth(BROADCAST, MAC_A)
    sw.drop(p, R_PORT_SECURITY, frame, 0, frame.length, 1)
    assert.equal(p.drops[R_PORT_SECURITY], 1)
    assert.equal(sw.stats.drops[R_PORT_SECURITY], 1)
    assert.deepEqual(sw.dropLog.read().records.map((r) => [r.port, r.reason, r.vid, r.src]), [['p', R_PORT_SECURITY, 1, parseInt(MAC_A, 16)]])
    // A dry run of the decision drops through the same call: the observer hears it, nothing is counted or logged.
    p.blocked = BLOCK_OPERATOR
    sw.handleFrame(p, frame, 0, frame.length, -1, { step: (code, a) => { if (code === S_DROP) told.push([a]) } }, false)
    assert.deepEqual(told, [[R_DISABLED]])
    assert.equal(p.drops[R_DISABLED], 0)
    assert.equal(sw.dropLog.seq, 1)
  })
})
