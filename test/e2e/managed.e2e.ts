/**
 * "Behave like a managed switch", end to end: real namespaces, TAPs, agents
 * and switchd (src/lab/lab.ts), each feature checked on switchd's own
 * counters (/api/v1/*) as well as on what the hosts see.
 *
 * Hygiene: all traffic stays inside the namespaces the labs create (and
 * 127.0.0.1); addresses come from 192.0.2.0/24, 198.51.100.0/24 and
 * 2001:db8::/32 and exist only inside those namespaces; every lab is stopped
 * in after(), by the PIDs it started; every wait has a deadline.
 */

import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { Lab, run, stopChild, type LabHost, type LabOptions } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { inject, startVlanSplitter } from '../helpers/inject'
import { sleep, until } from '../helpers/net'

interface PortView {
  name: string
  mode: 'access' | 'trunk'
  pvid: number
  vlans: number[]
  state: 'forwarding' | 'blocked'
  blockedSeconds: number
  fdbEntries: number
  counters: { rxFrames: number, txFrames: number, loopBlocks: number, securityViolations: number }
  drops: { vlan: number, portSecurity: number, stormBroadcast: number, loop: number }
}
interface FdbRow { network: string, vlan: number, mac: string, port: string }
interface NetworkView { name: string, fdb: { entries: number, limited: number, flaps: number }, counters: { loopsDetected: number, dropStorm: number, dropLoop: number } }

/** One describe's lab, started in before() and always stopped in after(); prints its logs if a test fails. */
function useLab (opts: LabOptions): { lab: Lab, logs: string[] } {
  const logs: string[] = []
  const lab = new Lab({ ...opts, onLog: (l) => { logs.push(l) } })
  before(async function () {
    requireRoot(this)
    await lab.start()
  })
  after(async () => { await lab.stop() })
  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-40).join('\n') + '\n')
  })
  return { lab, logs }
}

async function ports (lab: Lab): Promise<Map<string, PortView>> {
  return new Map((await lab.api<PortView[]>('/api/v1/ports')).map((p) => [p.name, p]))
}

async function port (lab: Lab, name: string): Promise<PortView> {
  const p = (await ports(lab)).get(name)
  assert.ok(p, `switchd has no port ${name}`)
  return p
}

async function fdb (lab: Lab, query: string): Promise<FdbRow[]> {
  return await lab.api<FdbRow[]>(`/api/v1/fdb?${query}`)
}

async function network (lab: Lab, name = 'default'): Promise<NetworkView> {
  const n = (await lab.api<NetworkView[]>('/api/v1/networks')).find((x) => x.name === name)
  assert.ok(n, `switchd has no network ${name}`)
  return n
}

/** ping an address from inside a namespace; resolves with the number of replies (0 if none). */
async function pingAddr (ns: string, addr: string, count = 3, intervalS = 0.2): Promise<number> {
  const out = await run('ip', ['netns', 'exec', ns, 'ping', '-c', String(count), '-i', String(intervalS), '-W', '1', '-n', '-q', addr],
    (count * intervalS + 5) * 1000).catch((err: Error) => err.message)
  return Number(/(\d+) received/.exec(out)?.[1] ?? 0)
}


const hostsOf = (lab: Lab): LabHost[] => lab.hosts

/** A port once its received-frames counter has not moved for a second (what was sent has all arrived or been lost). */
async function settled (lab: Lab, name: string): Promise<PortView> {
  let last = -1
  let p = await port(lab, name)
  await until(async () => {
    await sleep(1000)
    p = await port(lab, name)
    const same = p.counters.rxFrames === last
    last = p.counters.rxFrames
    return same
  }, 60_000, `${name}'s counters to settle`)
  return p
}

