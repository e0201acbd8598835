/**
 * TAPs switchd serves itself (`taps`, src/switch/io/tap-port.ts), over the
 * fake TAP binding: frames read from the TAP reach WebSocket ports and back,
 * a refused write is counted, and the configuration is checked before
 * anything is opened (bad names, EPERM naming CAP_NET_ADMIN).
 */

import assert from 'node:assert/strict'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import type { TapBinding } from '../../src/switch/io/tap-port'
import { ERR_CONFIG, ERR_TAP } from '../../src/common/errors'
import { setLogSink } from '../../src/common/log'
import { decodeBatch } from '../../src/common/protocol'
import { TestClient } from '../helpers/client'
import { FakeTap } from '../helpers/fake-tap'
import { waitFor } from '../helpers/net'
import { eth, BROADCAST, MAC_A, MAC_B, MAC_C } from '../helpers/frames'
import { R_BACKPRESSURE } from '../../src/switch/core/reasons'

const binding: TapBinding = { Tap: FakeTap, OFFLOAD_TSO: 15 }

/** A binding whose open fails as the kernel's would, with the binding's error shape. */
function failingBinding (code: string, errno: number, syscall: string): TapBinding {
  class Refused extends FakeTap {
    constructor (name: string) {
      super(name)
      throw Object.assign(new Error(`${syscall}: ${code}`), { code, errno, syscall, hint: '' })
    }
  }
  return { ...binding, Tap: Refused }
}

