/**
 * Issue 16: a network's gateway (src/switch/io/gateway.ts), with a real
 * QEMU 7.2 child (libslirp) and raw-mode WebSocket clients standing in for
 * browser VMs. Nothing leaves loopback: the clients only speak DHCP and ARP
 * to the gateway, and slirp runs with nat false (restrict=on) unless a test
 * says otherwise.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import type { GatewayPort } from '../../src/switch/io/gateway-port'
import { ERR_CONFIG, ERR_STATE } from '../../src/common/errors'
import { setLogSink } from '../../src/common/log'
import {
  buildDhcpRequest, buildDhcpReply, ipv4At, dhcpAt, dhcpType, dhcpYourAddress, dhcpAddressOption, dhcpClientMac, parseIpv4,
  DHCPDISCOVER, DHCPREQUEST, DHCPOFFER, DHCPACK, DHCPNAK, DHCP_SERVER_PORT, DHCP_CLIENT_PORT, OPT_ROUTER, OPT_DNS, OPT_SERVER_ID, ipChecksum
} from '../../src/common/dhcp'
import { TestClient } from '../helpers/client'
import { waitFor, poll, MIN_WAIT_MS } from '../helpers/net'
import { eth, arp, isArpReply, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'
import { requireTools } from '../helpers/proc'
import { parsePcap } from '../helpers/pcap'
import { switchctl } from '../helpers/ctl'
import { R_BAD_SOURCE } from '../../src/switch/core/reasons'

const GW = parseIpv4('10.0.2.2') as number
const STATION = 0x020000000011
const STATIC_MAC = 0x0200000000aa
const STATIC_IP = parseIpv4('10.0.2.50') as number

interface Dhcp { type: number, mac: number, yiaddr: number, router: number, dns: number, server: number, src: string }

/** The DHCP replies among `frames` (slirp broadcasts them: every station hears every reply), for `mac` if given. */
function dhcpReplies (frames: Buffer[], mac?: number): Dhcp[] {
  const out: Dhcp[] = []
  for (const f of frames) {
    const l3 = ipv4At(f, 0, f.length)
    if (l3 < 0) continue
    const b = dhcpAt(f, l3, f.length, DHCP_SERVER_PORT, DHCP_CLIENT_PORT)
    if (b < 0) continue
    out.push({
      type: dhcpType(f, b, f.length),
      mac: dhcpClientMac(f, b),
      yiaddr: dhcpYourAddress(f, b),
      router: dhcpAddressOption(f, b, f.length, OPT_ROUTER),
      dns: dhcpAddressOption(f, b, f.length, OPT_DNS),
      server: dhcpAddressOption(f, b, f.length, OPT_SERVER_ID),
      src: f.subarray(6, 12).toString('hex')
    })
  }
  return mac === undefined ? out : out.filter((d) => d.mac === mac)
}


/** A TCP SYN from the station 10.0.2.15 to `dst`:`dport`, checksums right (slirp checks them). */
function syn (dst: number, dport: number): Buffer {
  const f = Buffer.alloc(14 + 20 + 20)
  f.writeUIntBE(0x52550a000202, 0, 6)
  f.writeUIntBE(STATION, 6, 6)
  f.writeUInt16BE(0x0800, 12)
  f[14] = 0x45; f.writeUInt16BE(40, 16); f[22] = 64; f[23] = 6
  f.writeUInt32BE(parseIpv4('10.0.2.15') as number, 26)
  f.writeUInt32BE(dst, 30)
  f.writeUInt16BE(ipChecksum(f, 14, 34), 24)
  f.writeUInt16BE(40001, 34); f.writeUInt16BE(dport, 36); f.writeUInt32BE(1000, 38); f[46] = 0x50; f[47] = 0x02; f.writeUInt16BE(65535, 48)
  const pseudo = Buffer.alloc(32)
  f.copy(pseudo, 0, 26, 34); pseudo[9] = 6; pseudo.writeUInt16BE(20, 10); f.copy(pseudo, 12, 34, 54)
  f.writeUInt16BE(ipChecksum(pseudo, 0, 32), 50)
  return f
}