describe('e2e managed: VLANs isolate access ports', function () {
  this.timeout(60_000)
  // Every host is in 192.0.2.0/24: only the VLANs keep a,b (10) apart from c,d (20).
  const { lab } = useLab({
    hosts: 4,
    config: { profiles: [{ match: 'host-a', vlan: 10, claimable: true }, { match: 'host-b', vlan: 10, claimable: true }, { match: 'host-c', vlan: 20, claimable: true }, { match: 'host-d', vlan: 20, claimable: true }] }
  })

  it('each port gets its profile\'s access VLAN', async () => {
    const p = await ports(lab)
    for (const [name, vid] of [['host-a', 10], ['host-b', 10], ['host-c', 20], ['host-d', 20]] as const) {
      assert.deepEqual([p.get(name)?.mode, p.get(name)?.pvid, p.get(name)?.vlans], ['access', vid, [vid]], name)
    }
  })

  it('a<->b and c<->d ping; a->c and a->d fail, and their ARP never reaches VLAN 20', async () => {
    const [a, b, c, d] = hostsOf(lab) as [LabHost, LabHost, LabHost, LabHost]
    assert.match(await lab.ping(a, b, 2), / 2 received/)
    assert.match(await lab.ping(b, a, 2), / 2 received/)
    assert.match(await lab.ping(c, d, 2), / 2 received/)
    assert.match(await lab.ping(d, c, 2), / 2 received/)
    const before = await ports(lab)
    await assert.rejects(lab.ping(a, c, 2), 'a reaches c across VLANs')
    await assert.rejects(lab.ping(a, d, 2), 'a reaches d across VLANs')
    const after = await ports(lab)
    const tx = (n: string): number => (after.get(n)?.counters.txFrames ?? 0) - (before.get(n)?.counters.txFrames ?? 0)
    // a ARPed for .3 and .4 (broadcast): b, in VLAN 10, got every request; c and d none of them.
    assert.ok(tx('host-b') >= 2, `b got a's ARP requests (${tx('host-b')} frames)`)
    for (const h of [c, d]) {
      const neigh = await run('ip', ['-n', h.ns, 'neigh', 'show', a.ipv4])
      assert.equal(neigh.trim(), '', `${h.label} heard from a (its ARP request): ${neigh}`)
    }
  })

  it('fdb: a and b are learned in VLAN 10, c and d in VLAN 20, nowhere else', async () => {
    const [a, b, c, d] = hostsOf(lab) as [LabHost, LabHost, LabHost, LabHost]
    const v10 = await fdb(lab, 'vlan=10')
    const v20 = await fdb(lab, 'vlan=20')
    const ours = (rows: FdbRow[]): string[] => rows.map((r) => `${r.mac}@${r.port}`).sort()
    assert.deepEqual(ours(v10), [`${a.mac}@host-a`, `${b.mac}@host-b`])
    assert.deepEqual(ours(v20), [`${c.mac}@host-c`, `${d.mac}@host-d`])
    assert.deepEqual(await fdb(lab, 'vlan=1'), [], 'nothing in the default VLAN')
  })
})

