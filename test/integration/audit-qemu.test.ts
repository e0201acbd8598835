/**
 * Issue 12, finding 16: switchd's own QEMU listeners (src/switch/io/qemu-listener.ts).
 * QEMU's -netdev stream has no authentication, so the socket decides who may
 * be the VM: a second connection must not take a live VM's port, a Unix
 * socket is the owner's only, and TCP beyond loopback needs an explicit
 * opt-in. Plain Node sockets stand in for QEMU; a raw ws client is the rest
 * of the LAN.
 */

import assert from 'node:assert/strict'
import * as net from 'node:net'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { SwitchServer } from '../../src/switch/io/server'
import { listenForQemu, type ModeHandle } from '../../src/agent/modes'
import { buildConfig } from '../../src/switch/control/config'
import { ERR_CONFIG } from '../../src/common/errors'
import { setLogSink } from '../../src/common/log'
import { TestClient } from '../helpers/client'
import { waitFor, onceWithin, sleep } from '../helpers/net'
import { eth, BROADCAST, MAC_A, MAC_B, MAC_C } from '../helpers/frames'
import { prefixed, FrameReader } from '../helpers/stream-peer'

describe('audit: QEMU listeners (integration, fake QEMU)', function () {
  this.timeout(10_000)
  let server: SwitchServer | undefined
  let raw: TestClient | undefined
  let dir: string
  const sockets: net.Socket[] = []
  const logs: string[] = []
  let restore: (line: string) => void

  /** switchd on 127.0.0.1:0 with QEMU listeners `qemu`, and a raw client on the default network. */
  async function start (qemu: unknown[]): Promise<SwitchServer> {
    const s = new SwitchServer({ config: buildConfig({ qemu }, 'test'), host: '127.0.0.1', port: 0 })
    server = s
    const { port } = await s.listen()
    raw = await TestClient.raw(`ws://127.0.0.1:${port}/`)
    return s
  }

  /** A fake QEMU (`-netdev stream,server=off`) on a Unix socket. */
  async function qemuConnects (sockPath: string): Promise<{ sock: net.Socket, reader: FrameReader }> {
    const sock = net.connect(sockPath)
    sockets.push(sock)
    sock.on('error', () => {})
    await onceWithin(sock, 'connect')
    return { sock, reader: new FrameReader(sock, 4) }
  }

  const vm1 = (): ReturnType<SwitchServer['ports']>[number] | undefined => server?.ports().find((p) => p.name === 'vm1')

  beforeEach(() => {
    logs.length = 0
    restore = setLogSink((l) => { logs.push(l) })
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-audit-qemu-'))
  })

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-30).join('\n') + '\n')
    for (const s of sockets.splice(0)) s.destroy()
    raw?.close()
    raw = undefined
    await server?.close()
    server = undefined
    fs.rmSync(dir, { recursive: true, force: true })
    await sleep(20) // close events of the sockets destroyed above
    setLogSink(restore)
  })

  it('attack: a second connection to a busy QEMU listener is refused and the first VM keeps its traffic', async () => {
    const sockPath = path.join(dir, 'vm1.sock')
    const s = await start([{ name: 'vm1', listen: `unix:${sockPath}` }])
    const lan = raw as TestClient
    const vm = await qemuConnects(sockPath)
    vm.sock.write(prefixed([eth(BROADCAST, MAC_A, 1)], 4))
    await waitFor(() => lan.frames.length === 1, 3000, 'the VM\'s first frame on the LAN')
    lan.take()

    const attacker = await qemuConnects(sockPath)
    attacker.sock.write(prefixed([eth(BROADCAST, MAC_B, 66)], 4))
    await waitFor(() => attacker.reader.ended, 3000, 'switchd closes the second connection')
    assert.equal(s.rejectedBy.qemu_busy, 1, 'the refusal is counted')
    assert.ok(logs.some((l) => l.includes('"event":"qemu_refused"')), 'and logged')

    // The LAN's unicast for the VM still reaches the VM, and only the VM.
    lan.send([eth(MAC_A, MAC_C, 7)])
    await waitFor(() => vm.reader.frames.length === 1, 3000, 'the LAN\'s frame at the VM')
    assert.equal(vm.reader.take()[0]?.[14], 7)
    assert.equal(attacker.reader.frames.length, 0, 'the attacker hears nothing')
    // Barrier: the VM's own frame arrives after anything the attacker could have sent.
    vm.sock.write(prefixed([eth(BROADCAST, MAC_A, 99)], 4))
    await waitFor(() => lan.frames.some((f) => f[14] === 99), 3000, 'the barrier')
    assert.deepEqual(lan.take().map((f) => f.subarray(6, 12).toString('hex')), [MAC_A], 'nothing from the attacker reached the LAN')
    assert.equal(vm.sock.destroyed, false, 'the VM stays connected')
  })

  it('a restarted VM gets its port back once the old connection has closed', async () => {
    const sockPath = path.join(dir, 'vm1.sock')
    await start([{ name: 'vm1', listen: `unix:${sockPath}` }])
    const lan = raw as TestClient
    const first = await qemuConnects(sockPath)
    first.sock.write(prefixed([eth(BROADCAST, MAC_A, 1)], 4))
    await waitFor(() => lan.frames.length === 1, 3000, 'first VM on the LAN')
    first.sock.destroy()
    await waitFor(() => logs.some((l) => l.includes('"event":"qemu_disconnected"')), 3000, 'the old connection closed')
    const again = await qemuConnects(sockPath)
    again.sock.write(prefixed([eth(BROADCAST, MAC_A, 2)], 4))
    await waitFor(() => lan.frames.length === 2, 3000, 'restarted VM on the LAN')
    assert.equal(lan.frames[1]?.[14], 2)
    lan.send([eth(MAC_A, MAC_C, 3)])
    await waitFor(() => again.reader.frames.length === 1, 3000, 'the LAN\'s frame at the restarted VM')
    assert.equal(server?.rejectedBy.qemu_busy, 0)
    assert.ok(vm1() !== undefined)
  })

  it('attack: a tcp QEMU listener on a non-loopback host without allowRemote fails at start with TSW_ERR_CONFIG', async () => {
    for (const listen of ['tcp:0.0.0.0:5555', 'tcp:[::]:5555', 'tcp:192.0.2.1:5555', 'tcp:example.com:5555']) {
      assert.throws(() => buildConfig({ qemu: [{ name: 'vm1', listen }] }, 'test'), (err: Error & { code?: string }) => err.code === ERR_CONFIG, listen)
    }
    assert.throws(() => buildConfig({}, 'test', { qemuListen: 'vm1=tcp:0.0.0.0:5555' }), (err: Error & { code?: string }) => err.code === ERR_CONFIG, '--qemu-listen')
    // Loopback stays as it was; beyond it, only on purpose.
    assert.equal(buildConfig({ qemu: [{ name: 'vm1', listen: 'tcp:127.0.0.1:5555' }] }, 'test').qemu[0]?.allowRemote, false)
    assert.equal(buildConfig({ qemu: [{ name: 'vm1', listen: 'tcp:0.0.0.0:5555', allowRemote: true }] }, 'test').qemu[0]?.allowRemote, true)
  })

  it('attack: other local users cannot connect to a QEMU Unix socket (0600 whatever the umask; 0660 only when asked)', async () => {
    const old = process.umask(0)
    try {
      const a = path.join(dir, 'a.sock')
      const b = path.join(dir, 'b.sock')
      await start([{ name: 'vm1', listen: `unix:${a}` }, { name: 'vm2', listen: `unix:${b}`, socketMode: '0660' }])
      assert.equal(fs.statSync(a).mode & 0o777, 0o600)
      assert.equal(fs.statSync(b).mode & 0o777, 0o660)
    } finally {
      process.umask(old)
    }
    assert.throws(() => buildConfig({ qemu: [{ name: 'vm1', listen: `unix:${dir}/c.sock`, socketMode: '0666' }] }, 'test'),
      (err: Error & { code?: string }) => err.code === ERR_CONFIG, 'a mode that lets anyone be the VM is refused')
  })
})

