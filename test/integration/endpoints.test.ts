/**
 * tap-agent's TAP-less endpoints (src/agent/modes.ts, qemu.ts) against a real
 * SwitchServer, with a raw TestClient on the switch as the far end and plain
 * Node sockets (or a child's stdio) standing in for QEMU and VDE. No root,
 * no QEMU.
 */

import assert from 'node:assert/strict'
import * as net from 'node:net'
import * as dgram from 'node:dgram'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { listenForQemu, connectToQemu, qemuDatagrams, type ModeHandle } from '../../src/agent/modes'
import type { StreamEndpoint, DatagramEndpoint } from '../../src/agent/qemu'
import type { UplinkOptions } from '../../src/common/uplink'
import { setLogSink } from '../../src/common/log'
import { TestClient } from '../helpers/client'
import { waitFor, onceWithin, sleep } from '../helpers/net'
import { eth, BROADCAST, MAC_A, MAC_B, MAC_C } from '../helpers/frames'
import { prefixed, writeSplit, FrameReader } from '../helpers/stream-peer'

const ROOT = path.join(__dirname, '..', '..')

/** Frames of assorted sizes from `src` (broadcast, so the raw client gets them without learning). */
function burst (src: string, first: number, sizes = [60, 61, 1514]): Buffer[] {
  return sizes.map((size, i) => eth(BROADCAST, src, first + i, size))
}