describe('e2e managed: a trunk carries VLANs 10 and 20 tagged', function () {
  this.timeout(60_000)
  let splitter: ChildProcess | undefined
  after(async () => { await stopChild(splitter) })
  // The default port may be a trunk of 10,20; each agent asks for what it wants within that.
  const { lab } = useLab({
    hosts: [{ agentArgs: ['--vlan', '10'] }, { agentArgs: ['--vlan', '20'], noAddress: true }, { agentArgs: ['--trunk', '10,20'], noAddress: true }],
    config: { port: { mode: 'trunk', vlans: [10, 20] } }
  })
  const V20_B = '198.51.100.2'
  // The trunk host's side of each VLAN: a veth whose far end the splitter maps to the VID.
  const SIDES = [{ vid: 10, mac: '02:00:5e:00:0a:03', addr: '192.0.2.3/24' }, { vid: 20, mac: '02:00:5e:00:14:03', addr: '198.51.100.3/24' }]

  before(async function () {
    if (lab.port === 0) this.skip()
    const [, b, t] = hostsOf(lab) as [LabHost, LabHost, LabHost]
    await run('ip', ['-n', b.ns, 'addr', 'add', `${V20_B}/24`, 'dev', b.tap])
    // This kernel may lack 802.1Q (no `ip link add ... type vlan`): tag in user space instead, see inject.ts.
    for (const { vid, mac, addr } of SIDES) {
      await run('ip', ['-n', t.ns, 'link', 'add', `h${vid}`, 'address', mac, 'type', 'veth', 'peer', 'name', `p${vid}`])
      await run('ip', ['-n', t.ns, 'addr', 'add', addr, 'dev', `h${vid}`])
      for (const dev of [`h${vid}`, `p${vid}`]) await run('ip', ['-n', t.ns, 'link', 'set', dev, 'up'])
    }
    splitter = await startVlanSplitter(t.ns, t.tap, { 10: 'p10', 20: 'p20' }, 60)
  })

  it('the switch granted what each agent asked for', async () => {
    const p = await ports(lab)
    assert.deepEqual([p.get('host-a')?.mode, p.get('host-a')?.pvid], ['access', 10])
    assert.deepEqual([p.get('host-b')?.mode, p.get('host-b')?.pvid], ['access', 20])
    assert.deepEqual([p.get('host-c')?.mode, p.get('host-c')?.pvid, p.get('host-c')?.vlans], ['trunk', 0, [10, 20]])
  })

  it('the trunk host pings a host in VLAN 10 and one in VLAN 20', async () => {
    const [a, , t] = hostsOf(lab) as [LabHost, LabHost, LabHost]
    const before = await port(lab, 'host-c')
    const rx = async (name: string): Promise<number> => {
      const out = JSON.parse(await run('ip', ['-n', t.ns, '-j', '-s', 'link', 'show', name])) as Array<{ stats64: { rx: { packets: number } } }>
      return out[0]?.stats64.rx.packets ?? 0
    }
    const rx0 = [await rx('h10'), await rx('h20')]
    assert.equal(await pingAddr(t.ns, a.ipv4, 5), 5, 'VLAN 10')
    assert.equal(await pingAddr(t.ns, V20_B, 5), 5, 'VLAN 20')
    const after = await port(lab, 'host-c')
    const tx = after.counters.txFrames - before.counters.txFrames
    assert.ok(tx >= 10, `the switch sent the trunk its 10 replies (${tx} frames)`)
    // The splitter hands a frame to h10 only if it arrived tagged 10, to h20 only if tagged 20.
    assert.ok((await rx('h10')) - (rx0[0] ?? 0) >= 5, 'replies from VLAN 10 arrived tagged 10')
    assert.ok((await rx('h20')) - (rx0[1] ?? 0) >= 5, 'replies from VLAN 20 arrived tagged 20')
    const rows = await fdb(lab, 'port=host-c')
    for (const { vid, mac } of SIDES) assert.ok(rows.some((r) => r.mac === mac && r.vlan === vid), `${mac} learned on the trunk in VLAN ${vid}`)
  })

  it('untagged frames on a trunk without a native VLAN are dropped (drops.vlan)', async () => {
    const [a, , t] = hostsOf(lab) as [LabHost, LabHost, LabHost]
    const before = await port(lab, 'host-c')
    const aRx = await lab.rxPackets(a)
    const r = await inject({ ns: t.ns, iface: t.tap, count: 50, src: t.mac, seconds: 5 })
    assert.equal(r.sent, 50)
    await until(async () => (await port(lab, 'host-c')).drops.vlan - before.drops.vlan >= 50, 3000, 'drops.vlan += 50')
    const got = (await lab.rxPackets(a)) - aRx
    assert.ok(got < 10, `a (VLAN 10) received ${got} frames of 50 untagged broadcasts`)
  })
})

