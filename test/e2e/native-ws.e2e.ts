/**
 * The main path carried natively (issue 24): two real tap-agents in their
 * namespaces, a real switchd, WebSocket between them, each end in a native
 * thread (the agent's link, switchd's fast path). 32 MiB of TCP with
 * offloads arrives intact (SHA-256 at both ends), and what an operator does
 * to a natively carried port takes effect at once: a disable, a link down,
 * a link condition (100 % loss), a capture. Each is checked by counts and a
 * barrier (a ping that must be lost, or come back), never by speed.
 *
 * Network hygiene: addresses only inside the lab's own namespaces
 * (192.0.2.0/24, TEST-NET-1), which after() always deletes.
 */

import assert from 'node:assert/strict'
import { Lab, run, type LabHost } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { pingUntilAnswered } from '../helpers/proc'
import type { PortJson } from '../../src/common/api-types'

describe('e2e: the native WebSocket path (tap-agent -> switchd -> tap-agent)', function () {
  this.timeout(120_000)
  const logs: string[] = []
  const lab = new Lab({ hosts: 2, onLog: (l) => { logs.push(l) } })
  let a: LabHost, b: LabHost

  const url = (p: string): string => `http://127.0.0.1:${lab.port}${p}`
  const post = async (p: string, body: unknown = {}, method = 'POST'): Promise<void> => {
    const r = await fetch(url(p), { method, headers: { 'content-type': 'application/json' }, body: method === 'DELETE' ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(5000) })
    assert.equal(r.status, 200, `${method} ${p}: ${await r.text()}`)
  }
  const port = async (name: string): Promise<PortJson & { path?: string }> =>
    (await lab.api<Array<PortJson & { path?: string }>>('/api/v1/ports')).find((p) => p.name === name) as PortJson & { path?: string }
  /** Pings that must all be lost: ping exits non-zero only when no answer came. */
  const pingLost = async (from: LabHost, to: LabHost, n: number): Promise<void> => {
    await assert.rejects(run('ip', ['netns', 'exec', from.ns, 'ping', '-4', '-c', String(n), '-i', '0.2', '-W', '1', '-n', '-q', to.ipv4], 15_000), 'no answer came')
  }
  const nameOf = (h: LabHost): string => `host-${h.label}`

  before(async function () {
    requireRoot(this)
    await lab.start()
    ;[a, b] = lab.hosts as [LabHost, LabHost]
    await pingUntilAnswered(a.ns, b.ipv4, 2)
  })
  after(async () => { await lab.stop() })
  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-40).join('\n') + '\n')
  })

  it('both agents and both ports are carried natively (the agents log it, the API says so)', async () => {
    for (const h of [a, b]) {
      const line = logs.find((l) => l.startsWith(`agent-${h.label}: `) && l.includes('"uplink_connected"'))
      assert.ok(line !== undefined, `agent-${h.label} connected`)
      assert.equal((JSON.parse(line.slice(line.indexOf('{'))) as { path?: string }).path, 'native', `agent-${h.label}'s uplink path`)
      assert.equal((await port(nameOf(h))).path, 'native', `switchd carries ${nameOf(h)} natively`)
    }
  })

  it('32 MiB of TCP with offloads arrives intact (SHA-256 at both ends), and crossed the native paths', async () => {
    await pingUntilAnswered(a.ns, b.ipv4, 1)
    const net0 = (await lab.api<Array<{ fastPath?: { forwarded: number } }>>('/api/v1/networks'))[0]?.fastPath?.forwarded ?? 0
    const server = `import socket,hashlib\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(("${b.ipv4}",5411));s.listen(1);s.settimeout(30)\nc,_=s.accept();h=hashlib.sha256();n=0\nwhile True:\n  d=c.recv(1<<16)\n  if not d: break\n  h.update(d);n+=len(d)\nprint(n,h.hexdigest())\n`
    const client = `import socket,hashlib,random,time\nr=random.Random(24);data=r.randbytes(32<<20)\nfor i in range(50):\n  try:\n    c=socket.create_connection(("${b.ipv4}",5411),timeout=5);break\n  except OSError: time.sleep(0.1)\nc.sendall(data);c.close();print(len(data),hashlib.sha256(data).hexdigest())\n`
    const got = run('ip', ['netns', 'exec', b.ns, '/usr/bin/python3', '-c', server], 60_000)
    const sent = await run('ip', ['netns', 'exec', a.ns, '/usr/bin/python3', '-c', client], 60_000)
    assert.equal((await got).trim(), sent.trim(), 'B received exactly what A sent')
    const native = ((await lab.api<Array<{ fastPath?: { forwarded: number } }>>('/api/v1/networks'))[0]?.fastPath?.forwarded ?? 0) - net0
    assert.ok(native > 100, `the stream crossed switchd natively (${native} frames)`)
  })

  it('disable on the egress port stops the traffic at once, enable brings it back', async () => {
    await pingUntilAnswered(a.ns, b.ipv4, 2)
    await post(`/api/v1/ports/${nameOf(b)}/disable`)
    // Counted once the disable answered: a frame sent to b just before it (a's ARP probe of b, say) is not
    // one the disabled port left by.
    const before = await port(nameOf(b))
    await pingLost(a, b, 4)
    assert.equal((await port(nameOf(b))).counters.txFrames, before.counters.txFrames, 'nothing left by the disabled port')
    await post(`/api/v1/ports/${nameOf(b)}/enable`)
    assert.match(await pingUntilAnswered(a.ns, b.ipv4, 3), / 3 received/)
  })

  it('link down on the egress port stops the traffic at once, link up brings it back', async () => {
    await pingUntilAnswered(a.ns, b.ipv4, 2)
    await post(`/api/v1/ports/${nameOf(b)}/link`, { state: 'down' })
    await pingLost(a, b, 4)
    await post(`/api/v1/ports/${nameOf(b)}/link`, { state: 'up' })
    assert.match(await pingUntilAnswered(a.ns, b.ipv4, 3), / 3 received/)
  })

  it('a link condition (100 % loss out of b) takes effect at once, and its removal too', async () => {
    await pingUntilAnswered(a.ns, b.ipv4, 2)
    await post(`/api/v1/ports/${nameOf(b)}/condition`, { direction: 'out', loss: 100 })
    await pingLost(a, b, 4)
    const dropped = await port(nameOf(b))
    await post(`/api/v1/ports/${nameOf(b)}/condition?direction=both`, undefined, 'DELETE')
    assert.match(await pingUntilAnswered(a.ns, b.ipv4, 3), / 3 received/)
    assert.ok(dropped.counters !== undefined)
  })

  it('a capture sees every frame of a natively carried flow while it runs', async () => {
    await pingUntilAnswered(a.ns, b.ipv4, 2)
    const res = await fetch(url(`/api/v1/capture?count=6&duration=20&port=${nameOf(a)}`), { signal: AbortSignal.timeout(25_000) })
    assert.equal(res.status, 200)
    const body = res.arrayBuffer()
    const pinging = run('ip', ['netns', 'exec', a.ns, 'ping', '-4', '-c', '3', '-i', '0.2', '-W', '2', '-n', '-q', b.ipv4], 15_000)
    const pcap = Buffer.from(await body)
    await pinging
    let frames = 0
    for (let off = 24; off + 16 <= pcap.length; off += 16 + pcap.readUInt32LE(off + 8)) frames++
    assert.equal(frames, 6, 'the capture got its 6 frames (3 echo requests in, 3 replies out)')
  })
})
