/**
 * Issue 21, findings 1-3, attacked as a station would, with a real QEMU
 * child (libslirp 4.7.0) and NAT on: switchd runs in a network namespace of
 * its own (only `lo`, 192.0.2.1/32 on it standing for the host's interface
 * address, 169.254.169.254/32 for a cloud's metadata service), listening
 * on 0.0.0.0, so nothing its NAT does can leave the machine. The only way
 * out of that namespace is a veth to a second namespace of the test, the
 * "outside" (198.51.100.2). Stations are raw WebSocket clients that reach
 * switchd through Unix sockets a helper in the namespace forwards (one per
 * client address: 192.0.2.11 and .12, since all of loopback is one client), and write their
 * own frames: SYNs with right checksums, fragments, floods.
 *
 * On 14ad2cc every `attack:` test here fails: 255.255.255.255 and the host's
 * interface address reach switchd's API, 127.0.0.1's services and the
 * metadata address answer, fragments pass, a flood of source ports takes
 * thousands of the child's descriptors.
 */

import { whoHas, isArpReply } from '../helpers/frames'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as http from 'node:http'
import * as os from 'node:os'
import * as path from 'node:path'
import { run } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { requireTools, spawnLogged, waitForLine, type Logged } from '../helpers/proc'
import { waitFor } from '../helpers/net'
import { TestClient } from '../helpers/client'
import { ip4, readTcp, readUdp, fragments, TCP, UDP, SYN, ACK, RST } from '../helpers/ipv4'

const ROOT = path.join(__dirname, '..', '..')
const NS = 'tsw-gwr-sw'
const OUT = 'tsw-gwr-out'
/** switchd's listeners in its namespace: the attacked one (0.0.0.0), and one whose gateway lists a host port. */
const API = 18080
const API2 = 18081
const TOKEN = 'gwr-admin-token-0123456789abcdef'
/** Services on this host's loopback (the namespace's): one the second switchd lists, one nobody lists. */
const LISTED = 7100
const UNLISTED = 7200
const HOST_IF = '192.0.2.1'
/** Where stations a and b connect from: two client addresses of switchd's namespace. */
const CLIENTS = ['192.0.2.11', '192.0.2.12']
const METADATA = '169.254.169.254'
const OUTSIDE = '198.51.100.2'
const PUBLISHED = 2222

const MAC_A = 0x020000000a01
const MAC_B = 0x020000000a02
const MAC_C = 0x020000000a03
const MAC_D = 0x020000000a04
/** A static lease for a station that sets its address by hand (the guards bind it). */
const lease = (mac: number, ip: string): { mac: string, ip: string } => ({ mac: mac.toString(16).padStart(12, '0').replace(/(..)(?!$)/g, '$1:'), ip })

/** In the namespace: Unix sockets forwarded to switchd (from a chosen client address), the host's services, a DNS server for slirp to ask. */
const HOST_JS = `
const net = require('net'), dgram = require('dgram'), fs = require('fs')
const cfg = JSON.parse(process.argv[2])
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n')
let waiting = cfg.proxies.length + cfg.tcp.length + 1
const up = () => { if (--waiting === 0) say({ event: 'ready' }) }
for (const p of cfg.proxies) {
  try { fs.unlinkSync(p.path) } catch {}
  net.createServer((c) => {
    const u = net.connect({ port: p.port, host: p.to ?? '127.0.0.1', localAddress: p.from })
    c.pipe(u); u.pipe(c)
    c.on('error', () => u.destroy()); u.on('error', () => c.destroy())
    c.on('close', () => u.destroy()); u.on('close', () => c.destroy())
  }).listen(p.path, up)
}
for (const s of cfg.tcp) {
  net.createServer((c) => { say({ event: 'connection', name: s.name }); c.on('error', () => {}); c.end(s.name + '\\n') }).listen(s.port, s.host, up)
}
const dns = dgram.createSocket('udp4')
dns.on('message', (q, r) => {
  let i = 12
  while (i < q.length && q[i] !== 0) i += q[i] + 1
  const question = q.subarray(12, i + 5)
  const a = Buffer.alloc(12 + question.length + 16)
  q.copy(a, 0, 0, 2); a.writeUInt16BE(0x8180, 2); a.writeUInt16BE(1, 4); a.writeUInt16BE(1, 6)
  question.copy(a, 12)
  const o = 12 + question.length
  a.writeUInt16BE(0xc00c, o); a.writeUInt16BE(1, o + 2); a.writeUInt16BE(1, o + 4); a.writeUInt32BE(60, o + 6); a.writeUInt16BE(4, o + 10)
  a.set([198, 51, 100, 2], o + 12)
  dns.send(a, r.port, r.address)
})
dns.bind(53, '127.0.0.1', up)
`