describe('audit: tap-agent --qemu-listen (integration)', function () {
  this.timeout(10_000)
  let dir: string
  const handles: ModeHandle[] = []
  let restore: (line: string) => void

  beforeEach(() => {
    restore = setLogSink(() => {})
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-audit-qemu-agent-'))
  })
  afterEach(async () => {
    for (const h of handles.splice(0)) await h.stop()
    fs.rmSync(dir, { recursive: true, force: true })
    setLogSink(restore)
  })

  // Nothing listens at this URL: the agents only need to exist.
  const opts = { url: 'ws://127.0.0.1:9/', reconnectMin: 5, reconnectMax: 5 }

  it('attack: a tcp listener beyond loopback without --qemu-allow-remote fails at start with TSW_ERR_CONFIG', async () => {
    for (const host of ['0.0.0.0', '::', '192.0.2.1']) {
      await assert.rejects(listenForQemu({ kind: 'tcp', host, port: 0 }, opts, 'vm1'), (err: Error & { code?: string }) => err.code === ERR_CONFIG, host)
    }
    const h = await listenForQemu({ kind: 'tcp', host: '127.0.0.1', port: 0 }, opts, 'vm1')
    handles.push(h)
  })

  it('attack: other local users cannot connect to its Unix socket (0600 whatever the umask)', async () => {
    const sockPath = path.join(dir, 'vm1.sock')
    const old = process.umask(0)
    try {
      handles.push(await listenForQemu({ kind: 'unix', path: sockPath }, opts, 'vm1'))
    } finally {
      process.umask(old)
    }
    assert.equal(fs.statSync(sockPath).mode & 0o777, 0o600)
  })
})
