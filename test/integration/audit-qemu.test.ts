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
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { listenForQemu, type ModeHandle } from '../../src/agent/modes'
import { buildConfig } from '../../src/switch/control/config'
import { ERR_CONFIG } from '../../src/common/errors'
import { setLogSink } from '../../src/common/log'
import { TestClient } from '../helpers/client'
import { waitFor, onceWithin, sleep } from '../helpers/net'
import { eth, BROADCAST, MAC_A, MAC_B, MAC_C } from '../helpers/frames'
import { prefixed, FrameReader } from '../helpers/stream-peer'

describe('audit: QEMU listeners (integration, fake QEMU)', function () {
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
  let dir: string
  const handles: ModeHandle[] = []
  let restore: (line: string) => void

  beforeEach(() => {
    restore = setLogSink(() => {})
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-audit-qemu-agent-'))
  })
  /** Connections the tests made: cut after the listeners stopped, so what the listeners log about them is logged before the test ends. */
  const peers: net.Socket[] = []
  afterEach(async () => {
    for (const h of handles.splice(0)) await h.stop()
    for (const s of peers.splice(0)) s.destroy()
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

  /** A free loopback TCP port (listen on 0, close): a tcp: listener is what any local user can reach. */
  async function freePort (): Promise<number> {
    const s = net.createServer()
    await new Promise<void>((resolve) => { s.listen(0, '127.0.0.1', resolve) })
    const { port } = s.address() as net.AddressInfo
    await new Promise<void>((resolve) => { s.close(() => { resolve() }) })
    return port
  }

  /** `n` connections to 127.0.0.1:`port`, each sending a frame from `src`; resolves once each is connected. */
  async function connectMany (port: number, n: number, src: string): Promise<net.Socket[]> {
    return await Promise.all(Array.from({ length: n }, async (_, i) => {
      const sock = net.connect(port, '127.0.0.1')
      sock.on('error', () => {})
      await onceWithin(sock, 'connect', 30_000)
      sock.write(prefixed([eth(BROADCAST, src, i & 0xff)], 4))
      return sock
    }))
  }

  it('attack: 200 local connections to a tcp: --qemu-listen beside the VM are refused and make no port; the VM keeps its port', async function () {
    this.timeout(120_000) // a guard against a hang: everything below waits for counts
    const server = new SwitchServer({ config: buildConfig({}, 'test'), host: '127.0.0.1', port: 0 })
    const url = `ws://127.0.0.1:${(await server.listen()).port}/`
    const socks: net.Socket[] = []
    try {
      const lan = await TestClient.raw(url)
      const port = await freePort()
      const h = await listenForQemu({ kind: 'tcp', host: '127.0.0.1', port }, { url, reconnectMin: 0.05, reconnectMax: 0.2 }, 'vm1')
      handles.push(h)
      await waitFor(() => h.agents()[0]?.uplink.isUp === true, 30_000, 'vm1\'s uplink')
      const [vm] = await connectMany(port, 1, MAC_A)
      socks.push(vm as net.Socket)
      await waitFor(() => lan.frames.length === 1, 30_000, 'the VM\'s frame on the LAN')
      socks.push(...await connectMany(port, 200, MAC_C))
      await waitFor(() => h.refused() === 200, 30_000, '200 refused')
      await waitFor(() => socks.slice(1).every((s) => s.destroyed || s.readableEnded), 30_000, 'the refused connections closed')
      assert.equal(h.agents().length, 1, 'no agent beside the VM\'s')
      // Barrier: the VM's next frame arrives after anything the refused connections could have sent.
      ;(vm as net.Socket).write(prefixed([eth(BROADCAST, MAC_A, 99)], 4))
      await waitFor(() => lan.frames.some((f) => f[14] === 99), 30_000, 'the VM\'s barrier frame')
      assert.deepEqual(server.ports().map((p) => p.name).filter((n) => n.startsWith('vm1')), ['vm1'])
      assert.equal(lan.frames.filter((f) => f.subarray(6, 12).equals(Buffer.from('020000000003', 'hex'))).length, 0, 'nothing from the refused connections reached the LAN')
      lan.close()
    } finally {
      for (const s of socks) s.destroy()
      await server.close()
    }
  })

  it('--qemu-max-vms 3: two VMs beside the first, silent connections counted; the fourth is refused', async function () {
    const sockPath = path.join(dir, 'vm1.sock')
    const h = await listenForQemu({ kind: 'unix', path: sockPath }, opts, 'vm1', { maxVms: 3 })
    handles.push(h)
    const connect = async (): Promise<net.Socket> => { const s = net.connect(sockPath); s.on('error', () => {}); peers.push(s); await onceWithin(s, 'connect', 30_000); return s }
    {
      await connect() // the VM
      await waitFor(() => (h.agents()[0]?.tap as { attached?: boolean } | undefined)?.attached === true, 30_000, 'the VM attached')
      const silent = await connect() // takes a place though it says nothing
      const second = await connect()
      second.write(prefixed([eth(BROADCAST, MAC_B, 1)], 4))
      await waitFor(() => h.agents().length === 2, 30_000, 'vm1-2')
      await connect()
      await waitFor(() => h.refused() === 1, 30_000, 'the fourth refused')
      silent.destroy()
      // Its place is free again once the listener has seen it close: a connection then gets vm1-3
      // (one made before that is refused, and we try again: the listener's order of events is its own).
      let refused = h.refused()
      for (let tries = 0; h.agents().length < 3 && tries < 50; tries++) {
        const next = await connect()
        next.write(prefixed([eth(BROADCAST, MAC_C, 2)], 4))
        await waitFor(() => h.agents().length === 3 || h.refused() > refused, 30_000, 'vm1-3 or a refusal')
        refused = h.refused()
      }
      assert.deepEqual(h.agents().map((a) => a.uplink.opts.name), ['vm1', 'vm1-2', 'vm1-3'])
      // Full again: the next is refused.
      await connect()
      await waitFor(() => h.refused() === refused + 1, 30_000, 'refused when full again')
      // The VMs leave: their ports go, the first one's stays for its return.
      for (const s of peers.splice(0)) s.destroy()
      await waitFor(() => h.agents().length === 1 && (h.agents()[0]?.tap as { attached?: boolean }).attached === false, 30_000, 'every VM gone')
    }
  })

  it('attack: connections beside the VM that are reset before they say anything, or after, crash nothing; the VM keeps its port and a later one gets <name>-2', async function () {
    // Any local user reaches a tcp: listener. Before: a reset (RST) on a connection beside the VM, before its first
    // byte, was an 'error' event with no listener: tap-agent died, and every VM behind it lost its network.
    const port = await freePort()
    const h = await listenForQemu({ kind: 'tcp', host: '127.0.0.1', port }, opts, 'vm1', { maxVms: 2 })
    handles.push(h)
    const connect = async (): Promise<net.Socket> => { const s = net.connect(port, '127.0.0.1'); s.on('error', () => {}); peers.push(s); await onceWithin(s, 'connect', 30_000); return s }
    const vm = await connect()
    await waitFor(() => (h.agents()[0]?.tap as { attached?: boolean } | undefined)?.attached === true, 30_000, 'the VM attached')
    /** A VM beside the first: a connection that sends a frame, again if the listener had not yet seen the last one close. */
    const besideVm = async (tag: number): Promise<net.Socket> => {
      for (let tries = 0; tries < 50; tries++) {
        const refused = h.refused()
        const s = await connect()
        s.write(prefixed([eth(BROADCAST, MAC_B, tag)], 4))
        await waitFor(() => h.agents().length === 2 || h.refused() > refused, 30_000, 'vm1-N or a refusal')
        if (h.agents().length === 2) return s
      }
      throw new Error('no place beside the VM')
    }
    for (let i = 0; i < 20; i++) {
      const s = i % 2 === 0 ? await connect() : await besideVm(i)
      s.resetAndDestroy()
      await waitFor(() => h.agents().length === 1, 30_000, 'the reset connection gone')
    }
    await besideVm(99)
    assert.equal((h.agents()[0]?.tap as { attached?: boolean }).attached, true, 'the VM kept its port')
    assert.ok(!vm.destroyed)
  })

  it('attack: --qemu-max-vms beyond its cap or not a whole number is refused with TSW_ERR_CONFIG', async () => {
    for (const maxVms of [0, 17, 1.5, NaN]) {
      await assert.rejects(listenForQemu({ kind: 'unix', path: path.join(dir, 'x.sock') }, opts, 'vm1', { maxVms }), (err: Error & { code?: string }) => err.code === ERR_CONFIG, String(maxVms))
    }
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
