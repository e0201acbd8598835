/**
 * Issue 16: the gateway's configuration, QEMU's command line, and what the
 * gateway port does to frames on their way to slirp (switchd's DHCP server,
 * filters), with a fake socket in place of the QEMU child. Issue 21: every
 * DHCP message is switchd's (test/unit/dhcp-server.test.ts has its decisions).
 */

import assert from 'node:assert/strict'
import { buildConfig, isReservedName } from '../../src/switch/control/config'
import { GATEWAY_PORT_NAME, type GatewaySpec } from '../../src/switch/control/config/gateway'
import { qemuArgs } from '../../src/switch/io/gateway'
import { GatewayPort, slirpMac } from '../../src/switch/io/gateway-port'
import { Switch } from '../../src/switch/core/switch'
import { ERR_CONFIG } from '../../src/common/errors'
import {
  buildDhcpRequest, ipv4At, dhcpAt, dhcpType, dhcpOption, dhcpYourAddress, parseIpv4, formatIpv4, ipChecksum,
  DHCPDISCOVER, DHCPREQUEST, DHCPOFFER, DHCPACK, DHCPNAK, DHCP_SERVER_PORT, DHCP_CLIENT_PORT
} from '../../src/common/dhcp'
import { IPPROTO_TCP, IPPROTO_UDP } from '../../src/common/ethernet'
import { FakePort } from '../helpers/fake-port'
import { waitFor } from '../helpers/net'
import { R_DISCONNECTED, R_MALFORMED } from '../../src/switch/core/reasons'

const ip = (t: string): number => parseIpv4(t) as number

function gateway (g: Record<string, unknown> = {}): GatewaySpec {
  const c = buildConfig({ networks: { lab: { gateway: g } } }, 'test')
  return c.gateways[0] as GatewaySpec
}

function refused (g: unknown, key: string): void {
  assert.throws(() => buildConfig({ networks: { lab: { gateway: g } } }, 'test'),
    (err: Error & { code?: string }) => err.code === ERR_CONFIG && err.message.includes(key), `${JSON.stringify(g)} names ${key}`)
}

/** An IPv4 frame from a station to `dst`:`dport` (TCP SYN or UDP). */
function ipFrame (proto: number, dst: number, dport: number, src = 0x020000000001): Buffer {
  const f = Buffer.alloc(14 + 20 + 20)
  f.writeUIntBE(slirpMac(ip('10.0.2.2')), 0, 6)
  f.writeUIntBE(src, 6, 6)
  f.writeUInt16BE(0x0800, 12)
  f[14] = 0x45
  f.writeUInt16BE(40, 16)
  f[22] = 64
  f[23] = proto
  f.writeUInt32BE(ip('10.0.2.15'), 26)
  f.writeUInt32BE(dst, 30)
  f.writeUInt16BE(40000, 34)
  f.writeUInt16BE(dport, 36)
  if (proto === IPPROTO_TCP) f[47] = 0x02
  return f
}

