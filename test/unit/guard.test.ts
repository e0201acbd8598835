/**
 * Issue 21, finding 6: a network's guards (core/guard.ts) in a real Switch:
 * DHCP snooping, dynamic ARP inspection and IP source guard, each case they
 * let through and each they refuse; the frame trace takes the same step,
 * and the native fast path gets no flow from a port they inspect.
 */

import assert from 'node:assert/strict'
import { Switch } from '../../src/switch/core/switch'
import { Guard, type GuardSpec } from '../../src/switch/core/guard'
import { LeaseTable } from '../../src/switch/core/leases'
import { traceFrame } from '../../src/switch/control/trace'
import { revalidate } from '../../src/switch/core/fastpath'
import { networkDrops } from '../../src/switch/core/drops'
import { DEFAULT_POLICY, MODE_TRUNK } from '../../src/switch/core/port'
import { buildConfig } from '../../src/switch/control/config'
import { buildDhcpReply, buildDhcpRequest, parseIpv4, DHCPOFFER, DHCPDISCOVER } from '../../src/common/dhcp'
import { ERR_CONFIG } from '../../src/common/errors'
import { setLogSink } from '../../src/common/log'
import { FakePort } from '../helpers/fake-port'
import { arp, udp, eth } from '../helpers/frames'
import { R_ARP_INSPECTION, R_DHCP_SNOOPING, R_IP_SOURCE_GUARD } from '../../src/switch/core/reasons'

const ip = (t: string): number => parseIpv4(t) as number
const GW = ip('10.0.2.2')
const DNS = ip('10.0.2.3')
const GW_MAC = 0x52550a000202
const A = 0x020000000001
const B = 0x020000000002
const STATIC_MAC = 0x0200000000aa
const BCAST = 0xffffffffffff

function spec (o: Partial<GuardSpec> = {}): GuardSpec {
  return { dhcpSnooping: true, arpInspection: true, ipSourceGuard: false, trusted: ['gateway'], leases: true, subnet: ip('10.0.2.0'), mask: 0xffffff00, gateway: GW, dns: DNS, ...o }
}

