/**
 * Issue 21, findings 4 and 5: switchd's DHCP server (core/dhcp-server.ts)
 * and its lease table (core/leases.ts), decision by decision, with literal
 * frames and an injected clock.
 */

import assert from 'node:assert/strict'
import { DhcpServer, OFFER_HOLD_MS, RATE_BURST, type DhcpAnswer, type DhcpServerOptions } from '../../src/switch/core/dhcp-server'
import { LeaseTable, LeaseFileInvalid, LEASE_BOUND, LEASE_EXPIRED, DECLINE_HOLD_MS, SEEN_HOLD_MS } from '../../src/switch/core/leases'
import {
  buildDhcpRequest, dhcpAt, dhcpType, dhcpYourAddress, dhcpClientAddress, dhcpAddressOption, dhcpOption, parseIpv4, formatIpv4,
  DHCP_SERVER_PORT, DHCP_CLIENT_PORT, DHCPDISCOVER, DHCPOFFER, DHCPREQUEST, DHCPDECLINE, DHCPACK, DHCPNAK, DHCPRELEASE, DHCPINFORM,
  OPT_ROUTER, OPT_DNS, OPT_SERVER_ID, OPT_SUBNET_MASK, OPT_LEASE_TIME, OPT_RENEWAL_TIME, OPT_REBINDING_TIME
} from '../../src/common/dhcp'
import { FakePort } from '../helpers/fake-port'

const ip = (t: string): number => parseIpv4(t) as number
const GW = ip('10.0.2.2')
const OTHER_SERVER = ip('10.0.2.99')
const A = 0x020000000001
const B = 0x020000000002
const C = 0x020000000003
const STATIC_MAC = 0x0200000000aa
const T0 = Date.parse('2026-12-01T00:00:00Z')

function options (o: Partial<DhcpServerOptions> & { poolSize?: number } = {}): DhcpServerOptions {
  return {
    address: GW,
    mac: 0x52550a000202,
    mask: 0xffffff00,
    router: GW,
    dns: ip('10.0.2.3'),
    leaseSeconds: 3600,
    leasesPerPort: 4,
    leasesPerClient: 60,
    pool: { subnet: ip('10.0.2.0'), mask: 0xffffff00, start: ip('10.0.2.15'), size: o.poolSize ?? 240, reserved: [GW, ip('10.0.2.3')], statics: new Map([[STATIC_MAC, ip('10.0.2.20')]]) },
    ...o
  }
}

interface Reply { type: number, yiaddr: string, ciaddr: string, dstIp: string, dstMac: number, version: number, lease: number, router: number, dns: number, server: number }

function read (a: DhcpAnswer | null): Reply | null {
  if (a === null) return null
  const f = a.frame
  const b = dhcpAt(f, 14, f.length, DHCP_SERVER_PORT, DHCP_CLIENT_PORT)
  assert.ok(b > 0, 'a DHCP reply from port 67 to 68')
  return {
    type: dhcpType(f, b, f.length),
    yiaddr: formatIpv4(dhcpYourAddress(f, b)),
    ciaddr: formatIpv4(dhcpClientAddress(f, b)),
    dstIp: formatIpv4(f.readUInt32BE(30)),
    dstMac: f.readUIntBE(0, 6),
    version: a.version,
    lease: dhcpAddressOption(f, b, f.length, OPT_LEASE_TIME),
    router: dhcpAddressOption(f, b, f.length, OPT_ROUTER),
    dns: dhcpAddressOption(f, b, f.length, OPT_DNS),
    server: dhcpAddressOption(f, b, f.length, OPT_SERVER_ID)
  }
}

