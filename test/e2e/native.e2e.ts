// End-to-end tests of the native TAP binding (native/tap.cc) against the real
// kernel. Needs root (CAP_NET_ADMIN) and /dev/net/tun; skipped otherwise,
// except in CI where skipping would hide a broken runner.
//
// Network hygiene: nothing here adds an address or a route in the root
// namespace. Anything that needs the link up or an address runs in a test
// namespace that after() always deletes; 192.0.2.0/24 is TEST-NET-1.
import assert from 'node:assert/strict'
import { execFile, execFileSync, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { existsSync } from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import * as binding from '../../native'

const NATIVE = path.resolve(__dirname, '../../native')
const NS = `tswn-ns${process.pid % 100000}`
let seq = 0
/** A fresh, unique interface name (<= 15 chars). */
const ifname = (): string => `tswn${process.pid % 100000}${String.fromCharCode(97 + seq++)}`

function ip (...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}
interface IpLink { ifname: string, ifindex: number, mtu: number, flags: string[], address: string, link_type: string, stats64?: { rx: { packets: number } }, addr_info?: Array<{ family: string, local: string, prefixlen: number }> }
function links (ns?: string, ...args: string[]): IpLink[] {
  return JSON.parse(ip(...(ns ? ['-n', ns] : []), '-j', ...args)) as IpLink[]
}
function linkExists (name: string, ns?: string): boolean {
  return links(ns, 'link', 'show').some(l => l.ifname === name)
}
function link (name: string, ns?: string, stats = false): IpLink {
  const [l] = links(ns, ...(stats ? ['-s'] : []), 'link', 'show', 'dev', name)
  assert.ok(l, `no link ${name}`)
  return l
}
const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

/** Bring `name` (already moved into NS) up with 192.0.2.1/24 and make the kernel ARP for .2. */
async function provokeArp (name: string, count = 3): Promise<void> {
  ip('-n', NS, 'link', 'set', name, 'up')
  ip('-n', NS, 'addr', 'add', '192.0.2.1/24', 'dev', name)
  // Asynchronous on purpose: the event loop must run while the kernel sends.
  await new Promise<void>(resolve => {
    execFile('ip', ['netns', 'exec', NS, 'ping', '-n', '-c', String(count), '-W', '1', '192.0.2.2'], () => resolve())
  })
}

interface Burst { slab: Buffer, start: number, end: number, count: number, frames: Buffer[] }
/** Parse and validate one onFrames burst. */
function parseBurst (slab: Buffer, start: number, end: number, count: number): Burst {
  assert.ok(Buffer.isBuffer(slab))
  assert.ok(start >= 0 && start < end && end <= slab.length, `range ${start}..${end} of ${slab.length}`)
  const frames: Buffer[] = []
  let off = start
  while (off < end) {
    const len = slab.readUInt32BE(off)
    assert.ok(len >= 14 && len <= binding.MAX_READ, `frame length ${len}`)
    assert.ok(off + 4 + len <= end, 'record runs past end')
    frames.push(Buffer.from(slab.subarray(off + 4, off + 4 + len)))
    off += 4 + len
  }
  assert.equal(off, end, 'records must tile [start, end) exactly')
  assert.equal(frames.length, count)
  return { slab, start, end, count, frames }
}

function broadcastFrame (payloadByte: number): Buffer {
  const f = Buffer.alloc(60, payloadByte)
  f.fill(0xff, 0, 6) // dst broadcast
  Buffer.from([0x02, 0x00, 0x5e, 0x00, 0x53, 0x01]).copy(f, 6) // locally administered src
  f.writeUInt16BE(0x88b5, 12) // IEEE local experimental ethertype
  return f
}
function records (frames: Buffer[]): Buffer {
  return Buffer.concat(frames.flatMap(f => {
    const h = Buffer.alloc(4)
    h.writeUInt32BE(f.length)
    return [h, f]
  }))
}
function readStats (tap: binding.Tap): Float64Array {
  const out = new Float64Array(binding.STAT_COUNT)
  tap.stats(out)
  return out
}

/** Run a small CommonJS script in a child node (optionally in NS) and parse its last stdout line. */
function child (script: string, opts: { ns?: boolean, prefix?: string[], nodeArgs?: string[] } = {}): unknown {
  const argv = [...(opts.prefix ?? []), process.execPath, ...(opts.nodeArgs ?? []), '-e', script]
  const cmd = opts.ns === true ? ['ip', 'netns', 'exec', NS, ...argv] : argv
  const r = spawnSync(cmd[0] as string, cmd.slice(1), { encoding: 'utf8', timeout: 15000, env: { ...process.env, NATIVE } })
  assert.equal(r.status, 0, `child failed: ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop() as string)
}

function assertSysError (err: unknown, code: string | string[], syscall: string | string[]): binding.TapSystemError {
  assert.ok(err instanceof Error, 'expected an Error')
  const e = err as binding.TapSystemError
  assert.ok(([] as string[]).concat(code).includes(e.code), `code ${e.code}`)
  assert.ok(Number.isInteger(e.errno) && e.errno > 0, `errno ${e.errno}`)
  assert.ok(([] as string[]).concat(syscall).includes(e.syscall), `syscall ${e.syscall}`)
  assert.equal(typeof e.hint, 'string')
  assert.ok(e.message.startsWith(`${e.syscall} `), e.message)
  assert.ok(e.message.includes(`: ${e.code}`), e.message)
  if (e.hint !== '') assert.ok(e.message.endsWith(`(${e.hint})`), e.message)
  return e
}

describe('native TAP binding (e2e)', function () {
  this.timeout(30000)
  const open: binding.Tap[] = []
  const newTap = (name: string): binding.Tap => {
    const t = new binding.Tap(name)
    open.push(t)
    return t
  }

  before(function () {
    const root = process.getuid?.() === 0 && existsSync('/dev/net/tun')
    if (!root) {
      if (process.env.CI === 'true') throw new Error('native e2e needs root and /dev/net/tun; CI must not skip')
      this.skip()
    }
    spawnSync('ip', ['netns', 'del', NS]) // leftovers of a crashed run
    ip('netns', 'add', NS)
  })
  afterEach(function () {
    for (const t of open.splice(0)) t.close()
  })
  after(function () {
    for (const t of open.splice(0)) t.close()
    spawnSync('ip', ['netns', 'del', NS])
  })

  it('exports the contract constants', function () {
    assert.deepEqual(
      [binding.STAT_RX_FRAMES, binding.STAT_RX_BYTES, binding.STAT_TX_FRAMES, binding.STAT_TX_BYTES,
        binding.STAT_TX_DROPPED, binding.STAT_TX_ERRORS, binding.STAT_TX_MALFORMED, binding.STAT_RX_ERRORS,
        binding.STAT_COUNT],
      [0, 1, 2, 3, 4, 5, 6, 7, 8])
    assert.ok(binding.MAX_READ >= 65536 + 14)
  })

  it('creates a TAP with the requested name; close() removes it and is idempotent', function () {
    const name = ifname()
    const tap = newTap(name)
    assert.equal(tap.name, name)
    assert.ok(tap.fd >= 0)
    const l = link(name)
    assert.equal(l.ifindex, tap.ifindex)
    assert.equal(l.link_type, 'ether')
    tap.close()
    tap.close()
    assert.equal(tap.fd, -1)
    assert.equal(linkExists(name), false)
    assert.ok(tap.write(broadcastFrame(0)) < 0, 'write after close returns -errno')
  })

  it('lets the kernel choose the name when given an empty string', function () {
    const tap = newTap('')
    assert.match(tap.name, /^tap\d+$/)
    assert.equal(link(tap.name).ifindex, tap.ifindex)
    tap.close()
    assert.equal(linkExists(tap.name), false)
  })

  it('setMtu / setMac / getMac (root namespace, link stays down)', function () {
    const tap = newTap(ifname())
    tap.setMtu(1400)
    assert.equal(link(tap.name).mtu, 1400)
    const mac = Buffer.from([0x02, 0x00, 0x5e, 0x10, 0x20, 0x30])
    tap.setMac(mac)
    assert.deepEqual(tap.getMac(), mac)
    assert.equal(link(tap.name).address, '02:00:5e:10:20:30')
    assert.throws(() => tap.setMac(Buffer.alloc(5)), TypeError)
    assert.throws(() => tap.setIPv4('not an ip', 24), TypeError)
    assert.throws(() => tap.setIPv4('192.0.2.1', 33), RangeError)
    assertSysError(capture(() => tap.setMtu(10)), 'EINVAL', 'ioctl(SIOCSIFMTU)')
    tap.close()
    assertSysError(capture(() => tap.getMac()), 'EBADF', 'ioctl(SIOCGIFHWADDR)')
  })

  it('setUp / setIPv4 (in the test namespace, via a child process)', function () {
    const name = ifname()
    const out = child(`
      const b = require(process.env.NATIVE); const { execFileSync } = require('child_process')
      const show = () => JSON.parse(execFileSync('ip', ['-j', 'addr', 'show', 'dev', '${name}'], { encoding: 'utf8' }))[0]
      const t = new b.Tap('${name}')
      t.setUp(true); const up = show()
      t.setIPv4('192.0.2.1', 24); const addr = show()
      t.setUp(false); const down = show()
      t.close()
      console.log(JSON.stringify({ up, addr, down }))`, { ns: true }) as Record<'up' | 'addr' | 'down', IpLink>
    assert.ok(out.up.flags.includes('UP'))
    const v4 = out.addr.addr_info?.find(a => a.family === 'inet')
    assert.deepEqual(v4 && { local: v4.local, prefixlen: v4.prefixlen }, { local: '192.0.2.1', prefixlen: 24 })
    assert.ok(!out.down.flags.includes('UP'))
  })

  it('start/stop: idempotent stop, no double start, no start after close', function () {
    const tap = newTap(ifname())
    const noop = (): void => {}
    assert.throws(() => tap.start(noop, 0, 1024), RangeError)
    assert.throws(() => tap.start(noop, 1.5, 1024), RangeError)
    tap.start(noop, 8, 1 << 16)
    assertSysError(capture(() => tap.start(noop, 8, 1 << 16)), 'EALREADY', 'uv_poll_start')
    tap.stop()
    tap.stop()
    tap.start(noop, 8, 1 << 16)
    tap.close()
    tap.stop()
    assertSysError(capture(() => tap.start(noop, 8, 1 << 16)), 'EBADF', 'uv_poll_start')
  })

  it('receives the kernel\'s ARP requests as [u32 BE len][frame] records, and writes frames', async function () {
    const name = ifname()
    const tap = newTap(name)
    const bursts: Burst[] = []
    const maxFrames = 2
    tap.start((slab, start, end, count) => {
      assert.ok(count <= maxFrames, `burst of ${count} > maxBurstFrames`)
      bursts.push(parseBurst(slab, start, end, count))
    }, maxFrames, 1 << 16)
    ip('link', 'set', name, 'netns', NS) // the fd keeps working across the move
    await provokeArp(name)

    assert.ok(bursts.length > 0, 'onFrames never called')
    const frames = bursts.flatMap(b => b.frames)
    const arps = frames.filter(f => f.readUInt16BE(12) === 0x0806)
    assert.ok(arps.length >= 2, `only ${arps.length} ARP frames among ${frames.length}`)
    for (const a of arps) {
      assert.equal(a.readUInt16BE(14 + 6), 1, 'ARP request')
      assert.deepEqual([...a.subarray(14 + 24, 14 + 28)], [192, 0, 2, 2], 'target 192.0.2.2')
      assert.deepEqual([...a.subarray(0, 6)], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
    }
    // The binding only appends: a later burst in the same slab starts at or after the previous end.
    for (let i = 1; i < bursts.length; i++) {
      const prev = bursts[i - 1] as Burst
      const cur = bursts[i] as Burst
      if (cur.slab === prev.slab) assert.ok(cur.start >= prev.end)
    }
    let st = readStats(tap)
    assert.equal(st[binding.STAT_RX_FRAMES], frames.length)
    assert.equal(st[binding.STAT_RX_BYTES], frames.reduce((n, f) => n + f.length, 0))
    assert.equal(st[binding.STAT_RX_ERRORS], 0)

    // Write path: the kernel counts what we inject as received on the interface.
    const rxBefore = link(name, NS, true).stats64?.rx.packets ?? 0
    const batch = records([broadcastFrame(1), broadcastFrame(2), broadcastFrame(3)])
    const truncated = Buffer.concat([batch, Buffer.from([0, 0, 0, 60, 0xff, 0xff])])
    assert.equal(tap.writeBatch(truncated, 0, truncated.length), 3)
    assert.equal(tap.write(broadcastFrame(4)), 60)
    st = readStats(tap)
    assert.equal(st[binding.STAT_TX_FRAMES], 4)
    assert.equal(st[binding.STAT_TX_BYTES], 240)
    assert.equal(st[binding.STAT_TX_MALFORMED], 1)
    assert.equal(st[binding.STAT_TX_ERRORS], 0)
    assert.ok((link(name, NS, true).stats64?.rx.packets ?? 0) >= rxBefore + 4)

    // Sub-range walk and argument checks.
    assert.equal(tap.writeBatch(batch, 64, 128), 1)
    assert.equal(tap.writeBatch(batch, 0, 0), 0)
    assert.throws(() => tap.writeBatch(batch, 0, batch.length + 1), RangeError)
    assert.throws(() => tap.writeBatch(batch, 10, 5), RangeError)
    assert.throws(() => tap.writeBatch(batch, -1, 5), RangeError)
    assert.throws(() => tap.stats(new Float64Array(3)), RangeError)

    tap.close()
    assert.equal(linkExists(name, NS), false, 'a closed TAP disappears')
  })

  it('a flood crosses slab boundaries without rewriting bytes JS still holds', async function () {
    const name = ifname()
    const tap = newTap(name)
    const maxFrames = 64
    const maxBytes = 1 << 18
    const views: Buffer[] = [] // retained, uncopied views: what ws would keep queued
    const seqs: number[] = []
    const slabs = new Set<Buffer>()
    tap.start((slab, start, end, count) => {
      assert.ok(count <= maxFrames)
      assert.ok(end - start <= maxBytes + 4 + binding.MAX_READ)
      slabs.add(slab)
      for (const f of parseBurst(slab, start, end, count).frames) {
        if (f.readUInt16BE(12) === 0x0800 && f[23] === 17) seqs.push(f.readUInt32BE(42))
      }
      views.push(slab.subarray(start, end))
    }, maxFrames, maxBytes)
    ip('link', 'set', name, 'netns', NS)
    ip('-n', NS, 'link', 'set', name, 'up')
    ip('-n', NS, 'addr', 'add', '192.0.2.1/24', 'dev', name)
    ip('-n', NS, 'neigh', 'add', '192.0.2.2', 'lladdr', '02:00:5e:00:53:02', 'dev', name) // no ARP needed
    const sent = 4000
    await new Promise<void>((resolve, reject) => {
      execFile('ip', ['netns', 'exec', NS, process.execPath, '-e', `
        const s = require('dgram').createSocket('udp4'); let i = 0
        const next = () => { if (i === ${sent}) return s.close()
          const p = Buffer.alloc(1200); p.writeUInt32BE(i++); s.send(p, 9, '192.0.2.2', () => setImmediate(next)) }
        next()`], err => err ? reject(err) : resolve())
    })
    await sleep(200)
    assert.ok(seqs.length >= sent / 2, `only ${seqs.length} of ${sent} datagrams seen`)
    assert.ok(seqs.every((s, i) => i === 0 || s > (seqs[i - 1] as number)), 'sequence numbers must increase')
    assert.ok(slabs.size >= 2, `expected several slabs, got ${slabs.size}`)
    // Re-read every retained view now: nothing below `end` may have been overwritten.
    const again: number[] = []
    for (const v of views) {
      for (const f of parseBurst(v, 0, v.length, countRecords(v)).frames) {
        if (f.readUInt16BE(12) === 0x0800 && f[23] === 17) again.push(f.readUInt32BE(42))
      }
    }
    assert.deepEqual(again, seqs)
    assert.equal(readStats(tap)[binding.STAT_RX_ERRORS], 0)
    tap.close()
  })

  it('drains nextTick and microtasks right after each onFrames call (MakeCallback)', async function () {
    const taps = [newTap(ifname()), newTap(ifname())]
    const log: string[] = []
    taps.forEach((tap, i) => {
      tap.start(() => {
        log.push(`frames${i}`)
        process.nextTick(() => log.push(`tick${i}`))
        void Promise.resolve().then(() => log.push(`micro${i}`))
      }, 64, 1 << 16)
      ip('link', 'set', tap.name, 'netns', NS)
      ip('-n', NS, 'link', 'set', tap.name, 'up')
      ip('-n', NS, 'addr', 'add', i === 0 ? '192.0.2.1/24' : '198.51.100.1/24', 'dev', tap.name)
    })
    // Block the loop while the kernel ARPs out of both TAPs, so both fds are
    // readable in the same poll phase: with a plain Call, the first callback's
    // tick would still be pending when the second callback runs.
    spawnSync('ip', ['netns', 'exec', NS, 'sh', '-c', 'ping -n -c1 -W1 192.0.2.2 & ping -n -c1 -W1 198.51.100.2 & wait'])
    await sleep(50)
    assert.ok(log.includes('frames0') && log.includes('frames1'), log.join(' '))
    log.forEach((entry, i) => {
      if (entry.startsWith('frames')) {
        const n = entry.slice(6)
        assert.deepEqual(log.slice(i + 1, i + 3), [`tick${n}`, `micro${n}`], log.join(' '))
      }
    })
  })

  it('close() from inside onFrames stops delivery at once', async function () {
    const name = ifname()
    const tap = newTap(name)
    let calls = 0
    tap.start(() => {
      calls++
      tap.close()
      tap.close()
      assert.equal(tap.fd, -1)
    }, 1, 1 << 16)
    ip('link', 'set', name, 'netns', NS)
    await provokeArp(name, 2)
    await sleep(100)
    assert.equal(calls, 1)
    assert.equal(tap.fd, -1)
    assert.equal(linkExists(name, NS), false)
    assert.equal(tap.write(broadcastFrame(0)), -9) // -EBADF
  })

  it('deleting the device under a polling Tap stops polling without spinning', async function () {
    const tap = newTap(ifname())
    let calls = 0
    tap.start(() => { calls++ }, 64, 1 << 16)
    ip('link', 'del', tap.name) // the kernel detaches our fd: POLLERR from now on
    const cpu = process.cpuUsage()
    await sleep(300)
    const used = process.cpuUsage(cpu)
    assert.ok(used.user + used.system < 200000, `busy loop? ${JSON.stringify(used)}`)
    assert.equal(calls, 0)
    assert.equal(readStats(tap)[binding.STAT_RX_ERRORS], 1)
    assert.ok(tap.write(broadcastFrame(0)) < 0)
    tap.close()
    assert.equal(tap.fd, -1)
  })

  it('an exception thrown by onFrames reaches process \'uncaughtException\'', async function () {
    const name = ifname()
    const tap = newTap(name)
    const saved = process.listeners('uncaughtException')
    process.removeAllListeners('uncaughtException') // mocha's handler would fail the test
    const caught: unknown[] = []
    process.on('uncaughtException', err => caught.push(err))
    try {
      tap.start(() => { throw new Error('boom from onFrames') }, 64, 1 << 16)
      ip('link', 'set', name, 'netns', NS)
      await provokeArp(name, 1)
    } finally {
      process.removeAllListeners('uncaughtException')
      for (const l of saved) process.on('uncaughtException', l)
    }
    assert.ok(caught.length >= 1, 'exception was swallowed')
    assert.ok(caught.every(e => e instanceof Error && e.message === 'boom from onFrames'))
    tap.close()
  })

  it('the finalizer closes a TAP that JS dropped without close()', function () {
    const a = ifname()
    const b = ifname()
    const out = child(`
      const bnd = require(process.env.NATIVE); const { execFileSync } = require('child_process')
      const exists = n => JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })).some(l => l.ifname === n)
      let t1 = new bnd.Tap('${a}'); let t2 = new bnd.Tap('${b}')
      t2.start(() => {}, 8, 65536); t2.stop()
      const before = [exists('${a}'), exists('${b}')]
      t1 = t2 = null
      ;(async () => {
        for (let i = 0; i < 20 && (exists('${a}') || exists('${b}')); i++) { global.gc(); await new Promise(r => setTimeout(r, 50)) }
        console.log(JSON.stringify({ before, after: [exists('${a}'), exists('${b}')] }))
      })()`, { ns: true, nodeArgs: ['--expose-gc'] })
    assert.deepEqual(out, { before: [true, true], after: [false, false] })
  })

  it('a worker that exits while polling tears down cleanly (no crash, TAP gone)', function () {
    const name = ifname()
    const out = child(`
      const { Worker } = require('worker_threads'); const { execFileSync } = require('child_process')
      const w = new Worker(\`
        const b = require(process.env.NATIVE); const { parentPort } = require('worker_threads')
        const t = new b.Tap('${name}'); t.start(() => {}, 8, 65536); parentPort.postMessage(t.name)\`, { eval: true })
      w.once('message', async () => {
        await w.terminate()
        const exists = JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })).some(l => l.ifname === '${name}')
        console.log(JSON.stringify({ exists }))
      })`, { ns: true })
    assert.deepEqual(out, { exists: false })
  })

  describe('errors', function () {
    it('a name longer than 15 bytes is EINVAL from ioctl(TUNSETIFF), with a hint', function () {
      const e = assertSysError(capture(() => newTap('x'.repeat(16))), 'EINVAL', 'ioctl(TUNSETIFF)')
      assert.equal(e.errno, 22)
      assert.notEqual(e.hint, '')
      assert.throws(() => new binding.Tap(42 as unknown as string), TypeError)
    })

    it('a name held by another fd is EBUSY with a hint', function () {
      const tap = newTap(ifname())
      const e = assertSysError(capture(() => newTap(tap.name)), 'EBUSY', 'ioctl(TUNSETIFF)')
      assert.equal(e.hint, 'the interface exists and is in use by another process')
      assert.equal(e.message, `ioctl(TUNSETIFF) ${tap.name}: EBUSY (${e.hint})`)
    })

    it('an unprivileged user gets EPERM/EACCES with a hint naming CAP_NET_ADMIN', function () {
      if (spawnSync('setpriv', ['--version']).status !== 0) {
        if (process.env.CI === 'true') throw new Error('setpriv (util-linux) is missing')
        this.skip()
      }
      // The checkout may sit in a directory user 65534 cannot enter (a 0700
      // mktemp dir in CI): give the child a world-readable copy of the addon.
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-native-'))
      let out: unknown
      try {
        fs.chmodSync(dir, 0o755)
        const addon = path.join(dir, 'tap.node')
        fs.copyFileSync(require.resolve(path.join(NATIVE, '..', 'build', 'Release', 'tap.node')), addon)
        fs.chmodSync(addon, 0o755)
        out = child(`
          const b = require(${JSON.stringify(addon)})
          try { new b.Tap('${ifname()}'); console.log('null') } catch (e) {
            console.log(JSON.stringify({ message: e.message, code: e.code, errno: e.errno, syscall: e.syscall, path: e.path, hint: e.hint }))
          }`, { prefix: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] })
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
      const e = assertSysError(Object.assign(new Error(), out), ['EPERM', 'EACCES'], ['open', 'ioctl(TUNSETIFF)'])
      if (e.syscall === 'open') {
        assert.equal(e.path, '/dev/net/tun')
        assert.equal(e.hint, 'needs root or CAP_NET_ADMIN, or read/write access to /dev/net/tun')
      } else {
        assert.equal(e.hint, 'needs CAP_NET_ADMIN')
      }
    })
  })
})

function countRecords (buf: Buffer): number {
  let n = 0
  for (let off = 0; off + 4 <= buf.length; off += 4 + buf.readUInt32BE(off)) n++
  return n
}

function capture (fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  assert.fail('expected a throw')
}
