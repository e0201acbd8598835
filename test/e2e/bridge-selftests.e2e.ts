/**
 * The Linux bridge selftests, against switchd: the cases of
 * tools/testing/selftests/net/forwarding/bridge_vlan_unaware.sh and
 * bridge_vlan_aware.sh (ping_ipv4, ping_ipv6, learning, flooding; ageing as in
 * lib.sh's learning_test; hairpin_drop; port_down_flush; VLAN isolation), with the same names
 * and the same shape: a host sends a frame with a chosen MAC (mausezahn there,
 * inject.ts here) and a counter on the other hosts says whether it arrived
 * (a tc flower filter there, a packet-socket sniffer here).
 *
 * Where the selftests sleep 1 s before reading the counter, we send a barrier:
 * a broadcast that takes the same path after the frame under test (or, for a
 * receiver no such path reaches, one that switchd handles after it). A
 * sniffer stops at its barrier, so what it saw before it is final: a frame
 * that was wrongly forwarded cannot be merely late.
 *
 * Real namespaces, TAPs, agents and switchd (src/lab/lab.ts). Frames are
 * EtherType 0x88b5 (IEEE local experimental); every lab is stopped in
 * after(), every sniffer by its PID; every wait has a deadline.
 */

import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { Lab, emitLines, run, stopChild, waitForLine, type LabHost, type LabOptions } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { inject } from '../helpers/inject'
import { MIN_WAIT_MS, until } from '../helpers/net'

interface PortView { name: string, counters: { rxFrames: number }, drops: { hairpin: number } }
interface FdbRow { vlan: number, mac: string, port: string }

/**
 * Sniff frames of EtherType 0x88b5 arriving at `iface` (not our own
 * transmissions) until one from `barrier` arrives; print them as "dst>src".
 */
const SNIFF = `
import json, socket, sys, time
a = json.loads(sys.argv[1])
PACKET_OUTGOING = 4
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((a['iface'], 0))
s.settimeout(0.2)
print('ready', flush=True)
barrier = bytes.fromhex(a['barrier'].replace(':', ''))
frames = []
seen = False
deadline = time.monotonic() + a['seconds']
while time.monotonic() < deadline:
    try:
        data, addr = s.recvfrom(65535)
    except socket.timeout:
        continue
    if addr[2] == PACKET_OUTGOING or data[12:14] != b'\\x88\\xb5':
        continue
    if data[6:12] == barrier:
        seen = True
        break
    if data[6:11] != barrier[:5]:
        frames.append(data[0:6].hex(':') + '>' + data[6:12].hex(':'))
print(json.dumps({'frames': frames, 'barrier': seen}), flush=True)
`

/** Each host's barrier source: its own, so barriers never move a MAC between ports. */
const barrierMac = (h: LabHost): string => `02:00:5e:00:ba:${h.mac.slice(-2)}`

const sniffers = new Set<ChildProcess>()

/** Start a sniffer on `h`'s TAP that stops at `from`'s barrier; resolves once it listens, with a function for its result. */
async function sniff (h: LabHost, from: LabHost, seconds = 90): Promise<() => Promise<string[]>> {
  const child = spawn('ip', ['netns', 'exec', h.ns, 'python3', '-c', SNIFF, JSON.stringify({ iface: h.tap, barrier: barrierMac(from), seconds })],
    { stdio: ['ignore', 'pipe', 'pipe'] })
  sniffers.add(child)
  let last = ''
  emitLines(child, `sniff-${h.label}`, (l) => { if (l.startsWith(`sniff-${h.label}: {`)) last = l.slice(l.indexOf('{')) })
  const closed = once(child, 'close') // after its stdout has ended
  await waitForLine(child, `sniff-${h.label}`, (l) => l === 'ready', MIN_WAIT_MS)
  return async () => {
    await closed
    sniffers.delete(child)
    const out = JSON.parse(last === '' ? '{}' : last) as { frames?: string[], barrier?: boolean }
    assert.equal(out.barrier, true, `${h.label}: the barrier from ${from.label} arrived within ${seconds} s`)
    return out.frames ?? []
  }
}