describe('local TAPs served by switchd (integration, fake TAP)', function () {
  let server: SwitchServer | undefined
  const clients: TestClient[] = []
  const logs: string[] = []
  let restore: (line: string) => void

  async function start (taps: unknown[], b: TapBinding = binding): Promise<{ server: SwitchServer, url: string }> {
    const s = new SwitchServer({ config: buildConfig({ taps }, 'test'), host: '127.0.0.1', port: 0, tapBinding: b })
    server = s
    const { port } = await s.listen()
    return { server: s, url: `ws://127.0.0.1:${port}/` }
  }

  const tapNamed = (name: string): FakeTap => {
    const t = FakeTap.instances.filter((x) => x.name === name).pop()
    assert.ok(t, `FakeTap ${name}`)
    return t
  }

  beforeEach(() => {
    logs.length = 0
    restore = setLogSink((l) => { logs.push(l) })
  })

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-30).join('\n') + '\n')
    for (const c of clients.splice(0)) c.close()
    await server?.close()
    server = undefined
    setLogSink(restore)
  })

  it('forwards between two local TAPs and a WebSocket port, with offload on and the MTU of the network', async () => {
    const { server: s, url } = await start([{ name: 'ltap1' }, { name: 'ltap2', offload: 'off', up: false }])
    const t1 = tapNamed('ltap1')
    const t2 = tapNamed('ltap2')
    assert.equal(t1.vnetRecords, true, 'offload auto: records carry the virtio-net header')
    assert.equal(t1.offload, 15)
    assert.equal(t2.vnetHdr, false, 'offload off: no IFF_VNET_HDR')
    assert.equal(t1.up, true)
    assert.equal(t2.up, false, 'up: false leaves the link down')
    assert.equal(t1.mtu, 1500)
    const lan = await TestClient.raw(url)
    clients.push(lan)

    // t1 is an offload port: its records start with a 10-byte virtio-net header (zero = a plain frame).
    const hdr = Buffer.alloc(10)
    t1.inject([Buffer.concat([hdr, eth(BROADCAST, MAC_A, 1)])])
    await waitFor(() => lan.frames.length === 1 && t2.written.length === 1, 3000, 'the flood at the LAN and at ltap2')
    assert.equal(t2.written[0]?.[14], 1, 'ltap2 gets the plain frame')
    t2.inject([eth(MAC_A, MAC_B, 2)])
    await waitFor(() => t1.written.length === 1, 3000, 'the unicast at ltap1')
    assert.equal(t1.written[0]?.length, 10 + 60, 'ltap1 gets a header and the frame')
    assert.equal(t1.written[0]?.[10 + 14], 2)
    lan.send([eth(MAC_B, MAC_C, 3)])
    await waitFor(() => t2.written.length === 2, 3000, 'the LAN\'s unicast at ltap2')
    assert.equal(lan.frames.length, 1, 'the unicast between the TAPs did not reach the LAN')

    const ports = s.ports().filter((p) => p.kind === 'tap').map((p) => [p.name, p.remote, p.offload])
    assert.deepEqual(ports, [['ltap1', 'tap:ltap1', true], ['ltap2', 'tap:ltap2', false]])
    await s.close()
    server = undefined
    assert.equal(t1.fd, -1, 'closed with switchd')
  })

  it('counts frames the kernel refused instead of queueing them', async () => {
    const { server: s, url } = await start([{ name: 'ltap3', offload: 'off' }])
    const t = tapNamed('ltap3')
    let refuse = true
    const real = t.writeBatch.bind(t)
    t.writeBatch = (buf, start, end) => {
      if (!refuse) return real(buf, start, end)
      // The kernel's queue was full for every frame of this batch: the binding counts TX_DROPPED.
      const n = decodeBatch(buf.subarray(start, end)).length
      const c = (t as unknown as { counters: Float64Array }).counters
      c[4] = (c[4] as number) + n
      return 0
    }
    const lan = await TestClient.raw(url)
    clients.push(lan)
    lan.send([eth(BROADCAST, MAC_A, 1), eth(BROADCAST, MAC_A, 2)])
    const port = s.ports().find((p) => p.name === 'ltap3')
    await waitFor(() => (port?.drops[R_BACKPRESSURE] ?? 0) === 2, 3000, 'two drops counted')
    assert.equal(port?.txFrames, 0)
    refuse = false
    lan.send([eth(BROADCAST, MAC_A, 3)])
    await waitFor(() => t.written.length === 1, 3000, 'the next frame written')
    assert.equal(port?.txFrames, 1)
  })

  it('attack: a port-security shutdown takes the TAP\'s port out of the network and stops reading it', async () => {
    const s = new SwitchServer({
      config: buildConfig({ taps: [{ name: 'ltap6' }], profiles: [{ match: 'ltap6', maxMacs: 1, violation: 'shutdown' }] }, 'test'),
      host: '127.0.0.1', port: 0, tapBinding: binding
    })
    server = s
    const { port } = await s.listen()
    const lan = await TestClient.raw(`ws://127.0.0.1:${port}/`)
    clients.push(lan)
    const t = tapNamed('ltap6')
    const hdr = Buffer.alloc(10)
    t.inject([Buffer.concat([hdr, eth(BROADCAST, MAC_A, 1)])])
    await waitFor(() => lan.frames.length === 1, 3000, 'the first MAC\'s frame')
    t.inject([Buffer.concat([hdr, eth(BROADCAST, MAC_B, 2)])]) // a second MAC over maxMacs 1: shutdown
    await waitFor(() => s.ports().every((p) => p.name !== 'ltap6'), 3000, 'the port leaves')
    assert.throws(() => { t.inject([eth(BROADCAST, MAC_A, 3)]) }, /not started/, 'the TAP is no longer read')
    lan.send([eth(BROADCAST, MAC_C, 4)])
    lan.send([eth(MAC_A, MAC_C, 5)])
    // Barrier: a second client hears the LAN's broadcast, the TAP gets nothing.
    const other = await TestClient.raw(`ws://127.0.0.1:${port}/`)
    clients.push(other)
    lan.send([eth(BROADCAST, MAC_C, 6)])
    await waitFor(() => other.frames.some((f) => f[14] === 6), 3000, 'the barrier')
    assert.equal(t.written.length, 0, 'nothing is written to a shut-down TAP')
    assert.ok(logs.some((l) => l.includes('"event":"port_shutdown"') && l.includes('ltap6')))
  })

  it('attack: a TAP name that is not an interface name is refused with the key in the message, before anything opens', () => {
    const before = FakeTap.instances.length
    for (const name of ['', '.', '..', 'a/b', 'tap%d', 'has space', 'a:b', 'x'.repeat(16), '-lead', 'eth0\n', 7, null]) {
      assert.throws(() => buildConfig({ taps: [{ name }] }, 'test'),
        (err: Error & { code?: string }) => err.code === ERR_CONFIG && err.message.includes('taps[0].name'), JSON.stringify(name))
    }
    assert.throws(() => buildConfig({ taps: [{ name: 'a' }, { name: 'a' }] }, 'test'), /taps\[1\]\.name: "a" twice/)
    assert.throws(() => buildConfig({ taps: [{ name: 'a', offload: 'yes' }] }, 'test'), /taps\[0\]\.offload/)
    assert.throws(() => buildConfig({ taps: [{ name: 'a', persist: true }] }, 'test'), /taps\[0\]\.persist: unknown key/)
    assert.throws(() => buildConfig({ taps: 'tap0' }, 'test'), /taps: expected a list/)
    assert.throws(() => buildConfig({ taps: [{ name: 'vm1' }], qemu: [{ name: 'vm1', listen: 'unix:/tmp/x.sock' }] }, 'test'), /taps\[0\]\.name: "vm1" is also a qemu port's name/)
    assert.throws(() => buildConfig({}, 'test', { taps: 'ok0,bad/1' }), /taps\[1\]\.name/)
    for (const busyPoll of [-1, 100_001, 1.5, '10']) {
      assert.throws(() => buildConfig({ busyPoll }, 'test'), (err: Error & { code?: string }) => err.code === ERR_CONFIG && err.message.includes('busyPoll'), String(busyPoll))
    }
    assert.equal(FakeTap.instances.length, before, 'no TAP was opened')
  })

  it('attack: a hello cannot claim a local TAP\'s name (it is the configuration\'s)', async () => {
    const { url } = await start([{ name: 'ltap4' }])
    const c = await TestClient.batched(url, { name: 'ltap4' })
    clients.push(c)
    assert.notEqual(c.welcome?.name, 'ltap4')
  })

  it('attack: without CAP_NET_ADMIN switchd refuses to start, naming the TAP, the errno and the capability', async () => {
    await assert.rejects(start([{ name: 'ltap5' }], failingBinding('EPERM', 1, 'ioctl(TUNSETIFF)')),
      (err: Error & { code?: string }) => err.code === ERR_TAP && err.message.includes('ltap5') && err.message.includes('EPERM') && err.message.includes('CAP_NET_ADMIN'))
    await server?.close()
    server = undefined
    await assert.rejects(start([{ name: 'eth0' }], failingBinding('EINVAL', 22, 'ioctl(TUNSETIFF)')),
      (err: Error & { code?: string }) => err.code === ERR_TAP && /eth0.*EINVAL.*not a TAP/.test(err.message))
  })
})
