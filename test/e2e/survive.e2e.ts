/**
 * Survival: switchd killed with SIGKILL under a live TCP stream, an agent
 * killed with SIGKILL, and a port whose link goes silent being parked and
 * resumed with its fdb entries. Three namespaces, real TAPs, real agents.
 *
 * The tests run in order: the resume test needs all three hosts, the agent
 * kill takes host c away for good.
 */

import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { Lab, run, type LabHost } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { tcpListening } from '../helpers/proc'
import { TestClient } from '../helpers/client'
import { sleep, waitFor, MIN_WAIT_MS } from '../helpers/net'

interface PortRow { id: number, name: string, fdbEntries: number }
interface FdbRow { mac: string, port: string, vlan: number }
interface NetworkRow { name: string, counters: { forwarded: number, floodedUnknown: number, floodedBroadcast: number } }

/** Poll an async check every 50 ms; resolves with the ms it took, rejects after `ms` (at least MIN_WAIT_MS: a guard against a hang). */
async function waitForAsync (check: () => Promise<boolean>, ms: number, what: string): Promise<number> {
  ms = Math.max(ms, MIN_WAIT_MS)
  const start = Date.now()
  for (;;) {
    if (await check().catch(() => false)) return Date.now() - start
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(50)
  }
}

/** Stop a process we started (by its PID), and wait for it, boundedly. */
async function killStarted (p: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (p === undefined || p.exitCode !== null || p.signalCode !== null) return
  const exited = once(p, 'exit')
  p.kill(signal)
  await Promise.race([exited, sleep(3000)])
  if (p.exitCode === null && p.signalCode === null) { p.kill('SIGKILL'); await Promise.race([exited, sleep(3000)]) }
}

