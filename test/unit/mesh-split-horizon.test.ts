/**
 * Split horizon (issue 25): a frame that came in on a mesh port (a link to
 * another replica of the fleet) never leaves by another mesh port, on the
 * frame path, in the frame trace and in the fast path's dry run alike: they
 * are one decision. And a MAC seen on a local port and on a mesh port in
 * turn is counted (switchd_mesh_mac_conflicts_total).
 */

import assert from 'node:assert/strict'
import { Switch } from '../../src/switch/core/switch'
import { traceFrame } from '../../src/switch/control/trace'
import { R_SPLIT_HORIZON } from '../../src/switch/core/reasons'
import { S_EGRESS, S_SPLIT_HORIZON } from '../../src/switch/core/observe'
import { FakePort } from '../helpers/fake-port'
import { eth, BROADCAST, MAC_A, MAC_B, MAC_C, MAC_D } from '../helpers/frames'

function meshPort (id: number, name: string): FakePort {
  const p = new FakePort(id, name)
  p.mesh = true
  return p
}

describe('split horizon on mesh ports', () => {
  let sw: Switch
  let local1: FakePort, local2: FakePort, meshB: FakePort, meshC: FakePort

  beforeEach(() => {
    sw = new Switch({}, 100)
    local1 = new FakePort(1, 'local1')
    local2 = new FakePort(2, 'local2')
    meshB = meshPort(3, 'mesh-b')
    meshC = meshPort(4, 'mesh-c')
    for (const p of [local1, local2, meshB, meshC]) sw.addPort(p)
  })

  it('a flood from a mesh port reaches every local port once and no other mesh port', () => {
    sw.receiveFrame(meshB, eth(BROADCAST, MAC_B))
    assert.equal(local1.take().length, 1)
    assert.equal(local2.take().length, 1)
    assert.equal(meshC.take().length, 0, 'attack: a flood from the mesh is re-flooded to the mesh')
    assert.equal(meshB.take().length, 0)
  })

  it('a flood from a local port reaches every mesh port', () => {
    sw.receiveFrame(local1, eth(BROADCAST, MAC_A))
    assert.equal(meshB.take().length, 1)
    assert.equal(meshC.take().length, 1)
    assert.equal(local2.take().length, 1)
  })

  it('known unicast from one mesh port to a MAC behind another is dropped as split_horizon', () => {
    sw.receiveFrame(meshC, eth(BROADCAST, MAC_C)) // MAC_C learned on mesh-c
    for (const p of [local1, local2, meshB, meshC]) p.take()
    sw.receiveFrame(meshB, eth(MAC_C, MAC_B))
    assert.equal(meshC.take().length, 0)
    assert.equal(meshB.drops[R_SPLIT_HORIZON], 1)
    // From a local port the same MAC is reached.
    sw.receiveFrame(local1, eth(MAC_C, MAC_A))
    assert.equal(meshC.take().length, 1)
  })

  it('the trace says so, and agrees with the frame path', () => {
    const flood = traceFrame(sw, meshB, eth(BROADCAST, MAC_B))
    assert.equal(flood.action, 'flood')
    assert.ok(flood.steps.some((s) => s.step === 'split_horizon' && s.verdict === 'note'))
    assert.deepEqual(flood.egress.map((e) => e.port).sort(), ['local1', 'local2'])
    sw.receiveFrame(meshC, eth(BROADCAST, MAC_C))
    const uni = traceFrame(sw, meshB, eth(MAC_C, MAC_B))
    assert.equal(uni.action, 'drop')
    assert.equal(uni.dropReason, 'split_horizon')
    assert.equal(uni.steps.at(-1)?.step, 'split_horizon')
  })

  it('a dry run observes the same egress set as the committed flood', () => {
    const seen: string[] = []
    let horizon = 0
    sw.handleFrame(meshB, eth(BROADCAST, MAC_D), 0, 60, -1, {
      step: (code, _a, _b, port) => { if (code === S_EGRESS) seen.push(port?.name ?? '?'); if (code === S_SPLIT_HORIZON) horizon++ }
    }, false)
    assert.deepEqual(seen.sort(), ['local1', 'local2'])
    assert.equal(horizon, 1)
    assert.equal(meshC.take().length, 0)
  })

  it('counts a MAC seen on a local port and then from a mesh port (and back)', () => {
    sw.receiveFrame(local1, eth(BROADCAST, MAC_A))
    assert.equal(sw.fdb.stats.meshConflicts, 0)
    sw.receiveFrame(meshB, eth(BROADCAST, MAC_A))
    assert.equal(sw.fdb.stats.meshConflicts, 1)
    sw.receiveFrame(local1, eth(BROADCAST, MAC_A))
    assert.equal(sw.fdb.stats.meshConflicts, 2)
    // Local to local is a plain move, not a mesh conflict.
    sw.receiveFrame(local2, eth(BROADCAST, MAC_A))
    assert.equal(sw.fdb.stats.meshConflicts, 2)
  })
})