/** One frame of EtherType 0x88b5 from inside `h`'s namespace. */
async function send (h: LabHost, dst: string, src = h.mac): Promise<void> {
  const r = await inject({ ns: h.ns, iface: h.tap, count: 1, dst, src, seconds: 5 })
  assert.equal(r.sent, 1)
}


async function port (lab: Lab, h: LabHost): Promise<PortView> {
  const p = (await lab.api<PortView[]>('/api/v1/ports')).find((x) => x.name === `host-${h.label}`)
  assert.ok(p, `switchd has no port host-${h.label}`)
  return p
}

async function fdbRows (lab: Lab, mac: string): Promise<FdbRow[]> {
  return await lab.api<FdbRow[]>(`/api/v1/fdb?mac=${mac}`)
}

/**
 * What each sniffed host received of the frames `from` sends in `act`
 * (`frames` of them). `watch` maps each sniffed host to the host whose barrier
 * it waits for. Barriers are sent once switchd has read all of `act`'s frames,
 * so whatever switchd sent because of them is ahead of every barrier.
 */
async function observe (lab: Lab, from: LabHost, frames: number, watch: Array<[LabHost, LabHost]>, act: () => Promise<void>): Promise<Map<string, string[]>> {
  const results = await Promise.all(watch.map(async ([h, b]) => [h.label, await sniff(h, b)] as const))
  const rx0 = (await port(lab, from)).counters.rxFrames
  await act()
  await until(async () => (await port(lab, from)).counters.rxFrames - rx0 >= frames, 5000, `switchd to read ${frames} frame(s) from ${from.label}`)
  for (const b of new Set(watch.map(([, b]) => b))) await send(b, 'ff:ff:ff:ff:ff:ff', barrierMac(b))
  return new Map(await Promise.all(results.map(async ([label, result]) => [label, await result()] as const)))
}

/** One describe's lab, started in before() and always stopped in after(); prints its logs if a test fails. */
function useLab (opts: LabOptions): Lab {
  const logs: string[] = []
  const lab = new Lab({ ...opts, onLog: (l) => { logs.push(l) } })
  before(async function () {
    requireRoot(this)
    await lab.start()
  })
  after(async () => {
    await Promise.all([...sniffers].map(async (c) => { await stopChild(c) }))
    sniffers.clear()
    await lab.stop()
  })
  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-40).join('\n') + '\n')
  })
  return lab
}

