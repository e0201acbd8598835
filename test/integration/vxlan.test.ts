/**
 * VXLAN and GENEVE ports (issue 26) against a real switchd on 127.0.0.1:0:
 * its listener on 127.0.0.1 at a port the system chose, fake VTEPs on
 * 127.0.0.2 and 127.0.0.3 (the allowlist matches addresses, so each needs its
 * own), and tapswitch WebSocket clients as the local hosts. Every wait is a
 * count or a barrier frame, bounded by a guard time, never a speed.
 */

import assert from 'node:assert/strict'
import { R_UNDERLAY_MTU, R_SPLIT_HORIZON } from '../../src/switch/core/reasons'
import { SOURCE_PORT_MIN } from '../../src/switch/core/encap'
import { useVxlan } from '../helpers/vtep'
import type { VxlanListener } from '../../src/switch/io/vxlan'
import { switchctl } from '../helpers/ctl'
import { buildConfig } from '../../src/switch/control/config'
import { waitFor } from '../helpers/net'
import { eth, tagged, udp, vidOf, BROADCAST, MAC_A, MAC_B, MAC_C, MAC_D } from '../helpers/frames'

const mac = (hex: string): number => parseInt(hex, 16)

describe('VXLAN ports (integration)', function () {
  const f = useVxlan()
  const vtep = f.vtep.bind(f)
  const start = f.start.bind(f)
  const host = f.host.bind(f)
  const portNamed = f.port.bind(f)
  const logs = f.logs

  it('makes one port per (VNI, VTEP), kind vxlan, the VTEP as its remote, and logs the port it listens on', async () => {
    const a = await vtep('127.0.0.2')
    const b = await vtep('127.0.0.3')
    const [udpPort] = await start([{ vnis: [{ vni: 42, remotes: [a.remote, b.remote] }] }])
    const pa = portNamed('vxlan42-127.0.0.2')
    assert.equal(pa.kind, 'vxlan')
    assert.equal(pa.remote, a.remote)
    assert.equal(portNamed('vxlan42-127.0.0.3').remote, b.remote)
    assert.ok(logs.some((l) => l.includes('vxlan_listening') && l.includes(`127.0.0.1:${udpPort as number}`)), 'the bound port is logged')
    assert.equal(pa.fastPath, null, 'never on the native fast path')
  })

  it('learns a MAC behind a VTEP on that VTEP\'s port and forwards to it alone', async () => {
    const a = await vtep('127.0.0.2')
    const b = await vtep('127.0.0.3')
    const [to] = await start([{ vnis: [{ vni: 42, remotes: [a.remote, b.remote] }] }]) as [number]
    const h = await host('h1')
    a.send(to, 42, eth(BROADCAST, MAC_B, 1))
    await waitFor(() => h.frames.length === 1, 30_000, 'the broadcast from VTEP A at the host')
    const fdb = f.switchd.networks.get('default')?.fdb.peek(1, mac(MAC_B))
    assert.equal(fdb?.port, portNamed('vxlan42-127.0.0.2'), 'learned on VTEP A\'s port')
    h.send([eth(MAC_B, MAC_A, 2)])
    await waitFor(() => a.received.length === 1, 30_000, 'the unicast at VTEP A')
    const got = a.take()[0]
    assert.equal(got?.vni, 42)
    assert.equal(got?.frame.readUInt16BE(6), 0x0200)
    assert.equal(got?.frame[14], 2)
    // Barrier: a broadcast reaches B after anything the unicast could have sent it.
    h.send([eth(BROADCAST, MAC_A, 3)])
    await waitFor(() => b.received.length >= 1, 30_000, 'the barrier at VTEP B')
    assert.deepEqual(b.take().map((r) => r.frame[14]), [3], 'VTEP B got the barrier only')
  })

  it('replicates a broadcast from a local host to each VTEP exactly once', async () => {
    const a = await vtep('127.0.0.2')
    const b = await vtep('127.0.0.3')
    const [to] = await start([{ vnis: [{ vni: 42, remotes: [a.remote, b.remote] }] }]) as [number]
    const h = await host('h1')
    h.send([eth(BROADCAST, MAC_A, 1)])
    await waitFor(() => a.received.length >= 1 && b.received.length >= 1, 30_000, 'the broadcast at both VTEPs')
    // Barrier: a frame back from each VTEP reaches the host after anything else switchd sent them for the first.
    a.send(to, 42, eth(MAC_A, MAC_B, 2))
    b.send(to, 42, eth(MAC_A, MAC_C, 3))
    await waitFor(() => h.frames.length >= 2, 30_000, 'the answers at the host')
    assert.deepEqual(a.take().map((r) => [r.vni, r.frame[14]]), [[42, 1]])
    assert.deepEqual(b.take().map((r) => [r.vni, r.frame[14]]), [[42, 1]])
  })

  it('keeps one VNI\'s VTEPs a split-horizon group: a broadcast from A reaches the host, not B', async () => {
    const a = await vtep('127.0.0.2')
    const b = await vtep('127.0.0.3')
    const [to] = await start([{ vnis: [{ vni: 42, remotes: [a.remote, b.remote] }] }]) as [number]
    const h = await host('h1')
    a.send(to, 42, eth(BROADCAST, MAC_B, 1))
    await waitFor(() => h.frames.length === 1, 30_000, 'the broadcast at the host')
    // Known unicast from A to a MAC behind B: split horizon.
    b.send(to, 42, eth(MAC_A, MAC_C, 2))
    await waitFor(() => h.frames.length === 2, 30_000, 'B\'s frame at the host')
    a.send(to, 42, eth(MAC_C, MAC_B, 3))
    // Barrier: from the host to B, after A's frames were decided.
    await waitFor(() => portNamed('vxlan42-127.0.0.2').drops[R_SPLIT_HORIZON] === 1, 30_000, 'the unicast dropped as split_horizon')
    h.send([eth(MAC_C, MAC_A, 9)])
    await waitFor(() => b.received.length >= 1, 30_000, 'the barrier at B')
    assert.deepEqual(b.take().map((r) => r.frame[14]), [9], 'B got neither A\'s broadcast nor its unicast')
  })

  it('relays between VTEPs when the VNI says "relay": true', async () => {
    const a = await vtep('127.0.0.2')
    const b = await vtep('127.0.0.3')
    const [to] = await start([{ vnis: [{ vni: 42, relay: true, remotes: [a.remote, b.remote] }] }]) as [number]
    const h = await host('h1')
    a.send(to, 42, eth(BROADCAST, MAC_B, 1))
    await waitFor(() => h.frames.length === 1 && b.received.length === 1, 30_000, 'the broadcast at the host and at B')
    assert.equal(b.take()[0]?.frame[14], 1)
    assert.equal(a.received.length, 0, 'never back to its VTEP')
  })

  it('maps a VNI to a VLAN: a trunk host sees VTEP frames tagged with it, and its tagged frames leave untagged', async () => {
    const a = await vtep('127.0.0.2')
    const [to] = await start([{ vnis: [{ vni: 43, vlan: 20, remotes: [a.remote] }] }],
      { profiles: [{ match: 'trunky', claimable: true, mode: 'trunk', vlans: [1, 20] }] }) as [number]
    const t = await host('trunky')
    const access = await host('h1')
    a.send(to, 43, eth(BROADCAST, MAC_B, 1))
    await waitFor(() => t.frames.length === 1, 30_000, 'the broadcast at the trunk')
    assert.equal(vidOf(t.frames[0] as Buffer), 20)
    t.send([tagged(MAC_B, MAC_A, 20, 2)])
    await waitFor(() => a.received.length === 1, 30_000, 'the trunk\'s frame at the VTEP')
    const f = a.take()[0]?.frame as Buffer
    assert.equal(f.readUInt16BE(12), 0x88b5, 'untagged inside the VXLAN')
    assert.equal(f[14], 2)
    // Barrier for the access host in VLAN 1: the VNI's frame never reached it.
    t.send([tagged(BROADCAST, MAC_A, 1, 7)])
    await waitFor(() => access.frames.length >= 1, 30_000, 'the barrier at the VLAN 1 host')
    assert.deepEqual(access.take().map((x) => x[14]), [7])
  })

  it('sends each inner flow from one source port, and different flows from different ones', async () => {
    const a = await vtep('127.0.0.2')
    const [to] = await start([{ vnis: [{ vni: 42, remotes: [a.remote] }] }]) as [number]
    const h = await host('h1')
    a.send(to, 42, eth(BROADCAST, MAC_B, 1))
    await waitFor(() => h.frames.length === 1, 30_000, 'learned')
    const flows = 32
    const frames: Buffer[] = []
    for (let i = 0; i < flows; i++) frames.push(udp(mac(MAC_B), mac(MAC_A), 0x0a000001, 0x0a000002, 10000 + i, 53))
    h.send(frames)
    h.send(frames)
    await waitFor(() => a.received.length === 2 * flows, 30_000, 'every flow twice')
    const got = a.take()
    const portOf = new Map<number, number>()
    for (const r of got) {
      const sport = (r.frame.readUInt16BE(34))
      const seen = portOf.get(sport)
      if (seen !== undefined) assert.equal(r.sourcePort, seen, `flow ${sport} left from one source port`)
      portOf.set(sport, r.sourcePort)
      assert.ok(r.sourcePort >= SOURCE_PORT_MIN, `source port ${r.sourcePort} in 49152-65535`)
    }
    assert.ok(new Set(portOf.values()).size > 1, 'flows spread over several source ports')
  })

  it('drops and counts a frame too long for the underlay MTU, and sends one that just fits', async () => {
    const a = await vtep('127.0.0.2')
    const [to] = await start([{ mtu: 1280, vnis: [{ vni: 42, remotes: [a.remote] }] }]) as [number]
    const h = await host('h1')
    a.send(to, 42, eth(BROADCAST, MAC_B, 1))
    await waitFor(() => h.frames.length === 1, 30_000, 'learned')
    const fits = 1280 - 20 - 8 - 8
    h.send([eth(MAC_B, MAC_A, 1, fits + 1), eth(MAC_B, MAC_A, 2, fits)])
    await waitFor(() => a.received.length === 1, 30_000, 'the frame that fits')
    assert.equal(a.take()[0]?.frame.length, fits)
    assert.equal(a.received.length, 0)
    assert.equal(portNamed('vxlan42-127.0.0.2').drops[R_UNDERLAY_MTU], 1)
    assert.equal(f.switchd.networks.get('default')?.stats.drops[R_UNDERLAY_MTU], 1)
  })

  it('speaks GENEVE both ways (kind geneve, port 6081 by default for remotes)', async () => {
    const a = await vtep('127.0.0.2', 'geneve')
    const [to] = await start([{ encap: 'geneve', vnis: [{ vni: 7, remotes: [a.remote] }] }]) as [number]
    const p = portNamed('geneve7-127.0.0.2')
    assert.equal(p.kind, 'geneve')
    const h = await host('h1')
    a.send(to, 7, eth(BROADCAST, MAC_D, 1))
    await waitFor(() => h.frames.length === 1, 30_000, 'the GENEVE frame at the host')
    h.send([eth(MAC_D, MAC_A, 2)])
    await waitFor(() => a.received.length === 1, 30_000, 'the answer at the GENEVE VTEP')
    const r = a.take()[0] as { raw: Buffer, vni: number, frame: Buffer }
    assert.equal(r.vni, 7)
    assert.equal(r.raw.readUInt16BE(2), 0x6558, 'protocol type Transparent Ethernet Bridging')
    assert.equal(r.raw[0], 0, 'version 0, no options')
    assert.equal(r.frame[14], 2)
  })

  it('switchctl ports shows kind vxlan with the VTEP as the remote, and switchctl fdb names the VTEP\'s port', async () => {
    const a = await vtep('127.0.0.2')
    const [to] = await start([{ vnis: [{ vni: 42, remotes: [a.remote] }] }]) as [number]
    const h = await host('h1')
    a.send(to, 42, eth(BROADCAST, MAC_B, 1))
    await waitFor(() => h.frames.length === 1, 30_000, 'learned')
    const env = { SWITCHCTL_URL: `http://127.0.0.1:${f.switchd.address().port}` }
    const ports = await switchctl(['ports'], env)
    assert.equal(ports.code, 0, ports.stderr)
    const row = ports.stdout.toString().split('\n').find((l) => l.startsWith('vxlan42-127.0.0.2 '))
    assert.match(row ?? '', /^vxlan42-127\.0\.0\.2\s+default\s+vxlan\s+access 1\s+forwarding\s+1\s/)
    assert.ok(row?.includes(` ${a.remote} `), `the remote column is the VTEP: ${row ?? ''}`)
    const fdb = await switchctl(['fdb', '--port', 'vxlan42-127.0.0.2'], env)
    assert.match(fdb.stdout.toString(), /^default\s+1\s+02:00:00:00:00:02\s+vxlan42-127\.0\.0\.2\s+\d+\s+learned$/m)
  })

  it('listens on IPv6: a VTEP at ::1 is port vxlan42-::1, both ways', async () => {
    const a = await vtep('::1')
    const [to] = await start([{ listen: '[::1]:0', vnis: [{ vni: 42, remotes: [a.remote] }] }]) as [number]
    const p = portNamed('vxlan42-::1')
    assert.equal(p.remote, a.remote)
    const h = await host('h1')
    a.send(to, 42, eth(BROADCAST, MAC_B, 1))
    await waitFor(() => h.frames.length === 1, 30_000, 'the frame over IPv6 at the host')
    h.send([eth(MAC_B, MAC_A, 2)])
    await waitFor(() => a.received.length === 1, 30_000, 'the answer at the IPv6 VTEP')
    assert.equal(a.take()[0]?.frame[14], 2)
  })

  it('sends from the listening socket with "sourcePorts": 0', async () => {
    const a = await vtep('127.0.0.2')
    const [to] = await start([{ sourcePorts: 0, vnis: [{ vni: 42, remotes: [a.remote] }] }]) as [number]
    const h = await host('h1')
    h.send([eth(BROADCAST, MAC_A, 1), udp(0xffffffffffff, mac(MAC_A), 1, 2, 3, 4)])
    await waitFor(() => a.received.length === 2, 30_000, 'both frames at the VTEP')
    assert.deepEqual(a.take().map((r) => r.sourcePort), [to, to])
  })

  it('refuses a reload that changes vxlan (restart only), and keeps its ports', async () => {
    const a = await vtep('127.0.0.2')
    await start([{ vnis: [{ vni: 42, remotes: [a.remote] }] }])
    const changed = buildConfig({ vxlan: [{ listen: '127.0.0.1:0', vnis: [{ vni: 43, remotes: [a.remote] }] }] }, 'test')
    assert.equal(f.switchd.reload(changed), false)
    assert.ok(logs.some((l) => l.includes('config_rejected') && l.includes('vxlan')), 'the refusal names the key')
    assert.equal(portNamed('vxlan42-127.0.0.2').kind, 'vxlan')
  })

  it('counts datagrams and bytes in and out per listener in /metrics, and a failed send as send_error', async () => {
    const a = await vtep('127.0.0.2')
    const [to] = await start([{ vnis: [{ vni: 42, remotes: [a.remote] }] }]) as [number]
    const h = await host('h1')
    a.send(to, 42, eth(BROADCAST, MAC_B, 1))
    await waitFor(() => h.frames.length === 1, 30_000, 'in')
    h.send([eth(MAC_B, MAC_A, 2)])
    await waitFor(() => a.received.length === 1, 30_000, 'out')
    const listener = `127.0.0.1:${to}`
    assert.equal(await f.metric('switchd_vxlan_packets_total', { listener, direction: 'in' }), 1)
    assert.equal(await f.metric('switchd_vxlan_packets_total', { listener, direction: 'out' }), 1)
    assert.equal(await f.metric('switchd_vxlan_bytes_total', { listener, direction: 'out' }), 68)
    assert.equal(await f.metric('switchd_vxlan_ports', { listener, encap: 'vxlan' }), 1)
    // What dgram reports of a send the kernel refused (no route, a full buffer): counted, never thrown.
    const l = f.listeners()[0] as VxlanListener
    l.inFlight.add(0)
    l.completed(new Error('EHOSTUNREACH'), undefined)
    assert.equal(await f.metric('switchd_vxlan_dropped_total', { listener, reason: 'send_error' }), 1)
  })

  it('refuses to start when its address is taken, naming the address and the fix', async () => {
    const holder = await vtep('127.0.0.1')
    await assert.rejects(start([{ listen: `127.0.0.1:${holder.port}`, vnis: [{ vni: 42, remotes: ['127.0.0.2'] }] }]), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'TSW_ERR_CONFIG')
      assert.match(err.message, new RegExp(`vxlan listener 127\\.0\\.0\\.1:${holder.port}: EADDRINUSE: .*choose another port`))
      return true
    })
  })
})