describe('e2e managed: port security against 10,000 random source MACs', function () {
  this.timeout(60_000)
  const MAX = 100
  const { lab } = useLab({ hosts: 3, config: { port: { maxMacs: 256 }, profiles: [{ match: 'host-a', maxMacs: MAX, claimable: true }] } })

  it('the offender is held to maxMacs; the others keep their entries and their pings', async () => {
    const [a, b, c] = hostsOf(lab) as [LabHost, LabHost, LabHost]
    assert.match(await lab.ping(a, b, 1), / 1 received/, 'a\'s own MAC is learned first')
    assert.match(await lab.ping(b, c, 2), / 2 received/)
    const kept = async (): Promise<string[]> => [
      ...(await fdb(lab, 'port=host-b')).map((r) => r.mac), ...(await fdb(lab, 'port=host-c')).map((r) => r.mac)].sort()
    assert.deepEqual(await kept(), [b.mac, c.mac])
    const before = await port(lab, 'host-a')
    assert.equal(before.fdbEntries, 1)
    const N = 10_000
    // b and c keep pinging while a sprays.
    const pinging = lab.ping(b, c, 20, 4, 0.05)
    const sent = await inject({ ns: a.ns, iface: a.tap, count: N, src: 'random', burst: 64, pauseMs: 1, seconds: 20 })
    assert.equal(sent.sent, N)
    assert.match(await pinging, / 20 received/, 'b and c kept talking during the spray')
    // Every random source that reached switchd beyond the MACs a still had room for is refused. What reached it is
    // counted once the port's counter has settled: on a loaded machine the TAP's queue may drop some of the spray.
    const after = await settled(lab, 'host-a')
    const arrived = after.counters.rxFrames - before.counters.rxFrames
    const expected = arrived - (MAX - before.fdbEntries)
    assert.ok(arrived >= 2 * MAX, `only ${arrived} of the spray's ${N} frames reached switchd`)
    const refused = after.drops.portSecurity - before.drops.portSecurity
    assert.equal(after.fdbEntries, MAX, 'a holds exactly maxMacs entries')
    // a's own ARP or neighbour traffic during the spray (its learned MAC) is received and not refused.
    assert.ok(refused <= expected && refused >= expected - 20, `drops.portSecurity grew by ${refused} of ${arrived} frames received, expected ~${expected}`)
    assert.equal(after.counters.securityViolations - before.counters.securityViolations, refused, 'each refused frame is a violation')
    assert.equal((await fdb(lab, 'port=host-a')).length, MAX)
    assert.ok((await network(lab)).fdb.limited >= refused, 'the network counts the refusals')
    assert.deepEqual(await kept(), [b.mac, c.mac], 'b and c are still learned')
    assert.match(await lab.ping(c, b, 3), / 3 received/, 'and still ping after')
  })
})

describe('e2e managed: storm control limits a broadcast flood', function () {
  this.timeout(60_000)
  const RATE = 200
  // d floods; c only listens; a and b ping each other meanwhile.
  const { lab } = useLab({ hosts: 4, config: { profiles: [{ match: 'host-d', storm: { broadcast: RATE }, claimable: true }] } })

  it('20,000 broadcasts: about RATE/s get through, the rest are counted, pings are unaffected', async () => {
    const [a, b, c, d] = hostsOf(lab) as [LabHost, LabHost, LabHost, LabHost]
    assert.match(await lab.ping(a, b, 1), / 1 received/)
    const before = await port(lab, 'host-d')
    const cRx = await lab.rxPackets(c)
    const dropStorm = (await network(lab)).counters.dropStorm
    const N = 20_000
    const t0 = Date.now()
    const pinging = lab.ping(a, b, 20, 4, 0.05)
    const sent = await inject({ ns: d.ns, iface: d.tap, count: N, src: d.mac, burst: 64, pauseMs: 1, seconds: 20 })
    assert.equal(sent.sent, N)
    assert.match(await pinging, / 20 received/, 'a and b kept talking during the storm')
    const after = await settled(lab, 'host-d')
    const seconds = (Date.now() - t0) / 1000
    const received = after.counters.rxFrames - before.counters.rxFrames
    const dropped = after.drops.stormBroadcast - before.drops.stormBroadcast
    // A full bucket (one second's worth) plus the refill while it lasted, plus some slack for d's own chatter.
    const bound = Math.ceil(RATE * (seconds + 1) + 50)
    assert.ok(received - dropped <= bound, `${received - dropped} of ${received} broadcasts admitted in ${seconds.toFixed(2)} s (bound ${bound})`)
    assert.ok(dropped >= received - bound, `drops.stormBroadcast ${dropped} of ${received}`)
    assert.ok((await network(lab)).counters.dropStorm - dropStorm >= dropped, 'the network counts them too')
    const got = (await lab.rxPackets(c)) - cRx
    assert.ok(got <= bound, `c received ${got} frames of the ${N}-frame flood (bound ${bound})`)
    assert.match(await lab.ping(b, a, 3), / 3 received/, 'and still ping after')
  })
})

