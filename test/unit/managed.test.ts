/** The managed-switch rules: VLANs, port security, storm control, loop protection, static entries. */

import assert from 'node:assert/strict'
import { Switch } from '../../src/switch/core/switch'
import { BLOCK_STP, DEFAULT_POLICY, MODE_ACCESS, MODE_TRUNK, portState, type PortPolicy } from '../../src/switch/core/port'
import { FakePort } from '../helpers/fake-port'
import { eth, tagged, vidOf, BROADCAST, MAC_A, MAC_B, MAC_C } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'
import { R_BACKPRESSURE, R_BAD_SOURCE, R_EGRESS_BLOCKED, R_LOOP, R_PORT_SECURITY, R_STORM, R_VLAN } from '../../src/switch/core/reasons'
import { KIND_BROADCAST, KIND_MULTICAST, KIND_UNKNOWN_UNICAST } from '../../src/switch/core/storm'

const T0 = 1_000_000

function access (vid: number, extra: Partial<PortPolicy> = {}): PortPolicy {
  return { ...DEFAULT_POLICY, mode: MODE_ACCESS, pvid: vid, vlans: [vid], ...extra }
}
function trunk (vlans: number[], native = 0, extra: Partial<PortPolicy> = {}): PortPolicy {
  return { ...DEFAULT_POLICY, mode: MODE_TRUNK, pvid: native, vlans: native !== 0 ? [...vlans, native] : vlans, ...extra }
}