describe('gateway: DHCP from a QEMU user-mode network behind a port (integration)', function () {
  let server: SwitchServer | undefined
  const clients: TestClient[] = []
  const logs: string[] = []
  let restore: (line: string) => void
  let dir: string

  before(function () { requireTools(this, [{ cmd: 'qemu-system-x86_64', pkg: 'qemu-system-x86' }, { cmd: 'setpriv', pkg: 'util-linux' }]) })

  /** switchd with network lab's gateway (nat false unless `gateway` says), its state in this test's directory. */
  async function start (gateway: Record<string, unknown>, lab: Record<string, unknown> = {}): Promise<{ server: SwitchServer, url: string }> {
    const s = new SwitchServer({ config: buildConfig({ stateDir: path.join(dir, 'state'), networks: { lab: { ...lab, gateway: { nat: false, ...gateway } } } }, 'test'), host: '127.0.0.1', port: 0 })
    server = s
    const { port } = await s.listen()
    return { server: s, url: `ws://127.0.0.1:${port}/net/lab` }
  }

  async function client (url: string): Promise<TestClient> {
    const c = await TestClient.raw(url)
    clients.push(c)
    return c
  }

  /** DISCOVER every 0.5 s, as a DHCP client retransmits, until an OFFER comes (the first frames also teach the fdb); `ms` guards against a hang. */
  async function offer (c: TestClient, mac: number, ms = MIN_WAIT_MS): Promise<Dhcp> {
    const deadline = Date.now() + ms
    for (let xid = 1; ; xid++) {
      c.send([buildDhcpRequest(mac, DHCPDISCOVER, xid)])
      if (await poll(() => dhcpReplies(c.frames, mac).length > 0, 500)) return dhcpReplies(c.take(), mac)[0] as Dhcp
      if (Date.now() > deadline) throw new Error(`no offer within ${ms} ms`)
    }
  }

  async function request (c: TestClient, mac: number, ip: number): Promise<Dhcp> {
    c.send([buildDhcpRequest(mac, DHCPREQUEST, 77, ip, GW)])
    await waitFor(() => dhcpReplies(c.frames, mac).length > 0, 3000, 'an answer to the request')
    return dhcpReplies(c.take(), mac)[0] as Dhcp
  }

  const gatewayPort = (): GatewayPort => server?.gatewayChildren[0]?.port as GatewayPort

  beforeEach(() => {
    logs.length = 0
    restore = setLogSink((l) => { logs.push(l) })
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-gateway-'))
    fs.chmodSync(dir, 0o755) // a fake QEMU here runs as nobody when the tests run as root
  })

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-30).join('\n') + '\n')
    for (const c of clients.splice(0)) c.close()
    await server?.close()
    server = undefined
    fs.rmSync(dir, { recursive: true, force: true })
    setLogSink(restore)
  })

  it('a raw-mode (browser VM) client gets an offer, then a lease, from the gateway; it is counted and logged', async () => {
    const { url } = await start({ nat: 'host' })
    const vm = await client(url)
    const o = await offer(vm, STATION)
    assert.equal(o.type, DHCPOFFER)
    assert.equal(o.yiaddr, parseIpv4('10.0.2.15'), 'the first address of the pool')
    assert.equal(o.router, GW, 'a default route: the stations may go through the gateway')
    assert.equal(o.dns, parseIpv4('10.0.2.3'))
    assert.equal(o.src, '52550a000202', 'from the gateway\'s MAC')
    const ack = await request(vm, STATION, o.yiaddr)
    assert.equal(ack.type, DHCPACK)
    await waitFor(() => gatewayPort().leases === 1, 2000, 'the lease counted')
    assert.ok(logs.some((l) => l.includes('"event":"lease"') && l.includes('"mac":"02:00:00:00:00:11"') && l.includes('"ip":"10.0.2.15"')), 'lease logged')
    assert.ok(logs.some((l) => l.includes('"event":"gateway_started"')))
    // slirp learns the station by ARP, and answers it.
    vm.send([arp(STATION, STATION, 0, GW)])
    await waitFor(() => vm.frames.some(isArpReply), 5000, 'slirp\'s ARP reply')
    const p = server?.ports().find((x) => x.name === 'gateway')
    assert.equal(p?.kind, 'gateway')
    assert.ok((p?.rxFrames ?? 0) >= 3 && (p?.txFrames ?? 0) >= 1, 'frames counted each way')
    assert.equal(p?.txFrames, 1, 'no DHCP went to slirp: only the ARP')
    const metrics = await server?.registry.metrics() ?? ''
    assert.match(metrics, /switchd_gateway_leases_total\{network="lab",kind="dynamic",replica="[^"]*"\} 1/)
    assert.match(metrics, /switchd_gateway_leases\{network="lab",replica="[^"]*"\} 1/)
    assert.match(metrics, /switchd_gateway_up\{network="lab",replica="[^"]*"\} 1/)
    const ctl = await switchctl(['--url', `http://127.0.0.1:${server?.address().port ?? 0}`, 'leases', '--network', 'lab'])
    assert.equal(ctl.code, 0, ctl.stderr)
    assert.match(ctl.stdout.toString(), /^lab\s+10\.0\.2\.15\s+02:00:00:00:00:11\s+dynamic\s+bound\s+\S+Z\s+\S+/m)
  })

  it('shows in switchctl ports as kind gateway, and a capture on the port sees its DHCP', async () => {
    const { server: s, url } = await start({})
    const vm = await client(url)
    const chunks: Buffer[] = []
    const sink = { writableLength: 0, write: (b: Buffer) => { chunks.push(Buffer.from(b)); return true }, end: () => {} }
    const stop = s.captures.start(s.networks.get('lab') as NonNullable<ReturnType<typeof s.networks.get>>, { port: 'gateway' }, { count: 1000, bytes: 1e6, duration: 10 }, sink)
    await offer(vm, STATION)
    stop()
    const frames = parsePcap(Buffer.concat(chunks)).records.map((r) => r.frame)
    assert.ok(dhcpReplies(frames, STATION).some((d) => d.type === DHCPOFFER), 'the offer, captured on the gateway port')
    const ctl = await switchctl(['--url', `http://127.0.0.1:${s.address().port}`, 'ports', '--network', 'lab'])
    assert.equal(ctl.code, 0, ctl.stderr)
    assert.match(ctl.stdout.toString(), /^gateway\s+lab\s+gateway\s+access 1\s+forwarding/m)
  })

  it('a reload that changes a gateway is refused whole (it changes only on restart)', async () => {
    const { server: s } = await start({})
    const stateDir = path.join(dir, 'state')
    assert.equal(s.reload(buildConfig({ stateDir, networks: { lab: { gateway: { nat: false, dhcp: false } } } }, 'test')), false)
    assert.ok(logs.some((l) => l.includes('"event":"config_rejected"') && l.includes('gateway')))
    assert.equal(s.reload(buildConfig({ stateDir, networks: { lab: { gateway: { nat: false }, guards: false } } }, 'test')), false, 'guards change only on restart')
    assert.equal(s.reload(buildConfig({ networks: { lab: { gateway: { nat: false } } } }, 'test')), false, 'the state directory changes only on restart')
    assert.equal(s.reload(buildConfig({ stateDir, networks: { lab: { gateway: { nat: false } } } }, 'test')), true, 'the same gateway: applied')
  })

  it('two stations get two different leases; with nat false no default route is offered', async () => {
    const { url } = await start({ staticLeases: [{ mac: '02:00:00:00:00:aa', ip: '10.0.2.50' }] })
    const a = await client(url)
    const b = await client(url)
    const oa = await offer(a, STATION)
    const ob = await offer(b, STATION + 1)
    assert.notEqual(oa.yiaddr, ob.yiaddr)
    // With restrict=on (nat false) there is no route through the gateway: no router option, static or not.
    assert.equal(oa.router, 0)
    assert.equal((await offer(a, STATIC_MAC)).router, 0)
  })

  it('a static lease is answered with its address (and a NAK for another), from the gateway\'s MAC', async () => {
    const { url } = await start({ nat: 'host', staticLeases: [{ mac: '02:00:00:00:00:aa', ip: '10.0.2.50' }] })
    const vm = await client(url)
    const o = await offer(vm, STATIC_MAC)
    assert.deepEqual([o.type, o.yiaddr, o.router, o.server, o.src], [DHCPOFFER, STATIC_IP, GW, GW, '52550a000202'])
    assert.equal((await request(vm, STATIC_MAC, STATIC_IP)).type, DHCPACK)
    assert.equal((await request(vm, STATIC_MAC, parseIpv4('10.0.2.15') as number)).type, DHCPNAK)
    assert.equal(gatewayPort().staticLeases, 1)
    // Everyone else gets the pool.
    assert.equal((await offer(vm, STATION)).yiaddr, parseIpv4('10.0.2.15'))
  })

  it('dnsForward: false: the offer names no DNS server', async () => {
    const { url } = await start({ nat: 'host', dnsForward: false })
    const o = await offer(await client(url), STATION)
    assert.deepEqual([o.type, o.router, o.dns], [DHCPOFFER, GW, 0])
  })

  it('dhcp: false: DHCP to the gateway is dropped and counted; ARP still answered', async () => {
    const { url } = await start({ dhcp: false })
    const vm = await client(url)
    vm.send([buildDhcpRequest(STATION, DHCPDISCOVER, 1), arp(STATION, STATION, 0, GW)])
    await waitFor(() => vm.frames.some(isArpReply), 5000, 'the ARP reply (barrier)')
    assert.deepEqual(dhcpReplies(vm.take()), [], 'no offer before the barrier')
    assert.equal(gatewayPort().filteredDhcp, 1)
  })

  it('restart: a killed child is restarted after the shortest backoff, leases are served again, and other ports never notice', async () => {
    const { server: s, url } = await start({})
    const vm = await client(url)
    const a = await client(url)
    const b = await client(url)
    await offer(vm, STATION)
    const ids = s.ports().map((p) => p.id).sort()
    const pid = s.gatewayChildren[0]?.child?.pid as number
    process.kill(pid, 'SIGKILL')
    await waitFor(() => logs.some((l) => l.includes('"event":"gateway_exited"')), 3000, 'the exit seen')
    // The LAN goes on meanwhile.
    a.send([eth(BROADCAST, MAC_A, 1)])
    await waitFor(() => b.frames.some((f) => f[14] === 1), 3000, 'a frame across the LAN during the restart')
    // Restarted at once (the first backoff, 250 ms), not after a wait a machine's speed could hide.
    assert.ok(logs.some((l) => l.includes('"event":"gateway_exited"') && l.includes('"restart_in_ms":250')), 'restarted after 250 ms')
    const again = await offer(vm, STATION)
    assert.equal(again.type, DHCPOFFER)
    assert.notEqual(s.gatewayChildren[0]?.child?.pid, pid, 'a new child')
    assert.equal(s.gatewayChildren[0]?.starts, 2)
    assert.deepEqual(s.ports().map((p) => p.id).sort(), ids, 'same ports, the gateway\'s included')
    b.send([eth(MAC_A, MAC_B, 2)])
    await waitFor(() => a.frames.some((f) => f[14] === 2), 3000, 'unicast across the LAN after the restart')
  })

  it('attack: a station sending from the gateway\'s MAC is dropped and does not take its traffic', async () => {
    const { server: s, url } = await start({})
    const vm = await client(url)
    const attacker = await client(url)
    await offer(vm, STATION)
    attacker.send([eth(BROADCAST, '52550a000202', 0xab)])
    // Barrier: an offer sent after the spoofed frame, from the gateway itself.
    vm.send([buildDhcpRequest(STATION, DHCPDISCOVER, 99)])
    await waitFor(() => dhcpReplies(vm.frames, STATION).length > 0, 3000, 'the offer (barrier)')
    assert.ok(!vm.frames.some((f) => f[14] === 0xab && f.readUInt16BE(12) === 0x88b5), 'the spoofed frame was not delivered')
    const spoofer = s.ports().find((p) => p.kind === 'raw' && p.rxFrames === 1)
    assert.equal(spoofer?.drops[R_BAD_SOURCE], 1, 'dropped: a static MAC from another port')
    const rows = (await (await fetch(`http://127.0.0.1:${s.address().port}/api/v1/fdb?network=lab&mac=52:55:0a:00:02:02`)).json()) as Array<{ port: string, static: boolean }>
    assert.deepEqual(rows.map((r) => [r.port, r.static]), [['gateway', true]])
  })

  it('attack: a station cannot reach switchd\'s own port through the gateway, by its address, 127.0.0.1 or 0.0.0.0', async () => {
    const elsewhere = net.createServer((c) => { c.destroy() })
    await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve))
    // The station holds 10.0.2.15 by right (a static lease): slirp hears only a station's own address.
    const { server: s, url } = await start({ nat: true, hostPorts: [`tcp:${(elsewhere.address() as net.AddressInfo).port}`], staticLeases: [{ mac: '02:00:00:00:00:11', ip: '10.0.2.15' }] })
    const vm = await client(url)
    let reached = 0
    s.http.on('connection', () => { reached++ })
    let barrier = 0
    elsewhere.on('connection', () => { barrier++ })
    try {
      const self = s.address().port
      const before = reached
      vm.send([syn(GW, self), syn(parseIpv4('127.0.0.1') as number, self), syn(0, self)])
      // Barrier: the same path to a host port the configuration lists, sent after them, connects.
      vm.send([syn(GW, (elsewhere.address() as net.AddressInfo).port)])
      await waitFor(() => barrier === 1, 5000, 'the connection to the other port (barrier)')
      assert.equal(reached, before, 'no connection reached switchd')
      assert.equal(gatewayPort().filteredSelf, 3)
    } finally {
      elsewhere.close()
    }
  })

  it('an operator\'s disconnect of the gateway port restarts its child', async () => {
    const { server: s, url } = await start({})
    const vm = await client(url)
    const res = await fetch(`http://127.0.0.1:${s.address().port}/api/v1/ports/gateway/disconnect`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
    assert.equal(res.status, 200)
    await waitFor(() => s.gatewayChildren[0]?.starts === 2 && s.gatewayChildren[0].up, 5000, 'a new child')
    assert.equal((await offer(vm, STATION)).type, DHCPOFFER)
  })

  it('attack: 16 DISCOVERs with made-up chaddrs from one station do not take the pool: another station still gets an address', async () => {
    const { server: s, url } = await start({})
    const attacker = await client(url)
    const vm = await client(url)
    const forged = Array.from({ length: 16 }, (_, i) => 0x02000000a000 + i)
    // libslirp gave each DISCOVER's chaddr an address of its 16 (get_new_addr), never to be freed.
    attacker.send(forged.map((chaddr, i) => buildDhcpRequest(STATION + 1, DHCPDISCOVER, 100 + i, 0, 0, 0, chaddr)))
    // Barrier: the attacker's own DISCOVER, sent after them, is answered.
    const own = await offer(attacker, STATION + 1)
    assert.equal(own.type, DHCPOFFER)
    assert.equal(dhcpReplies(attacker.frames).filter((d) => forged.includes(d.mac)).length, 0, 'no reply to a forged chaddr')
    const o = await offer(vm, STATION)
    assert.equal(o.type, DHCPOFFER, 'another station still gets an address')
    assert.notEqual(o.yiaddr, own.yiaddr)
    assert.equal(gatewayPort().server.counters.chaddr, 16)
    assert.match(await s.registry.metrics(), /switchd_gateway_filtered_frames_total\{network="lab",reason="dhcp_chaddr",replica="[^"]*"\} 16/)
  })

  it('attack: after the gateway child restarts (port disconnect gateway), a new station is never offered a running station\'s address', async () => {
    const { server: s, url } = await start({})
    const running = await client(url)
    const held = await offer(running, STATION)
    assert.equal((await request(running, STATION, held.yiaddr)).type, DHCPACK)
    const ctl = await switchctl(['--url', `http://127.0.0.1:${s.address().port}`, 'port', 'disconnect', 'gateway'])
    assert.equal(ctl.code, 0, ctl.stderr)
    await waitFor(() => s.gatewayChildren[0]?.starts === 2 && s.gatewayChildren[0].up, 5000, 'a new child')
    const newcomer = await client(url)
    const o = await offer(newcomer, STATION + 1)
    assert.equal(o.type, DHCPOFFER)
    assert.notEqual(o.yiaddr, held.yiaddr, 'not the running station\'s address')
    // The running station renews its own.
    running.send([buildDhcpRequest(STATION, DHCPREQUEST, 9, 0, 0, held.yiaddr)])
    await waitFor(() => dhcpReplies(running.frames, STATION).some((d) => d.type === DHCPACK), 3000, 'its renewal')
  })

  it('attack: after switchd restarts (the same state directory), a new station is never offered a running station\'s address', async () => {
    const first = await start({})
    const running = await client(first.url)
    const held = await offer(running, STATION)
    assert.equal((await request(running, STATION, held.yiaddr)).type, DHCPACK, 'ACKed: the lease file holds it')
    running.close()
    await first.server.close()
    const leaseFile = path.join(dir, 'state', 'leases', 'lab.json')
    assert.deepEqual(JSON.parse(fs.readFileSync(leaseFile, 'utf8')).leases.map((l: { ip: string }) => parseIpv4(l.ip)), [held.yiaddr])
    const again = await start({})
    const newcomer = await client(again.url)
    const o = await offer(newcomer, STATION + 1)
    assert.notEqual(o.yiaddr, held.yiaddr, 'not the running station\'s address')
    // The running station (INIT-REBOOT after its link came back) keeps its address.
    const back = await client(again.url)
    back.send([buildDhcpRequest(STATION, DHCPREQUEST, 10, held.yiaddr)])
    await waitFor(() => dhcpReplies(back.frames, STATION).length > 0, 3000, 'an answer')
    assert.deepEqual(dhcpReplies(back.frames, STATION).map((d) => [d.type, d.yiaddr]), [[DHCPACK, held.yiaddr]])
    assert.ok(logs.some((l) => l.includes('"event":"leases_loaded"') && l.includes('"held":1')))
  })

  it('attack: a station\'s ARP claiming the gateway\'s address reaches no other station (dropped, counted, in switchctl drops)', async () => {
    const { server: s, url } = await start({})
    const attacker = await client(url)
    const victim = await client(url)
    const claim = arp(STATION + 1, STATION + 1, 0, parseIpv4('10.0.2.15') as number)
    claim.writeUInt16BE(2, 20) // a reply: "10.0.2.2 is at" the attacker
    claim.writeUInt32BE(GW, 28)
    attacker.send([claim, eth(BROADCAST, '020000000012', 0xbb)])
    await waitFor(() => victim.frames.some((f) => f[14] === 0xbb && f.readUInt16BE(12) === 0x88b5), 3000, 'the barrier frame')
    assert.ok(!victim.frames.some((f) => f.readUInt16BE(12) === 0x0806), 'the ARP never reached the victim')
    const ctl = await switchctl(['--url', `http://127.0.0.1:${s.address().port}`, 'drops', '--network', 'lab'])
    assert.equal(ctl.code, 0, ctl.stderr)
    assert.match(ctl.stdout.toString(), /02:00:00:00:00:12.*arp_inspection/)
    assert.match(await s.registry.metrics(), /switchd_frames_dropped_total\{network="lab",reason="arp_inspection",replica="[^"]*"\} 1/)
  })

  it('attack: a rogue DHCP OFFER naming its sender as router reaches no other station (dropped, counted, in switchctl drops)', async () => {
    const { server: s, url } = await start({})
    const attacker = await client(url)
    const victim = await client(url)
    const rogueIp = parseIpv4('10.0.2.66') as number
    const rogue = buildDhcpReply({ type: DHCPOFFER, serverMac: STATION + 1, server: rogueIp, clientMac: STATION, xid: 1, yiaddr: parseIpv4('10.0.2.67') as number, mask: 0xffffff00, router: rogueIp, dns: rogueIp, leaseSeconds: 3600, flags: 0x8000 })
    rogue.fill(0xff, 0, 6)
    attacker.send([rogue, eth(BROADCAST, '020000000012', 0xbb)])
    await waitFor(() => victim.frames.some((f) => f[14] === 0xbb && f.readUInt16BE(12) === 0x88b5), 3000, 'the barrier frame')
    assert.deepEqual(dhcpReplies(victim.frames), [], 'the rogue offer never reached the victim')
    const ctl = await switchctl(['--url', `http://127.0.0.1:${s.address().port}`, 'drops', '--network', 'lab', '--reason', 'dhcp_snooping'])
    assert.equal(ctl.code, 0, ctl.stderr)
    assert.match(ctl.stdout.toString(), /02:00:00:00:00:12.*dhcp_snooping/)
    assert.match(await s.registry.metrics(), /switchd_frames_dropped_total\{network="lab",reason="dhcp_snooping",replica="[^"]*"\} 1/)
  })

  it('guards: false lets both through, as an unmanaged switch would', async () => {
    const { url } = await start({}, { guards: false })
    const attacker = await client(url)
    const victim = await client(url)
    const claim = arp(STATION + 1, STATION + 1, 0, parseIpv4('10.0.2.15') as number)
    claim.writeUInt32BE(GW, 28)
    attacker.send([claim])
    await waitFor(() => victim.frames.some((f) => f.readUInt16BE(12) === 0x0806), 3000, 'the ARP')
  })

  it('attack: a lease file that is not whole stops switchd\'s start, naming the file and the fix; another switchd on it is refused', async () => {
    const leases = path.join(dir, 'state', 'leases')
    fs.mkdirSync(leases, { recursive: true })
    fs.writeFileSync(path.join(leases, 'lab.json'), '{"version":1,"network":"lab","leases":[{"mac":"02:00:00:00:00:11","ip":"10.0.2.15"')
    await assert.rejects(start({}), (err: Error & { code?: string }) => err.code === ERR_STATE && err.message.includes(path.join(leases, 'lab.json')))
    assert.equal(server?.gatewayChildren[0]?.child, undefined, 'no child was started')
    await server?.close()
    fs.rmSync(path.join(leases, 'lab.json'))
    const first = await start({})
    try {
      await assert.rejects(start({}), (err: Error & { code?: string }) => err.code === ERR_STATE && err.message.includes(`pid ${process.pid}`))
    } finally {
      await server?.close()
      server = first.server
    }
  })

  it('attack: a child that keeps dying is restarted with backoff (a storm is bounded)', async () => {
    const fake = path.join(dir, 'fake-qemu')
    // Greets on the QMP socket (ready), then dies at once: the worst case for a restart loop.
    fs.writeFileSync(fake, '#!/bin/sh\necho \'{"QMP": {}}\' >&4\nsleep 0.05\nexit 3\n', { mode: 0o755 })
    const { server: s } = await start({ qemu: fake })
    const delays = (): number[] => logs.filter((l) => l.includes('"event":"gateway_exited"')).map((l) => (JSON.parse(l) as { restart_in_ms: number }).restart_in_ms)
    await waitFor(() => delays().length >= 4, MIN_WAIT_MS, 'four exits')
    // Each exit doubles the wait before the next start (a loop would restart at once, hundreds of times a second).
    assert.deepEqual(delays().slice(0, 4), [250, 500, 1000, 2000])
    assert.ok((s.gatewayChildren[0]?.starts ?? 0) <= delays().length + 1, 'no start but after an exit and its delay')
  })

  it('attack: QEMU missing fails at start with TSW_ERR_CONFIG naming the package', async () => {
    await assert.rejects(start({ qemu: path.join(dir, 'no-such-qemu') }), (err: Error & { code?: string }) =>
      err.code === ERR_CONFIG && err.message.includes('qemu-system-x86') && err.message.includes('networks.lab.gateway'))
  })

  it('attack: publishing a port already in use fails at start with TSW_ERR_CONFIG naming the entry', async () => {
    const busy = net.createServer()
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
    const port = (busy.address() as net.AddressInfo).port
    try {
      await assert.rejects(start({ publish: [{ host: `127.0.0.1:${port}`, guest: '10.0.2.15:22' }] }), (err: Error & { code?: string }) =>
        err.code === ERR_CONFIG && err.message.includes('networks.lab.gateway.publish[0].host') && err.message.includes('EADDRINUSE'))
    } finally {
      busy.close()
    }
  })
})