describe('guards (DHCP snooping, dynamic ARP inspection, IP source guard)', () => {
  let sw: Switch
  let gw: FakePort, a: FakePort, b: FakePort, c: FakePort
  let leases: LeaseTable
  let restore: (line: string) => void

  /** Bind A to 10.0.2.15 on port a, as the DHCP server does on an ACK. */
  function bindA (port: FakePort | null = a): void {
    const l = leases.offer(A, ip('10.0.2.15'), port, Date.now() + 30_000)
    leases.bind(l, port, Date.now() + 3_600_000)
  }

  function setup (o: Partial<GuardSpec> = {}): void {
    sw = new Switch({ name: 'lab' })
    gw = new FakePort(1, 'gateway'); a = new FakePort(2, 'a'); b = new FakePort(3, 'b'); c = new FakePort(4, 'c')
    for (const p of [gw, a, b, c]) sw.addPort(p)
    sw.guard = new Guard(spec(o))
    leases = new LeaseTable({ subnet: ip('10.0.2.0'), mask: 0xffffff00, start: ip('10.0.2.15'), size: 240, reserved: [GW, DNS], statics: new Map([[STATIC_MAC, ip('10.0.2.50')]]) })
    sw.guard.bindings = leases
  }

  /** Send `f` in on `from`; the names of the ports it reached. */
  function reach (from: FakePort, f: Buffer): string[] {
    for (const p of [gw, a, b, c]) p.take()
    sw.receiveFrame(from, f)
    return [gw, a, b, c].filter((p) => p.take().length > 0).map((p) => p.name)
  }

  beforeEach(() => { restore = setLogSink(() => {}); setup() })
  afterEach(() => { setLogSink(restore) })

  describe('DHCP snooping', () => {
    const offer = (server: number, serverMac: number, clientMac = B): Buffer => buildDhcpReply({ type: DHCPOFFER, serverMac, server, clientMac, xid: 1, yiaddr: ip('10.0.2.99'), mask: 0xffffff00, router: server, dns: server, leaseSeconds: 60, flags: 0 })

    it('attack: a rogue OFFER from a station (naming itself router) reaches nobody; dropped and counted as dhcp_snooping', () => {
      const rogue = offer(ip('10.0.2.15'), A)
      assert.deepEqual(reach(a, rogue), [])
      assert.deepEqual([a.drops[R_DHCP_SNOOPING], sw.stats.drops[R_DHCP_SNOOPING], networkDrops(sw.stats, sw.ports).dhcp_snooping], [1, 1, 1])
      const logged = sw.dropLog.read(0).records.at(-1)
      assert.equal(logged?.port, 'a')
      // Unicast to the victim's MAC, and from a learned station: the same.
      sw.receiveFrame(b, eth('ffffffffffff', '020000000002'))
      rogue.writeUIntBE(B, 0, 6)
      assert.deepEqual(reach(a, rogue), [])
      assert.equal(a.drops[R_DHCP_SNOOPING], 2)
    })

    it('lets the gateway\'s port (trusted) send DHCP replies', () => {
      assert.deepEqual(reach(gw, offer(GW, GW_MAC)), ['a', 'b', 'c'])
      assert.equal(sw.stats.drops[R_DHCP_SNOOPING], 0)
    })

    it('drops any UDP from port 67 or to port 68 from an untrusted port, and a first fragment too short to show its ports', () => {
      assert.deepEqual(reach(a, udp(BCAST, A, ip('10.0.2.15'), 0xffffffff, 67, 1234)), [])
      assert.deepEqual(reach(a, udp(BCAST, A, ip('10.0.2.15'), 0xffffffff, 5000, 68)), [])
      const tiny = udp(BCAST, A, 0, 0xffffffff, 67, 68)
      tiny.writeUInt16BE(20 + 3, 16); tiny.writeUInt16BE(0x2000, 20)
      assert.deepEqual(reach(a, tiny), [])
      assert.equal(a.drops[R_DHCP_SNOOPING], 3)
    })

    it('lets client messages (68 to 67) and other UDP through', () => {
      assert.deepEqual(reach(a, buildDhcpRequest(A, DHCPDISCOVER, 1)), ['gateway', 'b', 'c'])
      assert.deepEqual(reach(a, udp(BCAST, A, 0, 0xffffffff, 5353, 5353)), ['gateway', 'b', 'c'])
    })

    it('trusts a listed port only while it owns its name (a client cannot claim it)', () => {
      setup({ trusted: ['gateway', 'b'] })
      assert.deepEqual(reach(b, offer(ip('10.0.2.5'), B, A)), ['gateway', 'a', 'c'])
      b.ownsName = false
      assert.deepEqual(reach(b, offer(ip('10.0.2.5'), B, A)), [])
    })
  })

  describe('dynamic ARP inspection', () => {
    it('attack: an ARP claiming the gateway\'s address (or the DNS address) from a station\'s own MAC reaches nobody', () => {
      assert.deepEqual(reach(a, arp(A, A, GW, ip('10.0.2.16'), 2)), [])
      assert.deepEqual(reach(a, arp(A, A, DNS, ip('10.0.2.16'))), [])
      assert.deepEqual([a.drops[R_ARP_INSPECTION], sw.stats.drops[R_ARP_INSPECTION]], [2, 2])
      assert.deepEqual(reach(gw, arp(GW_MAC, GW_MAC, GW, ip('10.0.2.15'), 2)), ['a', 'b', 'c'], 'the gateway itself may')
    })

    it('passes an ARP whose sender matches a binding of its MAC on its port; refuses it from another port or for another address', () => {
      bindA()
      assert.deepEqual(reach(a, arp(A, A, ip('10.0.2.15'), GW)), ['gateway', 'b', 'c'])
      assert.deepEqual(reach(a, arp(A, A, ip('10.0.2.16'), GW)), [], 'not its address')
      assert.deepEqual(reach(b, arp(B, B, ip('10.0.2.15'), GW)), [], 'another MAC claiming it')
      assert.deepEqual(reach(c, arp(A, A, ip('10.0.2.15'), GW)), [], 'its MAC and address from another port')
      assert.equal(sw.stats.drops[R_ARP_INSPECTION], 3)
    })

    it('refuses an ARP whose sender MAC is not the frame\'s source, and one too short or not Ethernet/IPv4', () => {
      bindA()
      assert.deepEqual(reach(b, arp(B, A, ip('10.0.2.15'), GW)), [])
      const short = arp(A, A, ip('10.0.2.15'), GW).subarray(0, 30)
      assert.deepEqual(reach(a, short), [])
      const other = arp(A, A, ip('10.0.2.15'), GW)
      other.writeUInt16BE(6, 14)
      assert.deepEqual(reach(a, other), [])
      assert.equal(sw.stats.drops[R_ARP_INSPECTION], 3)
    })

    it('passes probes (sender 0.0.0.0) and senders outside the gateway\'s subnet; static leases bind on any port', () => {
      assert.deepEqual(reach(a, arp(A, A, 0, ip('10.0.2.15'))), ['gateway', 'b', 'c'])
      assert.deepEqual(reach(a, arp(A, A, ip('192.168.7.1'), ip('192.168.7.2'))), ['gateway', 'b', 'c'])
      assert.deepEqual(reach(b, arp(STATIC_MAC, STATIC_MAC, ip('10.0.2.50'), GW)), ['gateway', 'a', 'c'])
      assert.deepEqual(reach(b, arp(B, B, ip('10.0.2.0'), GW)), [], 'the network address is nobody\'s')
    })

    it('a lease whose port left binds on the port its station comes back on', () => {
      bindA()
      sw.removePort(a)
      assert.deepEqual(reach(c, arp(A, A, ip('10.0.2.15'), GW)).sort(), ['b', 'gateway'])
    })

    it('until the gateway gives its leases, nothing inside the subnet is bound (fail closed)', () => {
      sw.guard = new Guard(spec())
      assert.deepEqual(reach(a, arp(A, A, ip('10.0.2.15'), GW)), [])
    })

    it('with dhcp false (no leases) only the gateway\'s and DNS addresses are protected', () => {
      setup({ leases: false })
      assert.deepEqual(reach(a, arp(A, A, ip('10.0.2.77'), GW)), ['gateway', 'b', 'c'])
      assert.deepEqual(reach(a, arp(A, A, GW, ip('10.0.2.77'))), [])
    })

    it('attack: IPv4 from the gateway\'s or DNS address (an ICMP redirect "from the gateway") from a station reaches nobody, counted as ip_source_guard', () => {
      bindA()
      reach(b, udp(BCAST, B, ip('10.0.2.16'), 0xffffffff, 9, 9)) // the switch learns B
      const redirect = (src: number, smac = A): Buffer => {
        // ICMP type 5 code 1: "send to 10.0.2.15 for this host", quoting an echo reply of B's (Linux takes it without a socket).
        const f = Buffer.alloc(14 + 20 + 8 + 28)
        f.writeUIntBE(B, 0, 6); f.writeUIntBE(smac, 6, 6); f.writeUInt16BE(0x0800, 12)
        f[14] = 0x45; f.writeUInt16BE(56, 16); f[22] = 64; f[23] = 1; f.writeUInt32BE(src, 26); f.writeUInt32BE(ip('10.0.2.16'), 30)
        f[34] = 5; f[35] = 1; f.writeUInt32BE(ip('10.0.2.15'), 38)
        return f
      }
      assert.deepEqual(reach(a, redirect(GW)), [])
      assert.deepEqual(reach(a, redirect(DNS)), [])
      assert.deepEqual([a.drops[R_IP_SOURCE_GUARD], sw.stats.drops[R_IP_SOURCE_GUARD], a.drops[R_ARP_INSPECTION]], [2, 2, 0])
      assert.deepEqual(reach(gw, redirect(GW, GW_MAC)), ['b'], 'the gateway itself may')
      assert.deepEqual(reach(a, redirect(ip('10.0.2.15'))), ['b'], 'its own address (IP source guard off)')
      setup({ arpInspection: false })
      reach(b, udp(BCAST, B, ip('10.0.2.16'), 0xffffffff, 9, 9))
      assert.deepEqual(reach(a, redirect(GW)), ['b'], 'with ARP inspection off, not inspected')
    })

    it('inspects the gateway\'s VLAN only', () => {
      const t = new FakePort(5, 't')
      t.applyPolicy({ ...DEFAULT_POLICY, mode: MODE_TRUNK, pvid: 1, vlans: [1, 10] })
      sw.addPort(t)
      ;(sw.guard as Guard).vid = 1
      const f = arp(A, A, GW, ip('10.0.2.16'))
      const tagged = Buffer.concat([f.subarray(0, 12), Buffer.from([0x81, 0x00, 0x00, 10]), f.subarray(12)])
      sw.receiveFrame(t, tagged)
      assert.equal(t.drops[R_ARP_INSPECTION], 0, 'VLAN 10: not inspected')
      tagged[15] = 1
      sw.receiveFrame(t, tagged)
      assert.equal(t.drops[R_ARP_INSPECTION], 1, 'VLAN 1, tagged: inspected')
    })
  })

  describe('IP source guard', () => {
    it('is off by default: a station may send from any address', () => {
      assert.deepEqual(reach(a, udp(BCAST, A, ip('10.0.2.77'), 0xffffffff, 9, 9)), ['gateway', 'b', 'c'])
    })

    it('when on, refuses an unbound source inside the subnet; bound sources, 0.0.0.0 and other subnets pass', () => {
      setup({ ipSourceGuard: true })
      bindA()
      assert.deepEqual(reach(a, udp(BCAST, A, ip('10.0.2.77'), 0xffffffff, 9, 9)), [])
      assert.deepEqual(reach(b, udp(BCAST, B, ip('10.0.2.15'), 0xffffffff, 9, 9)), [], 'another\'s address')
      assert.deepEqual(reach(a, udp(BCAST, A, GW, 0xffffffff, 9, 9)), [], 'the gateway\'s')
      assert.equal(a.drops[R_IP_SOURCE_GUARD] + b.drops[R_IP_SOURCE_GUARD], 3)
      assert.deepEqual(reach(a, udp(BCAST, A, ip('10.0.2.15'), 0xffffffff, 9, 9)), ['gateway', 'b', 'c'])
      assert.deepEqual(reach(a, buildDhcpRequest(A, DHCPDISCOVER, 1)), ['gateway', 'b', 'c'], 'a DHCP client from 0.0.0.0')
      assert.deepEqual(reach(a, udp(BCAST, A, ip('172.16.0.1'), 0xffffffff, 9, 9)), ['gateway', 'b', 'c'])
    })
  })

  it('the frame trace takes the same step: the guard\'s verdict and its reason', () => {
    bindA()
    let t = traceFrame(sw, a, arp(A, A, GW, ip('10.0.2.16'), 2))
    assert.equal(t.dropReason, 'arp_inspection')
    assert.match(t.steps.at(-1)?.detail ?? '', /the gateway's address/)
    t = traceFrame(sw, a, udp(BCAST, A, GW, 0xffffffff, 9, 9))
    assert.equal(t.dropReason, 'ip_source_guard')
    assert.match(t.steps.at(-1)?.detail ?? '', /the gateway's own address/)
    t = traceFrame(sw, a, buildDhcpReply({ type: DHCPOFFER, serverMac: A, server: ip('10.0.2.15'), clientMac: B, xid: 1, yiaddr: ip('10.0.2.99'), mask: 0xffffff00, router: 0, dns: 0, leaseSeconds: 60, flags: 0 }))
    assert.equal(t.dropReason, 'dhcp_snooping')
    t = traceFrame(sw, a, arp(A, A, ip('10.0.2.15'), GW))
    assert.equal(t.action, 'flood')
    assert.ok(t.steps.some((s) => s.step === 'guard' && s.verdict === 'pass'))
    assert.equal(sw.stats.drops[R_ARP_INSPECTION], 0, 'the trace changes nothing')
  })

  it('the native fast path gets no flow from a port the guards inspect; trusted ports keep theirs', () => {
    sw.receiveFrame(a, eth('ffffffffffff', '020000000001'))
    sw.receiveFrame(gw, eth('ffffffffffff', GW_MAC.toString(16)))
    assert.equal(revalidate(sw, a, gw, 1, GW_MAC, A), false)
    assert.equal(revalidate(sw, gw, a, 1, A, GW_MAC), true)
    sw.guard = null
    assert.equal(revalidate(sw, a, gw, 1, GW_MAC, A), true, 'without guards, as before')
  })

  describe('configuration (networks.NAME.guards)', () => {
    const guards = (net: Record<string, unknown>): GuardSpec | undefined => buildConfig({ networks: { lab: net } }, 'test').networks.get('lab')?.guards

    it('is on by default with a gateway (snooping and ARP inspection, the gateway trusted), off without one', () => {
      const g = guards({ gateway: {} }) as GuardSpec
      assert.deepEqual([g.dhcpSnooping, g.arpInspection, g.ipSourceGuard, g.trusted, g.leases, g.gateway], [true, true, false, ['gateway'], true, GW])
      assert.equal(guards({}), undefined)
      assert.equal(guards({ gateway: {}, guards: false }), undefined)
      assert.deepEqual(guards({ guards: true }), { dhcpSnooping: true, arpInspection: false, ipSourceGuard: false, trusted: [], leases: false, subnet: 0, mask: 0, gateway: 0, dns: 0 })
      assert.deepEqual((guards({ gateway: {}, guards: { trusted: ['dhcp1'], ipSourceGuard: true } }) as GuardSpec).trusted, ['dhcp1', 'gateway'])
    })

    it('refuses what cannot work, naming the key', () => {
      const refused = (net: Record<string, unknown>, key: string): void => {
        assert.throws(() => buildConfig({ networks: { lab: net } }, 'test'), (err: Error & { code?: string }) => err.code === ERR_CONFIG && err.message.includes(key), key)
      }
      refused({ guards: { arpInspection: true } }, 'guards.arpInspection')
      refused({ guards: { ipSourceGuard: true } }, 'guards.ipSourceGuard')
      refused({ gateway: { dhcp: false }, guards: { ipSourceGuard: true } }, 'guards.ipSourceGuard')
      refused({ gateway: {}, guards: { trusted: ['bad name'] } }, 'guards.trusted[0]')
      refused({ gateway: {}, guards: { bogus: 1 } }, 'guards.bogus')
      refused({ gateway: {}, guards: 'on' }, 'guards')
    })
  })
})
