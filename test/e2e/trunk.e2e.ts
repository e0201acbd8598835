/**
 * Trunks between switchd, end to end: each switchd is a lab of its own
 * (src/lab/lab.ts: namespaces, TAPs, agents), and the labs' switches are
 * joined by `--uplink` trunks. Hosts on different switches ping each other in
 * both VLANs; the trunk is cut and restored; three switches in a trunk loop
 * do not storm.
 *
 * Hygiene as in managed.e2e.ts: addresses from the documentation ranges only
 * inside the namespaces, everything stopped by PID in after(), every wait
 * bounded.
 */

import assert from 'node:assert/strict'
import { Lab, run, type LabOptions, type LabHost } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { pingUntilAnswered } from '../helpers/proc'
import { sleep, MIN_WAIT_MS } from '../helpers/net'

interface PortView { name: string, kind: string, state: string, stp?: { role: string, forwarding: boolean }, counters: { rxFrames: number } }

/** Trunks are opt-in (issue 12): every switch here takes one from a `trunk-*` name. */
const TRUNKS = [{ match: 'trunk-*', trunk: true, claimable: true }]

const PROFILES = [
  { match: 'trunk-*', mode: 'trunk', vlans: [10, 20], claimable: true, trunk: true },
  { match: 'host-a', vlan: 10, claimable: true }, { match: 'host-b', vlan: 20, claimable: true },
  { match: 'host-c', vlan: 10, claimable: true }, { match: 'host-d', vlan: 20, claimable: true }
]

/** Labs started in order (each may dial the ones before it); all stopped in after(), last first. */
function useLabs (specs: Array<(prev: Lab[]) => LabOptions>): Lab[] {
  const labs: Lab[] = []
  const logs: string[] = []
  before(async function () {
    requireRoot(this)
    this.timeout(90_000)
    for (const spec of specs) {
      const lab = new Lab({ ...spec(labs), onLog: (l) => { logs.push(`[sw${labs.length}] ${l}`) } })
      labs.push(lab)
      await lab.start()
    }
  })
  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-80).join('\n') + '\n')
  })
  after(async function () {
    this.timeout(60_000)
    for (const lab of [...labs].reverse()) await lab.stop()
  })
  return labs
}

async function trunks (lab: Lab): Promise<PortView[]> {
  return (await lab.api<PortView[]>('/api/v1/ports')).filter((p) => p.stp !== undefined)
}

/** Wait until the labs' switches have `ends` trunk ends, `forwarding` of them forwarding. */
async function converged (labs: Lab[], ends: number, forwarding: number, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms
  let seen = ''
  while (Date.now() < deadline) {
    const all = (await Promise.all(labs.map(trunks))).flat()
    seen = all.map((p) => `${p.name}:${p.stp?.role ?? '?'}/${p.stp?.forwarding === true ? 'fwd' : 'disc'}`).join(' ')
    if (all.length === ends && all.filter((p) => p.stp?.forwarding === true).length === forwarding) return
    await sleep(250)
  }
  throw new Error(`spanning tree did not settle to ${ends} ends / ${forwarding} forwarding: ${seen}`)
}

function host (labs: Lab[], label: string): LabHost {
  const h = labs.flatMap((l) => l.hosts).find((x) => x.label === label)
  if (h === undefined) throw new Error(`no host ${label}`)
  return h
}

