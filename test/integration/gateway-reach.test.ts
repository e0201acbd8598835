/**
 * Issue 21, findings 1-3, with a real QEMU 7.2 child (libslirp) and
 * raw-mode WebSocket clients as stations: what a station sends that it may
 * not is dropped before the child and counted by reason, and one station's
 * flood of flows takes only its share. Nothing leaves loopback: slirp runs
 * with nat false, or "host" with the only host ports listed being the
 * test's own on 127.0.0.1.
 */

import { whoHas, isArpReply } from '../helpers/frames'
import assert from 'node:assert/strict'
import * as dgram from 'node:dgram'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import type { GatewayPort } from '../../src/switch/io/gateway-port'
import type { NetworkJson } from '../../src/common/api-types'
import { ERR_CONFIG } from '../../src/common/errors'
import { setLogSink } from '../../src/common/log'
import { prefixed, FrameReader } from '../helpers/stream-peer'
import { TestClient } from '../helpers/client'
import { waitFor } from '../helpers/net'
import { requireTools } from '../helpers/proc'
import { switchctl } from '../helpers/ctl'
import { ip4, readTcp, TCP, UDP, SYN, ACK } from '../helpers/ipv4'

const STATION_A = 0x020000000021
const STATION_B = 0x020000000022



/** Descriptors a process holds now. */
const fds = (pid: number): number => fs.readdirSync(`/proc/${pid}/fd`).length