describe('e2e bridge selftests: VLAN-unaware (bridge_vlan_unaware.sh)', function () {
  this.timeout(120_000)
  // Short, as the selftests shorten ageing_time, so the ageing case takes seconds; long enough that a
  // learning case, which starts sniffers (python3) and injects frames between learning a MAC and using it,
  // is not outlived by its entry on a loaded machine (4 s was, with eight busy loops beside it).
  const AGEING = 20
  const lab = useLab({ hosts: 3, switchdArgs: ['--ageing-time', String(AGEING)] })
  const hosts = (): [LabHost, LabHost, LabHost] => lab.hosts as [LabHost, LabHost, LabHost]

  it('ping_ipv4', async () => {
    for (const from of lab.hosts) {
      for (const to of lab.hosts) if (from !== to) assert.match(await lab.ping(from, to, 2), / 2 received/)
    }
  })

  it('ping_ipv6', async () => {
    for (const from of lab.hosts) {
      for (const to of lab.hosts) if (from !== to) assert.match(await lab.ping(from, to, 2, 6), / 2 received/)
    }
  })

  it('learning: a frame to a MAC learned on a port goes to that port only', async () => {
    const [a, b, c] = hosts()
    const mac = 'de:ad:be:ef:13:37'
    assert.deepEqual(await fdbRows(lab, mac), [], 'no fdb entry before a sends')
    await send(a, 'ff:ff:ff:ff:ff:ff', mac)
    await until(async () => (await fdbRows(lab, mac)).some((r) => r.port === 'host-a'), 3000, `${mac} learned on host-a`)
    const got = await observe(lab, b, 1, [[a, b], [c, b]], async () => { await send(b, mac) })
    assert.deepEqual(got.get('a'), [`${mac}>${b.mac}`], 'the frame reached the port its MAC was learned on')
    assert.deepEqual(got.get('c'), [], 'and was not flooded')
  })

  it('flooding: unknown unicast, multicast and broadcast reach every other port, not the ingress', async () => {
    const [a, b, c] = hosts()
    const sent = ['02:00:5e:00:99:99', '01:00:5e:00:00:01', 'ff:ff:ff:ff:ff:ff']
    assert.deepEqual(await fdbRows(lab, sent[0] as string), [], 'the unicast destination is unknown')
    const got = await observe(lab, a, 3, [[a, b], [b, a], [c, a]], async () => {
      for (const dst of sent) await send(a, dst)
    })
    const expected = sent.map((dst) => `${dst}>${a.mac}`)
    assert.deepEqual(got.get('b'), expected)
    assert.deepEqual(got.get('c'), expected)
    assert.deepEqual(got.get('a'), [], 'nothing went back out the ingress port')
  })

  it('ageing: an entry idle for ageingTime expires, and frames to its MAC are flooded again', async () => {
    const [a, b, c] = hosts()
    const mac = 'de:ad:be:ef:13:38'
    const t0 = Date.now()
    await send(a, 'ff:ff:ff:ff:ff:ff', mac)
    await until(async () => (await fdbRows(lab, mac)).length === 1, 3000, `${mac} learned`)
    const known = await observe(lab, b, 1, [[c, b]], async () => { await send(b, mac) })
    assert.deepEqual(known.get('c'), [], 'while learned, not flooded')
    await until(async () => (await fdbRows(lab, mac)).length === 0, (AGEING + 5) * 1000, `${mac} to expire`)
    const idle = (Date.now() - t0) / 1000
    // The switch expires on a 1 s timer, so an entry may go up to a second early of its last refresh's ageing time.
    assert.ok(idle >= AGEING - 1, `expired after ${idle} s idle (ageingTime ${AGEING})`)
    const flooded = await observe(lab, b, 1, [[a, b], [c, b]], async () => { await send(b, mac) })
    assert.deepEqual(flooded.get('c'), [`${mac}>${b.mac}`], 'expired: flooded again')
    assert.deepEqual(flooded.get('a'), [`${mac}>${b.mac}`])
  })

  it('hairpin_drop: a frame to a MAC learned on its own ingress port is not sent back', async () => {
    const [a, b, c] = hosts()
    const mac = 'de:ad:be:ef:13:39'
    await send(a, 'ff:ff:ff:ff:ff:ff', mac)
    await until(async () => (await fdbRows(lab, mac)).some((r) => r.port === 'host-a'), 3000, `${mac} learned on host-a`)
    const hairpin0 = (await port(lab, a)).drops.hairpin
    const got = await observe(lab, a, 1, [[a, b], [b, a], [c, a]], async () => { await send(a, mac) })
    assert.deepEqual(got.get('a'), [], 'not sent back out its ingress port')
    assert.deepEqual(got.get('b'), [], 'nor flooded')
    assert.deepEqual(got.get('c'), [])
    assert.equal((await port(lab, a)).drops.hairpin - hairpin0, 1, 'counted as drops.hairpin')
  })

  // Last of this lab: c's agent does not come back.
  it('port_down_flush: an agent that stops takes its TAP, its port and its fdb entries with it', async () => {
    const [a, b, c] = hosts()
    const mac = 'de:ad:be:ef:13:3a'
    await lab.ping(c, a, 1)
    await send(c, 'ff:ff:ff:ff:ff:ff', mac)
    const refreshed = Date.now()
    await until(async () => (await fdbRows(lab, mac)).some((r) => r.port === 'host-c'), 3000, `${mac} learned on host-c`)
    assert.deepEqual((await fdbRows(lab, c.mac)).map((r) => r.port), ['host-c'], 'c\'s own MAC is learned on host-c')
    const agent = c.agent
    assert.ok(agent)
    agent.kill('SIGTERM')
    const [code] = await once(agent, 'exit') as [number | null]
    assert.equal(code, 0, 'tap-agent exits cleanly on SIGTERM')
    const links = await run('ip', ['-n', c.ns, '-j', 'link', 'show'])
    assert.ok(!links.includes(c.tap), 'the TAP disappeared with the agent')
    // switchd removes the port and flushes its entries in one step (ports.ts remove()): once the port is gone, so are they.
    await until(async () => (await lab.api<PortView[]>('/api/v1/ports')).every((p) => p.name !== 'host-c'), 5000, 'port host-c to go down')
    assert.deepEqual(await fdbRows(lab, mac), [], 'the MAC c sent from left the fdb with the port')
    assert.deepEqual(await fdbRows(lab, c.mac), [], 'and so did c\'s own')
    const idle = (Date.now() - refreshed) / 1000
    assert.ok(idle < AGEING - 1, `flushed with the port, not aged out (${idle} s after the last refresh; ageingTime ${AGEING})`)
    assert.match(await lab.ping(a, b, 1), / 1 received/, 'the others keep working')
  })
})

