/**
 * The gateway model fuzz: a real switchd (SwitchServer, in this process)
 * with a network whose gateway is a real QEMU child, driven by a seeded
 * random sequence of steps (steps.ts) and checked after each (context.ts).
 * The integration test runs it with nat off; the e2e test runs this file as
 * a program inside a network namespace of its own with nat on:
 *
 *   ip netns exec NS node -r tsx/cjs test/helpers/gateway-fuzz/run.ts '<RunOptions as JSON>'
 *
 * which prints one JSON line, the Report. The run is bounded by its number of
 * steps; `hangGuardMs` only stops a run that hangs.
 */

import * as fs from 'node:fs'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import { SwitchServer } from '../../../src/switch/daemon/switchd'
import { buildConfig } from '../../../src/switch/control/config'
import type { Port } from '../../../src/switch/core/port'
import { countRecords } from '../../../src/common/protocol'
import { parseIpv4, ipv4At, dhcpAt, dhcpType } from '../../../src/common/dhcp'
import { setLogSink } from '../../../src/common/log'
import { Fuzz, FuzzFailure, type Setting } from './context'
import type { FuzzNet } from './model'
import * as steps from './steps'

export interface RunOptions {
  seed: number
  steps: number
  hangGuardMs: number
  nat: 'on' | 'off'
  /** Where switchd listens (its main and metrics listeners): 127.0.0.1, or 0.0.0.0 in the e2e namespace. */
  listen: string
  stateDir: string
  /** Addresses stations join from (every loopback address is one client to switchd, with one set of shares). */
  clientAddresses: string[]
  /**
   * With nat on: a host service the gateway lists (hostPorts) and one it does not, both started here on 127.0.0.1;
   * and the address the fresh client that reaches the listed one at the end joins from, a client none of
   * clientAddresses is (so a share of flows of its own: the stations' may be full of flows for minutes).
   */
  services?: { listed: number, unlisted: number, client: string }
}

export interface Report {
  ok: boolean
  seed: number
  steps: number
  ms: number
  tally: Record<string, number>
  failure?: string
  /** Connections (and bytes) the host services got: the unlisted one must get none. */
  listed: { connections: number, bytes: number }
  unlisted: { connections: number, bytes: number }
  /** The most the process grew (heap and external bytes) over the run. */
  memoryPeak: number
  /** Leases given, as the stations saw them. */
  offers: number
  acks: number
}

const ADMIN = 'gateway-fuzz-admin-0123456789abcdef'
const SUBNET = '10.0.2.0'
const STATIC_IN_POOL = { mac: 0x02f0000000f1, ip: '10.0.2.105' }
const STATIC_OUTSIDE_POOL = { mac: 0x02f0000000f2, ip: '10.0.2.50' }

const ipv4 = (t: string): number => parseIpv4(t) as number
const CONDITION_BYTES = 4 * 1024 * 1024

/** A host service on 127.0.0.1: counts connections and bytes, answers nothing. */
async function service (port: number): Promise<{ server: net.Server, seen: { connections: number, bytes: number } }> {
  const seen = { connections: 0, bytes: 0 }
  const server = net.createServer((c) => { seen.connections++; c.on('data', (d: Buffer) => { seen.bytes += d.length }); c.on('error', () => {}) })
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, '127.0.0.1', resolve) })
  return { server, seen }
}