describe('e2e: two switches joined by a trunk, two VLANs', function () {
  this.timeout(60_000)
  const labs = useLabs([
    () => ({ hosts: 2, config: { profiles: PROFILES } }),
    (prev) => ({ hosts: 2, hostOffset: 2, config: { profiles: PROFILES }, switchdArgs: ['--uplink', `${(prev[0] as Lab).url}`] })
  ])

  it('hosts on different switches ping each other within their VLAN, not across', async () => {
    await converged(labs, 2, 2)
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((l) => host(labs, l)) as [LabHost, LabHost, LabHost, LabHost]
    const [sw1, sw2] = labs as [Lab, Lab]
    await sw1.ping(a, c, 3)
    await sw2.ping(d, b, 3)
    await assert.rejects(sw1.ping(a, d, 2), 'VLAN 10 does not reach VLAN 20 across the trunk')
    const [t] = await trunks(sw2)
    assert.equal(t?.kind, 'trunk')
  })

  it('the trunk cut and restored: traffic recovers within 10 s', async () => {
    const [sw1, sw2] = labs as [Lab, Lab]
    const a = host(labs, 'a')
    const c = host(labs, 'c')
    await sw1.ping(a, c, 2)
    // Cut: switch 1 disconnects the trunk; switch 2 redials it.
    const [t] = await trunks(sw1)
    const res = await fetch(`http://127.0.0.1:${sw1.port}/api/v1/ports/${encodeURIComponent(t?.name ?? '')}/disconnect`, { method: 'POST', headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(5000) })
    assert.equal(res.status, 200)
    const cut = Date.now()
    // Bounded only against a hang: the redial backs off, and a loaded machine is slower at all of it.
    await pingUntilAnswered(a.ns, c.ipv4, 1, MIN_WAIT_MS * 2)
    process.stdout.write(`      trunk recovered ${Date.now() - cut} ms after the cut\n`)
    // Killed: switch 1 restarts; its agents and the trunk come back on their own.
    await sw1.stopSwitchd()
    await sleep(500)
    await sw1.startSwitchd()
    const restart = Date.now()
    await pingUntilAnswered(a.ns, c.ipv4, 1, MIN_WAIT_MS * 2)
    process.stdout.write(`      a -> c again ${Date.now() - restart} ms after switch 1 restarted\n`)
    await sw2.ping(c, a, 3)
  })
})

describe('e2e: three switches in a trunk loop', function () {
  this.timeout(60_000)
  // Switch 2 dials 1, switch 3 dials 1 and 2: a triangle of trunks.
  const labs = useLabs([
    () => ({ hosts: 1, config: { profiles: TRUNKS } }),
    (prev) => ({ hosts: 1, hostOffset: 1, config: { profiles: TRUNKS }, switchdArgs: ['--uplink', (prev[0] as Lab).url] }),
    (prev) => ({ hosts: 1, hostOffset: 2, config: { profiles: TRUNKS }, switchdArgs: ['--uplink', `${(prev[0] as Lab).url},${(prev[1] as Lab).url}`] })
  ])

  it('blocks one trunk end, never storms, and every host reaches every other', async () => {
    await converged(labs, 6, 5)
    const [a, b, c] = ['a', 'b', 'c'].map((l) => host(labs, l)) as [LabHost, LabHost, LabHost]
    const rx = async (): Promise<number> => {
      let n = 0
      for (const lab of labs) for (const p of await lab.api<PortView[]>('/api/v1/ports')) n += p.counters.rxFrames
      return n
    }
    const tapRx = async (): Promise<number[]> => await Promise.all([a, b, c].map(async (h) => await (labs.find((l) => l.hosts.includes(h)) as Lab).rxPackets(h)))
    const before = await rx()
    const tapBefore = await tapRx()
    // A broadcast ping: each host answers, and each request must arrive once per host.
    await run('ip', ['netns', 'exec', a.ns, 'ping', '-4', '-b', '-c', '5', '-i', '0.2', '-W', '1', '-n', '-q', '192.0.2.255'], 10_000).catch(() => '')
    const [l1, l2, l3] = labs as [Lab, Lab, Lab]
    await l1.ping(a, b, 5)
    await l2.ping(b, c, 5)
    await l3.ping(c, a, 5)
    await sleep(1000)
    const frames = await rx() - before
    const tapFrames = (await tapRx()).map((n, i) => n - (tapBefore[i] as number))
    // About 35 ICMP exchanges plus ARP and IPv6 chatter cross at most two trunks each: a few hundred frames.
    // A storm would be hundreds of thousands.
    assert.ok(frames < 2000, `switch ports received ${frames} frames`)
    for (const n of tapFrames) assert.ok(n < 300, `a host received ${n} frames`)
    const ends = (await Promise.all(labs.map(trunks))).flat()
    assert.equal(ends.filter((p) => p.stp?.forwarding !== true).length, 1, 'exactly one trunk end discards')
  })
})