describe('DHCP server (switchd answers every DHCP message)', () => {
  let server: DhcpServer
  let p1: FakePort, p2: FakePort
  let now: number
  let xid: number

  /** `type` from `mac` on `port`, the frame as a station sends it. */
  function send (mac: number, type: number, port: FakePort = p1, requested = 0, serverId = 0, ciaddr = 0, chaddr = mac): Reply | null {
    const f = buildDhcpRequest(mac, type, ++xid, requested, serverId, ciaddr, chaddr)
    return read(server.receive(f, 0, f.length, port, now))
  }
  /** DISCOVER, then REQUEST what was offered; the ACK. */
  function lease (mac: number, port: FakePort = p1): Reply {
    const o = send(mac, DHCPDISCOVER, port)
    assert.equal(o?.type, DHCPOFFER, `an offer for ${mac.toString(16)}`)
    const ack = send(mac, DHCPREQUEST, port, ip(o.yiaddr), GW)
    assert.equal(ack?.type, DHCPACK)
    return ack
  }

  beforeEach(() => {
    server = new DhcpServer(options())
    p1 = new FakePort(1, 'vm1')
    p2 = new FakePort(2, 'vm2')
    now = T0
    xid = 0
  })

  describe('DISCOVER', () => {
    it('offers the lowest free address with mask, router, DNS, server id, lease time, T1 and T2, to the client\'s MAC', () => {
      const f = buildDhcpRequest(A, DHCPDISCOVER, 7)
      const a = server.receive(f, 0, f.length, p1, now)
      const r = read(a) as Reply
      assert.deepEqual([r.type, r.yiaddr, r.dstMac, r.dstIp, r.router, r.dns, r.server, r.lease], [DHCPOFFER, '10.0.2.15', A, '255.255.255.255', GW, ip('10.0.2.3'), GW, 3600])
      const frame = (a as DhcpAnswer).frame
      const b = dhcpAt(frame, 14, frame.length, DHCP_SERVER_PORT, DHCP_CLIENT_PORT)
      assert.equal(dhcpAddressOption(frame, b, frame.length, OPT_SUBNET_MASK), 0xffffff00)
      assert.equal(dhcpAddressOption(frame, b, frame.length, OPT_RENEWAL_TIME), 1800)
      assert.equal(dhcpAddressOption(frame, b, frame.length, OPT_REBINDING_TIME), 3150)
      assert.equal(frame.readUInt32BE(14 + 20 + 8 + 4), 7, 'the xid echoed')
      assert.equal(frame.readUIntBE(6, 6), 0x52550a000202, 'from the gateway\'s MAC')
    })

    it('holds an offered address: the next MAC gets the next one; the offer lapses after OFFER_HOLD_MS', () => {
      assert.equal(send(A, DHCPDISCOVER)?.yiaddr, '10.0.2.15')
      assert.equal(send(A, DHCPDISCOVER)?.yiaddr, '10.0.2.15', 'the same MAC, the same offer')
      assert.equal(send(B, DHCPDISCOVER, p2)?.yiaddr, '10.0.2.16')
      now += OFFER_HOLD_MS + 1
      server.tick(now)
      assert.equal(send(C, DHCPDISCOVER, p2)?.yiaddr, '10.0.2.15')
    })

    it('never offers the gateway, DNS, broadcast or a static lease\'s address, even inside the pool', () => {
      server = new DhcpServer(options({ pool: { subnet: ip('10.0.2.0'), mask: 0xffffff00, start: ip('10.0.2.1'), size: 254, reserved: [GW, ip('10.0.2.3')], statics: new Map([[STATIC_MAC, ip('10.0.2.4')]]) } }))
      const got = [A, B, C].map((m) => send(m, DHCPDISCOVER, m === A ? p1 : p2)?.yiaddr)
      assert.deepEqual(got, ['10.0.2.1', '10.0.2.5', '10.0.2.6'])
      assert.equal(send(STATIC_MAC, DHCPDISCOVER, p2)?.yiaddr, '10.0.2.4', 'the static MAC gets its own')
    })

    it('offers the address the client asks for when it is free, and a returning MAC its previous one', () => {
      assert.equal(send(A, DHCPDISCOVER, p1, ip('10.0.2.40'))?.yiaddr, '10.0.2.40')
      const ack = lease(B, p2)
      assert.equal(ack.yiaddr, '10.0.2.15')
      send(B, DHCPRELEASE, p2, 0, GW, ip('10.0.2.15'))
      assert.equal(send(C, DHCPDISCOVER, p2)?.yiaddr, '10.0.2.16', 'a released address is remembered for its MAC')
      assert.equal(send(B, DHCPDISCOVER, p2)?.yiaddr, '10.0.2.15', 'and given back to it')
    })

    it('attack: a chaddr other than the frame\'s source MAC is dropped and counted (no pool for made-up clients)', () => {
      for (let i = 0; i < 16; i++) assert.equal(send(A, DHCPDISCOVER, p1, 0, 0, 0, 0x02000000a000 + i), null)
      assert.equal(server.counters.chaddr, 16)
      assert.equal(server.leases.size, 0)
      assert.equal(send(B, DHCPDISCOVER, p2)?.yiaddr, '10.0.2.15')
    })

    it('attack: a port holds at most leasesPerPort addresses (made-up source MACs included); other ports still get theirs', () => {
      for (let i = 0; i < 4; i++) assert.equal(send(0x020000000100 + i, DHCPDISCOVER, p1)?.type, DHCPOFFER)
      assert.equal(send(0x020000000104, DHCPDISCOVER, p1), null)
      assert.equal(server.counters.limit, 1)
      assert.equal(send(0x020000000101, DHCPDISCOVER, p1)?.type, DHCPOFFER, 'a MAC it holds already is answered')
      assert.equal(send(B, DHCPDISCOVER, p2)?.yiaddr, '10.0.2.19')
      // Trunks (another switch's stations) are not one port's worth: they are held to their client's share only.
      p1.stp = {} as FakePort['stp']
      assert.equal(send(0x020000000104, DHCPDISCOVER, p1)?.type, DHCPOFFER)
    })

    it('attack: one client (many ports of one address, or a trunk) holds at most leasesPerClient addresses; another client still gets one', () => {
      server = new DhcpServer(options({ poolSize: 16, leasesPerClient: 6 }))
      const tabs = [1, 2, 3, 4].map((i) => { const p = new FakePort(10 + i, `raw-${i}`); p.clientKey = 'address 192.0.2.7'; return p })
      let offered = 0
      for (const [i, p] of tabs.entries()) {
        for (let k = 0; k < 4; k++) if (send(0x020000000200 + i * 16 + k, DHCPDISCOVER, p)?.type === DHCPOFFER) offered++
      }
      assert.deepEqual([offered, server.counters.limit], [6, 10])
      assert.equal(send(B, DHCPDISCOVER, p2)?.type, DHCPOFFER, 'another client')
      // A trunk is exempt from leasesPerPort, not from its client's share.
      const trunk = new FakePort(20, 'trunk-b')
      trunk.stp = {} as FakePort['stp']
      let viaTrunk = 0
      for (let k = 0; k < 10; k++) if (send(0x020000000300 + k, DHCPDISCOVER, trunk)?.type === DHCPOFFER) viaTrunk++
      assert.equal(viaTrunk, 6)
      // A port that leaves does not give its client's share back: its leases are still held.
      server.leases.portLeft(tabs[0] as FakePort)
      assert.equal(server.leases.countForClient('address 192.0.2.7'), 6)
      const tab5 = new FakePort(15, 'raw-5'); tab5.clientKey = 'address 192.0.2.7'
      assert.equal(send(0x020000000400, DHCPDISCOVER, tab5), null, 'a new tab of the same address')
      // ... and the station of a port that left, back on a new port of its client, gets its address again.
      assert.equal(send(0x020000000200, DHCPDISCOVER, tab5)?.yiaddr, '10.0.2.15')
      assert.equal(send(0x020000000200, DHCPREQUEST, tab5, ip('10.0.2.15'), GW)?.type, DHCPACK)
      assert.equal(server.leases.countForClient('address 192.0.2.7'), 6)
      // Its expiry, release or decline gives the share back.
      now += OFFER_HOLD_MS + 1
      server.tick(now)
      assert.equal(server.leases.countForClient('address 192.0.2.7'), 1, 'the offers lapsed; the bound lease stays')
    })

    it('offers nothing when the pool is exhausted (counted), and again once an address expires', () => {
      server = new DhcpServer(options({ poolSize: 2, leaseSeconds: 60 }))
      lease(A, p1)
      lease(B, p2)
      assert.equal(send(C, DHCPDISCOVER, p2), null)
      assert.equal(server.counters.pool, 1)
      now += 61_000
      server.tick(now)
      assert.equal(server.leases.held, 0)
      assert.equal(send(C, DHCPDISCOVER, p2)?.yiaddr, '10.0.2.15', 'expired leases come back, the oldest first')
    })

    it('attack: a per-port message rate: beyond RATE_BURST messages at once, the rest are dropped and counted', () => {
      let answered = 0
      for (let i = 0; i < RATE_BURST + 10; i++) if (send(A, DHCPDISCOVER) !== null) answered++
      assert.deepEqual([answered, server.counters.rate], [RATE_BURST, 10])
      assert.notEqual(send(B, DHCPDISCOVER, p2), null, 'another port has its own bucket')
      now += 1000
      assert.notEqual(send(A, DHCPDISCOVER), null, 'refilled')
    })
  })

  describe('REQUEST', () => {
    it('SELECTING: ACKs our offer; the ACK of a new binding waits for the lease file (a version), a renewal does not', () => {
      const ack = lease(A)
      assert.deepEqual([ack.yiaddr, ack.lease, ack.router], ['10.0.2.15', 3600, GW])
      assert.ok(ack.version > 0 && ack.version === server.leases.version)
      assert.equal(server.leases.lookup(A)?.state, LEASE_BOUND)
      assert.equal(server.leases.held, 1)
      const renew = send(A, DHCPREQUEST, p1, 0, 0, ip('10.0.2.15')) as Reply
      assert.deepEqual([renew.type, renew.yiaddr, renew.ciaddr, renew.dstIp, renew.version], [DHCPACK, '10.0.2.15', '10.0.2.15', '10.0.2.15', 0], 'RENEWING: unicast to ciaddr, no write needed')
      assert.ok(server.leases.lazy)
      assert.equal(server.counters.acks, 2)
    })

    it('SELECTING another server: our offer goes, silently', () => {
      send(A, DHCPDISCOVER)
      assert.equal(send(A, DHCPREQUEST, p1, ip('10.0.2.15'), OTHER_SERVER), null)
      assert.equal(server.leases.lookup(A), undefined)
      assert.equal(send(B, DHCPDISCOVER, p2)?.yiaddr, '10.0.2.15')
    })

    it('SELECTING: an address another station holds is NAKed; a free one is ACKed even without an offer', () => {
      lease(A)
      assert.equal(send(B, DHCPREQUEST, p2, ip('10.0.2.15'), GW)?.type, DHCPNAK)
      const r = send(B, DHCPREQUEST, p2, ip('10.0.2.30'), GW)
      assert.deepEqual([r?.type, r?.yiaddr], [DHCPACK, '10.0.2.30'])
      assert.equal(send(C, DHCPREQUEST, p2, ip('10.0.2.3'), GW)?.type, DHCPNAK, 'not the DNS address')
    })

    it('INIT-REBOOT: ACK the MAC\'s own address, NAK another or one of another subnet, silence for a MAC with no record', () => {
      lease(A)
      assert.equal(send(A, DHCPREQUEST, p1, ip('10.0.2.15'))?.type, DHCPACK)
      assert.equal(send(A, DHCPREQUEST, p1, ip('10.0.2.77'))?.type, DHCPNAK)
      assert.equal(send(B, DHCPREQUEST, p2, ip('10.0.2.15')), null, 'RFC 2131 §4.3.2: no record, no answer')
      assert.equal(send(B, DHCPREQUEST, p2, ip('192.168.1.10'))?.type, DHCPNAK, 'the wrong network')
      assert.equal(server.leases.lookup(B), undefined)
    })

    it('RENEWING/REBINDING: NAK an address that is not the MAC\'s own', () => {
      lease(A)
      assert.equal(send(B, DHCPREQUEST, p2, 0, 0, ip('10.0.2.15'))?.type, DHCPNAK, 'another\'s address')
      assert.equal(send(B, DHCPREQUEST, p2, 0, 0, ip('10.0.2.40'))?.type, DHCPNAK, 'no lease at all')
      assert.equal(send(A, DHCPREQUEST, p1, 0, 0, ip('10.0.2.15'))?.type, DHCPACK)
    })

    it('a static MAC gets its address (ACK), a NAK for another; static leases take no share of the port', () => {
      for (let i = 0; i < 4; i++) lease(0x020000000100 + i)
      const r = send(STATIC_MAC, DHCPREQUEST, p1, ip('10.0.2.20'), GW)
      assert.deepEqual([r?.type, r?.yiaddr, r?.version], [DHCPACK, '10.0.2.20', 0])
      assert.equal(send(STATIC_MAC, DHCPREQUEST, p1, ip('10.0.2.15'), GW)?.type, DHCPNAK)
      assert.equal(server.counters.staticAcks, 1)
    })

    it('a lease moves with its MAC to another port, within that port\'s share', () => {
      lease(A, p1)
      assert.equal(send(A, DHCPREQUEST, p2, 0, 0, ip('10.0.2.15'))?.type, DHCPACK)
      assert.equal(server.leases.lookup(A)?.port, p2)
      assert.deepEqual([server.leases.countFor(p1), server.leases.countFor(p2)], [0, 1])
    })
  })

  describe('RELEASE, DECLINE, INFORM', () => {
    it('RELEASE frees the MAC\'s own lease only', () => {
      lease(A)
      send(B, DHCPRELEASE, p2, 0, GW, ip('10.0.2.15'))
      assert.equal(server.leases.lookup(A)?.state, LEASE_BOUND, 'another MAC cannot release it')
      send(A, DHCPRELEASE, p1, 0, GW, ip('10.0.2.15'))
      assert.equal(server.leases.lookup(A)?.state, LEASE_EXPIRED)
      assert.deepEqual([server.leases.held, server.leases.countFor(p1)], [0, 0])
    })

    it('DECLINE frees the lease and keeps the address out of offers for a while, counted for the port', () => {
      lease(A)
      send(A, DHCPDECLINE, p1, ip('10.0.2.15'), GW)
      assert.equal(server.leases.lookup(A), undefined)
      assert.equal(server.leases.countFor(p1), 1, 'a declined address counts for the port that declined it')
      assert.equal(send(B, DHCPDISCOVER, p2)?.yiaddr, '10.0.2.16')
      now += DECLINE_HOLD_MS + 1
      server.tick(now)
      assert.equal(server.leases.countFor(p1), 0)
      assert.equal(send(C, DHCPDISCOVER, p2)?.yiaddr, '10.0.2.15')
    })

    it('attack: a RELEASE or DECLINE of a lease from another port than its own (a MAC spoofer) changes nothing', () => {
      lease(A, p1)
      send(A, DHCPRELEASE, p2, 0, GW, ip('10.0.2.15'))
      send(A, DHCPDECLINE, p2, ip('10.0.2.15'), GW)
      assert.equal(server.leases.lookup(A)?.state, LEASE_BOUND)
      assert.equal(server.leases.lookup(A)?.port, p1)
    })

    it('attack: a DECLINE of an address the MAC does not hold changes nothing', () => {
      lease(A)
      send(B, DHCPDECLINE, p2, ip('10.0.2.15'), GW)
      send(B, DHCPDECLINE, p2, ip('10.0.2.50'), GW)
      assert.equal(server.leases.lookup(A)?.state, LEASE_BOUND)
      assert.equal(send(C, DHCPDISCOVER, p2)?.yiaddr, '10.0.2.16')
    })

    it('INFORM gets an ACK of options: no address, no lease time, to its ciaddr', () => {
      const r = send(A, DHCPINFORM, p1, 0, 0, ip('10.0.2.77')) as Reply
      assert.deepEqual([r.type, r.yiaddr, r.ciaddr, r.dstIp, r.lease, r.router], [DHCPACK, '0.0.0.0', '10.0.2.77', '10.0.2.77', 0, GW])
      assert.equal(server.leases.size, 0)
    })

    it('with nat false no router and no DNS are offered', () => {
      server = new DhcpServer(options({ router: 0, dns: 0 }))
      const r = send(A, DHCPDISCOVER) as Reply
      const f = buildDhcpRequest(A, DHCPDISCOVER, 1)
      const a = server.receive(f, 0, f.length, p1, now) as DhcpAnswer
      const b = dhcpAt(a.frame, 14, a.frame.length, DHCP_SERVER_PORT, DHCP_CLIENT_PORT)
      assert.deepEqual([r.router, r.dns, dhcpOption(a.frame, b, a.frame.length, OPT_ROUTER)], [0, 0, -1])
    })

    it('drops what is not a client\'s DHCP message: no cookie, a BOOTREPLY, a relayed request, no learned port', () => {
      const plain = buildDhcpRequest(A, DHCPDISCOVER, 1)
      plain.writeUInt32BE(0, 14 + 20 + 8 + 236)
      assert.equal(server.receive(plain, 0, plain.length, p1, now), null)
      const reply = buildDhcpRequest(A, DHCPDISCOVER, 2)
      reply[14 + 20 + 8] = 2
      assert.equal(server.receive(reply, 0, reply.length, p1, now), null)
      const relayed = buildDhcpRequest(A, DHCPDISCOVER, 3)
      relayed.writeUInt32BE(ip('10.9.9.9'), 14 + 20 + 8 + 24)
      assert.equal(server.receive(relayed, 0, relayed.length, p1, now), null)
      const f = buildDhcpRequest(A, DHCPDISCOVER, 4)
      assert.equal(server.receive(f, 0, f.length, undefined, now), null)
      assert.equal(server.counters.notDhcp, 4)
    })
  })

  describe('LeaseTable', () => {
    it('does not offer an address an ARP showed in use by another MAC, until SEEN_HOLD_MS after the last such ARP', () => {
      server.leases.noteArp(ip('10.0.2.15'), 0x0200000000ee, p2, now)
      assert.equal(send(A, DHCPDISCOVER)?.yiaddr, '10.0.2.16')
      now += SEEN_HOLD_MS + 1
      assert.equal(send(B, DHCPDISCOVER, p2)?.yiaddr, '10.0.2.15')
    })

    it('attack: the addresses a client\'s ARPs mark in use count against its share: one client cannot mark the pool', () => {
      server = new DhcpServer(options({ poolSize: 8, leasesPerClient: 2 }))
      p1.clientKey = 'address 192.0.2.1'
      p2.clientKey = 'address 192.0.2.2'
      for (let i = 0; i < 8; i++) server.noteArp(ip('10.0.2.15') + i, 0x0200000000e0 + i, p1, now)
      assert.equal(server.leases.countForClient(p1.clientKey), 2, 'two marks: its share')
      // Another client still leases: only the two marked addresses are out of offers.
      assert.equal(send(B, DHCPDISCOVER, p2)?.yiaddr, '10.0.2.17')
      // The marks it has are refreshed, not added to, and the client may lease nothing more (its share is used).
      server.noteArp(ip('10.0.2.15'), 0x0200000000e0, p1, now + 1000)
      assert.equal(server.leases.countForClient(p1.clientKey), 2)
      assert.equal(send(A, DHCPDISCOVER, p1), null)
      // They end SEEN_HOLD_MS after the last ARP, and the share comes back.
      now += SEEN_HOLD_MS + 1001
      server.tick(now)
      assert.equal(server.leases.countForClient(p1.clientKey), 0)
      assert.equal(send(A, DHCPDISCOVER, p1)?.yiaddr, '10.0.2.15')
    })

    it('binds a lease that has no port (read from the file, or its port left) to the port its ARP comes from', () => {
      lease(A, p1)
      server.leases.portLeft(p1)
      assert.equal(server.leases.lookup(A)?.port, null)
      assert.equal(server.leases.countFor(p1), 0)
      assert.ok(server.leases.bound(A, ip('10.0.2.15'), p2), 'no port: MAC and address are enough')
      server.leases.noteArp(ip('10.0.2.15'), A, p2, now)
      assert.equal(server.leases.lookup(A)?.port, p2)
      assert.ok(!server.leases.bound(A, ip('10.0.2.15'), p1))
      assert.ok(server.leases.bound(STATIC_MAC, ip('10.0.2.20'), p1), 'a static lease binds its MAC and address on any port')
    })

    it('attack: the lease file keeps whom a bound lease counts for (an address), so a restart gives no fresh share', () => {
      p1.clientKey = 'address 192.0.2.1'
      p2.clientKey = 'port 7'
      lease(A, p1)
      lease(B, p2)
      const json = JSON.parse(JSON.stringify(server.leases.toJson('lab')))
      assert.deepEqual(json.leases.map((l: { holder?: string }) => l.holder), ['address 192.0.2.1', undefined], 'a port\'s key is another port\'s after a restart')
      const t = new LeaseTable(options().pool)
      t.load(json, 'lab', now)
      assert.equal(t.countForClient('address 192.0.2.1'), 1)
      assert.equal(t.lookup(A)?.holder, 'address 192.0.2.1')
      t.expire(now + 3600 * 1000 + 1)
      assert.equal(t.countForClient('address 192.0.2.1'), 0, 'given back when it expires')
      for (const holder of [7, 'port 7', 'address ' + 'x'.repeat(100)]) {
        const bad = { ...json, leases: [{ ...json.leases[0], holder }] }
        assert.throws(() => new LeaseTable(options().pool).load(bad, 'lab', now), LeaseFileInvalid, String(holder))
      }
    })

    it('persists bound and remembered leases (not offers) and reads them back, bound again by time', () => {
      lease(A, p1)
      lease(B, p2)
      send(B, DHCPRELEASE, p2, 0, GW, ip('10.0.2.16'))
      send(C, DHCPDISCOVER, p2)
      const json = JSON.parse(JSON.stringify(server.leases.toJson('lab')))
      assert.deepEqual(json.leases.map((l: { mac: string, state: string }) => [l.mac, l.state]), [['02:00:00:00:00:01', 'bound'], ['02:00:00:00:00:02', 'expired']])
      const t = new LeaseTable(options().pool)
      assert.deepEqual(t.load(json, 'lab', now), [])
      assert.deepEqual([t.lookup(A)?.state, t.lookup(A)?.ip, t.lookup(A)?.port, t.held], [LEASE_BOUND, ip('10.0.2.15'), null, 1])
      assert.equal(t.pick(C, 0, now), ip('10.0.2.17'), 'after a restart a new station gets neither a held nor a remembered address')
      const later = new LeaseTable(options().pool)
      later.load(json, 'lab', now + 3601_000)
      assert.equal(later.lookup(A)?.state, LEASE_EXPIRED, 'past its time: expired')
    })

    it('leaves out (and reports) leases the configuration no longer allows', () => {
      lease(A)
      const json = server.leases.toJson('lab')
      const smaller = new LeaseTable({ ...options().pool, start: ip('10.0.2.100'), size: 10 })
      const dropped = smaller.load(json, 'lab', now)
      assert.equal(dropped.length, 1)
      assert.match(dropped[0] as string, /02:00:00:00:00:01 10\.0\.2\.15: the address is no longer in the pool/)
      assert.equal(smaller.size, 0)
    })

    it('refuses a corrupt file whole, naming what is wrong', () => {
      const good = { version: 1, network: 'lab', leases: [{ mac: '02:00:00:00:00:01', ip: '10.0.2.15', state: 'bound', expires: '2026-12-01T01:00:00.000Z' }] }
      const bad: Array<[unknown, RegExp]> = [
        [[], /not a JSON object/],
        [{ ...good, version: 2 }, /version 2/],
        [{ ...good, network: 'other' }, /network "other"/],
        [{ ...good, leases: {} }, /not a list/],
        [{ ...good, leases: [{ ...good.leases[0], mac: '01:00:5e:00:00:01' }] }, /leases\[0\]\.mac/],
        [{ ...good, leases: [{ ...good.leases[0], ip: '10.0.2' }] }, /leases\[0\]\.ip/],
        [{ ...good, leases: [{ ...good.leases[0], expires: 'soon' }] }, /leases\[0\]\.expires/],
        [{ ...good, leases: [{ ...good.leases[0], state: 'maybe' }] }, /leases\[0\]\.state/],
        [{ ...good, leases: [good.leases[0], { ...good.leases[0], mac: '02:00:00:00:00:02' }] }, /leases\[1\].*10\.0\.2\.15 is leased twice/]
      ]
      for (const [raw, why] of bad) {
        const t = new LeaseTable(options().pool)
        assert.throws(() => t.load(raw, 'lab', T0), (err: Error) => err instanceof LeaseFileInvalid && why.test(err.message), JSON.stringify(raw))
        assert.equal(t.size, 0, 'nothing loaded from a refused file')
      }
    })
  })
})
