/**
 * Trunks between switchd: real SwitchServers on 127.0.0.1:0, one dialling
 * another with `trunks` (what --uplink sets), and real WebSocket clients as
 * stations on each. Covers learning across switches, VLANs carried tagged,
 * the trunk permission of tokens, a three-switch loop kept loop-free by the
 * spanning tree, and recovery after the trunk is cut.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import type { NetPort } from '../../src/switch/io/net-port'
import type { TestClient } from '../helpers/client'
import { useSwitches } from '../helpers/switchd-fixture'
import { waitFor, sleep } from '../helpers/net'
import { eth, tagged, BROADCAST, MAC_A, MAC_B, MAC_C } from '../helpers/frames'
import { FORWARD_DELAY_MS } from '../../src/switch/core/stp'
import { makePki } from '../helpers/tls'
import { tcpFrame, parseSegment, pattern } from '../helpers/tcp'
import { CAP_OFFLOAD } from '../../src/common/protocol'

const LAB = '/net/lab'
/** Trunks are opt-in (issue 12): the switches here take one from any `trunk-*` name. */
const TRUNK_PROFILES = [{ match: 'trunk-*', trunk: true, claimable: true }]

function trunkPorts (s: SwitchServer): NetPort[] {
  return s.ports().filter((p) => p.stp !== null)
}

/** Every trunk port of every switch has a settled spanning-tree state, `forwarding` of them forwarding. */
async function converged (servers: SwitchServer[], trunkEnds: number, forwarding: number): Promise<void> {
  await waitFor(() => {
    const all = servers.flatMap(trunkPorts)
    return all.length === trunkEnds && all.filter((p) => p.stp?.forwarding === true).length === forwarding
  }, 10_000, `${trunkEnds} trunk ends, ${forwarding} forwarding`)
  // One more forward delay: a late BPDU must not change the picture.
  await sleep(FORWARD_DELAY_MS / 2)
}

