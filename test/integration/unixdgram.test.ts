/**
 * QEMU `-netdev dgram` over Unix datagram sockets: the native UnixDgram
 * (native/unixdgram.cc) and UnixDatagramEndpoint (src/agent/qemu.ts) against
 * a real SwitchServer on 127.0.0.1, with a raw TestClient as the far end.
 * Node cannot open AF_UNIX datagram sockets (that is why the native class
 * exists), so the fake QEMU is a python3 child: it binds its own path, sends
 * the frames we tell it to on stdin, and prints each datagram it receives as
 * a hex line. No root, no QEMU.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { spawn, type ChildProcess } from 'node:child_process'
import * as native from '../../native'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { qemuDatagrams, type ModeHandle } from '../../src/agent/modes'
import { parseDgramSpec, type UnixDatagramEndpoint } from '../../src/agent/qemu'
import type { UplinkOptions } from '../../src/common/uplink'
import { setLogSink } from '../../src/common/log'
import { TestClient } from '../helpers/client'
import { waitFor, sleep } from '../helpers/net'
import { exitWithin, requireTools } from '../helpers/proc'
import { eth, BROADCAST, MAC_A, MAC_B, MAC_C } from '../helpers/frames'

/**
 * The fake QEMU. argv: its own path, the agent's path, a stranger's path.
 * stdin lines: `send HEX` (from its own path) or `stranger HEX` (from the
 * stranger's). stdout: `ready`, `sent` (or `sent ERROR`) per frame sent,
 * and `rx HEX` per datagram received. Exits
 * when stdin closes, or after 30 s whatever happens.
 */
const FAKE_QEMU = `
import os, select, signal, socket, sys
signal.alarm(30)
me, agent, other = sys.argv[1:4]
def bound(p):
    try: os.unlink(p)
    except FileNotFoundError: pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(p)
    return s
s = bound(me)
stranger = None
print('ready', flush=True)
pending = b''
while True:
    r, _, _ = select.select([0, s], [], [], 1)
    if s in r:
        data, sender = s.recvfrom(70000)
        print('rx', data.hex(), flush=True)
    if 0 in r:
        chunk = os.read(0, 65536)
        if not chunk: break
        pending += chunk
        while b'\\n' in pending:
            line, pending = pending.split(b'\\n', 1)
            cmd, hexdata = line.decode().split(' ')
            if cmd == 'stranger':
                stranger = stranger or bound(other)
            try:
                (stranger if cmd == 'stranger' else s).sendto(bytes.fromhex(hexdata), agent)
                print('sent', flush=True)
            except OSError as e:
                print('sent', type(e).__name__, flush=True)
for p in (me, other):
    try: os.unlink(p)
    except FileNotFoundError: pass
`

class FakeQemu {
  readonly rx: Buffer[] = []
  sent = 0
  /** Python's exception names for sends that failed (nobody bound at the agent's path). */
  readonly sendErrors: string[] = []
  ready = false
  readonly child: ChildProcess
  private out = ''

  constructor (me: string, agent: string, other: string) {
    this.child = spawn('python3', ['-c', FAKE_QEMU, me, agent, other], { stdio: ['pipe', 'pipe', 'inherit'] })
    this.child.stdout?.setEncoding('utf8')
    this.child.stdout?.on('data', (d: string) => {
      this.out += d
      let i
      while ((i = this.out.indexOf('\n')) >= 0) {
        const line = this.out.slice(0, i)
        this.out = this.out.slice(i + 1)
        if (line === 'ready') this.ready = true
        else if (line.startsWith('sent')) { this.sent++; if (line !== 'sent') this.sendErrors.push(line.slice(5)) }
        else if (line.startsWith('rx ')) this.rx.push(Buffer.from(line.slice(3), 'hex'))
      }
    })
  }

  async started (): Promise<this> {
    await waitFor(() => this.ready || this.child.exitCode !== null, 5000, 'fake QEMU ready')
    assert.ok(this.ready, 'fake QEMU started')
    return this
  }

  /** Send frames (from QEMU's own path, or from a stranger's) and wait until python has sent them all. */
  async send (frames: Buffer[], from: 'send' | 'stranger' = 'send'): Promise<void> {
    const want = this.sent + frames.length
    this.child.stdin?.write(frames.map((f) => `${from} ${f.toString('hex')}\n`).join(''))
    await waitFor(() => this.sent >= want, 5000, `fake QEMU sent ${frames.length}`)
  }

  take (): Buffer[] { return this.rx.splice(0) }

  async stop (): Promise<void> {
    const c = this.child
    if (c.exitCode !== null || c.signalCode !== null) return
    c.stdin?.end()
    if (!await exitWithin(c, 2000)) { c.kill('SIGKILL'); await exitWithin(c, 2000) }
  }
}

