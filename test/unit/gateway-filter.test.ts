/**
 * Issue 21, findings 1 and 2: what a station may send to the gateway
 * (core/gateway-filter.ts), class by class, with literal frames. Each
 * refusal is a destination libslirp 4.7.0 would have connected to.
 */

import assert from 'node:assert/strict'
import {
  GatewayFilter, AddressSet, PortSet, Published, type Nat,
  V_PASS, V_DHCP, V_FLOW, R_MALFORMED, R_DNS, R_OUTSIDE, R_SWITCHD, R_HOST, R_NOT_ROUTABLE, R_FRAGMENT, R_PROTOCOL, R_SOURCE
} from '../../src/switch/core/gateway-filter'
import { tcpSegmentValid } from '../../src/switch/core/l4-valid'
import { GatewayFlows } from '../../src/switch/core/gateway-flows'
import { parseIpv4 } from '../../src/common/dhcp'
import { ip4, TCP, UDP, ICMP, SYN, ACK, RST, GW_MAC } from '../helpers/ipv4'

const ip = (t: string): number => parseIpv4(t) as number
const SWITCHD = 8080

interface Setup { nat?: Nat, dnsForward?: boolean, hostPorts?: Array<[number, number, number]>, publish?: Array<[number, string, number]> }

function setup (o: Setup = {}): { filter: GatewayFilter, flows: GatewayFlows } {
  const hostPorts = new PortSet()
  for (const [proto, from, to] of o.hostPorts ?? []) hostPorts.add(proto, from, to)
  const published = new Published()
  for (const [proto, guest, port] of o.publish ?? []) published.add(proto, ip(guest), port)
  const hosts = new AddressSet()
  hosts.set([ip('192.0.2.1'), ip('198.51.100.7')], [[ip('10.9.0.0'), 16]])
  const flows = new GatewayFlows({ maxFlows: 64, flowsPerClient: 8, clientOf: () => 'c', isPublishedUdp: (g, p) => published.has(UDP, g, p), seed: 1 })
  const filter = new GatewayFilter({
    gw: ip('10.0.2.2'), dns: ip('10.0.2.3'), subnet: ip('10.0.2.0'), mask: 0xffffff00, mac: GW_MAC,
    nat: o.nat ?? 'on', dnsForward: o.dnsForward ?? true, hostPorts, published, hostAddresses: hosts
  }, flows)
  filter.selfPorts.add(TCP, SWITCHD, SWITCHD)
  return { filter, flows }
}

const verdict = (f: GatewayFilter, frame: Buffer): number => f.classify(frame, 0, 14, frame.length, 0)
const tcp = (dst: string, dport: number, extra: Partial<Parameters<typeof ip4>[0]> = {}): Buffer => ip4({ proto: TCP, dst, dport, ...extra })
const udp = (dst: string, dport: number, extra: Partial<Parameters<typeof ip4>[0]> = {}): Buffer => ip4({ proto: UDP, dst, dport, ...extra })
const ping = (dst: string, type = 8): Buffer => ip4({ proto: ICMP, dst, type })

