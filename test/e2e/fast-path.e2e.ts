/**
 * The native fast path of switchd's own TAPs (native/fastpath.cc,
 * docs/LOCAL-TAPS.md): pings between two namespaces are forwarded by the
 * native thread once the slow path installed their flows, and still show in
 * the API's counters; the fdb entries of MACs that only the fast path
 * carries do not age out; disabling or taking down the egress port stops the
 * traffic at once (no stale flow); a capture sees every frame (no flow while
 * it runs). With --no-fast-path nothing is forwarded natively.
 *
 * Network hygiene: addresses only inside this file's own namespaces
 * (192.0.2.0/24, TEST-NET-1), which after() always deletes.
 */

import assert from 'node:assert/strict'
import { run } from '../../src/lab/lab'
import { pingUntilAnswered } from '../helpers/proc'
import { localTaps } from '../helpers/local-taps'
import type { NetworkJson, PortJson, FdbJson } from '../../src/common/api-types'

describe('e2e: the native fast path between local TAPs', function () {
  this.timeout(60_000)
  const lab = localTaps('fp')
  const { nsA: NS_A, nsB: NS_B, tapA: TAP_A, tapB: TAP_B } = lab

  const get = async <T>(p: string): Promise<T> => {
    const r = await fetch(`${lab.api}${p}`, { signal: AbortSignal.timeout(5000) })
    assert.equal(r.status, 200, `GET ${p}`)
    return await r.json() as T
  }
  const post = async (p: string, body: unknown = {}): Promise<void> => {
    const r = await fetch(`${lab.api}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(5000) })
    assert.equal(r.status, 200, `POST ${p}: ${await r.text()}`)
  }
  const network = async (): Promise<NetworkJson> => (await get<NetworkJson[]>('/api/v1/networks'))[0] as NetworkJson
  const port = async (name: string): Promise<PortJson> => (await get<PortJson[]>('/api/v1/ports')).find((p) => p.name === name) as PortJson
  /** Pings that must all be lost: ping exits non-zero only when no answer came. */
  const pingLost = async (ns: string, target: string, n: number): Promise<void> => {
    await assert.rejects(run('ip', ['netns', 'exec', ns, 'ping', '-4', '-c', String(n), '-i', '0.2', '-W', '1', '-n', '-q', target], 15_000), 'no answer came')
  }

  describe('on (the default)', () => {
    before(async () => { await lab.start(['--ageing-time', '3']) })
    after(async () => { await lab.stop() })

    it('pings are forwarded natively, counted in the API, and their MACs do not age out', async () => {
      await pingUntilAnswered(NS_A, '192.0.2.2', 1)
      const before = await network()
      const aBefore = await port(TAP_A)
      // 5 s of pings with a 3 s ageing time: only the fast path refreshes the MACs.
      const summary = await run('ip', ['netns', 'exec', NS_A, 'ping', '-4', '-c', '25', '-i', '0.2', '-W', '2', '-n', '-q', '192.0.2.2'], 20_000)
      assert.match(summary, / 25 received/)
      const after = await network()
      assert.ok(after.fastPath !== undefined, 'the network has a fast path')
      const native = after.fastPath.forwarded - (before.fastPath?.forwarded ?? 0)
      assert.ok(native >= 40, `50 frames flowed, ${native} of them natively`)
      assert.ok(after.fastPath.flows >= 2, `flows: ${after.fastPath.flows}`)
      // The ports' own counters include what the native thread forwarded.
      const aAfter = await port(TAP_A)
      assert.ok(aAfter.counters.rxFrames - aBefore.counters.rxFrames >= 25, `rx of ${TAP_A}: ${aAfter.counters.rxFrames - aBefore.counters.rxFrames}`)
      assert.ok(aAfter.counters.txFrames - aBefore.counters.txFrames >= 25, `tx of ${TAP_A}: ${aAfter.counters.txFrames - aBefore.counters.txFrames}`)
      const fdb = await get<FdbJson[]>('/api/v1/fdb')
      assert.deepEqual(fdb.map((e) => e.port).sort(), [TAP_A, TAP_B].sort(), 'both MACs still learned after 5 s with a 3 s ageing time')
      for (const e of fdb) assert.ok(e.age <= 2, `age of ${e.mac}: ${e.age}`)
    })

    it('TCP with offloads (64 KiB GSO frames, partial checksums) arrives intact through the fast path', async () => {
      await pingUntilAnswered(NS_A, '192.0.2.2', 1)
      const before = (await network()).fastPath?.forwarded ?? 0
      // 32 MiB of pseudo-random bytes from A to B; B answers with the SHA-256 of what it got.
      const server = `import socket,hashlib\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(("192.0.2.2",5309));s.listen(1);s.settimeout(20)\nc,_=s.accept();h=hashlib.sha256()\nwhile True:\n  d=c.recv(1<<16)\n  if not d: break\n  h.update(d)\nprint(h.hexdigest())\n`
      const client = `import socket,hashlib,random,time\nr=random.Random(7);data=r.randbytes(32<<20)\nfor i in range(50):\n  try:\n    c=socket.create_connection(("192.0.2.2",5309),timeout=5);break\n  except OSError: time.sleep(0.1)\nc.sendall(data);c.close();print(hashlib.sha256(data).hexdigest())\n`
      const got = run('ip', ['netns', 'exec', NS_B, '/usr/bin/python3', '-c', server], 30_000)
      const sent = await run('ip', ['netns', 'exec', NS_A, '/usr/bin/python3', '-c', client], 30_000)
      assert.equal((await got).trim(), sent.trim(), 'B received exactly what A sent')
      const native = ((await network()).fastPath?.forwarded ?? 0) - before
      assert.ok(native > 100, `the stream went through the fast path (${native} frames natively)`)
    })

    it('disable on the egress port stops the traffic at once: no stale flow', async () => {
      await pingUntilAnswered(NS_A, '192.0.2.2', 2)
      assert.ok(((await network()).fastPath?.flows ?? 0) > 0, 'flows before')
      const bBefore = await port(TAP_B)
      await post(`/api/v1/ports/${TAP_B}/disable`)
      assert.equal((await network()).fastPath?.flows, 0, 'every flow went with the disable')
      await pingLost(NS_A, '192.0.2.2', 4)
      const bAfter = await port(TAP_B)
      assert.equal(bAfter.counters.txFrames, bBefore.counters.txFrames, 'nothing left by the disabled port')
      await post(`/api/v1/ports/${TAP_B}/enable`)
      assert.match(await pingUntilAnswered(NS_A, '192.0.2.2', 3), / 3 received/)
    })

    it('link down on the egress port stops the traffic at once, link up brings it back', async () => {
      await pingUntilAnswered(NS_A, '192.0.2.2', 2)
      await post(`/api/v1/ports/${TAP_B}/link`, { state: 'down' })
      assert.equal((await network()).fastPath?.flows, 0, 'every flow went with the link')
      await pingLost(NS_A, '192.0.2.2', 4)
      await post(`/api/v1/ports/${TAP_B}/link`, { state: 'up' })
      assert.match(await pingUntilAnswered(NS_A, '192.0.2.2', 3), / 3 received/)
    })

    it('attack: frames with a flow\'s MACs but a VLAN tag are never forwarded natively: the slow path drops them', async () => {
      await pingUntilAnswered(NS_A, '192.0.2.2', 2)
      assert.ok(((await network()).fastPath?.flows ?? 0) > 0, 'flows before')
      const mac = async (ns: string, tap: string): Promise<string> =>
        ((JSON.parse(await run('ip', ['-n', ns, '-j', 'link', 'show', tap])) as Array<{ address: string }>)[0]?.address ?? '').replace(/:/g, '')
      const dst = await mac(NS_B, TAP_B)
      const src = await mac(NS_A, TAP_A)
      const before = (await port(TAP_A)).drops.vlan ?? 0
      // Five frames from A to B's MAC with A's MAC (the flow's key), tagged VLAN 7: a raw socket in namespace A.
      const py = `import socket\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind(("${TAP_A}",0))\nf=bytes.fromhex("${dst}${src}81000007"+"0800"+"00"*46)\nfor _ in range(5): s.send(f)\n`
      await run('ip', ['netns', 'exec', NS_A, '/usr/bin/python3', '-c', py])
      // Barrier: a ping sent after them comes back, so the slow path has seen them.
      await pingUntilAnswered(NS_A, '192.0.2.2', 1)
      const after = (await port(TAP_A)).drops.vlan ?? 0
      assert.equal(after - before, 5, 'all five reached the slow path and were dropped there (vlan)')
    })

    it('a capture sees the frames: no flow while it runs', async () => {
      await pingUntilAnswered(NS_A, '192.0.2.2', 2)
      assert.ok(((await network()).fastPath?.flows ?? 0) > 0, 'flows before')
      const res = await fetch(`${lab.api}/api/v1/capture?count=6&duration=20`, { signal: AbortSignal.timeout(25_000) })
      assert.equal(res.status, 200)
      const body = res.arrayBuffer()
      // The capture is attached once the response started.
      assert.equal((await network()).fastPath?.flows, 0, 'no flow while capturing')
      const pinging = run('ip', ['netns', 'exec', NS_A, 'ping', '-4', '-c', '5', '-i', '0.2', '-W', '2', '-n', '-q', '192.0.2.2'], 15_000)
      const pcap = Buffer.from(await body)
      await pinging
      // pcap: 24-byte file header, then per frame a 16-byte record header and the frame.
      let frames = 0
      for (let off = 24; off + 16 <= pcap.length; off += 16 + pcap.readUInt32LE(off + 8)) frames++
      assert.equal(frames, 6, 'the capture got its 6 frames')
    })
  })

  describe('--no-fast-path', () => {
    before(async () => { await lab.start(['--ageing-time', '3', '--no-fast-path']) })
    after(async () => { await lab.stop() })

    it('the TAPs are read on the event loop only: pings pass, the network has no fast path', async () => {
      assert.match(await pingUntilAnswered(NS_A, '192.0.2.2', 3), / 3 received/)
      assert.equal((await network()).fastPath, undefined)
    })
  })
})