export async function runGatewayFuzz (o: RunOptions): Promise<Report> {
  const started = Date.now()
  const logs: string[] = []
  const restoreLog = setLogSink((l) => { logs.push(l); if (logs.length > 400) logs.splice(0, 100) })
  const listed = o.services !== undefined ? await service(o.services.listed) : undefined
  const unlisted = o.services !== undefined ? await service(o.services.unlisted) : undefined
  const vmUnix = path.join(o.stateDir, 'vm1.sock')
  const gateway: Record<string, unknown> = {
    nat: o.nat === 'on', dhcpStart: '10.0.2.100', poolSize: 32, leaseTime: 60, leasesPerPort: 3, flowsPerClient: 64,
    staticLeases: [STATIC_IN_POOL, STATIC_OUTSIDE_POOL].map((s) => ({ mac: s.mac.toString(16).padStart(12, '0').replace(/(..)(?!$)/g, '$1:'), ip: s.ip }))
  }
  if (o.services !== undefined) gateway.hostPorts = [`tcp:${o.services.listed}`]
  const config = buildConfig({
    listen: `${o.listen}:0`,
    metricsListen: `${o.listen}:0`,
    adminToken: ADMIN,
    allowAnonymous: true,
    stateDir: o.stateDir,
    resumeGrace: 0,
    // Small enough that bursts into link conditions meet them: what one client address's ports, and all of switchd, may hold.
    limits: { conditionBytes: CONDITION_BYTES, conditionBytesPerAddress: CONDITION_BYTES / 4 },
    qemu: [{ name: 'vm1', network: 'lab', listen: `unix:${vmUnix}` }, { name: 'vm2', network: 'lab', listen: 'tcp:127.0.0.1:0' }],
    networks: { lab: { gateway } }
  }, '(gateway fuzz)')
  const thrown: Error[] = []
  const onThrow = (err: Error): void => { thrown.push(err) }
  process.on('uncaughtException', onThrow)
  process.on('unhandledRejection', onThrow)
  let fz: Fuzz | undefined
  let server: SwitchServer | undefined
  let failure: string | undefined
  /** Start switchd (again: same configuration and state directory); its ports and the QEMU TCP listener's. */
  const start = async (): Promise<{ server: SwitchServer, self: number[], wsUrl: string, vm2: number }> => {
    logs.length = 0
    const s = new SwitchServer({ config, host: o.listen, port: 0 })
    server = s
    const addr = await s.listen()
    const vm2 = qemuTcpPort(logs)
    return {
      server: s,
      self: [addr.port, s.metricsAddress()?.port ?? 0, vm2].filter((p) => p !== 0),
      wsUrl: `ws://${o.listen === '0.0.0.0' ? '127.0.0.1' : o.listen}:${addr.port}/net/lab`,
      vm2
    }
  }
  try {
    const first = await start()
    const hostAddresses = Object.values(os.networkInterfaces()).flat().flatMap((i) => i?.family === 'IPv4' ? [ipv4(i.address)] : []).filter((a) => (a >>> 24) !== 127)
    const fuzzNet: FuzzNet = {
      subnet: ipv4(SUBNET), mask: 0xffffff00, gw: ipv4('10.0.2.2'), dns: ipv4('10.0.2.3'), poolStart: ipv4('10.0.2.100'), poolSize: 32,
      statics: new Map([[STATIC_IN_POOL.mac, ipv4(STATIC_IN_POOL.ip)], [STATIC_OUTSIDE_POOL.mac, ipv4(STATIC_OUTSIDE_POOL.ip)]]),
      nat: o.nat, hostPorts: new Set(o.services === undefined ? [] : [o.services.listed]),
      selfPorts: first.self,
      hostAddresses
    }
    const setting: Setting = {
      endpoints: { wsUrl: first.wsUrl, vmUnix: { name: 'vm1', path: vmUnix }, vmTcp: { name: 'vm2', port: first.vm2 } },
      clientAddresses: o.clientAddresses,
      staticMacs: [STATIC_IN_POOL.mac, STATIC_OUTSIDE_POOL.mac],
      foreign: [ipv4('198.51.100.77'), ipv4('203.0.113.9')],
      outside: [ipv4('198.51.100.1'), ipv4('203.0.113.80'), ipv4('198.51.100.200')],
      services: o.services === undefined ? [] : [o.services.listed, o.services.unlisted],
      maxStations: 10
    }
    fz = new Fuzz(o.seed, first.server, fuzzNet, setting, () => {
      if (unlisted !== undefined && unlisted.seen.connections > 0) return `the unlisted host service was reached (${unlisted.seen.connections} connections, ${unlisted.seen.bytes} bytes)`
      return undefined
    })
    instrument(fz)
    const f = fz
    f.restart = async () => {
      await f.server.close()
      const again = await start()
      f.rebase(again.server, again.self)
      setting.endpoints.wsUrl = again.wsUrl
      setting.endpoints.vmTcp.port = again.vm2
      instrument(f)
    }
    await loop(fz, o, started)
    // The listed host service is reachable (nat on): a fresh client's SYN is answered, and the service sees it.
    if (listed !== undefined) await steps.reachListed(fz, listed.seen, o.services?.client ?? '')
  } catch (err) {
    failure = err instanceof FuzzFailure ? err.message : `gateway model fuzz (seed ${o.seed}) step ${fz?.step ?? 0}: ${(err as Error).stack ?? String(err)}\n  tally: ${fz?.tallyText() ?? ''}`
    failure += `\n  last log lines:\n    ${logs.slice(-25).join('\n    ')}`
  } finally {
    for (const s of fz?.stations ?? []) s.close()
    await server?.close().catch(() => {})
    listed?.server.close()
    unlisted?.server.close()
    process.off('uncaughtException', onThrow)
    process.off('unhandledRejection', onThrow)
    setLogSink(restoreLog)
  }
  if (failure === undefined && thrown.length > 0) failure = `switchd threw: ${thrown[0]?.stack ?? ''}`
  return {
    ok: failure === undefined,
    seed: o.seed,
    steps: fz?.step ?? 0,
    ms: Date.now() - started,
    tally: fz?.tally ?? {},
    failure,
    listed: listed?.seen ?? { connections: 0, bytes: 0 },
    unlisted: unlisted?.seen ?? { connections: 0, bytes: 0 },
    memoryPeak: fz?.memoryPeak ?? 0,
    offers: fz?.model.offers ?? 0,
    acks: fz?.model.acks ?? 0
  }
}