describe('GatewayFilter', () => {
  describe('sources (a station\'s own address only)', () => {
    it('attack: refuses a source slirp would answer by broadcast or ARP for in vain: the subnet\'s network and broadcast addresses, 0.0.0.0, 255.255.255.255, its own two, another subnet', () => {
      const { filter } = setup({ hostPorts: [[TCP, 8000, 8000]] })
      for (const src of ['10.0.2.255', '255.255.255.255', '0.0.0.0', '10.0.2.0', '10.0.2.2', '10.0.2.3', '192.0.2.9', '224.0.0.1']) {
        assert.equal(verdict(filter, ip4({ proto: ICMP, src, dst: '10.0.2.2' })), R_SOURCE, `${src} ping`)
        assert.equal(verdict(filter, tcp('10.0.2.2', 8000, { src })), R_SOURCE, `${src} tcp`)
        assert.equal(verdict(filter, udp('198.51.100.1', 9, { src })), R_SOURCE, `${src} udp`)
      }
      assert.equal(verdict(filter, tcp('10.0.2.2', 8000, { src: '10.0.2.254' })), V_FLOW, 'the last host address is a station\'s')
      assert.equal(verdict(filter, udp('255.255.255.255', 67, { src: '0.0.0.0', sport: 68 })), V_DHCP, 'DHCP from 0.0.0.0: switchd answers, slirp never sees it')
      assert.equal(verdict(filter, tcp('10.0.2.2', 5432, { src: '10.0.2.255' })), R_HOST, 'a refused destination keeps its reason')
    })

    it('attack: passes an ARP only if it is Ethernet/IPv4 from 0.0.0.0 or a station\'s address (slirp\'s 16-entry table is not the stations\' to flush); no other EtherType', () => {
      const { filter } = setup()
      const arp = (spa: string, tagged = false): Buffer => {
        const t = tagged ? 4 : 0
        const f = Buffer.alloc(60)
        f.writeUIntBE(GW_MAC, 0, 6); f.writeUIntBE(0x020000000001, 6, 6)
        if (tagged) { f.writeUInt16BE(0x8100, 12); f.writeUInt16BE(1, 14) }
        f.writeUInt16BE(0x0806, 12 + t)
        f.writeUInt16BE(1, 14 + t); f.writeUInt16BE(0x0800, 16 + t); f[18 + t] = 6; f[19 + t] = 4; f.writeUInt16BE(2, 20 + t)
        f.writeUIntBE(0x020000000001, 22 + t, 6); f.writeUInt32BE(ip(spa), 28 + t); f.writeUInt32BE(ip('10.0.2.2'), 38 + t)
        return f
      }
      const other = (f: Buffer): number => filter.classifyOther(f, 0, f.length)
      assert.equal(other(arp('10.0.2.15')), V_PASS)
      assert.equal(other(arp('10.0.2.15', true)), V_PASS)
      assert.equal(other(arp('0.0.0.0')), V_PASS, 'an RFC 5227 probe')
      for (const spa of ['192.0.2.9', '10.0.2.255', '10.0.2.0', '10.0.2.2', '10.0.2.3']) assert.equal(other(arp(spa)), R_SOURCE, spa)
      const short = arp('10.0.2.15').subarray(0, 41)
      assert.equal(other(short), R_MALFORMED)
      const wrongShape = arp('10.0.2.15'); wrongShape[18] = 8
      assert.equal(other(wrongShape), R_MALFORMED)
      for (const type of [0x86dd, 0x88f8, 0x8035, 0x88cc]) {
        const f = arp('10.0.2.15'); f.writeUInt16BE(type, 12)
        assert.equal(other(f), R_PROTOCOL, type.toString(16))
      }
      const v6 = Buffer.alloc(30); v6.writeUInt16BE(0x0800, 12); v6[14] = 0x60
      assert.equal(other(v6), R_MALFORMED, 'IPv4 EtherType, not version 4')
    })
  })

  describe('DHCP and DNS', () => {
    it('hands UDP to port 67 of the gateway or 255.255.255.255 to the DHCP handling, whatever nat is', () => {
      for (const nat of ['on', 'host', 'off'] as const) {
        const { filter } = setup({ nat })
        assert.equal(verdict(filter, udp('10.0.2.2', 67, { src: '0.0.0.0', sport: 68 })), V_DHCP)
        assert.equal(verdict(filter, udp('255.255.255.255', 67, { src: '0.0.0.0', sport: 68 })), V_DHCP)
      }
      assert.equal(verdict(setup().filter, udp('198.51.100.1', 67)), V_FLOW, 'to an outside server: ordinary UDP')
    })

    it('passes UDP and TCP to port 53 of the DNS address (a host socket each), ICMP echo (slirp answers it); nothing else', () => {
      const { filter } = setup()
      assert.equal(verdict(filter, udp('10.0.2.3', 53)), V_FLOW)
      assert.equal(verdict(filter, tcp('10.0.2.3', 53)), V_FLOW)
      assert.equal(verdict(filter, ping('10.0.2.3')), V_PASS)
      assert.equal(verdict(filter, udp('10.0.2.3', 54)), R_DNS)
      assert.equal(verdict(filter, tcp('10.0.2.3', 22)), R_DNS)
    })

    it('drops everything to the DNS address with dnsForward false, or with nat false (slirp forwards none)', () => {
      assert.equal(verdict(setup({ dnsForward: false }).filter, udp('10.0.2.3', 53)), R_DNS)
      assert.equal(verdict(setup({ dnsForward: false }).filter, ping('10.0.2.3')), R_DNS)
      assert.equal(verdict(setup({ nat: 'off' }).filter, udp('10.0.2.3', 53)), R_DNS)
      assert.equal(verdict(setup({ nat: 'host' }).filter, udp('10.0.2.3', 53)), V_FLOW)
    })
  })

  describe('this host (the gateway\'s address and 255.255.255.255, slirp\'s 127.0.0.1)', () => {
    it('attack: refuses every port by default (no hostPorts), TCP and UDP, at both addresses', () => {
      const { filter } = setup()
      for (const dst of ['10.0.2.2', '255.255.255.255']) {
        assert.equal(verdict(filter, tcp(dst, 5432)), R_HOST, `${dst} tcp`)
        assert.equal(verdict(filter, udp(dst, 5353)), R_HOST, `${dst} udp`)
      }
    })

    it('passes the listed ports (a range too), each protocol on its own', () => {
      const { filter } = setup({ hostPorts: [[TCP, 8000, 8010], [UDP, 5353, 5353]] })
      assert.equal(verdict(filter, tcp('10.0.2.2', 8000)), V_FLOW)
      assert.equal(verdict(filter, tcp('10.0.2.2', 8010)), V_FLOW)
      assert.equal(verdict(filter, tcp('255.255.255.255', 8005)), V_FLOW)
      assert.equal(verdict(filter, udp('10.0.2.2', 5353)), V_FLOW)
      assert.equal(verdict(filter, tcp('10.0.2.2', 8011)), R_HOST)
      assert.equal(verdict(filter, udp('10.0.2.2', 8000)), R_HOST, 'tcp listed, not udp')
      assert.equal(verdict(filter, tcp('10.0.2.2', 5353)), R_HOST, 'udp listed, not tcp')
    })

    it('with nat false passes no host port, listed or not (slirp\'s restrict=on)', () => {
      assert.equal(verdict(setup({ nat: 'off', hostPorts: [[TCP, 80, 80]] }).filter, tcp('10.0.2.2', 80)), R_HOST)
    })

    it('attack: TCP to switchd\'s own ports is `switchd` at every address that reaches this host', () => {
      const { filter } = setup({ hostPorts: [[TCP, 1, 65535]] })
      for (const dst of ['10.0.2.2', '255.255.255.255', '0.0.0.0', '127.0.0.1', '127.0.0.2', '192.0.2.1', '10.9.3.4']) {
        assert.equal(verdict(filter, tcp(dst, SWITCHD)), R_SWITCHD, dst)
      }
    })

    it('passes ICMP echo to the gateway\'s address only (slirp answers it itself); other ICMP types are `protocol`', () => {
      const { filter } = setup({ nat: 'off' })
      assert.equal(verdict(filter, ping('10.0.2.2')), V_PASS)
      assert.equal(verdict(filter, ping('255.255.255.255')), R_HOST)
      assert.equal(verdict(filter, ping('10.0.2.2', 13)), R_PROTOCOL, 'timestamp')
      assert.equal(verdict(filter, ping('10.0.2.2', 0)), R_PROTOCOL, 'an echo reply')
      assert.equal(verdict(filter, ping('10.0.2.2', 3)), R_PROTOCOL, 'unreachable')
    })
  })

  describe('never', () => {
    it('attack: 0/8, 127/8, 169.254/16 (cloud metadata), 224/4 and 240/4 are not_routable, with NAT on and listed ports', () => {
      const { filter } = setup({ hostPorts: [[TCP, 80, 80], [UDP, 53, 53]] })
      for (const dst of ['0.0.0.0', '0.1.2.3', '127.0.0.1', '127.0.0.2', '127.255.255.254', '169.254.169.254', '224.0.0.251', '239.255.255.250', '240.0.0.1', '255.255.255.254']) {
        assert.equal(verdict(filter, tcp(dst, 80)), R_NOT_ROUTABLE, `${dst} tcp`)
        assert.equal(verdict(filter, udp(dst, 53)), R_NOT_ROUTABLE, `${dst} udp`)
      }
      assert.equal(verdict(filter, ping('169.254.169.254')), R_NOT_ROUTABLE)
    })

    it('attack: the gateway\'s subnet other than its two addresses is not_routable (slirp would dial the host\'s LAN with that number)', () => {
      const { filter } = setup()
      for (const dst of ['10.0.2.0', '10.0.2.16', '10.0.2.99', '10.0.2.255']) assert.equal(verdict(filter, tcp(dst, 22)), R_NOT_ROUTABLE, dst)
    })

    it('attack: this host\'s own addresses and local prefixes are `host` whatever the port', () => {
      const { filter } = setup({ hostPorts: [[TCP, 80, 80]] })
      for (const dst of ['192.0.2.1', '198.51.100.7', '10.9.0.1', '10.9.255.255']) assert.equal(verdict(filter, tcp(dst, 80)), R_HOST, dst)
      assert.equal(verdict(filter, ping('192.0.2.1')), R_HOST)
      assert.equal(verdict(filter, tcp('192.0.2.2', 80)), V_FLOW, 'a neighbour is the outside')
    })

    it('attack: IPv4 to another station\'s MAC (flooded to the gateway port too) is not_routable: slirp would act on it', () => {
      const { filter } = setup()
      assert.equal(verdict(filter, tcp('198.51.100.1', 80, { dmac: 0x020000000002 })), R_NOT_ROUTABLE)
      assert.equal(verdict(filter, udp('10.0.2.2', 67, { dmac: 0xffffffffffff })), V_DHCP, 'broadcast is the gateway\'s too')
      assert.equal(verdict(filter, tcp('198.51.100.1', 80, { dmac: 0xffffffffffff })), V_FLOW)
    })
  })

  describe('the outside', () => {
    it('passes with nat true (TCP, UDP, ICMP echo); `outside` with nat "host" or false', () => {
      assert.equal(verdict(setup().filter, tcp('198.51.100.1', 443)), V_FLOW)
      assert.equal(verdict(setup().filter, udp('198.51.100.1', 123)), V_FLOW)
      assert.equal(verdict(setup().filter, ping('198.51.100.1')), V_FLOW)
      for (const nat of ['host', 'off'] as const) {
        const { filter } = setup({ nat, hostPorts: nat === 'host' ? [[TCP, 443, 443]] : [] })
        assert.equal(verdict(filter, tcp('198.51.100.1', 443)), R_OUTSIDE, nat)
        assert.equal(verdict(filter, ping('198.51.100.1')), R_OUTSIDE, nat)
      }
    })
  })

  describe('fragments, protocols, malformed', () => {
    it('attack: any fragment is `fragment` (first with MF, later with an offset), whatever its destination; DF alone is no fragment', () => {
      const { filter } = setup({ hostPorts: [[UDP, 5353, 5353]] })
      assert.equal(verdict(filter, udp('10.0.2.2', 5353, { frag: 0x2000 })), R_FRAGMENT)
      assert.equal(verdict(filter, udp('10.0.2.2', 5353, { frag: 0x0001 })), R_FRAGMENT)
      assert.equal(verdict(filter, udp('198.51.100.1', 53, { frag: 0x2000 })), R_FRAGMENT)
      assert.equal(verdict(filter, udp('10.0.2.2', 67, { frag: 0x2000 })), R_FRAGMENT)
      assert.equal(verdict(filter, udp('10.0.2.2', 5353, { frag: 0x4000 })), V_FLOW)
    })

    it('drops protocols slirp does not serve (GRE, SCTP, IGMP) as `protocol`', () => {
      const { filter } = setup()
      for (const proto of [2, 47, 132]) assert.equal(verdict(filter, ip4({ proto, dst: '198.51.100.1', payload: Buffer.alloc(20) })), R_PROTOCOL, String(proto))
    })

    it('drops a TCP or UDP header cut short by the IPv4 length as malformed (RFC 1858)', () => {
      const { filter } = setup()
      assert.equal(verdict(filter, tcp('198.51.100.1', 80, { totalLength: 20 + 12 })), R_MALFORMED, 'no TCP flags')
      assert.equal(verdict(filter, udp('198.51.100.1', 53, { totalLength: 20 + 3 })), R_MALFORMED)
    })
  })

  describe('published ports (hostfwd)', () => {
    const publish: Setup['publish'] = [[TCP, '10.0.2.15', 22], [UDP, '10.0.2.15', 5000]]

    it('passes a station\'s TCP from a published port that is not a bare SYN, wherever it goes (slirp opens nothing for it)', () => {
      const { filter } = setup({ nat: 'off', publish })
      assert.equal(verdict(filter, tcp('10.0.2.2', 41234, { sport: 22, flags: SYN | ACK })), V_FLOW)
      assert.equal(verdict(filter, tcp('10.0.2.2', 41234, { sport: 22, flags: ACK })), V_FLOW)
      assert.equal(verdict(filter, tcp('10.0.2.2', 41234, { sport: 22, flags: RST })), V_FLOW)
      assert.equal(verdict(filter, tcp('10.0.2.2', 41234, { sport: 22, flags: SYN })), R_HOST, 'a bare SYN opens a socket: the destination decides')
      assert.equal(verdict(filter, tcp('10.0.2.2', 41234, { sport: 23, flags: ACK })), R_HOST, 'not published')
      assert.equal(verdict(filter, tcp('10.0.2.2', 41234, { src: '10.0.2.16', sport: 22, flags: ACK })), R_HOST, 'another station')
    })

    it('attack: passes a station\'s UDP from a published port only to a peer that sent to it through the gateway', () => {
      const { filter, flows } = setup({ nat: 'host', publish })
      assert.equal(verdict(filter, udp('10.0.2.2', 11211, { sport: 5000 })), R_HOST, 'any port of this host: no')
      // A host client (127.0.0.1:41000, presented as the gateway's address) sends to the published port.
      const inbound = ip4({ proto: UDP, src: '10.0.2.2', dst: '10.0.2.15', sport: 41000, dport: 5000, smac: GW_MAC, dmac: 0x020000000001 })
      flows.ingress(inbound, 14, inbound.length, 0)
      assert.equal(verdict(filter, udp('10.0.2.2', 41000, { sport: 5000 })), V_PASS, 'the answer to it: yes')
      assert.equal(verdict(filter, udp('10.0.2.2', 41001, { sport: 5000 })), R_HOST)
      assert.equal(flows.peers, 1)
      assert.equal(flows.flows, 0, 'slirp\'s hostfwd socket is its own: no client\'s share')
    })
  })

  describe('tcpSegmentValid (what slirp accepts before a close is believed)', () => {
    it('accepts a segment with right checksums; refuses a bad TCP or IPv4 checksum, a lying data offset, a cut segment', () => {
      const good = tcp('198.51.100.1', 80, { flags: RST | ACK })
      assert.ok(tcpSegmentValid(good, 14, good.length))
      const badTcp = Buffer.from(good); badTcp[14 + 20 + 16] = (badTcp[14 + 20 + 16] as number) ^ 1
      assert.ok(!tcpSegmentValid(badTcp, 14, badTcp.length))
      const badIp = Buffer.from(good); badIp[14 + 10] = (badIp[14 + 10] as number) ^ 1
      assert.ok(!tcpSegmentValid(badIp, 14, badIp.length))
      const offset = tcp('198.51.100.1', 80); offset[14 + 20 + 12] = 0xf0
      assert.ok(!tcpSegmentValid(offset, 14, offset.length))
      assert.ok(!tcpSegmentValid(good, 14, 14 + 30))
    })
  })

  describe('AddressSet', () => {
    it('finds addresses (binary search) and prefixes, and nothing else; replaced whole', () => {
      const s = new AddressSet()
      s.set([ip('192.0.2.9'), ip('10.0.0.1'), ip('203.0.113.5'), ip('10.0.0.1')], [[ip('10.9.1.2'), 16]])
      assert.equal(s.size, 4)
      for (const a of ['192.0.2.9', '10.0.0.1', '203.0.113.5', '10.9.0.0', '10.9.255.255']) assert.ok(s.has(ip(a)), a)
      for (const a of ['192.0.2.8', '10.0.0.2', '10.10.0.0', '0.0.0.0', '255.255.255.255']) assert.ok(!s.has(ip(a)), a)
      s.set([ip('192.0.2.8')])
      assert.ok(s.has(ip('192.0.2.8')) && !s.has(ip('192.0.2.9')) && !s.has(ip('10.9.0.0')))
    })
  })

  describe('switchd\'s VXLAN side (issue 26)', () => {
    it('attack: a station\'s UDP to one of switchd\'s VTEPs is switchd on any port, with NAT on (it would leave from this host\'s address, which the VTEP trusts)', () => {
      const { filter } = setup({ nat: 'on' })
      filter.vteps.set([ip('203.0.113.5')])
      for (const dport of [4789, 6081, 8472, 53, 1]) assert.equal(verdict(filter, udp('203.0.113.5', dport)), R_SWITCHD, `udp ${dport}`)
      assert.equal(verdict(filter, tcp('203.0.113.5', 22)), V_FLOW, 'TCP to the VTEP host is the outside as before')
      assert.equal(verdict(filter, ping('203.0.113.5')), V_FLOW, 'so is a ping')
      assert.equal(verdict(filter, udp('203.0.113.6', 4789)), V_FLOW, 'an address that is not a VTEP is the outside')
    })

    it('attack: a station\'s UDP to a VXLAN listener\'s port is switchd at every address slirp maps to this host, and a hostPorts range does not open it', () => {
      const { filter } = setup({ nat: 'host', hostPorts: [[UDP, 4000, 5000]] })
      filter.selfPorts.add(UDP, 4789, 4789)
      for (const dst of ['10.0.2.2', '255.255.255.255', '127.0.0.1', '0.0.0.0', '192.0.2.1']) assert.equal(verdict(filter, udp(dst, 4789)), R_SWITCHD, dst)
      assert.equal(verdict(filter, udp('10.0.2.2', 4790)), V_FLOW, 'the rest of the range stays open')
      assert.equal(verdict(filter, tcp('10.0.2.2', 4789)), R_HOST, 'TCP 4789 is not switchd\'s')
    })

    it('attack: not even as the answer on a published UDP port: a peer at a VTEP\'s address (spoofed) or at switchd\'s listener gets none', () => {
      const { filter, flows } = setup({ nat: 'on', publish: [[UDP, '10.0.2.15', 5000]] })
      filter.vteps.set([ip('203.0.113.5')])
      filter.selfPorts.add(UDP, 4789, 4789)
      // Datagrams to the published port "from" the VTEP's VXLAN port, and from switchd's listener (presented as the gateway's address).
      for (const [src, sport] of [['203.0.113.5', 4789], ['10.0.2.2', 4789], ['198.51.100.9', 4789]] as const) {
        const inbound = ip4({ proto: UDP, src, dst: '10.0.2.15', sport, dport: 5000, smac: GW_MAC, dmac: 0x020000000001 })
        flows.ingress(inbound, 14, inbound.length, 0)
      }
      assert.equal(verdict(filter, udp('203.0.113.5', 4789, { sport: 5000 })), R_SWITCHD)
      assert.equal(verdict(filter, udp('10.0.2.2', 4789, { sport: 5000 })), R_SWITCHD)
      assert.equal(verdict(filter, udp('198.51.100.9', 4789, { sport: 5000 })), V_PASS, 'another peer\'s answer still passes')
    })
  })
})
