/**
 * Frames for a port whose peer is away (a QEMU listener with no VM, a parked
 * agent, the gateway's child restarting) are a drop reason like the others
 * (issue 21, finding 13): `disconnected` in the metrics, the admin API,
 * `switchctl ports` and `switchctl drops`, in the drop log, and in the
 * network's count after the port has gone.
 */

import assert from 'node:assert/strict'
import * as net from 'node:net'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import WebSocket from 'ws'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { setLogSink } from '../../src/common/log'
import { SUBPROTOCOL_V1, encodeBatch } from '../../src/common/protocol'
import type { DropsJson, PortJson } from '../../src/common/api-types'
import { TestClient } from '../helpers/client'
import { switchctl } from '../helpers/ctl'
import { waitFor, onceWithin } from '../helpers/net'
import { eth, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'
import { prefixed } from '../helpers/stream-peer'
import type { NetPort } from '../../src/switch/io/net-port'
import { R_DISCONNECTED } from '../../src/switch/core/reasons'

const TOKEN = 'test-admin-token-0123456789'

describe('drop reason "disconnected" (integration)', function () {
  let server: SwitchServer
  let http: string
  let dir: string
  const logs: string[] = []
  const closers: Array<() => void> = []
  let restore: (line: string) => void

  async function start (config: Record<string, unknown>): Promise<string> {
    server = new SwitchServer({ config: buildConfig({ adminToken: TOKEN, ...config }, 'test'), host: '127.0.0.1', port: 0 })
    const { port } = await server.listen()
    http = `http://127.0.0.1:${port}`
    return `ws://127.0.0.1:${port}/`
  }
  async function get<T> (p: string): Promise<T> {
    const r = await fetch(http + p, { headers: { authorization: `Bearer ${TOKEN}` } })
    assert.equal(r.status, 200, p)
    return (p === '/metrics' ? await r.text() : await r.json()) as T
  }

  beforeEach(() => {
    logs.length = 0
    restore = setLogSink((l) => { logs.push(l) })
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-disc-'))
  })
  afterEach(async () => {
    for (const c of closers.splice(0)) c()
    await server.close()
    fs.rmSync(dir, { recursive: true, force: true })
    setLogSink(restore)
  })

  it('attack: frames flooded to a QEMU listener whose VM went away are counted and shown everywhere drops are', async () => {
    const sockPath = path.join(dir, 'vm1.sock')
    const url = await start({ qemu: [{ name: 'vm1', listen: `unix:${sockPath}` }] })
    const lan = await TestClient.raw(url)
    closers.push(() => { lan.close() })
    const vm = net.connect(sockPath)
    vm.on('error', () => {})
    await onceWithin(vm, 'connect')
    vm.write(prefixed([eth(BROADCAST, MAC_B, 1)], 4))
    await waitFor(() => lan.frames.length === 1, 10_000, 'the VM on the LAN')
    vm.destroy()
    await waitFor(() => logs.some((l) => l.includes('"qemu_disconnected"')), 10_000, 'the VM gone')
    lan.send([eth(BROADCAST, MAC_A, 1), eth(BROADCAST, MAC_A, 2), eth(MAC_B, MAC_A, 3)])
    const vm1 = server.ports().find((p) => p.name === 'vm1')
    await waitFor(() => vm1?.drops[R_DISCONNECTED] === 3, 10_000, 'three drops')

    const metrics = await get<string>('/metrics')
    assert.match(metrics, /^switchd_frames_dropped_total\{network="default",reason="disconnected",replica="[^"]*"\} 3$/m)
    assert.match(metrics, /^switchd_port_drops_total\{network="default",port="vm1",reason="disconnected",replica="[^"]*"\} 3$/m)
    const ports = await get<PortJson[]>('/api/v1/ports')
    assert.equal(ports.find((p) => p.name === 'vm1')?.drops.disconnected, 3)
    const drops = await get<DropsJson>('/api/v1/drops?reason=disconnected')
    assert.deepEqual(drops.drops.map((d) => [d.port, d.reason, d.src]), [['vm1', 'disconnected', '02:00:00:00:00:01'], ['vm1', 'disconnected', '02:00:00:00:00:01'], ['vm1', 'disconnected', '02:00:00:00:00:01']])
    const ctl = await switchctl(['--url', http, '--token', TOKEN, 'drops', '--reason', 'disconnected'])
    assert.equal(ctl.code, 0, ctl.stderr)
    assert.equal(ctl.stdout.toString().split('\n').filter((l) => /\bvm1\b.*\bdisconnected\b/.test(l)).length, 3, ctl.stdout.toString())
  })

  it('attack: frames for a parked agent are counted as disconnected, and the network keeps the count after the port has gone', async () => {
    const url = await start({ pingInterval: 1, resumeGrace: 1 })
    const agent = new WebSocket(url, [SUBPROTOCOL_V1], { perMessageDeflate: false })
    agent.on('error', () => {})
    closers.push(() => { agent.terminate() })
    await onceWithin(agent, 'open')
    agent.send(JSON.stringify({ type: 'hello', version: 1, name: 'roamer' }))
    await onceWithin(agent, 'message')
    const lan = await TestClient.raw(url)
    closers.push(() => { lan.close() })
    ;(agent as unknown as { _socket: { pause: () => void } })._socket.pause() // the link goes silent
    await waitFor(() => logs.some((l) => l.includes('"port_parked"')), 20_000, 'parked')
    const roamer = server.ports().find((p) => p.name === 'roamer')
    lan.send([eth(BROADCAST, MAC_A, 1), eth(BROADCAST, MAC_A, 2)])
    await waitFor(() => roamer?.drops[R_DISCONNECTED] === 2, 10_000, 'two drops while parked')
    await waitFor(() => !server.ports().some((p) => p.name === 'roamer'), 20_000, 'the grace to end')
    assert.equal(server.switch.stats.drops[R_DISCONNECTED], 2)
    assert.match(await get<string>('/metrics'), /^switchd_frames_dropped_total\{network="default",reason="disconnected",replica="[^"]*"\} 2$/m)
  })

  it('attack: frames for a port switchd is closing (its peer has not answered the close) are counted as disconnected, never as sent', async () => {
    const sockPath = path.join(dir, 'vm1.sock')
    const url = await start({ pingInterval: 3600, qemu: [{ name: 'vm1', listen: `unix:${sockPath}` }] })
    const sender = await TestClient.batched(url, { name: 'sender' })
    closers.push(() => { sender.close() })
    const s = (): NetPort => server.ports().find((q) => q.name === 'sender') as NetPort
    // A QEMU whose socket switchd destroyed (a framing error does): until its close event, a write would be lost unseen.
    const vm = net.connect(sockPath)
    vm.on('error', () => {})
    closers.push(() => { vm.destroy() })
    await onceWithin(vm, 'connect')
    await waitFor(() => server.ports().length === 2, 10_000, 'the QEMU port')
    const vm1 = server.ports().find((q) => q.name === 'vm1') as NetPort & { socket?: net.Socket }
    vm1.socket?.destroy()
    s().network.receiveBatch(s(), encodeBatch(Array.from({ length: 5 }, (_, i) => eth(BROADCAST, MAC_A, i))))
    assert.equal(vm1.txFrames, 0, 'qemu: frames counted as sent to a destroyed socket')
    assert.equal(vm1.drops[R_DISCONNECTED], 5, 'qemu')
    for (const kind of ['raw', 'batched'] as const) {
      const peer = kind === 'raw' ? await TestClient.raw(url) : await TestClient.batched(url, { name: 'peer' })
      closers.push(() => { peer.close() })
      await waitFor(() => server.ports().length === 3, 10_000, `the ${kind} port`)
      const p = server.ports().find((q) => q.name !== 'sender' && q.name !== 'vm1') as NetPort
      // Its peer reads nothing more, so it never answers the close: ws holds the port in CLOSING for a second.
      ;(peer.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
      server.disconnectPort(p, 'test')
      const tx = p.txFrames
      // In the same turn of the loop as the close: the port is still in the switch, whatever the machine's speed.
      s().network.receiveBatch(s(), encodeBatch(Array.from({ length: 5 }, (_, i) => eth(BROADCAST, MAC_A, i))))
      assert.equal(p.txFrames, tx, `${kind}: frames counted as sent to a closed socket`)
      assert.equal(p.drops[R_DISCONNECTED], 5, kind)
      await waitFor(() => server.ports().length === 2, 20_000, `the ${kind} port gone`)
    }
    // And the QEMU port's own 5 + 5 + 5 while it stayed without its VM.
    assert.equal(server.switch.stats.drops[R_DISCONNECTED], 25)
  })
})