/** The QEMU TCP listener's port (configured as port 0): its `qemu_listening` line names the port bound. */
function qemuTcpPort (logs: string[]): number {
  const line = logs.find((l) => l.includes('"qemu_listening"') && l.includes('"port":"vm2"'))
  const m = line === undefined ? null : /"address":"tcp:[^"]*:(\d+)"/.exec(line)
  if (m === null || Number(m[1]) === 0) throw new Error(`no port bound in the QEMU listener's qemu_listening line: ${line ?? 'none'}`)
  return Number(m[1])
}

/**
 * Instruments the switch under test, without changing what it does: every
 * record the network reads, per port (the barrier for "switchd has read what
 * a station sent"), and what the DHCP server decided about each message (an
 * answer, or none: then a counter must say why).
 */
function instrument (fz: Fuzz): void {
  const sw = fz.sw
  const bump = (p: Port, n: number): void => { fz.arrivals.set(p, (fz.arrivals.get(p) ?? 0) + n) }
  const frame = sw.receiveFrame.bind(sw)
  const batch = sw.receiveBatch.bind(sw)
  sw.receiveFrame = (p, f) => { bump(p, 1); frame(p, f) }
  sw.receiveBatch = (p, m) => { bump(p, Math.max(0, countRecords(m))); return batch(p, m) }
  const dhcp = fz.gateway.server
  const receive = dhcp.receive.bind(dhcp)
  dhcp.receive = (buf, off, len, port, now) => {
    const a = receive(buf, off, len, port, now)
    fz.decisions.push(a === null ? 0 : dhcpTypeOf(a.frame))
    return a
  }
}

function dhcpTypeOf (f: Buffer): number {
  const l3 = ipv4At(f, 0, f.length)
  const b = l3 < 0 ? -1 : dhcpAt(f, l3, f.length, 67, 68)
  return b < 0 ? -1 : dhcpType(f, b, f.length)
}

async function loop (fz: Fuzz, o: RunOptions, started: number): Promise<void> {
  const leftMacs: number[] = []
  const rng = fz.rng
  while (fz.step < o.steps) {
    if (Date.now() - started > o.hangGuardMs) fz.fail(`only ${fz.step} of ${o.steps} steps in ${o.hangGuardMs / 1000} s: a step hung`)
    fz.step++
    for (let i = fz.stations.length - 1; i >= 0; i--) if (fz.stations[i]?.closed === true) fz.stations.splice(i, 1)
    const live = fz.live()
    const actor = live.length > 0 ? rng.pick(live) : undefined
    const r = rng.float()
    if (actor === undefined || live.length < 2 || (r < 0.08 && live.length < fz.setting.maxStations)) {
      const s = await steps.join(fz, fz.setting, leftMacs)
      if (s !== undefined && rng.bool(0.6)) await steps.dhcpOwn(fz, s)
    } else if (r < 0.11) await steps.leave(fz, actor, leftMacs)
    else if (r < 0.33) await steps.dhcpOwn(fz, actor)
    else if (r < 0.40) await steps.forgedChaddr(fz, actor)
    else if (r < 0.43) {
      const victims = live.filter((v) => v !== actor && v.leased.size > 0)
      if (victims.length > 0) await steps.spoofedRelease(fz, actor, rng.pick(victims))
    } else if (r < 0.53) await steps.spoofArp(fz, actor)
    else if (r < 0.58) await steps.rogueServer(fz, actor)
    else if (r < 0.70) await steps.flood(fz, actor)
    else if (r < 0.78) await steps.announce(fz, actor)
    else if (r < 0.86) await steps.condition(fz, portNames(fz))
    else if (r < 0.92) await steps.drill(fz, portNames(fz))
    else if (r < 0.935) await steps.restartChild(fz)
    else if (r < 0.955) await steps.restartSwitchd(fz, leftMacs)
    else if (r < 0.98) await steps.burst(fz, actor)
    else await steps.gatewayBarrier(fz, actor)
    fz.check()
    fz.checkBounds()
  }
  // Whatever slirp still had to say: a last barrier from a station whose path is up, once the child is back.
  await steps.childBack(fz)
  for (const s of fz.live()) if (fz.pathUp(s)) { await steps.gatewayBarrier(fz, s); break }
  fz.check()
}

function portNames (fz: Fuzz): string[] {
  return [...fz.live().flatMap((s) => s.port === undefined ? [] : [s.port.name]), 'gateway']
}

if (require.main === module) {
  const o = JSON.parse(process.argv[2] as string) as RunOptions
  fs.mkdirSync(o.stateDir, { recursive: true })
  runGatewayFuzz(o).then((r) => { process.stdout.write(JSON.stringify(r) + '\n'); process.exit(0) },
    (err: Error) => { process.stderr.write(`gateway fuzz: ${err.stack ?? err.message}\n`); process.exit(1) })
}