describe('e2e bridge selftests: VLAN-aware (bridge_vlan_aware.sh)', function () {
  this.timeout(60_000)
  // Access ports: a and b in VLAN 10, c and d in VLAN 20, all addressed in one subnet: only the VLANs keep them apart.
  const lab = useLab({
    hosts: 4,
    config: { profiles: [{ match: 'host-a', vlan: 10, claimable: true }, { match: 'host-b', vlan: 10, claimable: true }, { match: 'host-c', vlan: 20, claimable: true }, { match: 'host-d', vlan: 20, claimable: true }] }
  })
  const hosts = (): [LabHost, LabHost, LabHost, LabHost] => lab.hosts as [LabHost, LabHost, LabHost, LabHost]

  it('ping_ipv4: within a VLAN, and not across VLANs', async () => {
    const [a, b, c, d] = hosts()
    assert.match(await lab.ping(a, b, 2), / 2 received/)
    assert.match(await lab.ping(d, c, 2), / 2 received/)
    await assert.rejects(lab.ping(a, c, 1), 'a reaches c across VLANs')
  })

  it('learning: a MAC is learned in its port\'s VLAN only', async () => {
    const [a, b, c, d] = hosts()
    const mac = 'de:ad:be:ef:13:40'
    await send(a, 'ff:ff:ff:ff:ff:ff', mac)
    await until(async () => (await fdbRows(lab, mac)).length === 1, 3000, `${mac} learned`)
    assert.deepEqual((await fdbRows(lab, mac)).map((r) => [r.vlan, r.port]), [[10, 'host-a']])
    const got = await observe(lab, b, 1, [[a, b], [c, d]], async () => { await send(b, mac) })
    assert.deepEqual(got.get('a'), [`${mac}>${b.mac}`], 'forwarded to a in VLAN 10')
    assert.deepEqual(got.get('c'), [], 'nothing in VLAN 20')
  })

  it('flooding: unknown unicast and broadcast stay within the ingress VLAN', async () => {
    const [a, b, c, d] = hosts()
    const sent = ['02:00:5e:00:99:98', 'ff:ff:ff:ff:ff:ff']
    // c and d hear nothing from VLAN 10: their barriers come from each other, once switchd has read a's frames.
    const got = await observe(lab, a, 2, [[b, a], [c, d], [d, c]], async () => {
      for (const dst of sent) await send(a, dst)
    })
    assert.deepEqual(got.get('b'), sent.map((dst) => `${dst}>${a.mac}`))
    assert.deepEqual(got.get('c'), [], 'nothing crossed into VLAN 20')
    assert.deepEqual(got.get('d'), [], 'nothing crossed into VLAN 20')
  })
})
