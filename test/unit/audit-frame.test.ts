/**
 * Issue 12 audit, the frame path: attacks on the forwarding decision,
 * reproduced on a Switch with fake ports and an injected clock.
 */

import assert from 'node:assert/strict'
import { Switch } from '../../src/switch/core/switch'
import { BLOCK_LOOP, DEFAULT_POLICY, MODE_ACCESS, MODE_TRUNK, portState, type PortPolicy } from '../../src/switch/core/port'
import { FakePort } from '../helpers/fake-port'
import { eth, frame, tagged, vidOf, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'
import { encodeBatch } from '../../src/common/protocol'
import { MAX_GSO_SEGMENTS, MIN_GSO_SIZE } from '../../src/common/gso'
import { tcpFrame, pattern } from '../helpers/tcp'
import { R_BAD_OFFLOAD, R_EGRESS_BLOCKED, R_PORT_SECURITY, R_VLAN } from '../../src/switch/core/reasons'

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
      assert.equal(a.drops[R_EGRESS_BLOCKED], 1)
      assert.equal(sw.stats.drops[R_EGRESS_BLOCKED], 1)
    })

    it('attack: a static fdb entry does not deliver to a loop-blocked port', () => {
      sw.setStatics([{ vid: 1, mac: 0x020000000002, port: 'victim' }])
      const a = port('a'); const victim = port('victim')
      victim.blocked = BLOCK_LOOP; victim.loopUntil = T0 + 30_000
      sw.receiveFrame(a, eth(MAC_B, MAC_A))
      assert.equal(victim.sent.length, 0)
      assert.equal(a.drops[R_EGRESS_BLOCKED], 1)
    })

    it('attack: a static fdb entry does not deliver to a spanning-tree discarding trunk', () => {
      sw.setStatics([{ vid: 10, mac: 0x020000000002, port: 'trunk' }])
      const a = port('a', access(10))
      const t = port('trunk', trunk([10]), true)
      assert.equal(portState(t), 'discarding', 'a new trunk discards until the tree lets it forward')
      sw.receiveFrame(a, eth(MAC_B, MAC_A))
      sw.receiveFrame(a, eth(BROADCAST, MAC_A))
      assert.equal(t.sent.length, 0)
      assert.equal(a.drops[R_EGRESS_BLOCKED], 1)
    })
  })

  describe('finding 10: double-tag VLAN hopping', () => {
    for (const outer of [1, 0]) {
      for (const inner of ['8100', '88a8', '9100']) {
        it(`attack: [8100 VID ${outer}][${inner} VID 10] from an access port in VLAN 1 does not reach VLAN 10 on a trunk with native VLAN 1`, () => {
          const a = port('a', access(1)); const t = port('router', trunk([10, 20], 1)); const b10 = port('b10', access(10))
          sw.receiveFrame(a, frame(`${BROADCAST} ${MAC_A} 8100 000${outer} ${inner} 000a 88b5`, 64))
          sw.receiveFrame(a, eth(BROADCAST, MAC_A, 0xbb)) // the barrier
          const out = t.take()
          assert.equal(out.length, 1)
          assert.equal(vidOf(out[0] as Buffer), -1, 'the barrier, untagged in the native VLAN')
          assert.equal((out[0] as Buffer)[14], 0xbb)
          assert.equal(b10.sent.length, 0)
          assert.equal(a.drops[R_VLAN], 1)
          assert.equal(sw.stats.drops[R_VLAN], 1)
        })
      }
    }

    it('still carries a single-tagged frame and a priority-tagged one', () => {
      const a = port('a', access(1)); const t = port('router', trunk([10, 20], 1))
      sw.receiveFrame(a, frame(`${BROADCAST} ${MAC_A} 8100 0000 88b5`, 64))
      sw.receiveFrame(t, frame(`${BROADCAST} ${MAC_B} 8100 0001 0800`, 64))
      assert.equal(t.take().length, 1)
      assert.equal(a.take().length, 1)
      assert.equal(a.drops[R_VLAN] + t.drops[R_VLAN], 0)
    })
  })

  describe('finding 5: GSO amplification', () => {
    it('attack: records with gso_size 1 are refused where they enter, not cut into ~65,000 segments per plain port', () => {
      const a = port('a'); const plain = port('plain')
      a.offload = true
      const payload = pattern(65_000)
      const records = [1, 1, MIN_GSO_SIZE - 1].map((mss) => tcpFrame({ payload, mss }).record)
      sw.receiveBatch(a, encodeBatch(records))
      assert.equal(plain.sent.length, 0)
      assert.equal(a.drops[R_BAD_OFFLOAD], 3)
      assert.equal(sw.stats.offloadSegmented, 0)
    })

    it('attack: a GSO record that would be cut into more than MAX_GSO_SEGMENTS segments is refused', () => {
      const a = port('a'); const plain = port('plain')
      a.offload = true
      const payload = pattern(65_000)
      sw.receiveBatch(a, encodeBatch([tcpFrame({ payload, mss: MIN_GSO_SIZE }).record]))
      assert.equal(plain.sent.length, 0)
      assert.equal(a.drops[R_BAD_OFFLOAD], 1)
      // The smallest gso_size a full record may have is still segmented, into at most MAX_GSO_SEGMENTS.
      const mss = Math.ceil(payload.length / MAX_GSO_SEGMENTS)
      sw.receiveBatch(a, encodeBatch([tcpFrame({ payload, mss }).record]))
      assert.equal(plain.sent.length, MAX_GSO_SEGMENTS)
      assert.equal(sw.stats.offloadSegmented, 1)
    })
  })

  describe('finding 12: memory per VLAN', () => {
    const ALL = Array.from({ length: 4094 }, (_, i) => i + 1)

    it('attack: one message with a frame in each of 4094 VLANs leaves no more tables than entries, and none once they go', () => {
      const t = port('t', { ...trunk(ALL), maxMacs: 8192 })
      sw.receiveBatch(t, encodeBatch(ALL.map((vid) => tagged(BROADCAST, MAC_A, vid))))
      assert.equal(sw.fdb.size, 4094)
      assert.ok(sw.fdb.vlanTables <= sw.fdb.size)
      sw.removePort(t)
      assert.equal(sw.fdb.vlanTables, 0, 'the port left: its tables went with its entries')
    })

    it('attack: per-VLAN tables go when their entries age out', () => {
      const t = port('t', { ...trunk(ALL), maxMacs: 8192 })
      sw.receiveBatch(t, encodeBatch(ALL.map((vid) => tagged(BROADCAST, MAC_A, vid))))
      assert.equal(sw.fdb.vlanTables, 4094)
      sw.tick(T0 + (sw.fdb.ageingTime + 2) * 1000)
      assert.equal(sw.fdb.size, 0)
      assert.equal(sw.fdb.vlanTables, 0)
    })

    it('attack: a port at its MAC limit sending in every VLAN creates no tables', () => {
      const t = port('t', { ...trunk(ALL), maxMacs: 1 })
      sw.receiveFrame(t, tagged(BROADCAST, MAC_A, 1))
      sw.receiveBatch(t, encodeBatch(ALL.map((vid) => tagged(BROADCAST, MAC_B, vid))))
      assert.equal(sw.fdb.vlanTables, 1)
    })
  })

  describe('finding 11: loop protection aimed at a victim (fdb MAC-move hold, Cisco port-security style)', () => {
    const A = 0x020000000001
    const fromB = (f: Buffer): boolean => f.readUIntBE(6, 6) === 0x020000000002

    it('attack: two ports spoofing a station\'s MAC get neither the station\'s port blocked nor its unicast', () => {
      const victim = port('victim'); const s1 = port('s1'); const s2 = port('s2'); const other = port('other')
      sw.receiveFrame(victim, eth(BROADCAST, MAC_A))
      sw.receiveFrame(other, eth(BROADCAST, MAC_B))
      let sent = 0
      for (let t = 0; t < 5000; t += 10) {
        sw.tick(T0 + t)
        if (t % 100 === 0) sw.receiveFrame(victim, eth(MAC_B, MAC_A)) // the station keeps sending
        sw.receiveFrame((t / 10) % 2 === 0 ? s1 : s2, eth(BROADCAST, MAC_A))
        if (t % 50 === 0) { sw.receiveFrame(other, eth(MAC_A, MAC_B, 0xcc)); sent++ }
        assert.equal(victim.blocked, 0, `the station's port is never blocked (t=${t})`)
        assert.equal(sw.fdb.lookup(1, A), victim, `the MAC stays with the station (t=${t})`)
      }
      assert.equal(victim.take().filter(fromB).length, sent + 1, 'every unicast for the station reached it')
      assert.equal(s1.take().filter(fromB).length + s2.take().filter(fromB).length, 2, 'the spoofers got only the first broadcast')
      assert.ok(s1.blocked !== 0 && s2.blocked !== 0, 'both spoofers were blocked')
      assert.ok(s1.drops[R_PORT_SECURITY] + s2.drops[R_PORT_SECURITY] > 0)
    })

    it('attack: spoofing ports sending a station\'s MAC faster than it does never get the station\'s port blocked', () => {
      const victim = port('victim'); const s1 = port('s1'); const s2 = port('s2'); const s3 = port('s3')
      sw.receiveFrame(victim, eth(BROADCAST, MAC_A))
      const spoofers = [s1, s2, s3]
      for (let t = 0; t < 120_000; t += 10) {
        sw.tick(T0 + t)
        if (t % 100 === 0) sw.receiveFrame(victim, eth(BROADCAST, MAC_A))
        sw.receiveFrame(spoofers[(t / 10) % 3] as FakePort, eth(BROADCAST, MAC_A))
        assert.equal(victim.blocked, 0, `the station's port is never blocked (t=${t})`)
      }
      assert.equal(victim.loopBlocks, 0)
    })

    it('attack: a spoofer that took an idle station\'s MAC loses it at the station\'s next frame and cannot get the station blocked', () => {
      const victim = port('victim'); const s1 = port('s1'); port('other')
      sw.receiveFrame(victim, eth(BROADCAST, MAC_A))
      sw.tick(T0 + 5000) // the station is idle (not long enough to age out)
      sw.receiveFrame(s1, eth(BROADCAST, MAC_A))
      assert.equal(sw.fdb.lookup(1, A), s1, 'an idle MAC may move: that is how a VM migrates')
      for (let t = 5000; t < 8000; t += 10) {
        sw.tick(T0 + t)
        if (t % 100 === 0) sw.receiveFrame(victim, eth(MAC_B, MAC_A))
        sw.receiveFrame(s1, eth(BROADCAST, MAC_A))
        assert.equal(victim.blocked, 0, `t=${t}`)
        assert.equal(sw.fdb.lookup(1, A), victim, `t=${t}`)
      }
      assert.ok(s1.blocked !== 0, 'the spoofer was blocked')
    })

    it('a migrating VM: its MAC moves once its old port has been quiet for moveHold, and nothing is blocked', () => {
      const p1 = port('p1'); const p2 = port('p2'); port('other')
      for (let t = 0; t <= 1000; t += 100) { sw.tick(T0 + t); sw.receiveFrame(p1, eth(BROADCAST, MAC_A)) }
      for (let t = 1050; t <= 2100; t += 50) { sw.tick(T0 + t); sw.receiveFrame(p2, eth(BROADCAST, MAC_A)) }
      assert.equal(sw.fdb.lookup(1, A), p2)
      assert.equal(sw.stats.loopsDetected, 0)
      assert.equal(p1.blocked + p2.blocked, 0)
    })
  })
})