describe('trunks between switches', function () {
  const net = useSwitches()
  const servers = net.servers
  const station = net.station.bind(net)

  async function sw (config: Record<string, unknown> = {}): Promise<{ server: SwitchServer, url: string }> {
    return await net.start({ profiles: TRUNK_PROFILES, ...config })
  }

  it('joins two switches: frames cross, both learn, the trunk is a spanning-tree port on each side', async () => {
    const b = await sw()
    const a = await sw({ trunks: [{ url: b.url + LAB }] })
    await converged([a.server, b.server], 2, 2)
    const ha = await station(a.url + LAB, { name: 'ha' })
    const hb = await station(b.url + LAB, { name: 'hb' })
    ha.send([eth(BROADCAST, MAC_A, 1)])
    await waitFor(() => hb.frames.length === 1, 3000, 'broadcast across the trunk')
    hb.send([eth(MAC_A, MAC_B, 2)])
    await waitFor(() => ha.frames.length === 1, 3000, 'unicast back')
    assert.equal(ha.frames[0]?.[14], 2)
    const [ta] = trunkPorts(a.server)
    const [tb] = trunkPorts(b.server)
    assert.equal(ta?.kind, 'trunk')
    assert.equal(tb?.kind, 'tapswitch')
    assert.match(tb?.name ?? '', /^trunk-/)
    const fdbA = a.server.networks.get('lab')?.fdb
    const fdbB = b.server.networks.get('lab')?.fdb
    assert.equal(fdbA?.lookup(1, 0x020000000002), ta, 'A learned B\'s station behind the trunk')
    assert.equal(fdbB?.lookup(1, 0x020000000001), tb, 'B learned A\'s station behind the trunk')
    // Known unicast stays on its path: a third station on A does not see it.
    const ha2 = await station(a.url + LAB, { name: 'ha2' })
    hb.send([eth(MAC_A, MAC_B, 3)])
    await waitFor(() => ha.frames.length === 2, 3000, 'second unicast')
    // Barrier: a broadcast by the same path reaches ha2 after the unicast would have.
    hb.send([eth(BROADCAST, MAC_B, 4)])
    await waitFor(() => ha2.frames.length >= 1, 3000, 'the barrier at ha2')
    assert.deepEqual(ha2.frames.map((f) => f[14]), [4], 'the unicast was not flooded to ha2')
  })

  it('carries offloaded (GSO) frames whole across the trunk, and makes them plain only for plain ports', async () => {
    const b = await sw()
    const a = await sw({ trunks: [{ url: b.url + LAB }] })
    await converged([a.server, b.server], 2, 2)
    assert.deepEqual(trunkPorts(a.server).map((p) => p.offload), [true])
    assert.deepEqual(trunkPorts(b.server).map((p) => p.offload), [true])
    const sender = await station(a.url + LAB, { name: 'sender', capabilities: [CAP_OFFLOAD] })
    const peer = await station(b.url + LAB, { name: 'peer', capabilities: [CAP_OFFLOAD] })
    const plain = await station(b.url + LAB, { name: 'plain' })
    const payload = pattern(20000, 9)
    // 1448: a 1500 MTU less IPv4 and a TCP header with timestamps, as Linux sends.
    const { record } = tcpFrame({ payload, mss: 1448, seq: 1 })
    sender.send([record])
    const segments = Math.ceil(payload.length / 1448)
    await waitFor(() => peer.frames.length === 1 && plain.frames.length === segments, 3000, 'the flood across the trunk')
    assert.deepEqual(peer.take(), [record], 'one record, header and all, as the sender sent it')
    assert.deepEqual(Buffer.concat(plain.take().map((f) => parseSegment(f).payload)), payload)
    assert.equal(a.server.networks.get('lab')?.stats.offloadSegmented, 0, 'A did not segment for the trunk')
  })

  it('carries every VLAN the trunk profile allows, tagged, and keeps them apart', async () => {
    const profiles = [{ match: 'trunk-*', mode: 'trunk', vlans: [10, 20], claimable: true, trunk: true }, { match: 'v10*', vlan: 10, claimable: true }, { match: 'v20*', vlan: 20, claimable: true }]
    const b = await sw({ profiles })
    const a = await sw({ profiles, trunks: [{ url: b.url + LAB }] })
    await converged([a.server, b.server], 2, 2)
    const [ta] = trunkPorts(a.server)
    assert.deepEqual([ta?.policy.mode, ta?.policy.vlans], [1, [10, 20]], 'A mirrors the trunk B granted')
    const a10 = await station(a.url + LAB, { name: 'v10a' })
    const a20 = await station(a.url + LAB, { name: 'v20a' })
    const b10 = await station(b.url + LAB, { name: 'v10b' })
    const b20 = await station(b.url + LAB, { name: 'v20b' })
    a10.send([eth(BROADCAST, MAC_A, 10)])
    a20.send([eth(BROADCAST, MAC_C, 20)])
    await waitFor(() => b10.frames.length >= 1 && b20.frames.length >= 1, 3000, 'one broadcast in each VLAN')
    // Barriers: one more broadcast in each VLAN, by the same trunk, after the first two.
    a10.send([eth(BROADCAST, MAC_A, 12)])
    a20.send([eth(BROADCAST, MAC_C, 22)])
    await waitFor(() => b10.frames.some((f) => f[14] === 12) && b20.frames.some((f) => f[14] === 22), 3000, 'the barriers')
    assert.deepEqual(b10.take().map((f) => f[14]), [10, 12], 'VLAN 10 got VLAN 10\'s frames only')
    assert.deepEqual(b20.take().map((f) => f[14]), [20, 22], 'VLAN 20 got VLAN 20\'s frames only')
    // A trunk station on B sees the same frames tagged, as the trunk carried them.
    const bt = await station(b.url + LAB, { name: 'trunk-probe', vlan: { mode: 'trunk', vlans: [10, 20] } })
    a10.send([eth(BROADCAST, MAC_A, 11)])
    await waitFor(() => bt.frames.length === 1, 3000, 'tagged copy')
    assert.deepEqual(bt.frames[0]?.subarray(0, 16), tagged(BROADCAST, MAC_A, 10).subarray(0, 16))
  })

  it('with tokens, only a token that allows trunks may connect one', async () => {
    const tokens = [
      { id: 'host', token: 'host-token-0123456789', network: 'lab' },
      { id: 'sw', token: 'trunk-token-0123456789', network: 'lab', trunk: true }
    ]
    const b = await sw({ tokens, api: false })
    const refused = await sw({ trunks: [{ url: b.url + LAB, token: 'host-token-0123456789' }] })
    await waitFor(() => (b.server.rejectedBy.trunk_refused ?? 0) > 0, 5000, 'trunk refused')
    assert.equal(trunkPorts(b.server).length, 0)
    await refused.server.close()
    const a = await sw({ trunks: [{ url: b.url + LAB, token: 'trunk-token-0123456789' }] })
    await converged([a.server, b.server], 2, 2)
  })

  it('runs over wss:// with the CA given for the trunk', async () => {
    const pki = makePki()
    try {
      const b = await sw({ tls: { cert: pki.cert, key: pki.key } })
      const wss = b.url.replace('ws://', 'wss://')
      const a = await sw({ trunks: [{ url: wss + LAB, ca: pki.ca }] })
      await converged([a.server, b.server], 2, 2)
      const ha = await station(a.url + LAB, { name: 'ha' })
      ha.send([eth(BROADCAST, MAC_A, 5)])
      // B learns A's station behind its end of the TLS trunk.
      const tb = trunkPorts(b.server)[0]
      await waitFor(() => b.server.networks.get('lab')?.fdb.lookup(1, 0x020000000001) === tb, 3000, 'MAC learned over the TLS trunk')
    } finally {
      fs.rmSync(pki.dir, { recursive: true, force: true })
    }
  })

  it('a three-switch trunk loop blocks one trunk end: a broadcast arrives once, nothing circles', async () => {
    // A triangle without a chicken-and-egg: B first, A dials B, C dials both.
    const bb = await sw()
    const aa = await sw({ trunks: [{ url: bb.url + LAB }] })
    const c = await sw({ trunks: [{ url: aa.url + LAB }, { url: bb.url + LAB }] })
    await converged(servers, 6, 5)
    const s1 = await station(aa.url + LAB, { name: 's1' })
    const s2 = await station(bb.url + LAB, { name: 's2' })
    const s3 = await station(c.url + LAB, { name: 's3' })
    const rx = (): number => servers.reduce((n, s) => n + s.ports().reduce((m, p) => m + p.rxFrames, 0), 0)
    const before = rx()
    s1.send([eth(BROADCAST, MAC_A, 7)])
    await waitFor(() => s2.frames.length >= 1 && s3.frames.length >= 1, 3000, 'broadcast everywhere')
    // Barriers: a second broadcast from s1 and one from s2 take the same trunks after the first;
    // a copy circling the loop would arrive among them.
    s1.send([eth(BROADCAST, MAC_A, 8)])
    s2.send([eth(BROADCAST, MAC_B, 9)])
    const got = (c: TestClient, tag: number): boolean => c.frames.some((f) => f[14] === tag)
    await waitFor(() => got(s2, 8) && got(s3, 8) && got(s3, 9) && got(s1, 9), 3000, 'the barriers')
    assert.deepEqual(s2.frames.map((f) => f[14]), [7, 8])
    assert.deepEqual(s3.frames.map((f) => f[14]).sort(), [7, 8, 9])
    assert.deepEqual(s1.frames.map((f) => f[14]), [9], 'nothing came back to s1')
    assert.ok(rx() - before < 20, `frames received by all ports: ${rx() - before}`)
  })
})