/** In the outside namespace: a TCP service and a UDP sink that says what it got. */
const OUTSIDE_JS = `
const net = require('net'), dgram = require('dgram')
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n')
let waiting = 2
const up = () => { if (--waiting === 0) say({ event: 'ready' }) }
net.createServer((c) => { c.on('error', () => {}); c.end('outside\\n') }).listen(7000, '${OUTSIDE}', up)
const sink = dgram.createSocket('udp4')
sink.on('message', (m) => { say({ event: 'udp', len: m.length, first: m[0] }) })
sink.bind(7001, '${OUTSIDE}', up)
`

/** A DNS query for example.test (A) with `id`. */
function dnsQuery (id: number): Buffer {
  const q = Buffer.from([0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, ...Buffer.from('example'), 4, ...Buffer.from('test'), 0, 0, 1, 0, 1])
  q.writeUInt16BE(id, 0)
  return q
}


interface Station { c: TestClient, mac: number, ip: string, gw: string, dns: string }

describe('e2e: what a station reaches through the gateway, with NAT on (switchd in a namespace of its own)', function () {
  this.timeout(120_000)
  const logs: string[] = []
  let dir: string
  let host: Logged | undefined
  let outside: Logged | undefined
  let switchd: Logged | undefined
  let switchd2: Logged | undefined
  const clients: TestClient[] = []
  let nextPort = 30000
  let nextId = 1

  const sock = (name: string): string => path.join(dir, `${name}.sock`)

  async function cleanup (): Promise<void> {
    for (const ns of [NS, OUT]) await run('ip', ['netns', 'del', ns]).catch(() => '')
    fs.rmSync(`/etc/netns/${NS}`, { recursive: true, force: true })
  }

  async function startSwitchd (name: string, config: unknown, flags: string[]): Promise<Logged> {
    const file = path.join(dir, `${name}.json`)
    fs.writeFileSync(file, JSON.stringify(config))
    const p = spawnLogged(name, 'ip', ['netns', 'exec', NS, process.execPath, path.join(ROOT, 'bin', 'switchd.js'), '--config', file, ...flags], (l) => { logs.push(l) })
    await waitForLine(p, name, (l) => l.includes('"event":"listening"'), 30_000)
    return p
  }

  /** The QEMU child of `p` serving `network`. */
  function childPid (p: Logged, network: string): number {
    const line = p.lines.find((l) => l.includes('"event":"gateway_started"') && l.includes(`"network":"${network}"`)) as string
    return (JSON.parse(line.slice(line.indexOf('{'))) as { pid: number }).pid
  }

  async function station (socket: string, network: string, mac: number, ip: string, gw: string, dns: string): Promise<Station> {
    const c = await TestClient.raw(`ws+unix://${socket}:/net/${network}`, { headers: { host: 'localhost' } })
    clients.push(c)
    c.send([whoHas(mac, ip, gw)])
    await waitFor(() => c.frames.some(isArpReply), 10_000, 'the gateway\'s ARP reply')
    return { c, mac, ip, gw, dns }
  }

  /** A DNS query through the gateway, answered: slirp has handled whatever the station sent before (and its TCP first). */
  async function barrier (s: Station): Promise<void> {
    const id = nextId++
    const sport = nextPort++
    s.c.send([ip4({ proto: UDP, src: s.ip, dst: s.dns, sport, dport: 53, smac: s.mac, dmac: gwMac(s.gw), payload: dnsQuery(id) })])
    await waitFor(() => s.c.frames.some((f) => { const u = readUdp(f); return u !== undefined && u.dport === sport && u.payload.length >= 2 && u.payload.readUInt16BE(0) === id }), 15_000, 'the DNS answer (barrier)')
  }

  /** What each SYN got back by the barrier: synack, rst or none. */
  async function probe (s: Station, targets: Array<[string, number]>): Promise<string[]> {
    const ports = targets.map(() => nextPort++)
    s.c.send(targets.map(([dst, dport], i) => ip4({ proto: TCP, src: s.ip, dst, sport: ports[i], dport, flags: SYN, smac: s.mac, dmac: gwMac(s.gw) })))
    await barrier(s)
    return ports.map((p) => answer(s, p))
  }

  function answer (s: Station, port: number): string {
    for (const f of s.c.frames) {
      const t = readTcp(f)
      if (t === undefined || t.dport !== port) continue
      if ((t.flags & RST) !== 0) return 'rst'
      if ((t.flags & (SYN | ACK)) === (SYN | ACK)) return 'synack'
    }
    return 'none'
  }

  async function metrics (socket = sock('a')): Promise<string> {
    return await new Promise((resolve, reject) => {
      const req = http.request({ socketPath: socket, path: '/metrics', headers: { host: 'localhost', authorization: `Bearer ${TOKEN}` } }, (res) => {
        let body = ''
        res.on('data', (d: Buffer) => { body += d.toString() })
        res.on('end', () => { resolve(body) })
      })
      req.on('error', reject)
      req.end()
    })
  }

  const filtered = (text: string, network: string, reason: string): number => {
    const m = new RegExp(`switchd_gateway_filtered_frames_total\\{network="${network}",reason="${reason}",replica="[^"]*"\\} (\\d+)`).exec(text)
    return m === null ? 0 : Number(m[1])
  }

  before(async function () {
    requireRoot(this)
    requireTools(this, [{ cmd: 'qemu-system-x86_64', pkg: 'qemu-system-x86' }, { cmd: 'setpriv', pkg: 'util-linux' }])
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-gwr-'))
    fs.chmodSync(dir, 0o755)
    await cleanup()
    await run('ip', ['netns', 'add', NS])
    await run('ip', ['netns', 'add', OUT])
    await run('ip', ['-n', NS, 'link', 'set', 'lo', 'up'])
    await run('ip', ['-n', NS, 'addr', 'add', `${HOST_IF}/32`, 'dev', 'lo'])
    await run('ip', ['-n', NS, 'addr', 'add', `${METADATA}/32`, 'dev', 'lo'])
    // Two client addresses: every loopback address is one client (one share), so stations a and b come from these.
    for (const a of CLIENTS) await run('ip', ['-n', NS, 'addr', 'add', `${a}/32`, 'dev', 'lo'])
    await run('ip', ['-n', OUT, 'link', 'set', 'lo', 'up'])
    await run('ip', ['-n', NS, 'link', 'add', 'gwr0', 'type', 'veth', 'peer', 'name', 'gwr1', 'netns', OUT])
    await run('ip', ['-n', NS, 'addr', 'add', '198.51.100.1/30', 'dev', 'gwr0'])
    await run('ip', ['-n', OUT, 'addr', 'add', `${OUTSIDE}/30`, 'dev', 'gwr1'])
    await run('ip', ['-n', NS, 'link', 'set', 'gwr0', 'up'])
    await run('ip', ['-n', OUT, 'link', 'set', 'gwr1', 'up'])
    // slirp forwards DNS to the resolver in /etc/resolv.conf: inside `ip netns exec NS`, this file.
    fs.mkdirSync(`/etc/netns/${NS}`, { recursive: true })
    fs.writeFileSync(`/etc/netns/${NS}/resolv.conf`, 'nameserver 127.0.0.1\n')
    fs.writeFileSync(path.join(dir, 'host.js'), HOST_JS)
    fs.writeFileSync(path.join(dir, 'outside.js'), OUTSIDE_JS)
    outside = spawnLogged('outside', 'ip', ['netns', 'exec', OUT, process.execPath, path.join(dir, 'outside.js')], (l) => { logs.push(l) })
    await waitForLine(outside, 'outside', (l) => l.includes('"ready"'))
    host = spawnLogged('host', 'ip', ['netns', 'exec', NS, process.execPath, path.join(dir, 'host.js'), JSON.stringify({
      proxies: [{ path: sock('a'), port: API, to: HOST_IF, from: CLIENTS[0] }, { path: sock('b'), port: API, to: HOST_IF, from: CLIENTS[1] }, { path: sock('c'), port: API2, from: '127.0.0.1' }],
      tcp: [{ name: 'listed', host: '127.0.0.1', port: LISTED }, { name: 'unlisted', host: '127.0.0.1', port: UNLISTED }, { name: 'metadata', host: METADATA, port: 80 }]
    })], (l) => { logs.push(l) })
    await waitForLine(host, 'host', (l) => l.includes('"ready"'))
    // The configuration an operator of 14ad2cc could have written: NAT on (the default), a published port; and nat "host".
    switchd = await startSwitchd('switchd', {
      listen: `0.0.0.0:${API}`,
      networks: {
        // Static leases: the stations here set their addresses by hand, and the guards (on with a gateway) bind them so.
        lab: { gateway: { publish: [{ proto: 'tcp', host: `127.0.0.1:${PUBLISHED}`, guest: `10.0.2.16:22` }], staticLeases: [lease(MAC_A, '10.0.2.15'), lease(MAC_B, '10.0.2.16')] } },
        hostonly: { gateway: { subnet: '10.0.3.0/24', nat: 'host', staticLeases: [lease(MAC_C, '10.0.3.15')] } }
      }
    }, ['--allow-anonymous', '--admin-token', TOKEN])
  })

  after(async () => {
    for (const c of clients.splice(0)) c.close()
    for (const p of [switchd, switchd2, host, outside]) p?.child.kill('SIGKILL')
    await cleanup()
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
  })

  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-60).join('\n') + '\n')
    // A station's MAC leaves the fdb with its port: the next test's station may take it at once.
    for (const c of clients.splice(0)) c.close()
  })

  it('attack: a station gets no connection to switchd\'s API through 255.255.255.255, 0.0.0.0, 127.0.0.2, the gateway\'s address or the host\'s interface address (counted switchd)', async () => {
    const s = await station(sock('a'), 'lab', MAC_A, '10.0.2.15', '10.0.2.2', '10.0.2.3')
    const before = filtered(await metrics(), 'lab', 'switchd')
    const got = await probe(s, [['255.255.255.255', API], ['0.0.0.0', API], ['127.0.0.2', API], ['10.0.2.2', API], [HOST_IF, API]])
    assert.deepEqual(got, ['none', 'none', 'none', 'none', 'none'])
    assert.equal(filtered(await metrics(), 'lab', 'switchd') - before, 5)
    assert.ok(!host?.lines.some((l) => l.includes('"connection"')), 'no host service was reached either')
  })

  it('attack: a service on the host\'s 127.0.0.1 is refused by default (counted host), and so is 169.254.169.254 (not_routable); the outside answers', async () => {
    const s = await station(sock('a'), 'lab', MAC_A, '10.0.2.15', '10.0.2.2', '10.0.2.3')
    const got = await probe(s, [['10.0.2.2', UNLISTED], ['255.255.255.255', UNLISTED], [METADATA, 80], [OUTSIDE, 7000]])
    assert.deepEqual(got, ['none', 'none', 'none', 'synack'])
    const m = await metrics()
    assert.ok(filtered(m, 'lab', 'host') >= 2 && filtered(m, 'lab', 'not_routable') >= 1, 'counted')
    assert.ok(!host?.lines.some((l) => l.includes('"connection"')), 'no host service was reached')
  })

  it('attack: with nat "host" the same: neither switchd, nor an unlisted host service, nor the metadata address, nor the outside', async () => {
    const s = await station(sock('a'), 'hostonly', MAC_C, '10.0.3.15', '10.0.3.2', '10.0.3.3')
    const got = await probe(s, [['255.255.255.255', API], ['10.0.3.2', API], [HOST_IF, API], ['10.0.3.2', UNLISTED], ['255.255.255.255', UNLISTED], [METADATA, 80], [OUTSIDE, 7000]])
    assert.deepEqual(got, ['none', 'none', 'none', 'none', 'none', 'none', 'none'])
    assert.ok(filtered(await metrics(), 'hostonly', 'switchd') >= 2)
  })

  it('attack: IPv4 fragments are dropped before slirp (counted fragment); the same datagram whole gets through', async () => {
    const s = await station(sock('a'), 'lab', MAC_A, '10.0.2.15', '10.0.2.2', '10.0.2.3')
    const datagram = (first: number): Buffer => ip4({ proto: UDP, src: s.ip, dst: OUTSIDE, sport: nextPort++, dport: 7001, smac: s.mac, ipId: first, payload: Buffer.alloc(100, first) })
    const before = filtered(await metrics(), 'lab', 'fragment')
    s.c.send(fragments(datagram(0xf1), 56))
    s.c.send([datagram(0xa1)])
    await waitFor(() => outside?.lines.some((l) => l.includes('"first":161')) === true, 10_000, 'the whole datagram at the outside')
    await barrier(s)
    assert.ok(!outside?.lines.some((l) => l.includes('"first":241')), 'the fragmented one never arrived')
    assert.equal(filtered(await metrics(), 'lab', 'fragment') - before, 2)
  })

  it('attack: one station sending one UDP datagram per source port (5000) gets only its share; another station\'s DNS, NAT and published port keep working; the child\'s descriptors stay bounded', async () => {
    const a = await station(sock('a'), 'lab', MAC_A, '10.0.2.15', '10.0.2.2', '10.0.2.3')
    // Another client: another address (192.0.2.12), and so another share.
    const b = await station(sock('b'), 'lab', MAC_B, '10.0.2.16', '10.0.2.2', '10.0.2.3')
    const pid = childPid(switchd as Logged, 'lab')
    const fds = (): number => fs.readdirSync(`/proc/${pid}/fd`).length
    const before = fds()
    for (let chunk = 0; chunk < 20; chunk++) {
      const frames: Buffer[] = []
      for (let i = 0; i < 250; i++) frames.push(ip4({ proto: UDP, src: a.ip, dst: OUTSIDE, sport: 40000 + chunk * 250 + i, dport: 7009, smac: a.mac, payload: Buffer.from('x') }))
      a.c.send(frames)
      a.c.send([whoHas(a.mac, a.ip, a.gw)]) // paced by the gateway's answers: no backpressure drop hides the count
      const replies = chunk + 2
      await waitFor(() => a.c.frames.filter(isArpReply).length >= replies, 15_000, `the ARP reply after chunk ${chunk}`)
    }
    const held = fds() - before
    assert.ok(held <= 256 + 4, `the child holds ${held} more descriptors: at most the client's share (256)`)
    const m = await metrics()
    assert.ok(filtered(m, 'lab', 'flows') >= 5000 - 256, 'the rest refused, counted flows')
    assert.match(m, /switchd_gateway_flows\{network="lab",replica="[^"]*"\} 2\d\d\n/)
    // The other station: DNS answered, a connection to the outside, and its published port reached from the host.
    await barrier(b)
    assert.deepEqual(await probe(b, [[OUTSIDE, 7000]]), ['synack'])
    const client = spawnLogged('published-client', 'ip', ['netns', 'exec', NS, process.execPath, '-e',
      `const s=require('net').connect(${PUBLISHED},'127.0.0.1');s.on('error',()=>{});setTimeout(()=>process.exit(0),20000)`], (l) => { logs.push(l) })
    try {
      await waitFor(() => b.c.frames.some((f) => { const t = readTcp(f); return t !== undefined && t.dport === 22 && t.flags === SYN }), 15_000, 'the published port\'s connection at the station')
    } finally {
      client.child.kill('SIGKILL')
    }
  })

  it('hostPorts: a listed host port is reachable at the gateway\'s address; an unlisted one is not', async () => {
    switchd2 = await startSwitchd('switchd2', { listen: `127.0.0.1:${API2}`, networks: { listed: { gateway: { hostPorts: [`tcp:${LISTED}`], staticLeases: [lease(MAC_D, '10.0.2.15')] } } } }, [])
    const d = await station(sock('c'), 'listed', MAC_D, '10.0.2.15', '10.0.2.2', '10.0.2.3')
    const got = await probe(d, [['10.0.2.2', LISTED], ['10.0.2.2', UNLISTED], ['127.0.0.1', LISTED]])
    assert.deepEqual(got, ['synack', 'none', 'none'])
    await waitFor(() => host?.lines.some((l) => l.includes('"name":"listed"')) === true, 5000, 'the listed service reached')
    assert.ok(!host?.lines.some((l) => l.includes('"name":"unlisted"')))
  })
})

/** slirp's MAC for its address `gw` (52:55 and the address). */
function gwMac (gw: string): number {
  return 0x5255 * 2 ** 32 + gw.split('.').reduce((a, b) => a * 256 + Number(b), 0)
}