describe('gateway', () => {
  describe('configuration', () => {
    it('has the defaults of QEMU\'s user network', () => {
      const g = gateway()
      assert.deepEqual([formatIpv4(g.subnet), g.prefix, formatIpv4(g.address), formatIpv4(g.dns), formatIpv4(g.dhcpStart)], ['10.0.2.0', 24, '10.0.2.2', '10.0.2.3', '10.0.2.15'])
      // Issue 21: the pool runs to the subnet's last host address (not slirp's 16); an hour's leases, four a port.
      assert.deepEqual([g.poolSize, g.leaseTime, g.leasesPerPort], [240, 3600, 4])
      // One client (an address with many ports, a trunk) gets a quarter of the pool at most.
      assert.deepEqual([g.leasesPerClient, gateway({ dhcpStart: '10.0.2.250' }).leasesPerClient, gateway({ leasesPerClient: 240 }).leasesPerClient], [60, 1, 240])
      assert.equal(gateway({ subnet: '10.8.0.0/16', dhcpStart: '10.8.0.10' }).poolSize, 4096, 'capped at MAX_POOL_SIZE')
      assert.equal(gateway({ dhcpStart: '10.0.2.250' }).poolSize, 5, 'never the broadcast address')
      assert.equal(gateway({ dhcpStart: '10.0.2.1', poolSize: 10 }).poolSize, 10, 'the gateway and DNS addresses inside it are reserved, not refused')
      assert.deepEqual([g.dhcp, g.dnsForward, g.nat, g.publish.length, g.qemu, g.user, g.name], [true, true, 'on', 0, 'qemu-system-x86_64', 'nobody', GATEWAY_PORT_NAME])
      assert.equal(gateway({ nat: 'host' }).nat, 'host')
      assert.equal(gateway({ nat: false }).nat, 'off')
    })

    it('attack: refuses hostPorts that take in a port a gateway publishes on 127.0.0.1 or 0.0.0.0 (two sockets a flow, and a back door to that station)', () => {
      const pub = (host: string): Record<string, unknown> => ({ proto: 'tcp', host, guest: '10.0.3.15:22', ...(host.startsWith('127.') ? {} : { allowRemote: true }) })
      const config = (host: string, hostPorts: string[]): unknown => ({ networks: { lab: { gateway: { nat: 'host', hostPorts } }, other: { gateway: { subnet: '10.0.3.0/24', publish: [pub(host)] } } } })
      for (const host of ['127.0.0.1:2222', '0.0.0.0:2222']) {
        assert.throws(() => buildConfig(config(host, ['tcp:2000-3000']), 'test'), (err: Error & { code?: string }) =>
          err.code === ERR_CONFIG && err.message.includes('networks.lab.gateway.hostPorts[0]') && err.message.includes('networks.other.gateway publishes'), host)
      }
      assert.doesNotThrow(() => buildConfig(config('127.0.0.1:2222', ['udp:2222', 'tcp:2223-3000']), 'test'), 'another protocol or port')
      assert.doesNotThrow(() => buildConfig(config('127.0.0.2:2222', ['tcp:2222']), 'test'), 'an address slirp does not reach')
      refused({ nat: 'host', hostPorts: ['tcp:2222'], publish: [{ proto: 'tcp', host: '127.0.0.1:2222', guest: '10.0.2.15:22' }] }, 'gateway.hostPorts[0]')
    })

    it('reserves the port name gateway: no client can name itself so', () => {
      assert.ok(isReservedName(buildConfig({ networks: { lab: { gateway: {} } } }, 'test'), 'gateway'))
      assert.ok(!isReservedName(buildConfig({}, 'test'), 'gateway'))
    })

    it('refuses bad values, naming the key', () => {
      refused({ subnet: '10.0.2.1/24' }, 'gateway.subnet')
      refused({ subnet: '10.0.0.0/30' }, 'gateway.subnet')
      refused({ subnet: 'ten' }, 'gateway.subnet')
      refused({ address: '10.0.3.2' }, 'gateway.address')
      refused({ address: '10.0.2.0' }, 'gateway.address')
      refused({ dns: '10.0.2.2' }, 'gateway.dns')
      refused({ dhcpStart: '10.0.3.20' }, 'gateway.dhcpStart')
      refused({ dhcpStart: '10.0.2.255' }, 'gateway.dhcpStart')
      refused({ dhcpStart: '10.0.2.250', poolSize: 6 }, 'gateway.poolSize')
      refused({ poolSize: 0 }, 'gateway.poolSize')
      refused({ poolSize: 4097 }, 'gateway.poolSize')
      refused({ dhcpStart: '10.0.2.2', poolSize: 2 }, 'gateway.poolSize')
      refused({ leaseTime: 59 }, 'gateway.leaseTime')
      refused({ leaseTime: 3600.5 }, 'gateway.leaseTime')
      refused({ leasesPerPort: 0 }, 'gateway.leasesPerPort')
      refused({ leasesPerClient: 0 }, 'gateway.leasesPerClient')
      refused({ leasesPerClient: 241 }, 'gateway.leasesPerClient')
      refused({ nat: 'yes' }, 'gateway.nat')
      refused({ dhcp: 'on' }, 'gateway.dhcp')
      refused({ bogus: 1 }, 'gateway.bogus')
      refused({ staticLeases: [{ mac: '01:00:5e:00:00:01', ip: '10.0.2.50' }] }, 'staticLeases[0].mac')
      refused({ staticLeases: [{ mac: '02:00:00:00:00:01', ip: '10.0.3.20' }] }, 'staticLeases[0].ip')
      refused({ staticLeases: [{ mac: '02:00:00:00:00:01', ip: '10.0.2.2' }] }, 'staticLeases[0].ip')
      refused({ staticLeases: [{ mac: '02:00:00:00:00:01', ip: '10.0.2.50' }, { mac: '02:00:00:00:00:01', ip: '10.0.2.51' }] }, 'staticLeases[1].mac')
      refused({ staticLeases: [{ mac: '02:00:00:00:00:01', ip: '10.0.2.50' }, { mac: '02:00:00:00:00:02', ip: '10.0.2.50' }] }, 'staticLeases[1].ip')
      refused({ publish: [{ proto: 'sctp', host: '127.0.0.1:2222', guest: '10.0.2.15:22' }] }, 'publish[0].proto')
      refused({ publish: [{ host: '127.0.0.1', guest: '10.0.2.15:22' }] }, 'publish[0].host')
      refused({ publish: [{ host: '127.0.0.1:2222', guest: '10.0.9.15:22' }] }, 'publish[0].guest')
      refused({ publish: [{ host: '127.0.0.1:2222', guest: '10.0.2.15:22' }, { host: '127.0.0.1:2222', guest: '10.0.2.16:22' }] }, 'publish[1].host')
      refused({ qemu: 'qemu,evil=1' }, 'gateway.qemu')
      refused({ user: 'root;' }, 'gateway.user')
    })

    it('refuses one host port published by two networks\' gateways', () => {
      const pub = { publish: [{ host: '127.0.0.1:2222', guest: '10.0.2.15:22' }] }
      assert.throws(() => buildConfig({ networks: { a: { gateway: pub }, b: { gateway: pub } } }, 'test'),
        (err: Error & { code?: string }) => err.code === ERR_CONFIG && err.message.includes('networks.b.gateway.publish[0].host'))
    })

    it('attack: publishing beyond loopback takes allowRemote (anyone there would reach the station)', () => {
      for (const host of ['0.0.0.0:2222', '192.0.2.1:2222']) refused({ publish: [{ host, guest: '10.0.2.15:22' }] }, 'publish[0].host')
      assert.equal(gateway({ publish: [{ host: '0.0.0.0:2222', guest: '10.0.2.15:22', allowRemote: true }] }).publish[0]?.allowRemote, true)
    })
  })

  describe('QEMU command line', () => {
    it('joins slirp and a stream on fd 3 by a hub, QMP on fd 4, restrict=on for nat false, one hostfwd per published port', () => {
      const args = qemuArgs(gateway({ nat: false, publish: [{ host: '127.0.0.1:2222', guest: '10.0.2.15:22' }, { proto: 'udp', host: '127.0.0.1:5353', guest: '10.0.2.16:53' }] }))
      const user = args[args.indexOf('-netdev', args.indexOf('stream,id=sw,server=off,addr.type=fd,addr.str=3')) + 1] as string
      assert.ok(args.includes('-M') && args.includes('none'))
      assert.match(user, /^user,id=gw,ipv6=off,net=10\.0\.2\.0\/24,host=10\.0\.2\.2,dns=10\.0\.2\.3,dhcpstart=10\.0\.2\.15,restrict=on,/)
      assert.match(user, /hostfwd=tcp:127\.0\.0\.1:2222-10\.0\.2\.15:22,hostfwd=udp:127\.0\.0\.1:5353-10\.0\.2\.16:53$/)
      assert.ok(args.includes('socket,id=qmp,fd=4'))
      assert.ok(args.some((a) => a.startsWith('on,') && a.includes('spawn=deny')), 'seccomp sandbox')
      assert.match(qemuArgs(gateway({ nat: 'host' })).join(' '), /restrict=off/)
    })
  })

  describe('GatewayPort', () => {
    let sw: Switch
    let station: FakePort
    let written: Buffer[]

    /** The station's DHCP replies (the server's, entering from the gateway on the next turn). */
    function replies (): Array<[number, string, number]> {
      return station.sent.map((f) => {
        const b = dhcpAt(f, 14, f.length, DHCP_SERVER_PORT, DHCP_CLIENT_PORT)
        assert.ok(b > 0)
        return [dhcpType(f, b, f.length), formatIpv4(dhcpYourAddress(f, b)), f.readUInt32BE(b + 4)]
      })
    }

    function port (g: Record<string, unknown>, selfPorts: number[] = []): GatewayPort {
      sw = new Switch({ name: 'lab' })
      const p = new GatewayPort(1, gateway(g), 1 << 20, sw)
      written = []
      p.socket = { writableLength: 0, write: (b: Buffer) => { written.push(Buffer.from(b)); return true }, destroy: () => {} } as unknown as GatewayPort['socket']
      p.selfPorts = selfPorts
      station = new FakePort(2, 'vm')
      sw.addPort(p)
      sw.addPort(station)
      return p
    }

    /** Frames the gateway port passed on to slirp. */
    function toSlirp (p: GatewayPort, f: Buffer): number {
      const before = p.txFrames
      sw.receiveFrame(station, f)
      return p.txFrames - before
    }

    it('attack: TCP to switchd\'s own ports through the gateway address is dropped and counted; other host ports pass only when listed', () => {
      const p = port({ hostPorts: ['tcp:5432'] }, [8080, 9100])
      assert.equal(toSlirp(p, ipFrame(IPPROTO_TCP, ip('10.0.2.2'), 8080)), 0)
      assert.equal(toSlirp(p, ipFrame(IPPROTO_TCP, ip('10.0.2.2'), 9100)), 0)
      assert.equal(p.filteredSelf, 2)
      // slirp connects to these as a local process would: the same loopback, by another name.
      assert.equal(toSlirp(p, ipFrame(IPPROTO_TCP, ip('127.0.0.1'), 8080)), 0)
      assert.equal(toSlirp(p, ipFrame(IPPROTO_TCP, ip('127.1.2.3'), 8080)), 0)
      assert.equal(toSlirp(p, ipFrame(IPPROTO_TCP, 0, 8080)), 0)
      assert.equal(toSlirp(p, ipFrame(IPPROTO_TCP, 0xffffffff, 8080)), 0)
      assert.equal(p.filteredSelf, 6)
      assert.equal(toSlirp(p, ipFrame(IPPROTO_TCP, ip('10.0.2.2'), 5433)), 0, 'not listed')
      assert.equal(p.filteredHost, 1)
      assert.equal(toSlirp(p, ipFrame(IPPROTO_TCP, ip('10.0.2.2'), 5432)), 1)
      assert.equal(written.length, 1, 'one batch to the child')
    })

    it('attack: fragments are dropped as fragment (slirp would hold them without bound), a segment too short to show its ports as malformed', () => {
      const p = port({ hostPorts: ['tcp:8080'] })
      const first = ipFrame(IPPROTO_TCP, ip('10.0.2.2'), 8080)
      first.writeUInt16BE(0x2000, 20) // more fragments
      assert.equal(toSlirp(p, first), 0)
      const later = ipFrame(IPPROTO_TCP, ip('10.0.2.2'), 8080)
      later.writeUInt16BE(1, 20) // offset 8: no ports in it
      assert.equal(toSlirp(p, later), 0)
      assert.equal(p.filteredFragment, 2)
      const tiny = ipFrame(IPPROTO_TCP, ip('10.0.2.2'), 8080)
      tiny.writeUInt16BE(20 + 3, 16) // IPv4 total length: 3 bytes of TCP (part of the destination port)
      assert.equal(toSlirp(p, tiny), 0)
      assert.equal(p.drops[R_MALFORMED], 1)
      assert.equal(toSlirp(p, ipFrame(IPPROTO_TCP, ip('10.0.2.2'), 8080)), 1, 'whole, it passes')
    })

    it('nat "host": IPv4 beyond this host is dropped; the listed host ports and DNS pass', () => {
      const p = port({ nat: 'host', hostPorts: ['tcp:80'] })
      assert.equal(toSlirp(p, ipFrame(IPPROTO_TCP, ip('192.0.2.1'), 80)), 0)
      assert.equal(toSlirp(p, ipFrame(IPPROTO_UDP, ip('198.51.100.9'), 53)), 0)
      assert.equal(p.filteredOutside, 2)
      assert.equal(toSlirp(p, ipFrame(IPPROTO_UDP, ip('10.0.2.9'), 53)), 0, 'on-link: never through slirp')
      assert.equal(p.filteredNotRoutable, 1)
      assert.equal(toSlirp(p, ipFrame(IPPROTO_TCP, ip('10.0.2.2'), 80)), 1)
      assert.equal(toSlirp(p, ipFrame(IPPROTO_UDP, ip('10.0.2.3'), 53)), 1)
    })

    it('dnsForward false drops DNS to the DNS address; dhcp false drops DHCP', () => {
      const p = port({ dnsForward: false, dhcp: false })
      assert.equal(toSlirp(p, ipFrame(IPPROTO_UDP, ip('10.0.2.3'), 53)), 0)
      assert.equal(toSlirp(p, ipFrame(IPPROTO_TCP, ip('10.0.2.3'), 53)), 0)
      assert.equal(toSlirp(p, buildDhcpRequest(0x020000000001, DHCPDISCOVER, 1)), 0)
      assert.deepEqual([p.filteredDns, p.filteredDhcp], [2, 1])
    })

    it('answers every DHCP message itself (none reaches slirp): a static MAC its address, any other MAC from the pool', async () => {
      const mac = 0x0200000000aa
      const p = port({ staticLeases: [{ mac: '02:00:00:00:00:aa', ip: '10.0.2.50' }] })
      assert.equal(toSlirp(p, buildDhcpRequest(mac, DHCPDISCOVER, 7)), 0)
      assert.equal(toSlirp(p, buildDhcpRequest(mac, DHCPREQUEST, 8, ip('10.0.2.50'), ip('10.0.2.2'))), 0)
      assert.equal(toSlirp(p, buildDhcpRequest(mac, DHCPREQUEST, 9, ip('10.0.2.15'))), 0)
      // A REQUEST for another server's offer is swallowed, unanswered.
      assert.equal(toSlirp(p, buildDhcpRequest(mac, DHCPREQUEST, 10, ip('10.0.2.50'), ip('10.0.2.99'))), 0)
      assert.equal(toSlirp(p, buildDhcpRequest(0x020000000001, DHCPDISCOVER, 11)), 0, 'another MAC: switchd too')
      await waitFor(() => station.sent.length === 4, 1000, 'four replies')
      assert.equal(ipChecksum(station.sent[0] as Buffer, 14, 34), 0, 'a valid IPv4 header checksum')
      assert.deepEqual(station.sent.map((f) => f.subarray(6, 12).toString('hex')), Array(4).fill('52550a000202'), 'from the gateway\'s MAC')
      assert.deepEqual(replies(), [[DHCPOFFER, '10.0.2.50', 7], [DHCPACK, '10.0.2.50', 8], [DHCPNAK, '0.0.0.0', 9], [DHCPOFFER, '10.0.2.15', 11]])
      assert.deepEqual([p.leases, p.staticLeases, p.txFrames], [1, 1, 0])
    })

    it('attack: a flood of DHCP messages from one port gets a bounded number of replies (the rest counted as dhcp_rate)', async () => {
      const p = port({})
      for (let i = 0; i < 1000; i++) sw.receiveFrame(station, buildDhcpRequest(0x020000000001, DHCPDISCOVER, i))
      await new Promise((resolve) => setImmediate(resolve))
      assert.ok(station.sent.length >= 16 && station.sent.length <= 64, `replies: ${station.sent.length}`)
      assert.equal(station.sent.length + p.server.counters.rate, 1000, 'every message answered or counted')
      assert.equal(p.txFrames, 0)
    })

    it('holds an ACK of a new lease until the lease store has it on disk; a renewal goes at once', async () => {
      const p = port({})
      let requested = 0
      const store = { landed: 0, request: () => { requested++ } }
      p.store = store
      const mac = 0x020000000001
      sw.receiveFrame(station, buildDhcpRequest(mac, DHCPDISCOVER, 1))
      sw.receiveFrame(station, buildDhcpRequest(mac, DHCPREQUEST, 2, ip('10.0.2.15'), ip('10.0.2.2')))
      await waitFor(() => station.sent.length === 1, 1000, 'the offer')
      await new Promise((resolve) => setImmediate(resolve))
      assert.deepEqual(replies(), [[DHCPOFFER, '10.0.2.15', 1]], 'no ACK before the file holds the lease')
      assert.equal(requested, 1)
      store.landed = p.server.leases.version
      p.landed(store.landed)
      await waitFor(() => station.sent.length === 2, 1000, 'the ACK')
      assert.deepEqual(replies()[1], [DHCPACK, '10.0.2.15', 2])
      sw.receiveFrame(station, buildDhcpRequest(mac, DHCPREQUEST, 3, 0, 0, ip('10.0.2.15')))
      await waitFor(() => station.sent.length === 3, 1000, 'the renewal\'s ACK, without a write')
      assert.equal(requested, 1)
    })

    it('notes the addresses ARPs to the gateway show in use: such an address is not offered to another MAC', async () => {
      const p = port({})
      const arp = Buffer.alloc(42)
      arp.fill(0xff, 0, 6); arp.writeUIntBE(0x020000000009, 6, 6); arp.writeUInt16BE(0x0806, 12)
      arp.writeUInt16BE(1, 14); arp.writeUInt16BE(0x0800, 16); arp[18] = 6; arp[19] = 4; arp.writeUInt16BE(1, 20)
      arp.writeUIntBE(0x020000000009, 22, 6); arp.writeUInt32BE(ip('10.0.2.15'), 28); arp.writeUInt32BE(ip('10.0.2.2'), 38)
      sw.receiveFrame(station, arp)
      sw.receiveFrame(station, buildDhcpRequest(0x020000000001, DHCPDISCOVER, 1))
      await waitFor(() => station.sent.length === 1, 1000, 'the offer')
      assert.deepEqual(replies(), [[DHCPOFFER, '10.0.2.16', 1]])
      assert.equal(p.txFrames, 1, 'the ARP itself went on to slirp')
    })

    it('drops and counts frames while its child is away', () => {
      const p = port({})
      p.detach()
      assert.equal(toSlirp(p, ipFrame(IPPROTO_TCP, ip('10.0.2.2'), 80)), 0)
      assert.equal(p.drops[R_DISCONNECTED], 1)
    })
  })

  describe('DHCP parsing', () => {
    it('attack: option lengths that lie stop the walk at the frame\'s end', () => {
      const f = buildDhcpRequest(0x020000000001, DHCPDISCOVER, 1)
      const b = dhcpAt(f, 14, f.length, DHCP_CLIENT_PORT, DHCP_SERVER_PORT)
      f[b + 240] = 12; f[b + 241] = 250 // hostname claiming 250 bytes, past the end
      assert.equal(dhcpOption(f, b, f.length, 53), -1)
      assert.equal(dhcpType(f, b, f.length), 0)
      assert.equal(dhcpAt(f.subarray(0, 100), 14, 100, DHCP_CLIENT_PORT, DHCP_SERVER_PORT), -1, 'too short for BOOTP')
      assert.equal(ipv4At(Buffer.alloc(20), 0, 20), -1)
    })
  })
})
