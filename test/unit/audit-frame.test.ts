/**
 * Issue 12 audit, the frame path: attacks on the forwarding decision,
 * reproduced on a Switch with fake ports and an injected clock.
 */

import assert from 'node:assert/strict'
import { Switch } from '../../src/switch/switch'
import { DEFAULT_POLICY, MODE_ACCESS, MODE_TRUNK, type PortPolicy } from '../../src/switch/port'
import { FakePort } from '../helpers/fake-port'
import { eth, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'

const T0 = 1_000_000

function access (vid: number): PortPolicy {
  return { ...DEFAULT_POLICY, mode: MODE_ACCESS, pvid: vid, vlans: [vid] }
}
function trunk (vlans: number[], native = 0): PortPolicy {
  return { ...DEFAULT_POLICY, mode: MODE_TRUNK, pvid: native, vlans: native !== 0 ? [...vlans, native] : vlans }
}

describe('audit: frame path', () => {
  let sw: Switch
  let restore: (line: string) => void
  let nextId = 1

  function port (name: string, policy: PortPolicy = DEFAULT_POLICY, isTrunk = false): FakePort {
    const p = new FakePort(nextId++, name)
    p.applyPolicy(policy)
    sw.addPort(p, isTrunk)
    return p
  }

  beforeEach(() => {
    restore = setLogSink(() => {})
    sw = new Switch({ loopHoldDown: 30 }, T0)
  })
  afterEach(() => { setLogSink(restore) })

  describe('finding 14: one egress check for every path', () => {
    it('attack: a static fdb entry does not deliver to a disabled port', () => {
      sw.setStatics([{ vid: 1, mac: 0x020000000002, port: 'victim' }])
      const a = port('a'); const victim = port('victim')
      sw.disablePort(victim)
      sw.receiveFrame(a, eth(MAC_B, MAC_A))
      assert.equal(victim.sent.length, 0)
      assert.equal(a.dropEgressBlocked, 1)
      assert.equal(sw.stats.dropEgressBlocked, 1)
    })

    it('attack: a static fdb entry does not deliver to a loop-blocked port', () => {
      sw.setStatics([{ vid: 1, mac: 0x020000000002, port: 'victim' }])
      const a = port('a'); const victim = port('victim')
      victim.blockedUntil = T0 + 30_000
      sw.receiveFrame(a, eth(MAC_B, MAC_A))
      assert.equal(victim.sent.length, 0)
      assert.equal(a.dropEgressBlocked, 1)
    })

    it('attack: a static fdb entry does not deliver to a spanning-tree discarding trunk', () => {
      sw.setStatics([{ vid: 10, mac: 0x020000000002, port: 'trunk' }])
      const a = port('a', access(10))
      const t = port('trunk', trunk([10]), true)
      assert.equal(t.stpBlocked, true, 'a new trunk discards until the tree lets it forward')
      sw.receiveFrame(a, eth(MAC_B, MAC_A))
      sw.receiveFrame(a, eth(BROADCAST, MAC_A))
      assert.equal(t.sent.length, 0)
      assert.equal(a.dropEgressBlocked, 1)
    })
  })
})