describe('Switch (managed)', () => {
  let sw: Switch
  let restore: (line: string) => void
  const logs: string[] = []
  let nextId = 1

  function port (name: string, policy: PortPolicy = DEFAULT_POLICY): FakePort {
    const p = new FakePort(nextId++, name)
    p.applyPolicy(policy)
    sw.addPort(p)
    return p
  }

  beforeEach(() => {
    logs.length = 0
    restore = setLogSink((l) => { logs.push(l) })
    sw = new Switch({ loopHoldDown: 30 }, T0)
  })
  afterEach(() => { setLogSink(restore) })

  describe('VLANs', () => {
    it('keeps access VLANs apart: a broadcast reaches only its own VLAN', () => {
      const a10 = port('a10', access(10)); const b10 = port('b10', access(10)); const c20 = port('c20', access(20))
      sw.receiveFrame(a10, eth(BROADCAST, MAC_A))
      assert.equal(b10.take().length, 1)
      assert.equal(c20.sent.length, 0)
      sw.receiveFrame(c20, eth(BROADCAST, MAC_C))
      assert.equal(a10.sent.length + b10.sent.length, 0)
    })

    it('learns per VLAN: the same MAC in two VLANs goes to two ports', () => {
      const a10 = port('a10', access(10)); const a20 = port('a20', access(20))
      const x10 = port('x10', access(10)); const x20 = port('x20', access(20))
      sw.receiveFrame(a10, eth(BROADCAST, MAC_A))
      sw.receiveFrame(a20, eth(BROADCAST, MAC_A))
      x10.take(); x20.take()
      sw.receiveFrame(x10, eth(MAC_A, MAC_B))
      sw.receiveFrame(x20, eth(MAC_A, MAC_C))
      assert.equal(a10.take().length, 1)
      assert.equal(a20.take().length, 1)
    })

    it('tags frames toward a trunk and untags them toward access ports', () => {
      const a10 = port('a10', access(10)); const t = port('trunk', trunk([10, 20]))
      const b20 = port('b20', access(20))
      sw.receiveFrame(a10, eth(BROADCAST, MAC_A, 7))
      const [out] = t.take()
      assert.ok(out)
      assert.equal(vidOf(out), 10)
      assert.equal(out.length, 64)
      assert.equal(out[18], 7, 'payload follows the inserted tag')
      sw.receiveFrame(t, tagged(BROADCAST, MAC_B, 20, 9))
      const [toAccess] = b20.take()
      assert.ok(toAccess)
      assert.equal(vidOf(toAccess), -1)
      assert.equal(toAccess.length, 60)
      assert.equal(toAccess[14], 9)
      assert.equal(a10.sent.length, 0, 'VLAN 20 does not reach VLAN 10')
    })

    it('sends the native VLAN untagged on a trunk and accepts untagged frames into it', () => {
      const t = port('trunk', trunk([10], 1)); const a1 = port('a1', access(1)); const a10 = port('a10', access(10))
      sw.receiveFrame(a1, eth(BROADCAST, MAC_A))
      assert.equal(vidOf(t.take()[0] as Buffer), -1)
      sw.receiveFrame(t, eth(BROADCAST, MAC_B))
      assert.equal(a1.take().length, 1)
      assert.equal(a10.sent.length, 0)
    })

    it('passes a trunk-to-trunk frame unchanged and rewrites a priority tag', () => {
      const t1 = port('t1', trunk([10])); const t2 = port('t2', trunk([10])); const a10 = port('a10', access(10))
      const f = tagged(BROADCAST, MAC_A, 10, 1, 5)
      sw.receiveFrame(t1, f)
      assert.deepEqual(t2.take(), [f])
      a10.take()
      // priority-tagged (VID 0) on an access port belongs to the access VLAN
      sw.receiveFrame(a10, tagged(BROADCAST, MAC_B, 0, 2, 6))
      const [retagged] = t1.take()
      assert.ok(retagged)
      assert.equal(vidOf(retagged), 10)
      assert.equal(retagged.readUInt16BE(14) >> 13, 6, 'the priority is kept')
    })

    it('drops and counts frames for a VLAN the port does not carry', () => {
      const a10 = port('a10', access(10)); const t = port('trunk', trunk([10]))
      const b30 = port('b30', access(30))
      sw.receiveFrame(t, tagged(BROADCAST, MAC_A, 30))
      sw.receiveFrame(t, eth(BROADCAST, MAC_A)) // untagged, no native VLAN
      sw.receiveFrame(a10, tagged(BROADCAST, MAC_B, 20))
      assert.equal(b30.sent.length + a10.sent.length, 0)
      assert.equal(t.drops[R_VLAN], 2)
      assert.equal(a10.drops[R_VLAN], 1)
      assert.equal(sw.stats.drops[R_VLAN], 3)
    })
  })

  describe('port security', () => {
    it('drops frames from MACs beyond the limit and counts them; known MACs keep working', () => {
      const p = port('p', access(1, { maxMacs: 2 })); const q = port('q')
      sw.receiveFrame(p, eth(BROADCAST, '0a0000000001'))
      sw.receiveFrame(p, eth(BROADCAST, '0a0000000002'))
      sw.receiveFrame(p, eth(BROADCAST, '0a0000000003'))
      sw.receiveFrame(p, eth(BROADCAST, '0a0000000001'))
      assert.equal(q.take().length, 3)
      assert.equal(p.drops[R_PORT_SECURITY], 1)
      assert.equal(sw.stats.drops[R_PORT_SECURITY], 1)
      assert.equal(p.closed, undefined)
      assert.ok(logs.some((l) => l.includes('"port_security_violation"')))
    })

    it('shuts the port when the violation action is shutdown', () => {
      const p = port('p', access(1, { maxMacs: 1, violation: 'shutdown' }))
      sw.receiveFrame(p, eth(BROADCAST, '0a0000000001'))
      sw.receiveFrame(p, eth(BROADCAST, '0a0000000002'))
      assert.deepEqual(p.closed?.code, 1008)
    })
  })

  describe('storm control', () => {
    it('limits broadcast, multicast and unknown unicast per second, each counted by kind', () => {
      const p = port('p', access(1, { stormBroadcast: 5, stormMulticast: 3, stormUnknownUnicast: 2 })); const q = port('q')
      for (let i = 0; i < 20; i++) sw.receiveFrame(p, eth(BROADCAST, MAC_A, i))
      for (let i = 0; i < 20; i++) sw.receiveFrame(p, eth('01005e000001', MAC_A, i))
      for (let i = 0; i < 20; i++) sw.receiveFrame(p, eth(MAC_C, MAC_A, i))
      assert.equal(q.take().length, 5 + 3 + 2)
      assert.equal(p.stormDrops[KIND_BROADCAST], 15)
      assert.equal(p.stormDrops[KIND_MULTICAST], 17)
      assert.equal(p.stormDrops[KIND_UNKNOWN_UNICAST], 18)
      assert.equal(sw.stats.drops[R_STORM], 50)
    })

    it('refills with time and never limits known unicast', () => {
      const p = port('p', access(1, { stormBroadcast: 10 })); const q = port('q')
      sw.receiveFrame(q, eth(BROADCAST, MAC_B))
      for (let i = 0; i < 30; i++) sw.receiveFrame(p, eth(BROADCAST, MAC_A))
      assert.equal(q.take().length, 10)
      sw.tick(T0 + 500)
      for (let i = 0; i < 30; i++) sw.receiveFrame(p, eth(BROADCAST, MAC_A))
      assert.equal(q.take().length, 5, 'half a second refills half the bucket')
      for (let i = 0; i < 100; i++) sw.receiveFrame(p, eth(MAC_B, MAC_A))
      assert.equal(q.take().length, 100)
    })
  })

  describe('port state: one field, reasons that never overwrite each other', () => {
    it('a loop hold-down ending does not enable a port an operator disabled', () => {
      const host = port('host'); const l1 = port('loop1'); const l2 = port('loop2'); const other = port('other')
      sw.receiveFrame(host, eth(BROADCAST, MAC_A))
      for (let i = 0; i < 10; i++) { sw.receiveFrame(l1, eth(BROADCAST, MAC_A)); sw.receiveFrame(l2, eth(BROADCAST, MAC_A)) }
      assert.equal(portState(l2), 'blocked')
      sw.disablePort(l2)
      assert.equal(portState(l2), 'disabled')
      sw.tick(T0 + 31_000)
      assert.equal(portState(l2), 'disabled', 'the hold-down is over, the operator\'s disable is not')
      l2.take()
      sw.receiveFrame(other, eth(BROADCAST, MAC_C))
      assert.equal(l2.sent.length, 0)
      sw.enablePort(l2)
      assert.equal(portState(l2), 'forwarding')
      sw.receiveFrame(other, eth(BROADCAST, MAC_C))
      assert.equal(l2.take().length, 1)
    })

    it('an operator enable does not end a spanning-tree block, and a static entry cannot reach either', () => {
      const a = port('a'); const b = port('b')
      b.blocked |= BLOCK_STP
      sw.disablePort(b)
      sw.enablePort(b)
      assert.equal(portState(b), 'discarding')
      sw.addStatic({ vid: 1, mac: 0x020000000002, port: 'b' })
      sw.receiveFrame(a, eth(MAC_B, MAC_A))
      sw.receiveFrame(a, eth(BROADCAST, MAC_A))
      assert.equal(b.sent.length, 0)
      assert.equal(a.drops[R_EGRESS_BLOCKED], 1, 'the known unicast counted as blocked at egress')
    })
  })

  describe('loop protection', () => {
    it('blocks the newer port when a MAC flaps, logs once naming both, and unblocks after the hold-down', () => {
      const host = port('host'); const l1 = port('loop1'); const l2 = port('loop2'); const other = port('other')
      sw.receiveFrame(host, eth(BROADCAST, MAC_A))
      // the frame comes back through both loop ports, over and over
      for (let i = 0; i < 10; i++) {
        sw.receiveFrame(l1, eth(BROADCAST, MAC_A))
        sw.receiveFrame(l2, eth(BROADCAST, MAC_A))
      }
      assert.ok(l2.blocked !== 0, 'the newest port in the flap is blocked')
      assert.equal(l2.loopBlocks, 1)
      assert.equal(sw.stats.loopsDetected, 1)
      const lines = logs.filter((l) => l.includes('"loop_detected"'))
      assert.equal(lines.length, 1)
      assert.match(lines[0] as string, /"mac":"02:00:00:00:00:01"/)
      assert.match(lines[0] as string, /"blocked":"loop2"/)
      assert.ok(l2.drops[R_LOOP] > 0)
      // the rest keeps working; nothing goes to or comes from the blocked port
      l2.take(); other.take()
      sw.receiveFrame(other, eth(BROADCAST, MAC_C))
      assert.equal(l2.sent.length, 0)
      assert.equal(host.take().length > 0, true)
      // after the hold-down it is tried again
      sw.tick(T0 + 29_000)
      assert.ok(l2.blocked !== 0)
      sw.tick(T0 + 30_000)
      assert.equal(l2.blocked, 0)
      sw.receiveFrame(other, eth(BROADCAST, MAC_C))
      assert.equal(l2.take().length, 1)
      assert.ok(logs.some((l) => l.includes('"loop_unblocked"')))
    })
  })

  describe('loop protection picks the loop port, not the station', () => {
    it('blocks the loop port even when the station\'s own port is newer', () => {
      const l1 = port('loop1'); const l2 = port('loop2'); const host = port('host') // host joined last
      sw.receiveFrame(host, eth(BROADCAST, MAC_A))
      sw.receiveFrame(l2, eth(BROADCAST, MAC_A)); sw.receiveFrame(l1, eth(BROADCAST, MAC_A))
      sw.receiveFrame(l2, eth(BROADCAST, MAC_A)); sw.receiveFrame(l1, eth(BROADCAST, MAC_A))
      sw.receiveFrame(host, eth(MAC_B, MAC_A)) // the 5th move: A's next frame from its own port
      assert.equal(sw.stats.loopsDetected, 1)
      assert.equal(host.blocked, 0, 'the station keeps forwarding')
      assert.ok(l1.blocked !== 0, 'the loop port the MAC came back from is blocked')
      assert.equal(l2.blocked, 0)
    })
  })

  describe('static entries', () => {
    it('forward to the named port whenever it is connected, and drop while it is away', () => {
      sw.setStatics([{ vid: 1, mac: 0x020000000002, port: 'router' }])
      const a = port('a'); const c = port('c')
      sw.receiveFrame(a, eth(MAC_B, MAC_A))
      assert.equal(c.sent.length, 0, 'not flooded: the static entry says where B is')
      assert.equal(sw.detached.drops[R_BACKPRESSURE], 1)
      const router = port('router')
      sw.receiveFrame(a, eth(MAC_B, MAC_A))
      assert.equal(router.take().length, 1)
      assert.equal(c.sent.length, 0)
      sw.receiveFrame(c, eth(BROADCAST, MAC_B)) // B may not appear elsewhere
      assert.equal(c.drops[R_BAD_SOURCE], 1)
      sw.removePort(router)
      sw.receiveFrame(a, eth(MAC_B, MAC_A))
      assert.equal(sw.detached.drops[R_BACKPRESSURE], 2)
    })
  })
})