describe('gateway: a station reaches only what is listed, and takes only its share (integration)', function () {
  this.timeout(30_000)
  let server: SwitchServer | undefined
  const clients: TestClient[] = []
  const streams: net.Socket[] = []
  let dir: string
  const logs: string[] = []
  let restore: (line: string) => void

  before(function () { requireTools(this, [{ cmd: 'qemu-system-x86_64', pkg: 'qemu-system-x86' }, { cmd: 'setpriv', pkg: 'util-linux' }]) })

  async function start (gateway: Record<string, unknown>, port = 0, extra: Record<string, unknown> = {}): Promise<{ server: SwitchServer, url: string }> {
    // Static leases: the stations here set their addresses by hand, and the guards (on with a gateway) bind them so.
    const staticLeases = [{ mac: '02:00:00:00:00:21', ip: '10.0.2.15' }, { mac: '02:00:00:00:00:22', ip: '10.0.2.16' }]
    const s = new SwitchServer({ config: buildConfig({ networks: { lab: { gateway: { staticLeases, ...gateway } } }, ...extra }, 'test'), host: '127.0.0.1', port })
    server = s
    const a = await s.listen()
    return { server: s, url: `ws://127.0.0.1:${a.port}/net/lab` }
  }

  async function station (url: string, mac: number, ip: string, localAddress = '127.0.0.1'): Promise<TestClient> {
    const c = await TestClient.raw(url, { localAddress })
    clients.push(c)
    c.send([whoHas(mac, ip)])
    await waitFor(() => c.frames.some(isArpReply), 5000, 'the gateway\'s ARP reply')
    c.take()
    return c
  }

  /** A station behind a QEMU listener (the stream framing QEMU speaks), its ARP answered. */
  async function vmStation (socket: string, mac: number, ip: string): Promise<{ send: (frames: Buffer[]) => void, frames: Buffer[] }> {
    const sock = net.connect(socket)
    streams.push(sock)
    await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) })
    const reader = new FrameReader(sock, 4)
    const send = (frames: Buffer[]): void => { sock.write(prefixed(frames, 4)) }
    send([whoHas(mac, ip)])
    await waitFor(() => reader.frames.some(isArpReply), 5000, 'the gateway\'s ARP reply to the VM')
    reader.take()
    return { send, frames: reader.frames }
  }

  /** Send `frames`, then an ARP: once it is answered, the gateway port has judged them all. */
  async function sendAndBarrier (c: TestClient, mac: number, ip: string, frames: Buffer[]): Promise<void> {
    c.send(frames)
    c.send([whoHas(mac, ip)])
    await waitFor(() => c.frames.some(isArpReply), 5000, 'the ARP reply (barrier)')
  }

  const gatewayPort = (): GatewayPort => server?.gatewayChildren[0]?.port as GatewayPort

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-reach-'))
    logs.length = 0
    restore = setLogSink((l) => { logs.push(l) })
  })

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-30).join('\n') + '\n')
    for (const c of clients.splice(0)) c.close()
    for (const c of streams.splice(0)) c.destroy()
    await server?.close()
    fs.rmSync(dir, { recursive: true, force: true })
    server = undefined
    setLogSink(restore)
  })

  it('attack: what a station may not reach is dropped before the child and counted by reason (API, metrics, switchctl)', async () => {
    const { server: s, url } = await start({ nat: false })
    const vm = await station(url, STATION_A, '10.0.2.15')
    const self = s.address().port
    const tcp = (dst: string, dport: number): Buffer => ip4({ proto: TCP, dst, dport, smac: STATION_A })
    await sendAndBarrier(vm, STATION_A, '10.0.2.15', [
      tcp('10.0.2.2', 5432), tcp('255.255.255.255', 6379), // host
      tcp('127.0.0.1', 80), tcp('169.254.169.254', 80), tcp('10.0.2.99', 22), tcp('0.0.0.0', 80), // not_routable
      tcp('198.51.100.1', 443), // outside
      ip4({ proto: UDP, dst: '10.0.2.3', dport: 53, smac: STATION_A }), // dns (nat false: slirp forwards none)
      tcp('10.0.2.2', self), tcp('127.0.0.1', self), // switchd
      ip4({ proto: UDP, dst: '10.0.2.2', dport: 9, frag: 0x2000, smac: STATION_A }), // fragment
      ip4({ proto: 47, dst: '198.51.100.1', payload: Buffer.alloc(20), smac: STATION_A }) // protocol (GRE)
    ])
    const p = gatewayPort()
    assert.deepEqual([p.filteredHost, p.filteredNotRoutable, p.filteredOutside, p.filteredDns, p.filteredSelf, p.filteredFragment, p.filteredProtocol, p.filteredFlows],
      [2, 4, 1, 1, 2, 1, 1, 0])
    const metrics = await s.registry.metrics()
    for (const [reason, n] of [['host', 2], ['not_routable', 4], ['outside', 1], ['dns', 1], ['switchd', 2], ['fragment', 1], ['protocol', 1], ['flows', 0], ['dhcp', 0]] as const) {
      assert.match(metrics, new RegExp(`switchd_gateway_filtered_frames_total\\{network="lab",reason="${reason}",replica="[^"]*"\\} ${n}\\n`), reason)
    }
    assert.match(metrics, /switchd_gateway_flows\{network="lab",replica="[^"]*"\} 0\n/)
    const nets = (await (await fetch(`http://127.0.0.1:${s.address().port}/api/v1/networks`)).json()) as NetworkJson[]
    const gw = nets.find((n) => n.name === 'lab')?.gateway
    assert.deepEqual([gw?.up, gw?.flows, gw?.maxFlows, gw?.flowsPerClient, gw?.filtered.not_routable], [true, 0, 4096, 256, 4])
    const ctl = await switchctl(['--url', `http://127.0.0.1:${s.address().port}`, 'networks'])
    assert.equal(ctl.code, 0, ctl.stderr)
    assert.match(ctl.stdout.toString(), /GATEWAY FLOWS/)
    assert.match(ctl.stdout.toString(), /^lab\s.*\s0\/4096\s*$/m)
  })

  it('attack: a QEMU TCP listener on port 0 is one of switchd\'s own ports: a station\'s SYN to the port the system chose is counted switchd, at every address', async () => {
    // Found by the gateway model fuzz: the filter was given the configured port (0), not the one bound.
    const { url } = await start({ nat: false }, 0, { qemu: [{ name: 'vm-tcp', network: 'lab', listen: 'tcp:127.0.0.1:0' }] })
    const line = logs.find((l) => l.includes('"qemu_listening"') && l.includes('"vm-tcp"')) as string
    const port = Number((/"address":"tcp:127\.0\.0\.1:(\d+)"/.exec(line) ?? [])[1])
    assert.ok(port > 0, `qemu_listening names the port bound: ${line}`)
    const vm = await station(url, STATION_A, '10.0.2.15')
    await sendAndBarrier(vm, STATION_A, '10.0.2.15', ['10.0.2.2', '255.255.255.255', '0.0.0.0', '127.0.0.1'].map((dst) => ip4({ proto: TCP, dst, dport: port, smac: STATION_A })))
    assert.deepEqual([gatewayPort().filteredSelf, gatewayPort().filteredHost, gatewayPort().filteredNotRoutable], [4, 0, 0])
  })

  it('attack: one station\'s UDP from 600 source ports takes only its share; another station still reaches the listed host ports; the child\'s descriptors stay bounded', async () => {
    const sink = dgram.createSocket('udp4')
    let received = 0
    sink.on('message', () => { received++ })
    await new Promise<void>((resolve) => sink.bind(0, '127.0.0.1', resolve))
    const service = net.createServer((c) => { c.on('error', () => {}); c.end('hello\n') })
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve))
    const udpPort = sink.address().port
    const tcpPort = (service.address() as net.AddressInfo).port
    try {
      // Every loopback address is one client: the other station is a QEMU listener's VM, a client of its own.
      const vmSocket = path.join(dir, 'vm-b.sock')
      const { server: s, url } = await start({ nat: 'host', hostPorts: [`udp:${udpPort}`, `tcp:${tcpPort}`], flowsPerClient: 16 }, 0,
        { qemu: [{ name: 'vm-b', network: 'lab', listen: `unix:${vmSocket}` }] })
      const pid = s.gatewayChildren[0]?.child?.pid as number
      const a = await station(url, STATION_A, '10.0.2.15')
      const b = await vmStation(vmSocket, STATION_B, '10.0.2.16')
      const before = fds(pid)
      const flood: Buffer[] = []
      for (let i = 0; i < 600; i++) flood.push(ip4({ proto: UDP, dst: '10.0.2.2', sport: 20000 + i, dport: udpPort, smac: STATION_A, payload: Buffer.from('x') }))
      await sendAndBarrier(a, STATION_A, '10.0.2.15', flood)
      assert.equal(gatewayPort().filteredFlows, 600 - 16)
      await waitFor(() => received === 16, 5000, 'the share\'s 16 datagrams')
      // The other station: its datagram and its connection go through.
      b.send([ip4({ proto: UDP, src: '10.0.2.16', dst: '10.0.2.2', sport: 30000, dport: udpPort, smac: STATION_B, payload: Buffer.from('y') })])
      await waitFor(() => received === 17, 5000, 'the other station\'s datagram')
      b.send([ip4({ proto: TCP, src: '10.0.2.16', dst: '10.0.2.2', sport: 30001, dport: tcpPort, flags: SYN, smac: STATION_B })])
      await waitFor(() => b.frames.some((f) => { const t = readTcp(f); return t !== undefined && t.dport === 30001 && t.flags === (SYN | ACK) }), 5000, 'a SYN-ACK for the other station')
      const after = fds(pid)
      assert.ok(after - before <= 16 + 2, `the child holds ${after - before} more descriptors (the share is 16, the other station 2)`)
      assert.equal(gatewayPort().flows.flows, 18)
      assert.equal(received, 17, 'nothing else arrived')
    } finally {
      sink.close()
      service.close()
    }
  })

  it('attack: a station cannot reach switchd\'s VXLAN side through the gateway: its listener\'s UDP port (never in hostPorts) nor a VTEP (counted switchd)', async () => {
    // Through the gateway a station's datagram comes from this host: to the listener from 127.0.0.1 (a local VTEP's
    // address), to a VTEP from the address the VTEP trusts as switchd's. Either way it would inject frames into a VNI.
    const probe = dgram.createSocket('udp4')
    await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', resolve))
    const port = probe.address().port
    await new Promise<void>((resolve) => probe.close(resolve))
    // The VTEPs live in networks of their own, where nothing floods: no datagram of this test goes beyond loopback.
    const vxlan = [{ listen: `127.0.0.1:${port}`, sourcePorts: 0, vnis: [{ vni: 42, network: 'other', remotes: ['127.0.0.1:9'] }, { vni: 43, network: 'far', remotes: ['198.51.100.7'] }] }]
    await assert.rejects(start({ nat: 'host', hostPorts: [`udp:${port - 1}-${port + 1}`] }, 0, { vxlan }), (err: Error & { code?: string }) =>
      err.code === ERR_CONFIG && err.message.includes('networks.lab.gateway.hostPorts[0]') && err.message.includes(`includes ${port}`))
    await server?.close()
    const { url } = await start({ nat: 'host', hostPorts: [`udp:${port + 1}`] }, 0, { vxlan })
    const vm = await station(url, STATION_A, '10.0.2.15')
    const udp = (dst: string, dport: number): Buffer => ip4({ proto: UDP, dst, dport, smac: STATION_A, payload: Buffer.alloc(30) })
    await sendAndBarrier(vm, STATION_A, '10.0.2.15', [udp('10.0.2.2', port), udp('255.255.255.255', port), udp('127.0.0.1', port), udp('198.51.100.7', 4789), udp('198.51.100.7', 53)])
    const p = gatewayPort()
    assert.deepEqual([p.filteredSelf, p.filteredHost, p.filteredNotRoutable, p.filteredOutside], [5, 0, 0, 0])
  })

  it('attack: a hostPorts entry that takes in one of switchd\'s own ports fails at start, naming the key', async () => {
    const probe = net.createServer()
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
    const port = (probe.address() as net.AddressInfo).port
    await new Promise<void>((resolve) => probe.close(() => { resolve() }))
    await assert.rejects(start({ nat: 'host', hostPorts: ['udp:53', `tcp:${port - 1}-${port + 1}`] }, port), (err: Error & { code?: string }) =>
      err.code === ERR_CONFIG && err.message.includes('networks.lab.gateway.hostPorts[1]') && err.message.includes(String(port)))
  })
})