describe('e2e: survival (SIGKILL of switchd and agents, link loss and resume)', function () {
  this.timeout(120_000)
  const logs: string[] = []
  const lab = new Lab({ hosts: 3, onLog: (l) => { logs.push(l) } })
  const started: ChildProcess[] = []
  const clients: TestClient[] = []
  let a: LabHost, b: LabHost, c: LabHost

  const ports = async (): Promise<PortRow[]> => await lab.api<PortRow[]>('/api/v1/ports')
  // The whole fdb, filtered here: ?port= of a port that has gone answers 404 (no such port), and its going is what some checks wait for.
  const fdbOf = async (port: string): Promise<FdbRow[]> => (await lab.api<FdbRow[]>('/api/v1/fdb')).filter((r) => r.port === port)
  const defaultNet = async (): Promise<NetworkRow> => {
    const nets = await lab.api<NetworkRow[]>('/api/v1/networks')
    const n = nets.find((x) => x.name === 'default')
    assert.ok(n, 'the default network exists')
    return n
  }
  /** iperf3 (or anything) inside a namespace; `ip netns exec` execs, so the PID is the program's. */
  const inNs = (h: LabHost, args: string[], stdout = false): ChildProcess => {
    const p = spawn('ip', ['netns', 'exec', h.ns, ...args], { stdio: ['ignore', stdout ? 'pipe' : 'ignore', 'ignore'] })
    started.push(p)
    return p
  }

  before(async function () {
    requireRoot(this)
    await lab.start()
    ;[a, b, c] = lab.hosts as [LabHost, LabHost, LabHost]
  })
  after(async () => {
    for (const cl of clients) cl.close()
    for (const p of started) await killStarted(p, 'SIGKILL')
    await lab.stop()
  })
  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-60).join('\n') + '\n')
  })

  it('switchd SIGKILLed during an iperf3 run: agents reconnect and traffic flows within 10 s of the restart', async () => {
    assert.match(await lab.ping(a, b, 1), / 1 received/, 'the lab works before the kill')
    const server = inNs(b, ['iperf3', '-s', '-B', b.ipv4, '-p', '5201'])
    await tcpListening(b.ns, 5201)
    const client = inNs(a, ['iperf3', '-c', b.ipv4, '-p', '5201', '-t', '15', '-J', '--connect-timeout', '3000'], true)
    let out = ''
    client.stdout?.setEncoding('utf8')
    client.stdout?.on('data', (d: string) => { out += d })
    const clientExit = once(client, 'exit')
    const iperfStarted = Date.now()

    await sleep(2000)
    const old = lab.switchd
    assert.ok(old?.pid !== undefined)
    const oldPid = old.pid
    const gone = once(old, 'exit')
    old.kill('SIGKILL') // the PID the Lab started
    const [, signal] = await gone as [number | null, NodeJS.Signals | null]
    assert.equal(signal, 'SIGKILL')
    await assert.rejects(lab.ping(a, b, 1), 'no switch, no ping')
    await sleep(1000)
    await lab.startSwitchd() // same port
    const restarted = Date.now()
    assert.notEqual(lab.switchd?.pid, oldPid)

    let ok = false
    // A guard against a hang: the agents reconnect with backoff, and a loaded machine is slower at all of it.
    while (!ok && Date.now() - restarted < 60_000) ok = await lab.ping(a, b, 1).then(() => true, () => false)
    const recovered = (Date.now() - restarted) / 1000
    assert.ok(ok, `ping a -> b did not recover within 60 s of the restart (${recovered} s)`)
    const back = await waitForAsync(async () => {
      const names = (await ports()).map((p) => p.name)
      return ['host-a', 'host-b', 'host-c'].every((n) => names.includes(n))
    }, 60_000, 'all three agents on the new switchd')
    assert.match(await lab.ping(c, a, 2), / 2 received/, 'every agent is back')
    assert.ok(logs.some((l) => l.startsWith('agent-a') && (l.includes('"uplink_connected"') || l.includes('"uplink_resumed"')) && Date.parse(JSON.parse(l.slice(l.indexOf('{'))).time as string) >= restarted - 1000),
      'agent a logged a new connection after the restart')

    // The first run either completes (TCP retransmits across the outage) or fails; either way it ends, boundedly.
    const remaining = Math.max(0, 15_000 + 12_000 - (Date.now() - iperfStarted))
    const ended = await Promise.race([clientExit.then(() => true), sleep(remaining).then(() => false)])
    if (!ended) await killStarted(client, 'SIGKILL')
    let firstRun = `did not finish in ${(15_000 + 12_000) / 1000} s; killed`
    if (ended) {
      try {
        const r = JSON.parse(out) as { end?: { sum_received?: { bytes: number } }, error?: string }
        firstRun = r.error !== undefined ? `failed: ${r.error}` : `completed, ${((r.end?.sum_received?.bytes ?? 0) / 1e6).toFixed(0)} MB received`
      } catch { firstRun = `exited ${String(client.exitCode)} without JSON` }
    }
    await killStarted(server)

    // A second, short run on a fresh server succeeds.
    const server2 = inNs(b, ['iperf3', '-s', '-1', '-B', b.ipv4, '-p', '5202'])
    await tcpListening(b.ns, 5202)
    const second = JSON.parse(await run('ip', ['netns', 'exec', a.ns, 'iperf3', '-c', b.ipv4, '-p', '5202', '-t', '2', '-J', '--connect-timeout', '3000'], 20_000)) as {
      end: { sum_received: { bytes: number } }
    }
    await killStarted(server2)
    process.stdout.write(`      ping recovered ${recovered.toFixed(2)} s after the restart, all agents back after ${(back / 1000).toFixed(2)} s; ` +
      `first iperf3 ${firstRun}; second iperf3 ${(second.end.sum_received.bytes / 1e6).toFixed(0)} MB in 2 s\n`)
    assert.ok(second.end.sum_received.bytes > 1_000_000, `TCP carried ${second.end.sum_received.bytes} bytes after the restart`)
  })

  it('a port whose link goes silent is parked with its fdb entries, and resumed: nothing floods meanwhile', async () => {
    const ghostMac = '02:00:5e:00:00:99'
    const ghostIp = '192.0.2.99'
    const ghostMacBytes = Buffer.from(ghostMac.replace(/:/g, ''), 'hex')
    // A tapswitch-mode client of our own, named "ghost".
    const first = await TestClient.batched(lab.url, { name: 'ghost' })
    clients.push(first)
    const w1 = first.welcome
    assert.ok(w1 !== undefined && typeof w1.resume === 'string' && (w1.resumeGrace ?? 0) > 0, 'the welcome carries a resume token')
    // One frame from its MAC so the switch learns it.
    const hello = Buffer.alloc(60)
    hello.fill(0xff, 0, 6); ghostMacBytes.copy(hello, 6); hello.writeUInt16BE(0x88b5, 12)
    first.send([hello])
    await waitForAsync(async () => (await fdbOf('ghost')).some((r) => r.mac === ghostMac), 3000, 'ghost MAC learned')
    // Host a reaches the ghost's IPv4 at its MAC (no ARP: the ghost does not answer).
    await run('ip', ['-n', a.ns, 'neigh', 'replace', ghostIp, 'lladdr', ghostMac, 'dev', a.tap, 'nud', 'permanent'])
    const pingGhost = async (n: number): Promise<void> => {
      await run('ip', ['netns', 'exec', a.ns, 'ping', '-4', '-c', String(n), '-i', '0.2', '-W', '1', '-n', '-q', ghostIp], (n * 0.2 + 5) * 1000).catch(() => {})
    }

    // The link goes silent: our socket stops reading, so no pong answers switchd's pings (--ping-interval 1).
    const logMark = logs.length
    first.ws.pause()
    const silentAt = Date.now()
    await waitFor(() => logs.slice(logMark).some((l) => l.includes('"port_parked"') && l.includes('"ghost"')), 6000, 'port_parked for ghost')
    const parkedAfter = (Date.now() - silentAt) / 1000
    const parked = (await ports()).find((p) => p.name === 'ghost')
    assert.ok(parked !== undefined, 'a parked port is still listed')
    assert.equal(parked.id, w1.port)
    assert.ok((await fdbOf('ghost')).some((r) => r.mac === ghostMac), 'its fdb entry stays while it is parked')

    // Unicast to the parked MAC is not flooded: the fdb still points at the parked port.
    const net0 = await defaultNet()
    const rxB0 = await lab.rxPackets(b)
    const rxC0 = await lab.rxPackets(c)
    await pingGhost(5)
    const net1 = await defaultNet()
    const rxB1 = await lab.rxPackets(b)
    const rxC1 = await lab.rxPackets(c)
    assert.equal(net1.counters.floodedUnknown, net0.counters.floodedUnknown, 'no unknown-unicast flood while the port is parked')
    assert.ok(net1.counters.forwarded - net0.counters.forwarded >= 5, `the 5 echo requests were forwarded to the parked port (${net1.counters.forwarded - net0.counters.forwarded})`)
    assert.ok(rxC1 - rxC0 < 5 && rxB1 - rxB0 < 5, `b and c did not get the 5 echo requests (b +${rxB1 - rxB0}, c +${rxC1 - rxC0})`)

    // The agent comes back with its token: same port, and the entry never left.
    const second = await TestClient.batched(lab.url, { resume: w1.resume })
    clients.push(second)
    first.close()
    const w2 = second.welcome
    assert.ok(w2 !== undefined)
    assert.equal(w2.resumed, true, 'the welcome says resumed')
    assert.equal(w2.port, w1.port, 'same port id')
    assert.equal(w2.name, 'ghost', 'same port name')
    assert.notEqual(w2.resume, w1.resume, 'a new token for the next time')
    const resumedLine = logs.slice(logMark).find((l) => l.includes('"port_resumed"') && l.includes('"ghost"'))
    assert.ok(resumedLine !== undefined, 'port_resumed logged')
    const away = JSON.parse(resumedLine.slice(resumedLine.indexOf('{'))) as { dropped_while_away: number, fdb_entries: number }
    assert.ok(away.dropped_while_away >= 5, `frames for the parked port were dropped and counted (${away.dropped_while_away})`)
    assert.ok(away.fdb_entries >= 1, 'it kept its fdb entries')
    assert.ok(!logs.slice(logMark).some((l) => l.includes('"port_down"') && l.includes('"ghost"')), 'the port never went down')
    assert.ok((await fdbOf('ghost')).some((r) => r.mac === ghostMac), 'its fdb entry is still there')

    // And unicast to it arrives again, still without a flood.
    second.take()
    await pingGhost(3)
    await waitFor(() => second.frames.filter((f) => f.subarray(0, 6).equals(ghostMacBytes) && f.readUInt16BE(12) === 0x0800).length >= 3, 3000, 'echo requests at the resumed port')
    const net2 = await defaultNet()
    assert.equal(net2.counters.floodedUnknown, net0.counters.floodedUnknown, 'still no unknown-unicast flood')
    await run('ip', ['-n', a.ns, 'neigh', 'del', ghostIp, 'dev', a.tap]).catch(() => {})
    second.close()
    process.stdout.write(`      parked ${parkedAfter.toFixed(1)} s after the link went silent; ${away.dropped_while_away} frames dropped while away\n`)
  })

  it('an agent killed with SIGKILL: its port and fdb entries are gone at once, not parked', async () => {
    assert.match(await lab.ping(c, a, 1), / 1 received/)
    assert.ok((await fdbOf('host-c')).some((r) => r.mac === c.mac), 'c is learned before the kill')
    const agent = c.agent
    assert.ok(agent !== undefined)
    const logMark = logs.length
    const exited = once(agent, 'exit')
    agent.kill('SIGKILL') // the agent's own PID
    const [, signal] = await exited as [number | null, NodeJS.Signals | null]
    assert.equal(signal, 'SIGKILL')
    const took = await waitForAsync(async () => {
      const [p, f] = await Promise.all([ports(), fdbOf('host-c')])
      return !p.some((x) => x.name === 'host-c') && f.length === 0
    }, 3000, 'host-c port and fdb entries to go')
    assert.ok(took <= 1000, `port and fdb entries went ${took} ms after the agent died (at most 1 s)`)
    const byMac = await lab.api<FdbRow[]>(`/api/v1/fdb?mac=${c.mac}`)
    assert.deepEqual(byMac, [], 'c\'s MAC is nowhere in the fdb')
    const since = logs.slice(logMark)
    assert.ok(since.some((l) => l.includes('"port_down"') && l.includes('"host-c"')), 'port_down logged')
    assert.ok(!since.some((l) => l.includes('"port_parked"') && l.includes('"host-c"')), 'a dead agent is not parked')
    assert.match(await lab.ping(a, b, 2), / 2 received/, 'the others keep working')
    process.stdout.write(`      host-c port and fdb entries gone ${took} ms after its agent died\n`)
  })
})