describe('QEMU and VDE endpoints (integration, fake peers)', function () {
  let server: SwitchServer
  let port: number
  let url: string
  let dir: string
  let raw: TestClient
  const handles: ModeHandle[] = []
  const sockets: Array<net.Socket | dgram.Socket | net.Server> = []
  const children: ChildProcess[] = []
  const logs: string[] = []
  let restore: (line: string) => void

  const opts = (): UplinkOptions => ({ url, reconnectMin: 0.05, reconnectMax: 0.2 })
  const portNamed = (name: string): ReturnType<SwitchServer['ports']>[number] | undefined => server.ports().find((p) => p.name === name)
  const streamEp = (h: ModeHandle): StreamEndpoint => h.agents()[0]?.tap as StreamEndpoint
  /** A tap-agent listening for QEMU on `sockPath` as port vm1, once vm1 is on the switch. */
  const listenVm1 = async (sockPath: string, maxVms = 1): Promise<ModeHandle> => {
    const h = await listenForQemu({ kind: 'unix', path: sockPath }, opts(), 'vm1', { maxVms })
    handles.push(h)
    await waitFor(() => portNamed('vm1') !== undefined && h.agents()[0]?.uplink.isUp === true, 3000, 'port vm1')
    return h
  }

  /** A fake QEMU connecting to a Unix socket (`-netdev stream,server=off`). */
  async function qemuConnects (sockPath: string): Promise<{ sock: net.Socket, reader: FrameReader }> {
    const sock = net.connect(sockPath)
    sockets.push(sock)
    sock.on('error', () => {})
    await onceWithin(sock, 'connect')
    sock.setNoDelay(true)
    return { sock, reader: new FrameReader(sock, 4) }
  }

  beforeEach(async () => {
    logs.length = 0
    restore = setLogSink((l) => { logs.push(l) })
    server = new SwitchServer({ host: '127.0.0.1', port: 0 })
    port = (await server.listen()).port
    url = `ws://127.0.0.1:${port}/`
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-endpoints-'))
    raw = await TestClient.raw(url)
    await waitFor(() => server.ports().length === 1, 3000, 'raw client port')
  })

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-40).join('\n') + '\n')
    for (const c of children.splice(0)) {
      if (c.exitCode === null && c.signalCode === null) { c.kill('SIGKILL'); await once(c, 'exit') }
    }
    for (const h of handles.splice(0)) await h.stop()
    for (const s of sockets.splice(0)) {
      if (s instanceof net.Socket) s.destroy()
      else if (s instanceof net.Server) s.close()
      else { try { s.close() } catch {} }
    }
    raw.close()
    await server.close()
    fs.rmSync(dir, { recursive: true, force: true })
    await sleep(20) // detach events of the sockets closed above
    setLogSink(restore)
  })

  it('listen (Unix): frames split at odd boundaries go up; switch frames come back framed', async () => {
    const sockPath = path.join(dir, 'vm.sock')
    const h = await listenVm1(sockPath)
    const { sock, reader } = await qemuConnects(sockPath)
    await waitFor(() => streamEp(h).attached, 3000, 'QEMU attached')

    const up = burst(MAC_A, 1)
    const stream = prefixed(up, 4)
    // mid-prefix, prefix+1, mid-frame, across the 1st/2nd boundary, mid-prefix of the 3rd, inside the big one
    await writeSplit(sock, stream, [1, 3, 5, 40, 63, 66, 130, 131, 600, 1200])
    await waitFor(() => raw.frames.length === 3, 3000, 'three frames at the raw client')
    assert.deepEqual(raw.take(), up)

    const down = [eth(BROADCAST, MAC_B, 7), eth(MAC_A, MAC_B, 8, 1514), eth(MAC_A, MAC_B, 9, 100)]
    raw.send(down)
    await waitFor(() => reader.frames.length === 3, 3000, 'three frames at QEMU')
    assert.deepEqual(reader.take(), down)
    assert.equal(reader.leftover, 0, 'nothing but whole records on the QEMU socket')
    assert.equal(reader.bytes, down.reduce((n, f) => n + 4 + f.length, 0))
    const st = streamEp(h).stats()
    assert.equal(st.rxFrames, 3)
    assert.equal(st.txFrames, 3)
    assert.equal(portNamed('vm1')?.rxFrames, 3, 'the switch counted them on vm1')
  })

  it('listen: a QEMU that disconnects and comes back gets the same port; with --qemu-max-vms 3 a second one gets <name>-2', async () => {
    const sockPath = path.join(dir, 'vm.sock')
    const h = await listenVm1(sockPath, 3)
    const id = portNamed('vm1')?.id
    const ep = streamEp(h)

    const first = await qemuConnects(sockPath)
    await waitFor(() => ep.attached, 3000, 'first QEMU attached')
    await writeSplit(first.sock, prefixed([eth(BROADCAST, MAC_A, 1)], 4), [2])
    await waitFor(() => raw.frames.length === 1, 3000, 'frame from the first QEMU')
    raw.take()

    // QEMU goes away: the endpoint detaches, the uplink and the port stay.
    first.sock.destroy()
    await waitFor(() => !ep.attached, 3000, 'detached')
    raw.send([eth(BROADCAST, MAC_B, 2)])
    // The frame reached the endpoint through the port: the port was still there after the detach.
    await waitFor(() => ep.stats().txDropped === 1, 3000, 'a frame dropped while nothing is attached')
    assert.equal(portNamed('vm1')?.id, id, 'the port stayed while QEMU was away')

    // QEMU is back: same endpoint, same port, no reconnect of ours.
    const again = await qemuConnects(sockPath)
    await waitFor(() => ep.attached, 3000, 'QEMU attached again')
    assert.equal(ep.attachments, 2)
    await writeSplit(again.sock, prefixed(burst(MAC_A, 10), 4), [3, 70, 71])
    await waitFor(() => raw.frames.length === 3, 3000, 'frames flow again')
    assert.deepEqual(raw.take(), burst(MAC_A, 10))
    raw.send([eth(MAC_A, MAC_B, 20)])
    await waitFor(() => again.reader.frames.length === 1, 3000, 'frame to the returned QEMU')
    assert.deepEqual(again.reader.take(), [eth(MAC_A, MAC_B, 20)])
    assert.equal(portNamed('vm1')?.id, id, 'same port id')
    assert.equal(h.agents()[0]?.uplink.stats.connects, 1, 'the uplink never reconnected')
    assert.equal(server.ports().filter((p) => p.name.startsWith('vm1')).length, 1)

    // A second QEMU beside the first: a port of its own once it speaks, for as long as it lasts.
    // (Its port is made on its first frame, which arrives before the uplink is up and is dropped, counted.)
    // A connection that says nothing comes first: its accept is handled before the second's first frame,
    // so by the time that frame has made port vm1-2, a port for the silent one would exist too.
    const silent = await qemuConnects(sockPath)
    const second = await qemuConnects(sockPath)
    await writeSplit(second.sock, prefixed([eth(BROADCAST, MAC_C, 29)], 4), [])
    await waitFor(() => portNamed('vm1-2') !== undefined, 3000, 'port vm1-2')
    assert.equal(h.agents().length, 2, 'a connection that says nothing gets no port')
    silent.sock.destroy()
    await waitFor(() => h.agents()[1]?.uplink.isUp === true, 3000, 'vm1-2 uplink up')
    await sleep(50)
    raw.take()
    again.reader.take()
    await writeSplit(second.sock, prefixed([eth(BROADCAST, MAC_C, 30)], 4), [1])
    await waitFor(() => raw.frames.length === 1, 3000, 'frame from the second QEMU')
    assert.deepEqual(raw.take(), [eth(BROADCAST, MAC_C, 30)])
    assert.ok((portNamed('vm1-2')?.rxFrames ?? 0) >= 1, 'counted on vm1-2')
    assert.equal(portNamed('vm1')?.id, id, 'vm1 untouched')
    await waitFor(() => again.reader.frames.length === 1, 3000, 'its broadcast flooded to the first QEMU too')
    assert.deepEqual(again.reader.take(), [eth(BROADCAST, MAC_C, 30)])
    raw.send([eth(MAC_C, MAC_B, 31)])
    await waitFor(() => second.reader.frames.length === 1, 3000, 'unicast to the second QEMU')
    assert.deepEqual(second.reader.take(), [eth(MAC_C, MAC_B, 31)])
    // Barrier: a broadcast by the same path reaches the first QEMU after the unicast would have.
    raw.send([eth(BROADCAST, MAC_B, 32)])
    await waitFor(() => again.reader.frames.length >= 1, 3000, 'the barrier at the first QEMU')
    assert.deepEqual(again.reader.take().map((f) => f[14]), [32], 'learned unicast not flooded to the first')

    second.sock.destroy()
    await waitFor(() => portNamed('vm1-2') === undefined, 3000, 'vm1-2 gone with its connection')
    assert.equal(h.agents().length, 1)
    assert.equal(portNamed('vm1')?.id, id)
    await writeSplit(again.sock, prefixed([eth(BROADCAST, MAC_A, 40)], 4), [])
    await waitFor(() => raw.frames.length === 1, 3000, 'the first still works')
  })

  it('connect (TCP): exchanges frames and reconnects after QEMU restarts', async () => {
    let conns: net.Socket[] = []
    const listen = async (p: number): Promise<net.Server> => {
      const srv = net.createServer((s) => { s.on('error', () => {}); conns.push(s) })
      sockets.push(srv)
      srv.listen(p, '127.0.0.1')
      await onceWithin(srv, 'listening')
      return srv
    }
    let fake = await listen(0)
    const qport = (fake.address() as net.AddressInfo).port
    const h = connectToQemu({ kind: 'tcp', host: '127.0.0.1', port: qport }, opts(), 'vmc')
    handles.push(h)
    const ep = streamEp(h)
    await waitFor(() => conns.length === 1 && ep.attached && h.agents()[0]?.uplink.isUp === true, 5000, 'connected both ways')
    const id = portNamed('vmc')?.id
    assert.notEqual(id, undefined)

    const exchange = async (conn: net.Socket, tag: number): Promise<void> => {
      const reader = new FrameReader(conn, 4)
      const up = burst(MAC_A, tag)
      await writeSplit(conn, prefixed(up, 4), [2, 64, 66, 67])
      await waitFor(() => raw.frames.length === 3, 3000, 'frames from QEMU')
      assert.deepEqual(raw.take(), up)
      const down = [eth(MAC_A, MAC_B, tag + 5), eth(BROADCAST, MAC_B, tag + 6, 999)]
      raw.send(down)
      await waitFor(() => reader.frames.length === 2, 3000, 'frames to QEMU')
      assert.deepEqual(reader.take(), down)
      assert.equal(reader.leftover, 0)
    }
    await exchange(conns[0] as net.Socket, 1)

    // QEMU restarts: its socket closes, and for a while nothing listens.
    conns[0]?.destroy()
    fake.close()
    conns = []
    await waitFor(() => !ep.attached, 3000, 'detached')
    await waitFor(() => logs.some((l) => l.includes('"qemu_connect_failed"')), 5000, 'a dial refused while QEMU is down')
    fake = await listen(qport)
    await waitFor(() => conns.length === 1 && ep.attached, 8000, 'reconnected to the restarted QEMU')
    await exchange(conns[0] as net.Socket, 20)
    assert.equal(portNamed('vmc')?.id, id, 'same port')
    assert.equal(ep.attachments, 2)
  })

  it('dgram (UDP): one frame per datagram both ways; datagrams from elsewhere are ignored', async () => {
    const qemu = dgram.createSocket('udp4')
    sockets.push(qemu)
    qemu.bind(0, '127.0.0.1')
    await onceWithin(qemu, 'listening')
    const got: Buffer[] = []
    qemu.on('message', (m) => { got.push(m) })
    // A free local port for the endpoint.
    const probe = dgram.createSocket('udp4')
    probe.bind(0, '127.0.0.1')
    await onceWithin(probe, 'listening')
    const local = probe.address().port
    probe.close()
    const h = await qemuDatagrams({ local: { host: '127.0.0.1', port: local }, remote: { host: '127.0.0.1', port: qemu.address().port } }, opts(), 'vmd')
    handles.push(h)
    await waitFor(() => portNamed('vmd') !== undefined && h.agents()[0]?.uplink.isUp === true, 3000, 'port vmd')

    const up = burst(MAC_A, 1)
    for (const f of up) qemu.send(f, local, '127.0.0.1')
    await waitFor(() => raw.frames.length === 3, 3000, 'three datagrams at the raw client')
    assert.deepEqual(raw.take(), up)

    const down = [eth(MAC_A, MAC_B, 5), eth(BROADCAST, MAC_B, 6, 1514)]
    raw.send(down)
    await waitFor(() => got.length === 2, 3000, 'two datagrams at QEMU')
    assert.deepEqual(got, down, 'each datagram is exactly one frame')

    const stranger = dgram.createSocket('udp4')
    sockets.push(stranger)
    stranger.bind(0, '127.0.0.1')
    await onceWithin(stranger, 'listening')
    stranger.send(eth(BROADCAST, MAC_C, 9), local, '127.0.0.1')
    const ep = h.agents()[0]?.tap as DatagramEndpoint
    await waitFor(() => ep.stats().rxErrors + ep.stats().rxFrames === 4, 3000, 'the stranger\'s datagram read')
    // Barrier: a frame from our QEMU by the same path reaches the raw client after the stranger's would have.
    qemu.send(eth(BROADCAST, MAC_A, 10), local, '127.0.0.1')
    await waitFor(() => raw.frames.some((f) => f[14] === 10), 3000, 'QEMU frame after the stranger')
    assert.deepEqual(raw.take(), [eth(BROADCAST, MAC_A, 10)], 'only our QEMU is heard')
    const st = ep.stats()
    assert.equal(st.rxFrames, 4)
    assert.equal(st.txFrames, 2)
  })

  it('VDE stdio: 2-byte records on stdin/stdout of a tap-agent child; it exits when stdin ends', async () => {
    const child = spawn(process.execPath, ['-r', 'tsx/cjs', '-e', "require('./src/agent/main').main(process.argv.slice(1))", '--',
      '--url', url, '--vde-stdio', '--name', 'vde1', '--reconnect-max', '0.25'], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] })
    children.push(child)
    let stderr = ''
    child.stderr?.setEncoding('utf8')
    child.stderr?.on('data', (d: string) => { stderr += d })
    const reader = new FrameReader(child.stdout, 2)
    const stdin = child.stdin
    await waitFor(() => portNamed('vde1') !== undefined, 10_000, 'port vde1 (child started)')
    await waitFor(() => stderr.includes('"endpoint_attached"'), 3000, 'endpoint attached to stdio')

    const up = burst(MAC_A, 1)
    await writeSplit(stdin, prefixed(up, 2), [1, 2, 3, 62, 63, 64, 100, 125, 126, 127, 900])
    await waitFor(() => raw.frames.length === 3, 5000, 'three frames at the raw client')
    assert.deepEqual(raw.take(), up)

    const down = [eth(MAC_A, MAC_B, 5), eth(BROADCAST, MAC_B, 6, 1514), eth(MAC_A, MAC_B, 7, 61)]
    raw.send(down)
    await waitFor(() => reader.frames.length === 3, 5000, 'three frames on stdout')
    assert.deepEqual(reader.take(), down)
    assert.equal(reader.leftover, 0, 'stdout carries records only (logs go to stderr)')
    assert.equal(reader.bytes, down.reduce((n, f) => n + 2 + f.length, 0))
    assert.ok((portNamed('vde1')?.rxFrames ?? 0) >= 3)
    assert.match(stderr, /"event":"uplink_connected"/, 'logs are on stderr')

    // The cable is unplugged: stdin ends, the agent leaves.
    stdin.end()
    const [code] = await onceWithin<[number | null]>(child, 'exit', 8000)
    assert.equal(code, 0, `tap-agent exits cleanly when stdin ends:\n${stderr}`)
    assert.match(stderr, /"vde_cable_unplugged"/)
    await waitFor(() => portNamed('vde1') === undefined, 3000, 'port vde1 gone')
  })

  it('a framing error closes only that QEMU connection; the listener takes the next one', async () => {
    const sockPath = path.join(dir, 'vm.sock')
    const h = await listenVm1(sockPath)
    const id = portNamed('vm1')?.id
    const ep = streamEp(h)

    const bad = await qemuConnects(sockPath)
    await waitFor(() => ep.attached, 3000, 'attached')
    // A good frame, a record of exactly the largest length (65553: accepted, the switch drops it as oversize), a good frame...
    const largest = Buffer.alloc(65553)
    eth(BROADCAST, MAC_A, 2).copy(largest)
    await writeSplit(bad.sock, prefixed([eth(BROADCAST, MAC_A, 1), largest, eth(BROADCAST, MAC_A, 3)], 4), [5, 1000, 40000])
    await waitFor(() => raw.frames.length === 2, 3000, 'good frames around the largest record')
    assert.deepEqual(raw.take(), [eth(BROADCAST, MAC_A, 1), eth(BROADCAST, MAC_A, 3)])
    assert.equal(ep.attached, true, 'a length of exactly 65553 is not a framing error')
    // ...then a length one over the maximum: the stream is out of step.
    const over = Buffer.alloc(4 + 100)
    over.writeUInt32BE(65554, 0)
    const closed = onceWithin(bad.sock, 'close', 3000)
    bad.sock.write(Buffer.concat([prefixed([eth(BROADCAST, MAC_A, 4)], 4), over]))
    await closed
    await waitFor(() => !ep.attached, 3000, 'detached')
    assert.ok(logs.some((l) => l.includes('"endpoint_framing_error"')), 'endpoint_framing_error logged')
    assert.equal(ep.stats().rxErrors, 1)
    await waitFor(() => raw.frames.length === 1, 3000, 'the frame before the bad length was delivered')
    assert.deepEqual(raw.take(), [eth(BROADCAST, MAC_A, 4)])

    const next = await qemuConnects(sockPath)
    await waitFor(() => ep.attached, 3000, 'next connection attached')
    await writeSplit(next.sock, prefixed([eth(BROADCAST, MAC_A, 5)], 4), [2])
    await waitFor(() => raw.frames.length === 1, 3000, 'frames flow on the next connection')
    assert.deepEqual(raw.take(), [eth(BROADCAST, MAC_A, 5)])
    raw.send([eth(MAC_A, MAC_B, 6)])
    await waitFor(() => next.reader.frames.length === 1, 3000, 'and back')
    assert.equal(portNamed('vm1')?.id, id, 'same port throughout')
    assert.equal(h.agents()[0]?.uplink.stats.connects, 1)
  })
})
