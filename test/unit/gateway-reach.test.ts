/**
 * Issue 21, findings 1-3, where the pieces meet: the gateway's new keys
 * (hostPorts, maxFlows, flowsPerClient), the gateway port applying the
 * allowlist and the per-client share to what the switch forwards to it (the
 * client found from the frame's source MAC), its walk over the child's
 * batches, and the provider of this host's addresses. A fake socket stands
 * in for the QEMU child.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { buildConfig } from '../../src/switch/control/config'
import type { GatewaySpec } from '../../src/switch/control/config/gateway'
import { GatewayPort } from '../../src/switch/io/gateway-port'
import { parseFibTrie, HostAddresses, MAX_FIB_TRIE_BYTES } from '../../src/switch/io/host-addresses'
import { AddressSet } from '../../src/switch/core/gateway-filter'
import { ARP_BURST } from '../../src/switch/core/gateway-arp'
import { Guard } from '../../src/switch/core/guard'
import { Switch } from '../../src/switch/core/switch'
import { ERR_CONFIG } from '../../src/common/errors'
import { parseIpv4 } from '../../src/common/dhcp'
import { FakePort } from '../helpers/fake-port'
import { ip4, record, TCP, UDP, ICMP, GW_MAC } from '../helpers/ipv4'
import { setLogSink } from '../../src/common/log'
import { waitFor } from '../helpers/net'

const ip = (t: string): number => parseIpv4(t) as number

function gateway (g: Record<string, unknown> = {}): GatewaySpec {
  return buildConfig({ networks: { lab: { gateway: g } } }, 'test').gateways[0] as GatewaySpec
}

function refused (g: unknown, key: string): void {
  assert.throws(() => buildConfig({ networks: { lab: { gateway: g } } }, 'test'),
    (err: Error & { code?: string }) => err.code === ERR_CONFIG && err.message.includes(key), `${JSON.stringify(g)} names ${key}`)
}

const FIB_TRIE = `Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 192.0.2.0/24 2 0 2
        |-- 192.0.2.0
           /24 link UNICAST
        |-- 192.0.2.7
           /32 host LOCAL
        |-- 192.0.2.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 10.9.0.0
        /16 host LOCAL
     |-- 192.0.2.7
        /32 host LOCAL
`

describe('gateway: what a station reaches, and its share', () => {
  describe('configuration', () => {
    it('lists no host port by default, 4096 flows, 256 a client', () => {
      const g = gateway()
      assert.deepEqual([g.hostPorts, g.maxFlows, g.flowsPerClient], [[], 4096, 256])
    })

    it('reads hostPorts as "tcp:PORT", "udp:PORT" and ranges', () => {
      assert.deepEqual(gateway({ hostPorts: ['tcp:8080', 'udp:5353', 'tcp:8000-8010'] }).hostPorts,
        [{ proto: 'tcp', from: 8080, to: 8080 }, { proto: 'udp', from: 5353, to: 5353 }, { proto: 'tcp', from: 8000, to: 8010 }])
      assert.equal(gateway({ maxFlows: 100 }).flowsPerClient, 100, 'the share never exceeds the total')
    })

    it('refuses bad values, naming the key', () => {
      for (const bad of ['8080', 'sctp:80', 'tcp:0', 'tcp:65536', 'tcp:90-80', 'tcp:80,81', 80]) refused({ hostPorts: [bad] }, 'gateway.hostPorts[0]')
      refused({ hostPorts: 'tcp:80' }, 'gateway.hostPorts')
      refused({ hostPorts: new Array(65).fill('tcp:80') }, 'gateway.hostPorts')
      refused({ nat: false, hostPorts: ['tcp:80'] }, 'gateway.hostPorts')
      refused({ maxFlows: 0 }, 'gateway.maxFlows')
      refused({ maxFlows: 1e6 }, 'gateway.maxFlows')
      refused({ maxFlows: 4.5 }, 'gateway.maxFlows')
      refused({ flowsPerClient: 0 }, 'gateway.flowsPerClient')
      refused({ maxFlows: 100, flowsPerClient: 200 }, 'gateway.flowsPerClient')
    })
  })

  describe('GatewayPort', () => {
    let sw: Switch
    let written: Buffer[]
    let restore: (line: string) => void

    beforeEach(() => { restore = setLogSink(() => {}) })
    afterEach(() => { setLogSink(restore) })

    function port (g: Record<string, unknown>, hosts = new AddressSet()): GatewayPort {
      sw = new Switch({ name: 'lab' })
      const p = new GatewayPort(1, gateway(g), 1 << 20, sw, hosts)
      written = []
      p.socket = { writableLength: 0, write: (b: Buffer) => { written.push(Buffer.from(b)); return true }, destroy: () => {} } as unknown as GatewayPort['socket']
      sw.addPort(p)
      return p
    }

    function station (id: number, clientKey: string): FakePort {
      const s = new FakePort(id, `vm${id}`)
      s.clientKey = clientKey
      sw.addPort(s)
      return s
    }

    const passed = (p: GatewayPort, from: FakePort, f: Buffer): boolean => {
      const before = p.txFrames
      sw.receiveFrame(from, f)
      return p.txFrames > before
    }

    it('lets ARP through (slirp answers for its addresses), no other EtherType', () => {
      const p = port({})
      const vm = station(2, 'address 192.0.2.10')
      const arp = Buffer.alloc(60)
      arp.fill(0xff, 0, 6); arp.writeUIntBE(0x020000000001, 6, 6); arp.writeUInt16BE(0x0806, 12)
      arp.writeUInt16BE(1, 14); arp.writeUInt16BE(0x0800, 16); arp[18] = 6; arp[19] = 4; arp.writeUInt16BE(1, 20)
      arp.writeUIntBE(0x020000000001, 22, 6); arp.writeUInt32BE(0x0a00020f, 28); arp.writeUInt32BE(0x0a000202, 38)
      assert.ok(passed(p, vm, arp))
      const ipv6 = Buffer.from(arp); ipv6.writeUInt16BE(0x86dd, 12)
      assert.ok(!passed(p, vm, ipv6), 'IPv6 (off in slirp): protocol')
      assert.equal(p.filteredProtocol, 1)
    })

    it('attack: the ARPs slirp learns from (replies, requests for its addresses) take their client\'s share of ARP_BURST, then ARP_PER_SECOND; others are not counted', () => {
      const p = port({})
      const a = station(2, 'address 192.0.2.10')
      const b = station(3, 'port 3')
      const arp = (mac: number, spa: string, tpa: string, op = 1): Buffer => {
        const f = Buffer.alloc(60)
        f.writeUIntBE(GW_MAC, 0, 6); f.writeUIntBE(mac, 6, 6); f.writeUInt16BE(0x0806, 12)
        f.writeUInt16BE(1, 14); f.writeUInt16BE(0x0800, 16); f[18] = 6; f[19] = 4; f.writeUInt16BE(op, 20)
        f.writeUIntBE(mac, 22, 6); f.writeUInt32BE(ip(spa), 28); f.writeUInt32BE(ip(tpa), 38)
        return f
      }
      let through = 0
      for (let i = 0; i < ARP_BURST + 20; i++) if (passed(p, a, arp(0x020000000001, '10.0.2.15', i % 2 === 0 ? '10.0.2.2' : '10.0.2.3', 1 + (i % 3 === 0 ? 1 : 0)))) through++
      assert.deepEqual([through, p.filteredArpRate], [ARP_BURST, 20])
      const broadcast = arp(0x020000000001, '10.0.2.15', '10.0.2.16'); broadcast.fill(0xff, 0, 6)
      assert.ok(passed(p, a, broadcast), 'a request for another station: slirp learns nothing from it, nothing counted')
      assert.ok(passed(p, b, arp(0x020000000002, '10.0.2.16', '10.0.2.2')), 'another client has its own share')
      sw.tick(1000)
      assert.equal(through + (passed(p, a, arp(0x020000000001, '10.0.2.15', '10.0.2.2')) ? 1 : 0), ARP_BURST + 1, 'refilled')
    })

    it('attack: where the guards inspect ARP, a station speaks to slirp only from its own lease (a forged source is counted as source); trusted ports and dhcp false are not asked', () => {
      const p = port({ staticLeases: [{ mac: '02:00:00:00:00:02', ip: '10.0.2.16' }] })
      const a = station(2, 'address 192.0.2.10')
      const b = station(3, 'port 3')
      const t = station(4, 'port 4'); t.ownsName = true
      const guard = new Guard({ dhcpSnooping: true, arpInspection: true, ipSourceGuard: false, trusted: ['gateway', 'vm4'], leases: true, subnet: ip('10.0.2.0'), mask: 0xffffff00, gateway: ip('10.0.2.2'), dns: ip('10.0.2.3') })
      guard.bindings = p.server.leases
      sw.guard = guard
      const l = p.server.leases.offer(0x020000000001, ip('10.0.2.15'), a, 1e15)
      p.server.leases.bind(l, a, 2e15)
      const udp = (src: string, smac: number): Buffer => ip4({ proto: UDP, src, dst: '198.51.100.1', sport: 5000, dport: 9, smac })
      assert.ok(passed(p, a, udp('10.0.2.15', 0x020000000001)), 'its lease')
      assert.ok(passed(p, b, udp('10.0.2.16', 0x020000000002)), 'a static lease')
      assert.ok(!passed(p, a, udp('10.0.2.16', 0x020000000001)), 'another station\'s address')
      assert.ok(!passed(p, b, udp('10.0.2.15', 0x020000000002)), 'another station\'s lease')
      assert.ok(!passed(p, a, udp('10.0.2.77', 0x020000000001)), 'an address nobody holds')
      assert.equal(p.filteredSource, 3)
      assert.ok(passed(p, t, udp('10.0.2.99', 0x020000000004)), 'a trusted port (an operator\'s router)')
    })

    it('attack: one client\'s UDP from thousands of source ports gets its share, counted as flows; another client keeps its own', () => {
      const p = port({ flowsPerClient: 8, maxFlows: 64 })
      const a = station(2, 'address 192.0.2.10')
      const b = station(3, 'port 3')
      let through = 0
      for (let i = 0; i < 2000; i++) {
        if (passed(p, a, ip4({ proto: UDP, dst: '198.51.100.1', sport: 10000 + i, dport: 9, smac: 0x020000000001 }))) through++
      }
      assert.equal(through, 8)
      assert.equal(p.filteredFlows, 1992)
      assert.ok(passed(p, b, ip4({ proto: UDP, src: '10.0.2.16', dst: '10.0.2.3', sport: 5555, dport: 53, smac: 0x020000000002 })), 'DNS for the other station')
      assert.equal(p.flows.flows, 9)
    })

    it('attack: a second port of the same client address draws on the same share', () => {
      const p = port({ flowsPerClient: 4 })
      const a = station(2, 'address 192.0.2.10')
      const a2 = station(3, 'address 192.0.2.10')
      for (let i = 0; i < 4; i++) assert.ok(passed(p, a, ip4({ proto: UDP, dst: '198.51.100.1', sport: 10000 + i, smac: 0x020000000001 })))
      assert.ok(!passed(p, a2, ip4({ proto: UDP, src: '10.0.2.17', dst: '198.51.100.1', sport: 20000, smac: 0x020000000003 })))
    })

    it('ends flows from the child\'s side (track) and the clock (expire); forgets them all when the child goes (detach)', () => {
      const p = port({ flowsPerClient: 4 })
      const a = station(2, 'address 192.0.2.10')
      const echo = (seq: number): Buffer => ip4({ proto: ICMP, dst: '198.51.100.1', id: 1, icmpSeq: seq, smac: 0x020000000001 })
      for (let i = 0; i < 4; i++) assert.ok(passed(p, a, echo(i)))
      assert.ok(!passed(p, a, echo(9)))
      p.track(record(ip4({ proto: ICMP, src: '198.51.100.1', dst: '10.0.2.15', type: 0, id: 1, icmpSeq: 0, smac: GW_MAC, dmac: 0x020000000001 })))
      assert.ok(passed(p, a, echo(9)), 'a reply freed one')
      sw.tick(sw.nowMs + 243_000)
      p.expire(sw.nowMs)
      assert.equal(p.flows.flows, 0)
      assert.ok(passed(p, a, echo(10)))
      p.detach()
      assert.equal(p.flows.flows, 0)
    })

    it('attack: this host\'s addresses come from the provider it is given', () => {
      const hosts = new AddressSet()
      const p = port({ hostPorts: ['tcp:80'] }, hosts)
      const a = station(2, 'address 192.0.2.10')
      const syn = ip4({ proto: TCP, dst: '203.0.113.9', dport: 80, smac: 0x020000000001 })
      assert.ok(passed(p, a, syn))
      hosts.set([ip('203.0.113.9')])
      assert.ok(!passed(p, a, syn))
      assert.equal(p.filteredHost, 1)
    })
  })

  describe('this host\'s addresses', () => {
    it('reads the host LOCAL routes of /proc/net/fib_trie: addresses and prefixes, not broadcasts or links', () => {
      const r = parseFibTrie(FIB_TRIE)
      assert.deepEqual(r.hosts.sort(), [ip('127.0.0.1'), ip('192.0.2.7')].sort())
      assert.deepEqual(r.prefixes.sort(), [[ip('127.0.0.0'), 8], [ip('10.9.0.0'), 16]].sort())
    })

    it('joins them with the interfaces\' addresses; falls back to those alone for a fib_trie too large or missing', () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-fib-'))
      const restore = setLogSink(() => {})
      try {
        const file = path.join(dir, 'fib_trie')
        fs.writeFileSync(file, FIB_TRIE)
        const ifaces = (): ReturnType<typeof os.networkInterfaces> => ({ eth9: [{ address: '203.0.113.4', family: 'IPv4', netmask: '255.255.255.0', mac: '00:00:00:00:00:00', internal: false, cidr: null }] })
        const h = new HostAddresses(file, ifaces)
        h.refreshSync()
        for (const a of ['192.0.2.7', '10.9.8.7', '203.0.113.4', '127.3.3.3']) assert.ok(h.set.has(ip(a)), a)
        assert.ok(!h.set.has(ip('192.0.2.255')))
        fs.writeFileSync(file, FIB_TRIE + ' '.repeat(MAX_FIB_TRIE_BYTES))
        h.refreshSync()
        h.refreshSync()
        assert.ok(h.set.has(ip('203.0.113.4')) && !h.set.has(ip('192.0.2.7')), 'interfaces only, from then on')
        const missing = new HostAddresses(path.join(dir, 'none'), ifaces)
        missing.refreshSync()
        assert.ok(missing.set.has(ip('203.0.113.4')))
      } finally {
        setLogSink(restore)
        fs.rmSync(dir, { recursive: true, force: true })
      }
    })

    it('refreshes at most once a second, asynchronously', async () => {
      const h = new HostAddresses('/proc/net/fib_trie')
      h.refresh(10_000)
      assert.ok(h.reading)
      await waitFor(() => h.refreshes === 1, 5000, 'the first read')
      h.refresh(10_900)
      assert.ok(!h.reading, 'within the second: no read')
      h.refresh(11_000)
      assert.ok(h.reading)
      await waitFor(() => h.refreshes === 2, 5000, 'the second read')
    })
  })
})
