/**
 * Issue 21, attacked afresh: cases beyond the list, each against a
 * real switchd with a real QEMU 7.2 child (libslirp) and raw-mode WebSocket
 * clients as stations. Nothing leaves loopback: slirp runs with nat "host"
 * (the only host ports listed being the test's own on 127.0.0.1) or false.
 *
 * The flow model (core/gateway-flows.ts) may let a flow go only when slirp
 * must have let its socket go: a frame slirp drops (TTL 0, a bad UDP
 * checksum) must not make the model believe a close, or a short expiry.
 */

import { whoHas, isArpReply } from '../helpers/frames'
import assert from 'node:assert/strict'
import * as dgram from 'node:dgram'
import { spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import type { GatewayPort } from '../../src/switch/io/gateway-port'
import { setLogSink } from '../../src/common/log'
import { clientKeyOf } from '../../src/common/address'
import { TestClient } from '../helpers/client'
import { waitFor } from '../helpers/net'
import { requireTools } from '../helpers/proc'
import { ip4, readTcp, readUdp, TCP, UDP, ICMP, SYN, ACK, RST, FIN } from '../helpers/ipv4'
import { prefixed, FrameReader } from '../helpers/stream-peer'
import { LEASE_OFFERED, LEASE_BOUND } from '../../src/switch/core/leases'
import { ARP_BURST, ARP_PER_SECOND } from '../../src/switch/core/gateway-arp'
import { launcherPath } from '../../src/switch/io/gateway-sandbox'
import { buildDhcpRequest, ipv4At, dhcpAt, dhcpType, dhcpClientMac, dhcpYourAddress, parseIpv4, DHCPDISCOVER, DHCPREQUEST, DHCPOFFER, DHCPACK, DHCP_SERVER_PORT, DHCP_CLIENT_PORT } from '../../src/common/dhcp'

const STATION_A = 0x020000000021
const STATION_B = 0x020000000022



/** The DHCP message type and yiaddr of a reply from the gateway to `mac`, or undefined. */
function dhcpReply (f: Buffer, mac: number): { type: number, yiaddr: number } | undefined {
  const l3 = ipv4At(f, 0, f.length)
  const b = l3 < 0 ? -1 : dhcpAt(f, l3, f.length, DHCP_SERVER_PORT, DHCP_CLIENT_PORT)
  if (b < 0 || dhcpClientMac(f, b) !== mac) return undefined
  return { type: dhcpType(f, b, f.length), yiaddr: dhcpYourAddress(f, b) }
}

describe('gateway: attacked afresh (integration)', function () {
  this.timeout(30_000)
  let server: SwitchServer | undefined
  const clients: TestClient[] = []
  let dir: string
  const logs: string[] = []
  let restore: (line: string) => void

  before(function () { requireTools(this, [{ cmd: 'qemu-system-x86_64', pkg: 'qemu-system-x86' }, { cmd: 'setpriv', pkg: 'util-linux' }]) })

  async function start (gateway: Record<string, unknown>, extra: Record<string, unknown> = {}, network: Record<string, unknown> = {}): Promise<{ server: SwitchServer, url: string }> {
    const staticLeases = [{ mac: '02:00:00:00:00:21', ip: '10.0.2.15' }, { mac: '02:00:00:00:00:22', ip: '10.0.2.16' }]
    const s = new SwitchServer({ config: buildConfig({ stateDir: path.join(dir, 'state'), networks: { lab: { ...network, gateway: { staticLeases, ...gateway } } }, ...extra }, 'test'), host: '127.0.0.1', port: 0 })
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

  /** Send `frames`, then an ARP: once it is answered, the gateway port has judged them all. */
  async function sendAndBarrier (c: TestClient, mac: number, ip: string, frames: Buffer[]): Promise<void> {
    c.take()
    c.send(frames)
    c.send([whoHas(mac, ip)])
    await waitFor(() => c.frames.some(isArpReply), 5000, 'the ARP reply (barrier)')
  }

  const gatewayPort = (): GatewayPort => server?.gatewayChildren[0]?.port as GatewayPort

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-attack-'))
    logs.length = 0
    restore = setLogSink((l) => { logs.push(l) })
  })

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-30).join('\n') + '\n')
    for (const c of clients.splice(0)) c.close()
    await server?.close()
    fs.rmSync(dir, { recursive: true, force: true })
    server = undefined
    setLogSink(restore)
  })

  /**
   * DISCOVER then REQUEST from `mac` on a port whose frames go by `send`
   * and come back in `frames`. After each message a barrier (an ARP probe's
   * answer from the child) says the server has decided; the lease table says
   * what, and when it made a record, its reply is awaited (an ACK leaves once
   * the lease file holds it). Returns the address ACKed, or 0.
   */
  async function lease (send: (f: Buffer[]) => void, frames: Buffer[], mac: number, xid: number): Promise<number> {
    const probe = whoHas(mac, '0.0.0.0')
    const step = async (msg: Buffer, type: number, state: number): Promise<number> => {
      frames.length = 0
      send([msg, probe])
      await waitFor(() => frames.some(isArpReply), 5000, 'the ARP reply (barrier)')
      if (gatewayPort().server.leases.lookup(mac)?.state !== state) return 0
      let r: ReturnType<typeof dhcpReply>
      await waitFor(() => { r = frames.map((f) => dhcpReply(f, mac)).find((x) => x?.type === type); return r !== undefined }, 5000, 'the server\'s reply')
      return (r as NonNullable<typeof r>).yiaddr
    }
    const offered = await step(buildDhcpRequest(mac, DHCPDISCOVER, xid), DHCPOFFER, LEASE_OFFERED)
    if (offered === 0) return 0
    return await step(buildDhcpRequest(mac, DHCPREQUEST, xid, offered, parseIpv4('10.0.2.2')), DHCPACK, LEASE_BOUND)
  }

  it('attack: one client address cannot take the pool through many ports (leasesPerPort each); another client still gets an address', async () => {
    const vmSocket = path.join(dir, 'vm.sock')
    const { url } = await start({ dhcpStart: '10.0.2.100', poolSize: 16, nat: false }, { qemu: [{ name: 'vm', network: 'lab', listen: `unix:${vmSocket}` }] })
    let got = 0
    // Five browser tabs of one address (loopback is one client), four made-up MACs each: leasesPerPort (4) lets each port ask.
    for (let p = 0; p < 5; p++) {
      const c = await TestClient.raw(url)
      clients.push(c)
      for (let k = 0; k < 4; k++) {
        if (await lease((f) => { c.send(f) }, c.frames, 0x020000010000 + p * 16 + k, p * 16 + k + 1) !== 0) got++
      }
    }
    assert.equal(got, 4, 'the address\'s leases (leasesPerClient: a quarter of the pool by default)')
    // A VM behind a QEMU listener, a client of its own, still gets an address.
    const sock = net.connect(vmSocket)
    await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) })
    try {
      const reader = new FrameReader(sock, 4)
      const ip = await lease((f) => { sock.write(prefixed(f, 4)) }, reader.frames, 0x020000020001, 99)
      assert.notEqual(ip, 0, 'the VM got no address: the pool is gone')
    } finally {
      sock.destroy()
    }
  })

  it('attack: a client\'s leases still count for it after switchd restarts: the restart gives it no fresh share', async () => {
    // Any gateway change needs a restart. Before: the lease file kept the leases but not whom they counted for,
    // so after each restart a client took another quarter of the pool while its old leases held theirs.
    const take = async (url: string, base: number): Promise<number> => {
      const c = await TestClient.raw(url)
      clients.push(c)
      let got = 0
      for (let k = 0; k < 4; k++) if (await lease((f) => { c.send(f) }, c.frames, base + k, (base & 0xffff) + k + 1) !== 0) got++
      c.close()
      return got
    }
    const gw = { dhcpStart: '10.0.2.100', poolSize: 16, nat: false }
    const first = await start(gw)
    assert.equal(await take(first.url, 0x020000050000), 4, 'its share: a quarter of the pool')
    await server?.close()
    for (const c of clients.splice(0)) c.close()
    const again = await start(gw)
    assert.equal(await take(again.url, 0x020000050100), 0, 'a fresh share after the restart')
    assert.equal(gatewayPort().server.leases.countForClient(clientKeyOf('127.0.0.1')), 4, 'its leases, read back, count for it')
  })

  it('attack: where the guards are off, one client\'s ARPs for every address of the pool do not take it from the others (its marks count against its share)', async () => {
    // An ARP shows an address in use, which is then not offered to anyone for 10 minutes (a hand-set station's).
    // Before: those marks counted for nobody: one client's ARPs, one per address (gratuitous ones slirp does not even
    // learn from, so outside its ARP share), left no address to offer: the VM got none, whatever leasesPerClient said.
    const vmSocket = path.join(dir, 'vm.sock')
    const { url } = await start({ dhcpStart: '10.0.2.100', poolSize: 16, nat: false }, { qemu: [{ name: 'vm', network: 'lab', listen: `unix:${vmSocket}` }] }, { guards: false })
    const c = await TestClient.raw(url)
    clients.push(c)
    const attacker = 0x020000040001
    const claims: Buffer[] = []
    for (let i = 0; i < 16; i++) claims.push(whoHas(attacker, `10.0.2.${100 + i}`, `10.0.2.${100 + i}`)) // gratuitous: sender = target
    await sendAndBarrier(c, attacker, '10.0.2.115', claims)
    const sock = net.connect(vmSocket)
    await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) })
    try {
      const reader = new FrameReader(sock, 4)
      const ip = await lease((f) => { sock.write(prefixed(f, 4)) }, reader.frames, 0x020000020001, 99)
      assert.notEqual(ip, 0, 'the VM got no address: one client\'s ARPs took the pool')
    } finally {
      sock.destroy()
    }
    assert.equal(gatewayPort().server.leases.countForClient(clientKeyOf('127.0.0.1')), 4, 'its marks: its share (a quarter of the pool)')
  })

  it('attack: a client that leaves and comes back does not get a fresh share: its leases still count for it', async () => {
    const vmSocket = path.join(dir, 'vm.sock')
    const { url } = await start({ dhcpStart: '10.0.2.100', poolSize: 16, nat: false }, { qemu: [{ name: 'vm', network: 'lab', listen: `unix:${vmSocket}` }] })
    let got = 0
    // One tab at a time: four leases, then close and open again (each a new port; the leases stay bound for leaseTime).
    for (let round = 0; round < 5; round++) {
      const c = await TestClient.raw(url)
      clients.push(c)
      for (let k = 0; k < 4; k++) {
        if (await lease((f) => { c.send(f) }, c.frames, 0x020000030000 + round * 16 + k, round * 16 + k + 1) !== 0) got++
      }
      c.close()
      await waitFor(() => server?.gatewayChildren[0]?.port.network.ports.length === 2, 5000, 'the tab\'s port gone')
    }
    assert.equal(got, 4, 'the address\'s leases, over all its ports, past and present')
    const sock = net.connect(vmSocket)
    await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) })
    try {
      const reader = new FrameReader(sock, 4)
      assert.notEqual(await lease((f) => { sock.write(prefixed(f, 4)) }, reader.frames, 0x020000020001, 99), 0, 'the VM got no address: the pool is gone')
    } finally {
      sock.destroy()
    }
  })

  it('attack: the gateway\'s child signals only itself and opens no Unix socket (the launcher\'s seccomp filter; Landlock scopes signals and abstract sockets only from Linux 6.12)', function () {
    requireTools(this, [{ cmd: 'python3', pkg: 'python3' }])
    const launcher = launcherPath()
    assert.ok(launcher !== undefined, 'npm install builds the launcher')
    // Without --user the child keeps the test's uid (root): only the filter stands between it and kill(2).
    // A child that runs as switchd's own user (switchd not root, as under the shipped unit) could otherwise stop switchd,
    // or reach switchd's QEMU listeners and the host's abstract sockets.
    const probe = `
import os, socket
out = []
for t in (os.getppid(), 1, -1, 0):
    try: os.kill(t, 0); out.append(f"{t}=yes")
    except OSError: out.append(f"{t}=no")
for name, make in (("unix", lambda: socket.socket(socket.AF_UNIX)), ("pair", socket.socketpair), ("tcp", lambda: socket.socket(socket.AF_INET))):
    try: make(); out.append(f"{name}=yes")
    except OSError: out.append(f"{name}=no")
os.kill(os.getpid(), 0)
print(" ".join(out), "self=yes")
`
    const r = spawnSync(launcher, ['--parent', String(process.pid), '--nofile', '64', '--', '/usr/bin/python3', '-c', probe], { encoding: 'utf8', timeout: 10_000 })
    assert.equal(r.stdout.trim(), `${process.pid}=no 1=no -1=no 0=no unix=no pair=no tcp=yes self=yes`, r.stderr)
  })

  it('attack: the gateway\'s child cannot signal another process through a file\'s owner (F_SETOWN, FIOSETOWN), nor make a Unix socket through io_uring, take another\'s fd (pidfd_getfd) or open vsock and netlink sockets', async function () {
    requireTools(this, [{ cmd: 'python3', pkg: 'python3' }])
    const launcher = launcherPath()
    assert.ok(launcher !== undefined, 'npm install builds the launcher')
    // Before: the kernel sent the file's SIGIO, made SIGTERM by F_SETSIG, to the victim (killed); io_uring's
    // IORING_OP_SOCKET made an AF_UNIX socket that connected to a listener of the host; pidfd_getfd took an fd.
    // Syscall numbers: the same on x86_64 and aarch64 (the unified table from Linux 5.1).
    const probe = `
import ctypes, fcntl, os, signal, socket, struct, sys, time
victim = int(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
out = []
def t(name, f):
    try: f(); out.append(name + "=yes")
    except OSError: out.append(name + "=no")
def sc(nr, *args):
    r = libc.syscall(nr, *args)
    if r < 0: raise OSError(ctypes.get_errno(), "syscall")
    return r
pidfd = sc(434, victim, 0)
t("pidfd_getfd", lambda: sc(438, pidfd, 0, 0))
r, w = os.pipe()
t("setown", lambda: fcntl.fcntl(r, fcntl.F_SETOWN, victim))
fcntl.fcntl(r, 10, signal.SIGTERM)  # F_SETSIG
fcntl.fcntl(r, fcntl.F_SETFL, os.O_ASYNC | os.O_NONBLOCK)
os.write(w, b"x")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
t("fiosetown", lambda: fcntl.ioctl(s, 0x8901, struct.pack("i", victim)))
t("siocspgrp", lambda: fcntl.ioctl(s, 0x8902, struct.pack("i", victim)))
fcntl.fcntl(s, 10, signal.SIGTERM)
fcntl.fcntl(s, fcntl.F_SETFL, os.O_ASYNC | os.O_NONBLOCK)
s.bind(("127.0.0.1", 0)); s.sendto(b"x", s.getsockname())
t("io_uring", lambda: sc(425, 4, ctypes.create_string_buffer(120)))
t("vsock", lambda: socket.socket(40, socket.SOCK_STREAM))
t("netlink", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
t("inet6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM))
t("own", lambda: fcntl.fcntl(r, fcntl.F_SETOWN, os.getpid()))
time.sleep(0.2)
print(" ".join(out))
`
    const victim = spawn('sleep', ['60'], { stdio: 'ignore' })
    try {
      const r = spawnSync(launcher, ['--parent', String(process.pid), '--nofile', '64', '--', '/usr/bin/python3', '-c', probe, String(victim.pid)], { encoding: 'utf8', timeout: 10_000 })
      assert.equal(r.stdout.trim(), 'pidfd_getfd=no setown=no fiosetown=no siocspgrp=no io_uring=no vsock=no netlink=no inet6=yes own=yes', r.stderr)
      await new Promise((resolve) => setTimeout(resolve, 100))
      assert.equal(victim.exitCode, null, 'the victim is alive')
      assert.equal(victim.signalCode, null, 'the victim got no signal')
    } finally {
      victim.kill('SIGKILL')
    }
  })

  it('attack: the gateway\'s child cannot type into the terminal switchd was started from (no controlling terminal; TIOCSTI refused)', function () {
    requireTools(this, [{ cmd: 'python3', pkg: 'python3' }, { cmd: 'script', pkg: 'bsdutils' }])
    const launcher = launcherPath()
    assert.ok(launcher !== undefined, 'npm install builds the launcher')
    // script(1) runs the launcher on a terminal of its own, as a shell would run switchd. Before: the child (any
    // user: /dev/tty is 0666, and it was its controlling terminal) opened /dev/tty without Landlock and typed into it.
    const probe = `
import fcntl, os, termios
out = []
try: os.open("/dev/tty", os.O_RDWR); out.append("devtty=yes")
except OSError: out.append("devtty=no")
try: fcntl.ioctl(0, termios.TIOCSTI, b" "); out.append("tiocsti=yes")
except OSError: out.append("tiocsti=no")
print("PROBE", " ".join(out))
`
    const file = path.join(dir, 'tty-probe.py')
    fs.writeFileSync(file, probe)
    const inner = `${launcher} --parent $$ --nofile 64 -- /usr/bin/python3 ${file}; true`
    const r = spawnSync('script', ['-qec', `bash -c '${inner}'`, '/dev/null'], { encoding: 'utf8', timeout: 10_000 })
    assert.match(r.stdout, /PROBE devtty=no tiocsti=no/, r.stdout + r.stderr)
  })

  it('attack: the gateway\'s child gets no capability from a switchd that holds one without being root (CAP_NET_ADMIN for --tap)', function () {
    requireTools(this, [{ cmd: 'setpriv', pkg: 'util-linux' }])
    if (process.getuid?.() !== 0) {
      if (process.env.CI === 'true') throw new Error('this test needs root to give a user an ambient capability, and CI must run it')
      this.skip()
    }
    const launcher = launcherPath()
    assert.ok(launcher !== undefined, 'npm install builds the launcher')
    // switchd as an unprivileged user with ambient CAP_NET_ADMIN (deploy/systemd/switchd-tap.conf) runs the launcher
    // without --user. Before: the capability survived into QEMU (ambient survives execve), where a station that took
    // the child over could reconfigure the host's interfaces through an AF_INET socket's ioctls.
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=+net_admin', '--ambient-caps=+net_admin',
      launcher, '--parent', String(process.pid), '--nofile', '64', '--', '/bin/grep', '^Cap\\(Inh\\|Prm\\|Eff\\|Amb\\)', '/proc/self/status'], { encoding: 'utf8', timeout: 10_000 })
    assert.equal(r.status, 0, r.stderr)
    assert.deepEqual(r.stdout.trim().split('\n').map((l) => l.replace(/\s+/g, ' ')), ['CapInh: 0000000000000000', 'CapPrm: 0000000000000000', 'CapEff: 0000000000000000', 'CapAmb: 0000000000000000'])
  })

  it('attack: an RST that libslirp drops (TTL 0) frees none of the station\'s share: its open connections stay counted', async () => {
    // A host service that keeps every connection open: slirp holds one socket for each for as long.
    const held: net.Socket[] = []
    const service = net.createServer((c) => { c.on('error', () => {}); held.push(c) })
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve))
    const port = (service.address() as net.AddressInfo).port
    try {
      const { url } = await start({ nat: 'host', hostPorts: [`tcp:${port}`], flowsPerClient: 16 })
      const a = await station(url, STATION_A, '10.0.2.15')
      const tcp = (sport: number, flags: number, seq: number, ack = 0, ttl = 64): Buffer =>
        ip4({ proto: TCP, dst: '10.0.2.2', sport, dport: port, flags, seq, ack, ttl, smac: STATION_A })
      for (let i = 0; i < 16; i++) {
        const sport = 41000 + i
        a.take()
        a.send([tcp(sport, SYN, 1000)])
        let synAck: ReturnType<typeof readTcp>
        await waitFor(() => { synAck = a.frames.map(readTcp).find((t) => t?.dport === sport && t.flags === (SYN | ACK)); return synAck !== undefined }, 5000, 'a SYN-ACK')
        const their = (synAck as NonNullable<typeof synAck>).seq
        // Established; then a reset slirp's ip_input drops (TTL 0: it answers time-exceeded and keeps the connection).
        a.send([tcp(sport, ACK, 1001, their + 1), tcp(sport, RST | ACK, 1001, their + 1, 0)])
      }
      await sendAndBarrier(a, STATION_A, '10.0.2.15', [])
      await waitFor(() => held.length === 16, 5000, 'the service\'s 16 connections')
      // Past every close margin of the model: slirp still holds the 16 open connections, so must the model.
      gatewayPort().expire(performance.now() + 10 * 60_000)
      assert.equal(gatewayPort().flows.flows, 16, 'the model let go of connections slirp holds')
      await sendAndBarrier(a, STATION_A, '10.0.2.15', [tcp(42000, SYN, 1000)])
      assert.equal(gatewayPort().filteredFlows, 1, 'a 17th connection is over the share')
      await new Promise((resolve) => setTimeout(resolve, 200))
      assert.equal(held.length, 16, 'slirp opened no more than the share')
    } finally {
      for (const c of held) c.destroy()
      service.close()
    }
  })

  it('attack: a station that never acknowledges the gateway\'s FIN, and pushes itself out of slirp\'s ARP table, does not get its share back while slirp retransmits', async () => {
    // The host service closes when the station does: slirp then sends its FIN and waits in LAST_ACK for the station's ACK.
    const service = net.createServer((c) => { c.on('error', () => {}); c.on('end', () => { c.end() }) })
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve))
    const port = (service.address() as net.AddressInfo).port
    try {
      // 16 more stations with addresses by right: their ARPs (which the guards pass) push A out of slirp's 16-entry table.
      const others = Array.from({ length: 16 }, (_, k) => ({ mac: `02:00:00:00:01:${(k + 16).toString(16)}`, ip: `10.0.2.${100 + k}` }))
      const { server: s, url } = await start({ nat: 'host', hostPorts: [`tcp:${port}`], flowsPerClient: 16, staticLeases: [{ mac: '02:00:00:00:00:21', ip: '10.0.2.15' }, ...others] })
      const pid = s.gatewayChildren[0]?.child?.pid as number
      const a = await station(url, STATION_A, '10.0.2.15')
      const tcp = (sport: number, flags: number, seq: number, ack = 0): Buffer => ip4({ proto: TCP, dst: '10.0.2.2', sport, dport: port, flags, seq, ack, smac: STATION_A })
      const fds = (): number => fs.readdirSync(`/proc/${pid}/fd`).length
      const before = fds()
      for (let i = 0; i < 16; i++) {
        const sport = 46000 + i
        a.take()
        a.send([tcp(sport, SYN, 1000)])
        let t: ReturnType<typeof readTcp>
        await waitFor(() => { t = a.frames.map(readTcp).find((x) => x?.dport === sport && x.flags === (SYN | ACK)); return t !== undefined }, 5000, 'a SYN-ACK')
        const their = (t as NonNullable<typeof t>).seq + 1
        a.send([tcp(sport, FIN | ACK, 1001, their)])
        await waitFor(() => a.frames.some((f) => { const x = readTcp(f); return x?.dport === sport && (x.flags & FIN) !== 0 }), 5000, 'the gateway\'s FIN')
      }
      const evict = others.map((o) => whoHas(parseInt(o.mac.replace(/:/g, ''), 16), o.ip, '10.0.2.2', 0x52550a000202))
      await sendAndBarrier(a, STATION_A, '0.0.0.0', evict) // a probe from 0.0.0.0 as the barrier: slirp learns nothing from it
      assert.ok(fds() - before >= 16, `slirp holds the 16 connections in LAST_ACK (${fds() - before} descriptors)`)
      // 31 s on, with no retransmission seen (slirp asks who A is, in vain), slirp still holds them: so must the model.
      gatewayPort().expire(performance.now() + 31_000)
      assert.equal(gatewayPort().flows.flows, 16, 'the model let go of connections slirp holds')
    } finally {
      service.close()
    }
  })

  it('attack: one client\'s ARPs to the gateway take only its share: they cannot keep pushing another station out of slirp\'s 16-entry ARP table', async () => {
    const echo = dgram.createSocket('udp4')
    echo.on('message', (m, r) => { echo.send(m, r.port, r.address) })
    await new Promise<void>((resolve) => echo.bind(0, '127.0.0.1', resolve))
    const port = echo.address().port
    try {
      const others = Array.from({ length: 16 }, (_, k) => ({ mac: `02:00:00:00:01:${(k + 16).toString(16)}`, ip: `10.0.2.${100 + k}` }))
      const vmSocket = path.join(dir, 'vm.sock')
      const { url } = await start({ nat: 'host', hostPorts: [`udp:${port}`], staticLeases: [{ mac: '02:00:00:00:00:22', ip: '10.0.2.16' }, ...others] },
        { qemu: [{ name: 'vm', network: 'lab', listen: `unix:${vmSocket}` }] })
      // The victim: a VM behind a QEMU listener (a client of its own) that answers slirp's ARP requests.
      const sock = net.connect(vmSocket)
      await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) })
      const reader = new FrameReader(sock, 4)
      const vm = (frames: Buffer[]): void => { sock.write(prefixed(frames, 4)) }
      vm([whoHas(STATION_B, '10.0.2.16')])
      await waitFor(() => reader.frames.some(isArpReply), 5000, 'the gateway\'s ARP reply to the VM')
      reader.take()
      const attacker = await TestClient.raw(url)
      clients.push(attacker)
      const evict = others.map((o) => whoHas(parseInt(o.mac.replace(/:/g, ''), 16), o.ip, '10.0.2.2', 0x52550a000202))
      let asked = 0
      const started = performance.now()
      for (let i = 0; i < 100; i++) {
        attacker.send(evict)
        vm([ip4({ proto: UDP, src: '10.0.2.16', dst: '10.0.2.2', sport: 47000, dport: port, smac: STATION_B, payload: Buffer.from(`n${i}`) })])
        let got = false
        await waitFor(() => {
          for (const f of reader.take()) {
            if (f.readUInt16BE(12) === 0x0806 && f.readUInt16BE(20) === 1 && f.readUInt32BE(38) === 0x0a000210) {
              asked++
              const r = whoHas(STATION_B, '10.0.2.16', '10.0.2.2', f.readUIntBE(6, 6)); r.writeUInt16BE(2, 20); r.writeUIntBE(f.readUIntBE(22, 6), 32, 6)
              vm([r])
            } else if (readUdp(f)?.payload.toString() === `n${i}`) got = true
          }
          return got
        }, 5000, `the echo of datagram ${i}`)
      }
      const seconds = (performance.now() - started) / 1000
      const passed = 100 * 16 - gatewayPort().filteredArpRate
      assert.ok(passed <= ARP_BURST + ARP_PER_SECOND * (seconds + 1), `${passed} of the attacker's 1600 ARPs reached slirp in ${seconds.toFixed(1)} s`)
      assert.ok(asked <= passed / 16 + 2, `slirp asked who the VM is ${asked} times (for ${passed} ARPs that reached it)`)
      sock.destroy()
    } finally {
      echo.close()
    }
  })

  it('attack: a station cannot speak to slirp from another station\'s address: its forged RST does not cut that station\'s connection', async () => {
    const closed: string[] = []
    const service = net.createServer((c) => { c.on('error', () => {}); c.on('close', () => { closed.push('closed') }); c.write('hello\n') })
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve))
    const port = (service.address() as net.AddressInfo).port
    try {
      const { url } = await start({ nat: 'host', hostPorts: [`tcp:${port}`] })
      const a = await station(url, STATION_A, '10.0.2.15')
      const b = await station(url, STATION_B, '10.0.2.16', '127.0.0.1')
      // B connects; the connection is open both ways.
      b.send([ip4({ proto: TCP, src: '10.0.2.16', dst: '10.0.2.2', sport: 48000, dport: port, flags: SYN, seq: 1000, smac: STATION_B })])
      let synAck: ReturnType<typeof readTcp>
      await waitFor(() => { synAck = b.frames.map(readTcp).find((t) => t?.dport === 48000 && t.flags === (SYN | ACK)); return synAck !== undefined }, 5000, 'B\'s SYN-ACK')
      b.send([ip4({ proto: TCP, src: '10.0.2.16', dst: '10.0.2.2', sport: 48000, dport: port, flags: ACK, seq: 1001, ack: (synAck as NonNullable<typeof synAck>).seq + 1, smac: STATION_B })])
      await waitFor(() => b.frames.some((f) => { const t = readTcp(f); return t?.dport === 48000 && t.len > 0 }), 5000, 'the service\'s greeting to B')
      // A forges B's source: two resets cover every sequence number slirp would take (BSD takes any at or left of its window's edge).
      await sendAndBarrier(a, STATION_A, '10.0.2.15', [0, 0x80000000].map((seq) =>
        ip4({ proto: TCP, src: '10.0.2.16', dst: '10.0.2.2', sport: 48000, dport: port, flags: RST, seq, smac: STATION_A })))
      await new Promise((resolve) => setTimeout(resolve, 300))
      assert.deepEqual(closed, [], 'B\'s connection was cut by A\'s forged reset')
      assert.equal(gatewayPort().filteredSource, 2)
    } finally {
      service.close()
    }
  })

  it('attack: a datagram to port 53 that libslirp drops (bad checksum) does not shorten the model\'s hold on that source port', async () => {
    // A UDP service that answers when the test says: slirp's socket for each source port gets one reply, after both datagrams.
    const svc = dgram.createSocket('udp4')
    const peers = new Map<number, number>()
    svc.on('message', (_m, r) => { peers.set(r.port, (peers.get(r.port) ?? 0) + 1) })
    await new Promise<void>((resolve) => svc.bind(0, '127.0.0.1', resolve))
    const port = svc.address().port
    try {
      const { url } = await start({ nat: 'host', hostPorts: [`udp:${port}`], flowsPerClient: 16 })
      const a = await station(url, STATION_A, '10.0.2.15')
      const frames: Buffer[] = []
      for (let i = 0; i < 16; i++) {
        const sport = 43000 + i
        frames.push(ip4({ proto: UDP, dst: '10.0.2.2', sport, dport: port, smac: STATION_A, payload: Buffer.from('hi') }))
        // slirp drops it before it records the destination port: its socket's last port stays the service's (240 s).
        frames.push(ip4({ proto: UDP, dst: '10.0.2.3', sport, dport: 53, smac: STATION_A, payload: Buffer.from('dns?'), badChecksum: true }))
      }
      await sendAndBarrier(a, STATION_A, '10.0.2.15', frames)
      await waitFor(() => peers.size === 16, 5000, 'one host socket per source port')
      const hostPorts = [...peers.keys()]
      for (const p of hostPorts) svc.send('re', p, '127.0.0.1')
      await waitFor(() => a.frames.filter((f) => readUdp(f)?.sport === port).length >= 16, 5000, 'the 16 replies')
      // 13 s later slirp still holds the 16 sockets (240 s after the reply): so must the model.
      gatewayPort().expire(performance.now() + 13_000)
      assert.equal(gatewayPort().flows.flows, 16, 'the model let go of sockets slirp holds')
      const more: Buffer[] = []
      for (let i = 0; i < 16; i++) more.push(ip4({ proto: UDP, dst: '10.0.2.2', sport: 44000 + i, dport: port, smac: STATION_A, payload: Buffer.from('more') }))
      await sendAndBarrier(a, STATION_A, '10.0.2.15', more)
      assert.equal(gatewayPort().filteredFlows, 16, 'new source ports are over the share')
      await new Promise((resolve) => setTimeout(resolve, 200))
      assert.equal(peers.size, 16, 'slirp opened no more sockets than the share')
    } finally {
      svc.close()
    }
  })

  it('attack: a station cannot make the gateway answer by broadcast (a source of 10.0.2.255, 255.255.255.255, 0.0.0.0) nor flush its ARP table with addresses outside the subnet', async () => {
    const svc = net.createServer((c) => { c.on('error', () => {}); c.end() })
    await new Promise<void>((resolve) => svc.listen(0, '127.0.0.1', resolve))
    const port = (svc.address() as net.AddressInfo).port
    try {
      const { url } = await start({ nat: 'host', hostPorts: [`tcp:${port}`] })
      const a = await station(url, STATION_A, '10.0.2.15')
      const b = await station(url, STATION_B, '10.0.2.16')
      const big = Buffer.alloc(1400, 0x55)
      const forged: Buffer[] = []
      for (const src of ['10.0.2.255', '255.255.255.255', '0.0.0.0', '10.0.2.0', '192.0.2.9']) { // 10.0.2.2 itself: the guards' (unit test)
        forged.push(ip4({ proto: ICMP, src, dst: '10.0.2.2', payload: big, smac: STATION_A }))
        forged.push(ip4({ proto: TCP, src, dst: '10.0.2.2', sport: 45000, dport: port, flags: SYN, smac: STATION_A }))
      }
      // slirp's ARP table has 16 entries, taken round-robin: 16 made-up senders outside the subnet would push every station out.
      for (let i = 1; i <= 16; i++) forged.push(whoHas(STATION_A, `192.0.2.${i}`, '10.0.2.2', 0x52550a000202))
      b.take()
      await sendAndBarrier(a, STATION_A, '10.0.2.15', forged)
      // B asks the host service: its SYN-ACK comes straight back, with no ARP for B first (slirp still knows B).
      b.send([ip4({ proto: TCP, src: '10.0.2.16', dst: '10.0.2.2', sport: 45001, dport: port, flags: SYN, smac: STATION_B })])
      const arpForB = (f: Buffer): boolean => f.readUInt16BE(12) === 0x0806 && f.readUInt16BE(20) === 1 && f.readUInt32BE(38) === 0x0a000210
      await waitFor(() => b.frames.some((f) => readTcp(f)?.dport === 45001 || arpForB(f)), 5000, 'B\'s SYN-ACK (or slirp asking who B is)')
      const seen = b.frames.filter((f) => f.readUIntBE(6, 6) === 0x52550a000202).map((f) => f.readUInt16BE(12) === 0x0806 ? `arp ${f.readUInt16BE(20)} for ${[...f.subarray(38, 42)].join('.')}` : `ip ${[...f.subarray(26, 30)].join('.')} > ${[...f.subarray(30, 34)].join('.')} proto ${f[23] as number}`)
      assert.deepEqual(seen, ['ip 10.0.2.2 > 10.0.2.16 proto 6'], 'B got only its own answer from the gateway: no broadcast reply, no ARP from slirp')
      assert.equal(gatewayPort().filteredSource, 10 + 16)
    } finally {
      svc.close()
    }
  })
})