function stats (s: native.UnixDgram): Float64Array {
  const out = new Float64Array(native.STAT_COUNT)
  s.stats(out)
  return out
}

function batchOf (frames: Buffer[]): Buffer {
  return Buffer.concat(frames.flatMap((f) => { const h = Buffer.alloc(4); h.writeUInt32BE(f.length); return [h, f] }))
}

describe('Unix datagram endpoint (integration, python3 as QEMU)', function () {
  let server: SwitchServer
  let url: string
  let dir: string
  let raw: TestClient
  const handles: ModeHandle[] = []
  const fakes: FakeQemu[] = []
  const socks: native.UnixDgram[] = []
  const logs: string[] = []
  let restore: (line: string) => void

  const opts = (): UplinkOptions => ({ url, reconnectMin: 0.05, reconnectMax: 0.2 })
  const portNamed = (name: string): ReturnType<SwitchServer['ports']>[number] | undefined => server.ports().find((p) => p.name === name)
  const fakeQemu = async (me: string, agent: string): Promise<FakeQemu> => {
    const f = new FakeQemu(me, agent, path.join(dir, 'stranger.sock'))
    fakes.push(f)
    return await f.started()
  }
  const sock = (p: string): native.UnixDgram => { const s = new native.UnixDgram(p); socks.push(s); return s }

  before(function () { requireTools(this, [{ cmd: 'python3', pkg: 'python3' }]) })

  beforeEach(async () => {
    logs.length = 0
    restore = setLogSink((l) => { logs.push(l) })
    server = new SwitchServer({ host: '127.0.0.1', port: 0 })
    url = `ws://127.0.0.1:${(await server.listen()).port}/`
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-unixdgram-'))
    raw = await TestClient.raw(url)
    await waitFor(() => server.ports().length === 1, 3000, 'raw client port')
  })

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-40).join('\n') + '\n')
    for (const f of fakes.splice(0)) await f.stop()
    for (const h of handles.splice(0)) await h.stop()
    for (const s of socks.splice(0)) s.close()
    raw.close()
    await server.close()
    fs.rmSync(dir, { recursive: true, force: true })
    setLogSink(restore)
  })

  async function unixMode (name: string): Promise<{ h: ModeHandle, ep: UnixDatagramEndpoint, agentPath: string, qemuPath: string }> {
    const agentPath = path.join(dir, 'agent.sock')
    const qemuPath = path.join(dir, 'qemu.sock')
    const h = await qemuDatagrams(parseDgramSpec(`local=unix:${agentPath},remote=unix:${qemuPath}`), opts(), name, () => native)
    handles.push(h)
    await waitFor(() => portNamed(name) !== undefined && h.agents()[0]?.uplink.isUp === true, 3000, `port ${name}`)
    return { h, ep: h.agents()[0]?.tap as UnixDatagramEndpoint, agentPath, qemuPath }
  }

  it('one frame per datagram both ways; a datagram from another path is ignored', async () => {
    const { ep, agentPath, qemuPath } = await unixMode('vmu')
    assert.equal(fs.statSync(agentPath).isSocket(), true, 'the endpoint bound its path')
    const qemu = await fakeQemu(qemuPath, agentPath)

    const up = [eth(BROADCAST, MAC_A, 1), eth(BROADCAST, MAC_A, 2, 61), eth(BROADCAST, MAC_A, 3, 1514)]
    await qemu.send(up)
    await waitFor(() => raw.frames.length === 3, 3000, 'three datagrams at the raw client')
    assert.deepEqual(raw.take(), up)

    const down = [eth(MAC_A, MAC_B, 5), eth(BROADCAST, MAC_B, 6, 1514), eth(MAC_A, MAC_B, 7, 1000)]
    raw.send(down)
    await waitFor(() => qemu.rx.length === 3, 3000, 'three datagrams at QEMU')
    assert.deepEqual(qemu.take(), down, 'each datagram is exactly one frame')

    await qemu.send([eth(BROADCAST, MAC_C, 9)], 'stranger')
    await waitFor(() => ep.stats().rxErrors + ep.stats().rxFrames === 4, 3000, 'the stranger\'s datagram read')
    // Barrier: a frame from our QEMU by the same path reaches the raw client after the stranger's would have.
    await qemu.send([eth(BROADCAST, MAC_A, 10)])
    await waitFor(() => raw.frames.some((f) => f[14] === 10), 3000, 'QEMU frame after the stranger')
    assert.deepEqual(raw.take(), [eth(BROADCAST, MAC_A, 10)], 'only our QEMU is heard')

    const st = ep.stats()
    assert.equal(st.rxFrames, 4)
    assert.equal(st.rxBytes, 60 + 61 + 1514 + 60)
    assert.equal(st.txFrames, 3)
    assert.equal(st.txBytes, 60 + 1514 + 1000)
    assert.equal(st.rxErrors, 1, 'the stranger is counted')
    assert.equal(st.txDropped, 0)
    assert.equal(portNamed('vmu')?.rxFrames, 4, 'the switch counted them on vmu')
    assert.deepEqual(qemu.sendErrors, [])
  })

  it('QEMU away: frames to it are counted drops; a restarted QEMU re-binding its path is reached again', async () => {
    const { ep, agentPath, qemuPath } = await unixMode('vmr')
    raw.send([eth(BROADCAST, MAC_B, 1)]) // nobody at qemu.sock yet: ENOENT
    await waitFor(() => ep.stats().txDropped === 1, 3000, 'a counted drop')

    const first = await fakeQemu(qemuPath, agentPath)
    await first.send([eth(BROADCAST, MAC_A, 2)])
    await waitFor(() => raw.frames.length === 1, 3000, 'frame from the first QEMU')
    raw.take()
    first.child.kill('SIGKILL') // dies without unlinking: the path stays, nobody is bound (ECONNREFUSED)
    assert.ok(await exitWithin(first.child, 3000))
    raw.send([eth(BROADCAST, MAC_B, 3)])
    await waitFor(() => ep.stats().txDropped === 2, 3000, 'a second counted drop')
    const id = portNamed('vmr')?.id

    const second = await fakeQemu(qemuPath, agentPath)
    raw.send([eth(BROADCAST, MAC_B, 4)])
    await waitFor(() => second.rx.length === 1, 3000, 'frame at the restarted QEMU')
    assert.deepEqual(second.take(), [eth(BROADCAST, MAC_B, 4)])
    await second.send([eth(BROADCAST, MAC_A, 5)])
    await waitFor(() => raw.frames.length === 1, 3000, 'frame from the restarted QEMU')
    assert.deepEqual(raw.take(), [eth(BROADCAST, MAC_A, 5)])
    assert.equal(portNamed('vmr')?.id, id, 'same port throughout')
    assert.equal(ep.stats().txErrors, 0, 'drops, not errors')
  })

  describe('the native UnixDgram', () => {
    it('bursts: [u32 length][frame] records, at most 64 per callback, in a slab never rewritten below a handed-out end', async () => {
      const agentPath = path.join(dir, 'a.sock')
      const s = sock(agentPath)
      s.connect(path.join(dir, 'q.sock'))
      const seen: Array<{ view: Buffer, copy: Buffer, count: number }> = []
      s.start((slab, start, end, count) => {
        assert.ok(count >= 1 && count <= 64, `count ${count}`)
        const view = slab.subarray(start, end)
        seen.push({ view, copy: Buffer.from(view), count })
      })
      const qemu = await fakeQemu(path.join(dir, 'q.sock'), agentPath)
      const frames = Array.from({ length: 150 }, (_, i) => eth(BROADCAST, MAC_A, i, 60 + (i % 7) * 100))
      await qemu.send(frames)
      await waitFor(() => seen.reduce((n, b) => n + b.count, 0) === 150, 5000, '150 frames')
      assert.deepEqual(qemu.sendErrors, [])
      for (const b of seen) assert.deepEqual(b.view, b.copy, 'an earlier burst was not overwritten')
      assert.deepEqual(Buffer.concat(seen.map((b) => b.copy)), batchOf(frames))
      const st = stats(s)
      assert.equal(st[native.STAT_RX_FRAMES], 150)
      assert.equal(st[native.STAT_RX_BYTES], frames.reduce((n, f) => n + f.length, 0))
    })

    it('sendBatch: one datagram per record; no peer or no one bound is a drop; a malformed record stops the walk', async () => {
      const s = sock(path.join(dir, 'a.sock'))
      const frames = [eth(BROADCAST, MAC_A, 1), eth(BROADCAST, MAC_A, 2, 100)]
      assert.equal(s.sendBatch(batchOf(frames), 0, batchOf(frames).length), 0, 'no peer yet')
      s.connect(path.join(dir, 'q.sock'))
      assert.equal(s.sendBatch(batchOf(frames), 0, batchOf(frames).length), 0, 'nobody at q.sock')
      assert.equal(stats(s)[native.STAT_TX_DROPPED], 4)
      const qemu = await fakeQemu(path.join(dir, 'q.sock'), path.join(dir, 'a.sock'))
      const bad = Buffer.concat([batchOf(frames), Buffer.from([0, 0, 1, 0, 1, 2])])
      assert.equal(s.sendBatch(bad, 0, bad.length), 2)
      await waitFor(() => qemu.rx.length === 2, 3000, 'two datagrams')
      assert.deepEqual(qemu.take(), frames)
      const st = stats(s)
      assert.deepEqual([st[native.STAT_TX_FRAMES], st[native.STAT_TX_BYTES], st[native.STAT_TX_MALFORMED], st[native.STAT_TX_ERRORS]], [2, 160, 1, 0])
      assert.throws(() => s.sendBatch(bad, 4, 2), RangeError)
    })

    it('errors are SystemError-shaped; a stale socket file is replaced, a live one or another file is not', () => {
      const missing = path.join(dir, 'no', 'such', 'dir.sock')
      assert.throws(() => sock(missing), (e: native.TapSystemError) =>
        e.code === 'ENOENT' && e.errno === 2 && e.syscall === 'bind' && e.path === missing && e.hint !== '' && e.message === `bind ${missing}: ENOENT (${e.hint})`)
      assert.throws(() => sock(path.join(dir, 'x'.repeat(120))), (e: native.TapSystemError) => e.code === 'ENAMETOOLONG')
      const file = path.join(dir, 'file')
      fs.writeFileSync(file, 'keep me')
      assert.throws(() => sock(file), (e: native.TapSystemError) => e.code === 'EADDRINUSE' && e.syscall === 'bind')
      assert.equal(fs.readFileSync(file, 'utf8'), 'keep me', 'not a socket: left alone')

      const p = path.join(dir, 'live.sock')
      const live = sock(p)
      assert.throws(() => sock(p), (e: native.TapSystemError) => e.code === 'EADDRINUSE', 'someone is bound there')
      assert.ok(fs.existsSync(p), 'the live socket file stays')
      live.close()
      live.close()
      assert.equal(live.fd, -1)
      assert.equal(fs.existsSync(p), false, 'close() removes the socket file')
      assert.equal(live.sendBatch(batchOf([eth(BROADCAST, MAC_A)]), 0, 64), 0, 'send after close: counted, not thrown')
      assert.throws(() => { live.start(() => {}) }, (e: native.TapSystemError) => e.code === 'EBADF')
    })

    it('close() from inside the callback is safe; a socket file a newer socket took over is not removed', async () => {
      const p = path.join(dir, 'a.sock')
      const s = sock(p)
      let calls = 0
      s.start(() => { calls++; s.close(); s.close() })
      assert.throws(() => { s.start(() => {}) }, (e: native.TapSystemError) => e.code === 'EALREADY')
      const qemu = await fakeQemu(path.join(dir, 'q.sock'), p)
      await qemu.send([eth(BROADCAST, MAC_A, 1), eth(BROADCAST, MAC_A, 2)])
      await waitFor(() => calls === 1, 3000, 'the callback')
      await sleep(50)
      assert.equal(calls, 1)
      assert.equal(s.fd, -1)
      assert.equal(fs.existsSync(p), false)

      // A socket dropped without close() and replaced: the newer one keeps its file when the old one goes.
      const old = sock(p)
      fs.unlinkSync(p)
      const newer = sock(p)
      old.close()
      assert.ok(fs.statSync(p).isSocket(), 'the newer socket file stays')
      newer.close()
      assert.equal(fs.existsSync(p), false)
    })
  })

  describe('parseDgramSpec', () => {
    it('unix:PATH pairs select Unix datagrams; HOST:PORT pairs stay UDP; mixing is an error', () => {
      assert.deepEqual(parseDgramSpec('local=unix:/run/a.sock,remote=unix:/run/b.sock'), { kind: 'unix', local: '/run/a.sock', remote: '/run/b.sock' })
      assert.deepEqual(parseDgramSpec('local=127.0.0.1:5556,remote=127.0.0.1:5555'), { kind: 'udp', local: { host: '127.0.0.1', port: 5556 }, remote: { host: '127.0.0.1', port: 5555 } })
      assert.deepEqual(parseDgramSpec('local=[::1]:1,remote=[::1]:2').remote, { host: '::1', port: 2 })
      for (const bad of ['local=unix:/a.sock,remote=127.0.0.1:5555', 'local=127.0.0.1:5556,remote=unix:/b.sock']) {
        assert.throws(() => parseDgramSpec(bad), /must both be unix:PATH or both HOST:PORT/)
      }
      assert.throws(() => parseDgramSpec('local=unix:,remote=unix:/b'), /expected local=HOST:PORT,remote=HOST:PORT \(UDP\) or local=unix:PATH/)
      assert.throws(() => parseDgramSpec('local=unix:/a,remote=unix:/a'), /the same path/)
      assert.throws(() => parseDgramSpec(`local=unix:/${'a'.repeat(107)},remote=unix:/b`), /at most 107 bytes/)
      assert.throws(() => parseDgramSpec('local=127.0.0.1:70000,remote=127.0.0.1:1'), (e: Error & { code?: string }) => e.code === 'TSW_ERR_CONFIG')
    })
  })
})
