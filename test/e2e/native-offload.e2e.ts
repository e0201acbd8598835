// The native binding's offload paths (native/tap.cc) against the real kernel:
// IFF_VNET_HDR, TUNSETOFFLOAD, records with and without the virtio-net header.
// Two TAPs in two namespaces are joined by the test itself, record for record
// (a switch in three lines), so a real TCP connection runs through them.
// Needs root and /dev/net/tun; skipped otherwise, except in CI.
//
// Network hygiene: addresses only inside our namespaces (192.0.2.0/24,
// TEST-NET-1); after() deletes them whatever happened.
import assert from 'node:assert/strict'
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import * as binding from '../../native'
import { requireRoot } from '../helpers/root'
import { lineOf } from '../helpers/proc'

const tag = process.pid % 100000
const NS_A = `tswo${tag}a`
const NS_B = `tswo${tag}b`
let seq = 0
const ifname = (): string => `tswo${tag}${String.fromCharCode(97 + seq++)}`
const MAC_A = Buffer.from('02005e005301', 'hex')
const MAC_B = Buffer.from('02005e005302', 'hex')
const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

function ip (...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

/** A record as the binding handed it over: its length and, with headers, gso_type and flags. */
interface Seen { len: number, flags: number, gso: number, frameLen: number }

/** Forward every burst of `from` to `to` as it is (both in the same record mode), noting each record. */
function pump (from: binding.Tap, to: binding.Tap, seen: Seen[]): void {
  from.start((slab, start, end) => {
    for (let off = start; off < end; off += 4 + slab.readUInt32BE(off)) {
      const len = slab.readUInt32BE(off)
      const hdr = from.vnetRecords ? 10 : 0
      seen.push({ len, flags: hdr === 0 ? -1 : slab[off + 4] as number, gso: hdr === 0 ? -1 : slab[off + 5] as number, frameLen: len - hdr })
    }
    to.writeBatch(slab, start, end)
  }, 64, 65536)
}

/** The bytes the client sends, and their hash, as the server will compute it. */
function payloadHash (n: number): string {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 8)) & 255
  return createHash('sha256').update(b).digest('hex')
}

/** A TCP server in NS_B (192.0.2.2:5555) that prints 'accepted', then {n, hash} of what it read. */
function tcpServer (): ChildProcess {
  return spawn('ip', ['netns', 'exec', NS_B, process.execPath, '-e', `
    const net = require('net'), crypto = require('crypto'); const h = crypto.createHash('sha256'); let n = 0
    const s = net.createServer(c => { console.log('accepted'); c.on('data', d => { h.update(d); n += d.length })
      c.on('end', () => { console.log(JSON.stringify({ n, hash: h.digest('hex') })); s.close() }) })
    s.listen(5555, '192.0.2.2', () => console.log('listening'))`], { stdio: ['ignore', 'pipe', 'inherit'] })
}

/** A TCP client in NS_A sending `n` pattern bytes after `delayMs` connected. */
function tcpClient (n: number, delayMs: number): ChildProcess {
  return spawn('ip', ['netns', 'exec', NS_A, process.execPath, '-e', `
    const net = require('net'); const b = Buffer.alloc(${n}); for (let i = 0; i < ${n}; i++) b[i] = (i * 7 + (i >> 8)) & 255
    const c = net.connect(5555, '192.0.2.2', () => { console.log('connected'); setTimeout(() => c.end(b), ${delayMs}) })
    c.on('error', e => { console.error(e.message); process.exit(1) })`], { stdio: ['ignore', 'pipe', 'inherit'] })
}


async function stop (child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGKILL')
  await exited
}

function readStats (tap: binding.Tap): Float64Array {
  const out = new Float64Array(binding.STAT_COUNT)
  tap.stats(out)
  return out
}

function sysError (fn: () => unknown): binding.TapSystemError {
  try { fn() } catch (err) { return err as binding.TapSystemError }
  assert.fail('expected a throw')
}

