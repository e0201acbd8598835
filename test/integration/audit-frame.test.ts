/**
 * Issue 12 audit, the frame path, through a real switchd on 127.0.0.1:0 and
 * real WebSocket clients. What must not arrive is proven with a barrier: a
 * frame sent after it on the same path, which must arrive, and nothing
 * before it.
 */

import assert from 'node:assert/strict'
import type { SwitchServer } from '../../src/switch/daemon/switchd'
import type { Switch } from '../../src/switch/core/switch'
import type { NetPort } from '../../src/switch/io/net-port'
import type { TestClient } from '../helpers/client'
import { useSwitches } from '../helpers/switchd-fixture'
import { waitFor } from '../helpers/net'
import { CAP_OFFLOAD } from '../../src/common/protocol'
import { MAX_GSO_SEGMENTS } from '../../src/common/gso'
import { tcpFrame, pattern } from '../helpers/tcp'
import { eth, frame, vidOf, BROADCAST, MAC_A, MAC_B, MAC_C } from '../helpers/frames'
import { R_BAD_OFFLOAD, R_EGRESS_BLOCKED, R_PORT_SECURITY, R_VLAN } from '../../src/switch/core/reasons'

describe('audit: frame path (integration)', function () {
  const net = useSwitches({ logTail: 40 })
  let server: SwitchServer | undefined
  let url = ''

  async function start (config: Record<string, unknown> = {}): Promise<Switch> {
    const s = await net.start(config)
    server = s.server
    url = `${s.url}/`
    return server.networks.get('default') as Switch
  }

  async function station (name: string, hello: Record<string, unknown> = {}): Promise<TestClient> {
    return await net.station(url, { name, ...hello })
  }

  function portNamed (name: string): NetPort {
    const p = server?.ports().find((q) => q.name === name)
    assert.ok(p, `port ${name}`)
    return p
  }

  describe('finding 14: one egress check for every path', () => {
    it('attack: a static fdb entry delivers nothing to a disabled port', async () => {
      // Hello names are claims: the claimable profile lets "victim" own its name, so the static entry binds to it.
      const sw = await start({ profiles: [{ match: '*', claimable: true }], networks: { default: { static: [{ mac: '02:00:00:00:00:02', vlan: 1, port: 'victim' }] } } })
      const a = await station('a')
      const victim = await station('victim')
      const c = await station('c')
      sw.disablePort(portNamed('victim'))
      a.send([eth(MAC_B, MAC_A, 1), eth(BROADCAST, MAC_A, 2)])
      await waitFor(() => c.frames.length === 1, 3000, 'the broadcast after the static-entry frame')
      sw.enablePort(portNamed('victim'))
      a.send([eth(MAC_B, MAC_A, 0xbb)]) // the barrier: same path, after the port is back
      await waitFor(() => victim.frames.length > 0, 3000, 'the barrier')
      assert.deepEqual(victim.frames.map((f) => f[14]), [0xbb], 'nothing reached the port while it was disabled')
      assert.equal(portNamed('a').drops[R_EGRESS_BLOCKED], 1)
    })

    it('attack: a static fdb entry delivers nothing to a loop-blocked port', async () => {
      await start({
        network: { loop: { holdDown: 1 } },
        profiles: [{ match: '*', claimable: true }],
        networks: { default: { static: [{ mac: '02:00:00:00:00:02', vlan: 1, port: 'router' }] } }
      })
      const a = await station('a')
      const router = await station('router')
      const x = await station('x')
      const c = await station('c')
      // router sends the MAC that lives on x, back and forth with x: loop protection blocks router.
      x.send([eth(BROADCAST, MAC_C)])
      await waitFor(() => c.frames.length === 1, 3000, 'MAC C learned on x')
      await waitFor(() => {
        if (portNamed('router').blocked !== 0) return true
        router.send([eth(BROADCAST, MAC_C)]); x.send([eth(BROADCAST, MAC_C)])
        return false
      }, 3000, 'router loop-blocked')
      a.send([eth(MAC_B, MAC_A, 1), eth(BROADCAST, MAC_A, 2)])
      await waitFor(() => c.frames.some((f) => f[14] === 2), 3000, 'the broadcast after the static-entry frame')
      assert.ok(portNamed('router').blocked !== 0, 'still blocked when the frame was switched')
      await waitFor(() => portNamed('router').blocked === 0, 3000, 'the hold-down over')
      a.send([eth(MAC_B, MAC_A, 0xbb)]) // the barrier
      const fromA = (f: Buffer): boolean => f.readUIntBE(6, 6) === 0x020000000001
      await waitFor(() => router.frames.some(fromA), 3000, 'the barrier')
      assert.deepEqual(router.frames.filter(fromA).map((f) => f[14]), [0xbb], 'nothing reached the port while it was blocked')
    })
  })

  describe('finding 10: double-tag VLAN hopping', () => {
    it('attack: an access port in VLAN 1 sends [8100 VID 1][8100 VID 10]; the trunk peer (native VLAN 1) never gets it as VLAN 10', async () => {
      await start({ profiles: [{ match: 'router', mode: 'trunk', vlans: [10, 20], native: 1, claimable: true }] })
      const a = await station('a')
      const router = await station('router')
      assert.equal(portNamed('router').pvid, 1)
      assert.equal(portNamed('router').member[10], 1)
      a.send([
        frame(`${BROADCAST} ${MAC_A} 8100 0001 8100 000a 88b5`, 64),
        frame(`${BROADCAST} ${MAC_A} 8100 0000 8100 000a 88b5`, 64),
        frame(`${BROADCAST} ${MAC_A} 8100 0001 88a8 000a 88b5`, 64)
      ])
      a.send([eth(BROADCAST, MAC_A, 0xbb)]) // the barrier
      await waitFor(() => router.frames.length > 0, 3000, 'the barrier')
      assert.equal(router.frames.length, 1)
      const [f] = router.frames as [Buffer]
      assert.equal(vidOf(f), -1)
      assert.equal(f[14], 0xbb, 'only the barrier arrived')
      assert.equal(portNamed('a').drops[R_VLAN], 3)
    })
  })

  describe('finding 5: GSO amplification', () => {
    it('attack: a 130 KB message of gso_size-1 records is dropped and counted, and costs the plain ports nothing', async () => {
      const sw = await start()
      const sender = await station('sender', { capabilities: [CAP_OFFLOAD] })
      const plain = await station('plain')
      assert.deepEqual(sender.welcome?.capabilities, [CAP_OFFLOAD])
      const payload = pattern(65_000)
      const attack = [tcpFrame({ payload, mss: 1 }).record, tcpFrame({ payload, mss: 1, seq: 65_001 }).record]
      assert.ok(attack[0] !== undefined && attack[0].length * 2 > 130_000)
      for (let i = 0; i < 3; i++) sender.send(attack)
      // The barrier: a record that is cut, into a bounded number of segments.
      const mss = Math.ceil(payload.length / MAX_GSO_SEGMENTS)
      sender.send([tcpFrame({ payload, mss, seq: 7 }).record])
      await waitFor(() => plain.frames.length >= MAX_GSO_SEGMENTS, 5000, 'the barrier segments')
      assert.equal(plain.frames.length, MAX_GSO_SEGMENTS, 'only the barrier\'s segments arrived')
      assert.equal(portNamed('sender').drops[R_BAD_OFFLOAD], 6)
      assert.equal(sw.stats.drops[R_BAD_OFFLOAD], 6)
      assert.equal(sw.stats.offloadSegmented, 1)
    })
  })

  describe('finding 11: loop protection aimed at a victim', () => {
    it('attack: two ports flooding a station\'s MAC get neither its port blocked nor its unicast while it keeps sending', async () => {
      await start()
      const victim = await station('victim')
      const s1 = await station('s1')
      const s2 = await station('s2')
      const other = await station('other')
      victim.send([eth(BROADCAST, MAC_A)])
      other.send([eth(BROADCAST, MAC_B)])
      await waitFor(() => victim.frames.length === 1 && s1.frames.length === 2 && s2.frames.length === 2, 3000, 'both learned')
      for (const c of [victim, s1, s2]) c.take()
      const timers: NodeJS.Timeout[] = []
      let sent = 0
      try {
        timers.push(setInterval(() => { victim.send([eth(MAC_B, MAC_A)]) }, 20))
        timers.push(setInterval(() => {
          s1.send(Array.from({ length: 5 }, () => eth(BROADCAST, MAC_A)))
          s2.send(Array.from({ length: 5 }, () => eth(BROADCAST, MAC_A)))
        }, 5))
        await new Promise<void>((resolve) => {
          timers.push(setInterval(() => {
            if (sent === 30) { resolve(); return }
            other.send([eth(MAC_A, MAC_B, sent++)])
          }, 50))
        })
      } finally {
        for (const t of timers) clearInterval(t)
      }
      other.send([eth(MAC_A, MAC_B, 0xbb)]) // the barrier
      await waitFor(() => victim.frames.some((f) => f[14] === 0xbb), 3000, 'the barrier')
      const fromB = (f: Buffer): boolean => f.readUIntBE(6, 6) === 0x020000000002
      assert.deepEqual(victim.frames.filter(fromB).map((f) => f[14]), [...Array.from({ length: 30 }, (_, i) => i), 0xbb], 'every unicast for the station reached it')
      assert.equal(s1.frames.filter(fromB).length + s2.frames.filter(fromB).length, 0, 'none reached a spoofer')
      assert.equal(portNamed('victim').blocked, 0)
      assert.equal(portNamed('victim').loopBlocks, 0)
      assert.ok(!net.logs.some((l) => l.includes('"loop_detected"') && l.includes('"blocked":"victim"')))
      assert.ok(portNamed('s1').drops[R_PORT_SECURITY] + portNamed('s2').drops[R_PORT_SECURITY] > 0, 'the spoofed frames were refused and counted')
    })
  })
})
