/**
 * Split horizon, generalised (issue 26): Port.horizon names a group, and a
 * frame that came in on a port of a group never leaves by another port of the
 * same group. A VNI's VTEP ports share a group (as one Linux vxlan device is
 * one bridge port); a VNI that relays has none; mesh links keep theirs
 * (HORIZON_MESH), and two groups do not shut each other out.
 */

import assert from 'node:assert/strict'
import { Switch } from '../../src/switch/core/switch'
import { HORIZON_MESH, HORIZON_FIRST_FREE } from '../../src/switch/core/port'
import { traceFrame } from '../../src/switch/control/trace'
import { R_SPLIT_HORIZON } from '../../src/switch/core/reasons'
import { S_EGRESS } from '../../src/switch/core/observe'
import { FakePort } from '../helpers/fake-port'
import { eth, BROADCAST, MAC_A, MAC_B, MAC_C, MAC_D } from '../helpers/frames'

function port (id: number, name: string, horizon: number): FakePort {
  const p = new FakePort(id, name)
  p.horizon = horizon
  return p
}

describe('split horizon groups (Port.horizon)', () => {
  const VNI42 = HORIZON_FIRST_FREE
  let sw: Switch
  let host: FakePort, vtepA: FakePort, vtepB: FakePort, mesh: FakePort

  beforeEach(() => {
    sw = new Switch({}, 100)
    host = new FakePort(1, 'host')
    vtepA = port(2, 'vxlan42-10.0.0.2', VNI42)
    vtepB = port(3, 'vxlan42-10.0.0.3', VNI42)
    mesh = new FakePort(4, 'mesh-b')
    mesh.mesh = true
    for (const p of [host, vtepA, vtepB, mesh]) sw.addPort(p)
  })

  it('mesh is HORIZON_MESH, and turning mesh off leaves another group alone', () => {
    assert.equal(mesh.horizon, HORIZON_MESH)
    assert.equal(vtepA.mesh, false)
    vtepA.mesh = false
    assert.equal(vtepA.horizon, VNI42)
    mesh.mesh = false
    assert.equal(mesh.horizon, 0)
  })

  it('a flood from one VTEP reaches the host and the mesh, not the other VTEP', () => {
    sw.receiveFrame(vtepA, eth(BROADCAST, MAC_B))
    assert.equal(host.take().length, 1)
    assert.equal(mesh.take().length, 1, 'another group is not shut out')
    assert.equal(vtepB.take().length, 0)
  })

  it('a flood from the mesh reaches every VTEP (another group)', () => {
    sw.receiveFrame(mesh, eth(BROADCAST, MAC_D))
    assert.equal(vtepA.take().length, 1)
    assert.equal(vtepB.take().length, 1)
  })

  it('known unicast from one VTEP to a MAC behind another is dropped as split_horizon, and the trace agrees', () => {
    sw.receiveFrame(vtepB, eth(BROADCAST, MAC_C))
    for (const p of [host, vtepA, vtepB, mesh]) p.take()
    const t = traceFrame(sw, vtepA, eth(MAC_C, MAC_B))
    assert.equal(t.dropReason, 'split_horizon')
    assert.match(t.steps.at(-1)?.detail ?? '', /VTEP port vxlan42-10\.0\.0\.2/)
    sw.receiveFrame(vtepA, eth(MAC_C, MAC_B))
    assert.equal(vtepB.take().length, 0)
    assert.equal(vtepA.drops[R_SPLIT_HORIZON], 1)
    sw.receiveFrame(host, eth(MAC_C, MAC_A))
    assert.equal(vtepB.take().length, 1, 'from the host it is reached')
  })

  it('relay (horizon 0): tapswitch is the hub, VTEP to VTEP both ways', () => {
    vtepA.horizon = 0
    vtepB.horizon = 0
    sw.receiveFrame(vtepA, eth(BROADCAST, MAC_B))
    assert.equal(vtepB.take().length, 1)
    sw.receiveFrame(vtepB, eth(MAC_B, MAC_C))
    assert.equal(vtepA.take().length, 1)
    assert.equal(vtepB.drops[R_SPLIT_HORIZON], 0)
  })

  it('a dry run observes what the committed flood sends', () => {
    const seen: string[] = []
    sw.handleFrame(vtepA, eth(BROADCAST, MAC_B), 0, 60, -1, { step: (code, _a, _b, p) => { if (code === S_EGRESS) seen.push(p?.name ?? '?') } }, false)
    sw.receiveFrame(vtepA, eth(BROADCAST, MAC_B))
    const sent = [host, vtepA, vtepB, mesh].filter((p) => p.take().length > 0).map((p) => p.name)
    assert.deepEqual(seen.sort(), sent.sort())
  })
})