describe('native TAP binding: offloads (e2e)', function () {
  this.timeout(60000)
  const open: binding.Tap[] = []
  const children: ChildProcess[] = []
  const newTap = (vnetHdr: boolean, ns?: string, addr?: string, mac?: Buffer): binding.Tap => {
    const t = new binding.Tap(ifname(), vnetHdr)
    open.push(t)
    if (mac !== undefined) t.setMac(mac)
    if (ns !== undefined) {
      ip('link', 'set', t.name, 'netns', ns)
      ip('-n', ns, 'link', 'set', t.name, 'up')
      if (addr !== undefined) ip('-n', ns, 'addr', 'add', addr, 'dev', t.name)
    }
    return t
  }
  const pair = (vnet: boolean): [binding.Tap, binding.Tap] => {
    const a = newTap(vnet, NS_A, '192.0.2.1/24', MAC_A)
    const b = newTap(vnet, NS_B, '192.0.2.2/24', MAC_B)
    // No ARP to wait for: each side knows the other's MAC.
    ip('-n', NS_A, 'neigh', 'replace', '192.0.2.2', 'lladdr', '02:00:5e:00:53:02', 'dev', a.name)
    ip('-n', NS_B, 'neigh', 'replace', '192.0.2.1', 'lladdr', '02:00:5e:00:53:01', 'dev', b.name)
    return [a, b]
  }
  const offloadOn = (t: binding.Tap): void => { t.setVnetRecords(true); t.setOffload(binding.OFFLOAD_TSO) }

  before(function () {
    requireRoot(this)
    for (const ns of [NS_A, NS_B]) { spawnSync('ip', ['netns', 'del', ns]); ip('netns', 'add', ns); ip('-n', ns, 'link', 'set', 'lo', 'up') }
  })
  afterEach(async () => {
    for (const c of children.splice(0)) await stop(c)
    for (const t of open.splice(0)) t.close()
  })
  after(() => {
    for (const t of open.splice(0)) t.close()
    for (const ns of [NS_A, NS_B]) spawnSync('ip', ['netns', 'del', ns])
  })

  it('exports the virtio-net header size and the TUN_F_* flags', () => {
    assert.equal(binding.VNET_HDR_LEN, 10)
    assert.deepEqual([binding.TUN_F_CSUM, binding.TUN_F_TSO4, binding.TUN_F_TSO6, binding.TUN_F_TSO_ECN, binding.OFFLOAD_TSO], [1, 2, 4, 8, 15])
  })

  it('a vnetHdr Tap starts with plain records and no offloads; with records on, each record starts with the header (NEEDS_CSUM for UDP)', async () => {
    const tap = newTap(true, NS_A, '192.0.2.1/24')
    assert.equal(tap.vnetHdr, true)
    assert.equal(tap.offload, 0)
    assert.equal(tap.vnetRecords, false)
    ip('-n', NS_A, 'neigh', 'replace', '192.0.2.2', 'lladdr', '02:00:5e:00:53:02', 'dev', tap.name)
    const records: Buffer[] = []
    tap.start((slab, start, end) => {
      for (let off = start; off < end; off += 4 + slab.readUInt32BE(off)) records.push(Buffer.from(slab.subarray(off + 4, off + 4 + slab.readUInt32BE(off))))
    }, 64, 65536)
    const udp = async (): Promise<void> => { spawnSync('ip', ['netns', 'exec', NS_A, process.execPath, '-e', "const s = require('dgram').createSocket('udp4'); s.send(Buffer.alloc(100, 7), 9, '192.0.2.2', () => s.close())"]); await sleep(100) }
    const isUdp = (f: Buffer, at: number): boolean => f.readUInt16BE(at + 12) === 0x0800 && f[at + 23] === 17

    await udp()
    const plain = records.splice(0).filter(r => isUdp(r, 0))
    assert.equal(plain.length, 1, 'a plain record: the frame itself')
    assert.deepEqual(plain[0]?.subarray(0, 6), Buffer.from('02005e005302', 'hex'))
    assert.equal(plain[0]?.length, 14 + 20 + 8 + 100)

    offloadOn(tap)
    assert.equal(tap.offload, binding.OFFLOAD_TSO)
    assert.equal(tap.vnetRecords, true)
    await udp()
    const withHdr = records.splice(0).filter(r => r.length > 10 && isUdp(r, 10))
    assert.equal(withHdr.length, 1, 'a record with a header')
    const r = withHdr[0] as Buffer
    assert.equal(r.length, 10 + 14 + 20 + 8 + 100)
    assert.equal(r[1], 0, 'no GSO')
    assert.equal((r[0] as number) & 1, 1, 'NEEDS_CSUM: the kernel left the UDP checksum to us')
    assert.deepEqual([r.readUInt16LE(6), r.readUInt16LE(8)], [34, 6], 'csum_start at UDP, csum_offset 6')
    assert.equal(readStats(tap)[binding.STAT_RX_ERRORS], 0)
  })

  it('carries TCP between two TAPs as GSO frames written with their headers, data intact', async () => {
    const [a, b] = pair(true)
    for (const t of [a, b]) offloadOn(t)
    const fromA: Seen[] = []
    const fromB: Seen[] = []
    pump(a, b, fromA)
    pump(b, a, fromB)
    const server = tcpServer(); children.push(server)
    await lineOf(server, /listening/)
    const n = 4_000_000
    const client = tcpClient(n, 0); children.push(client)
    const result = JSON.parse(await lineOf(server, /"hash"/)) as { n: number, hash: string }
    assert.deepEqual(result, { n, hash: payloadHash(n) })
    const gso = fromA.filter(s => (s.gso & 0x7f) === 1)
    assert.ok(gso.length > 0, `no GSO frame among ${fromA.length} records`)
    assert.ok(gso.some(s => s.frameLen > 1514), 'GSO frames larger than the MTU')
    assert.ok(fromA.reduce((x, s) => Math.max(x, s.frameLen), 0) > 10000, 'some large frames')
    for (const t of [a, b]) {
      const st = readStats(t)
      assert.equal(st[binding.STAT_TX_ERRORS], 0, `${t.name}: the kernel took every record we wrote, GSO ones included`)
      assert.equal(st[binding.STAT_RX_ERRORS], 0)
    }
  })

  it('with offloads off, a vnetHdr pair sees only plain frames <= the MTU, and TCP works through readv/writev', async () => {
    const [a, b] = pair(true)
    const fromA: Seen[] = []
    pump(a, b, fromA)
    pump(b, a, [])
    const server = tcpServer(); children.push(server)
    await lineOf(server, /listening/)
    const n = 1_000_000
    const client = tcpClient(n, 0); children.push(client)
    const result = JSON.parse(await lineOf(server, /"hash"/)) as { n: number, hash: string }
    assert.deepEqual(result, { n, hash: payloadHash(n) })
    assert.ok(fromA.length > n / 1500, `${fromA.length} records`)
    assert.ok(fromA.every(s => s.frameLen <= 1514 && s.flags === -1), 'plain records, none over 1514 bytes')
    assert.equal(readStats(b)[binding.STAT_TX_ERRORS], 0)
  })

  it('turning offloads off drops the GSO frames still queued (counted) and hands over only plain ones', async () => {
    const [a, b] = pair(true)
    for (const t of [a, b]) offloadOn(t)
    const fromA: Seen[] = []
    pump(a, b, fromA)
    pump(b, a, [])
    const server = tcpServer(); children.push(server)
    await lineOf(server, /listening/)
    const n = 2_000_000
    const client = tcpClient(n, 500); children.push(client)
    await lineOf(client, /connected/)
    // Stop reading a: what the client sends now waits in the TAP's queue, offloaded.
    a.stop()
    await sleep(700)
    for (const t of [a, b]) { t.setOffload(0); t.setVnetRecords(false) }
    const before = fromA.length
    pump(a, b, fromA)
    const result = JSON.parse(await lineOf(server, /"hash"/, 40000)) as { n: number, hash: string }
    assert.deepEqual(result, { n, hash: payloadHash(n) })
    assert.ok((readStats(a)[binding.STAT_RX_ERRORS] as number) > 0, 'the queued GSO frames were dropped and counted')
    const after = fromA.slice(before)
    assert.ok(after.length > 0 && after.every(s => s.frameLen <= 1514 && s.flags === -1), 'then only plain frames')
  })

  describe('errors', () => {
    it('offloads need vnetHdr: EINVAL for setOffload, ENOTSUP for setVnetRecords, each with a hint', () => {
      const tap = newTap(false)
      assert.equal(tap.vnetHdr, false)
      tap.setOffload(0)
      const e1 = sysError(() => { tap.setOffload(binding.OFFLOAD_TSO) })
      assert.deepEqual([e1.code, e1.syscall], ['EINVAL', 'ioctl(TUNSETOFFLOAD)'])
      assert.match(e1.hint, /vnetHdr/)
      const e2 = sysError(() => { tap.setVnetRecords(true) })
      // ENOTSUP is EOPNOTSUPP on Linux (95); glibc names it so.
      assert.ok(['ENOTSUP', 'EOPNOTSUPP'].includes(e2.code), e2.code)
      assert.deepEqual([e2.errno, e2.syscall], [95, 'ioctl(TUNSETIFF)'])
      assert.match(e2.hint, /vnetHdr/)
      tap.setVnetRecords(false)
    })

    it('refuses UDP offloads and unknown bits (RangeError), bad arguments (TypeError), and a closed Tap (EBADF)', () => {
      const tap = newTap(true)
      assert.throws(() => { tap.setOffload(0x10) }, RangeError) // TUN_F_UFO
      assert.throws(() => { tap.setOffload(0x20 | binding.TUN_F_CSUM) }, RangeError) // TUN_F_USO4
      assert.throws(() => { tap.setOffload(-1) }, RangeError)
      assert.throws(() => { tap.setVnetRecords(1 as unknown as boolean) }, TypeError)
      assert.throws(() => new binding.Tap(ifname(), 'yes' as unknown as boolean), TypeError)
      tap.close()
      assert.equal(sysError(() => { tap.setOffload(0) }).code, 'EBADF')
    })
  })
})