describe('e2e managed: loop protection', function () {
  this.timeout(60_000)
  const HOLD_DOWN = 5
  // Hosts a and b (the first two) are both plugged into one Linux bridge in a's namespace: a loop
  // through the switch. They connect first, so the stations c and d have the newer ports: loop
  // protection must still block a loop port, never a station (the MAC's home port is spared).
  const { lab, logs } = useLab({
    hosts: [{ noAddress: true }, { noAddress: true }, {}, {}],
    config: { network: { loop: { holdDown: HOLD_DOWN } } }
  })

  before(async function () {
    if (lab.port === 0) this.skip()
    const [l1, l2] = hostsOf(lab) as [LabHost, LabHost, LabHost, LabHost]
    // No IPv6 and no multicast snooping (its IGMP report) in the loop namespace: the bridge sends nothing of
    // its own, so only the stations' frames circulate.
    await run('ip', ['netns', 'exec', l1.ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'])
    await run('ip', ['-n', l2.ns, 'link', 'set', l2.tap, 'netns', l1.ns])
    await run('ip', ['-n', l1.ns, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0', 'mcast_snooping', '0'])
    for (const tap of [l1.tap, l2.tap]) {
      await run('ip', ['-n', l1.ns, 'link', 'set', tap, 'master', 'br0'])
      await run('ip', ['-n', l1.ns, 'link', 'set', tap, 'up'])
    }
    await run('ip', ['-n', l1.ns, 'link', 'set', 'br0', 'up'])
  })

  it('detects the loop, blocks one of its ports (not a station\'s, though the stations are newer), and c and d keep working', async () => {
    const [, , a, b] = hostsOf(lab) as [LabHost, LabHost, LabHost, LabHost]
    // The ARP request (or any multicast) of a station is flooded into the bridge and comes back through the other port.
    const trigger = lab.ping(a, b, 3).catch(() => '')
    await until(async () => (await network(lab)).counters.loopsDetected >= 1, 5000, 'loopsDetected >= 1')
    const p = await ports(lab)
    const loopPorts = [p.get('host-a'), p.get('host-b')]
    const blocked = loopPorts.filter((x) => x?.state === 'blocked')
    assert.equal(blocked.length, 1, `exactly one loop port blocked: ${JSON.stringify(loopPorts.map((x) => x?.state))}`)
    assert.ok((blocked[0]?.counters.loopBlocks ?? 0) >= 1)
    assert.ok((blocked[0]?.blockedSeconds ?? 99) <= HOLD_DOWN, `held down for at most ${HOLD_DOWN} s (${blocked[0]?.blockedSeconds})`)
    assert.equal(p.get('host-c')?.state, 'forwarding', 'a station is never the one blocked')
    assert.equal(p.get('host-d')?.state, 'forwarding', 'a station is never the one blocked')
    const line = logs.find((l) => l.includes('"event":"loop_detected"'))
    assert.ok(line !== undefined, 'switchd logged loop_detected')
    // It names the two ports of the last move: the blocked one, and the loop's other port or the MAC's own.
    const ev = JSON.parse(line.slice(line.indexOf('{'))) as { ports: string, blocked: string, mac: string }
    assert.equal(ev.blocked, blocked[0]?.name, line)
    assert.ok(ev.ports.split(',').includes(ev.blocked) && ev.ports.split(',').length === 2, line)
    assert.ok([a.mac, b.mac].includes(ev.mac), `the flapping MAC is a station's: ${line}`)

    // The storm is over: over 2 s, all ports together receive little more than the pings.
    const total = (m: Map<string, PortView>): number => [...m.values()].reduce((s, x) => s + x.counters.rxFrames, 0)
    const r0 = total(await ports(lab))
    const t0 = Date.now()
    await trigger
    assert.match(await lab.ping(a, b, 5), / 5 received/, 'a -> b after the block')
    assert.match(await lab.ping(b, a, 5), / 5 received/, 'b -> a after the block')
    await sleep(Math.max(0, t0 + 2000 - Date.now()))
    const grown = total(await ports(lab)) - r0
    assert.ok(grown < 500, `the ports received ${grown} frames in the 2 s after the block`)
  })

  it('the hold-down ends after its configured time', async () => {
    await until(async () => logs.some((l) => l.includes('"event":"loop_unblocked"')), (HOLD_DOWN + 3) * 1000, 'loop_unblocked')
  })
})
