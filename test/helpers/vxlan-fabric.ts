/**
 * A VXLAN fabric on one machine (issue 26), all of it inside namespaces this
 * process made:
 *
 *  - `sw`: switchd and the tap-agents that dial it (`ip netns exec`), and a
 *    Linux bridge `ul` holding the underlay address 198.51.100.1 (TEST-NET-2);
 *    every VTEP namespace has a veth into that bridge, so the underlay is one
 *    LAN that exists only inside the namespaces and is never routed in the
 *    root namespace.
 *  - a kernel VTEP: a namespace with the underlay veth (`ul0`), a kernel
 *    `vxlan` device (`nolearning`, its flood list set by `bridge fdb append
 *    00:00:00:00:00:00 dst …`, transmit checksum offload off as on any veth
 *    underlay: exactly docs/VXLAN.md's recipe), a Linux
 *    bridge `br0`, and a host namespace behind the bridge (`eth0`);
 *  - an agent host: a namespace whose TAP a tap-agent (running in `sw`, so it
 *    reaches switchd on `sw`'s loopback) made with `--netns`.
 *
 * The admin API is reached with curl inside `sw` (its loopback is not ours).
 * Everything is stopped by the PID we started and removed by stop(), which is
 * safe after any failure and more than once.
 */

import { execFile } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { run, stopChild } from '../../src/lab/lab'
import { spawnLogged, waitForLine, type Logged } from './proc'
import { until, MIN_WAIT_MS } from './net'
import { metricSum } from './metrics-text'

const ROOT = path.join(__dirname, '..', '..')

/** The underlay: a documentation prefix, present only in the fabric's namespaces. */
export const UNDERLAY = '198.51.100'
/** switchd's underlay address (on the bridge `ul` in `sw`). */
export const SWITCHD_UNDERLAY = `${UNDERLAY}.1`
/** The underlay links' IP MTU (veths), and what fits in a VXLAN packet over it: underlay - 50 (IPv4 20, UDP 8, VXLAN 8, inner Ethernet 14). */
export const UNDERLAY_MTU = 1500
export const OVERLAY_MTU = UNDERLAY_MTU - 50

export interface Station {
  name: string
  ns: string
  /** The interface the station's addresses are on (what BroadcastCount sends and listens on). */
  tap: string
  mac: string
  ipv4: string
  ipv6: string
}

export interface KernelVtep {
  name: string
  ns: string
  /** Its underlay address. */
  addr: string
  vni: number
  /** The kernel vxlan device's name in `ns`. */
  dev: string
  host: Station
}

export interface AgentHost extends Station {
  /** The port name it asked for. */
  port: string
  logged: Logged
}

export interface HostAddress { mac: string, ipv4?: string, ipv6?: string, prefix4?: number }

export interface VtepSpec {
  name: string
  /** Underlay address (in UNDERLAY/24). */
  addr: string
  vni: number
  /** Where its vxlan device floods (the all-zero fdb entries): switchd and/or other VTEPs. */
  flood: string[]
  host: HostAddress
  /** The vxlan device's MTU (default: the kernel's, underlay - 50). */
  mtu?: number
}

export interface AgentSpec {
  name: string
  /** URL path: the network (default "/"). */
  path?: string
  address: HostAddress
  /** --mtu (default OVERLAY_MTU). */
  mtu?: number
  args?: string[]
}

export interface PortRow { name: string, network: string, kind: string, remote?: string, mode?: string, pvid?: number, vlans?: number[], drops: Record<string, number>, counters: { rxFrames: number, txFrames: number } }
export interface FdbRow { network: string, vlan: number, mac: string, port: string }

export class VxlanFabric {
  readonly tag = String(process.pid)
  readonly sw: string
  readonly vteps: KernelVtep[] = []
  readonly agents: AgentHost[] = []
  switchd: Logged | undefined
  /** switchd's loopback port inside `sw`. */
  port = 0
  private readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-vxlan-'))
  private readonly made: string[] = []
  private seq = 0

  constructor (readonly prefix: string, readonly onLog: (line: string) => void) {
    this.sw = `${prefix}-${this.tag}-sw`
  }

  /** Make `sw` with its underlay bridge, then start switchd there with `config`. On failure cleans up and rethrows. */
  async start (config: unknown, switchdArgs: string[] = []): Promise<void> {
    try {
      await this.netns(this.sw)
      await this.ip(this.sw, 'link', 'add', 'name', 'ul', 'type', 'bridge', 'forward_delay', '0')
      await this.ip(this.sw, 'addr', 'add', `${SWITCHD_UNDERLAY}/24`, 'dev', 'ul')
      await this.ip(this.sw, 'link', 'set', 'ul', 'up')
      await this.startSwitchd(config, switchdArgs)
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  async startSwitchd (config: unknown, switchdArgs: string[] = []): Promise<void> {
    const file = path.join(this.dir, 'switchd.json')
    fs.writeFileSync(file, JSON.stringify(config, null, 2))
    this.switchd = spawnLogged('switchd', 'ip', ['netns', 'exec', this.sw, process.execPath, path.join(ROOT, 'bin', 'switchd.js'),
      '--listen', '127.0.0.1:0', '--ping-interval', '1', '--state-dir', path.join(this.dir, 'state'), '--config', file, ...switchdArgs],
    (l) => { this.onLog(`switchd: ${l}`) })
    const line = await waitForLine(this.switchd, 'switchd', (l) => l.includes('"event":"listening"'), MIN_WAIT_MS)
    this.port = (JSON.parse(line.slice(line.indexOf('{'))) as { port: number }).port
  }

  async stopSwitchd (): Promise<void> {
    await stopChild(this.switchd?.child, 5000)
    this.switchd = undefined
  }

  /** A namespace joined to the underlay bridge by a veth: `ul0` there (with `addr`/24 if given), `u-<name>` in `sw`. */
  async underlayLink (ns: string, name: string, addr?: string): Promise<void> {
    await run('ip', ['link', 'add', 'name', `u-${name}`, 'netns', this.sw, 'type', 'veth', 'peer', 'name', 'ul0', 'netns', ns])
    await this.ip(this.sw, 'link', 'set', `u-${name}`, 'master', 'ul', 'up')
    if (addr !== undefined) await this.ip(ns, 'addr', 'add', `${addr}/24`, 'dev', 'ul0')
    await this.ip(ns, 'link', 'set', 'ul0', 'up')
  }

  /**
   * A kernel VTEP (docs/VXLAN.md's recipe, command for command): a vxlan
   * device on the underlay, no learning, flooding to `flood` by all-zero fdb
   * entries, in a Linux bridge with a host namespace behind it.
   */
  async addVtep (spec: VtepSpec): Promise<KernelVtep> {
    const ns = `${this.prefix}-${this.tag}-${spec.name}`
    const hostNs = `${ns}h`
    const dev = `vx${spec.vni}`
    await this.netns(ns)
    await this.netns(hostNs)
    await this.underlayLink(ns, spec.name, spec.addr)
    await this.ip(ns, 'link', 'add', 'name', dev, 'type', 'vxlan', 'id', String(spec.vni), 'local', spec.addr, 'dstport', '4789', 'nolearning', 'dev', 'ul0')
    if (spec.mtu !== undefined) await this.ip(ns, 'link', 'set', dev, 'mtu', String(spec.mtu))
    // The underlay is a veth, which never fills in a checksum the kernel leaves to the NIC: without this the
    // inner TCP/UDP checksums reach switchd unfinished and its hosts drop them (docs/VXLAN.md's recipe).
    await this.exec(ns, ['ethtool', '-K', dev, 'tx', 'off'])
    await this.ip(ns, 'link', 'add', 'name', 'br0', 'type', 'bridge', 'forward_delay', '0')
    await this.ip(ns, 'link', 'set', dev, 'master', 'br0', 'up')
    await this.ip(ns, 'link', 'set', 'br0', 'up')
    for (const dst of spec.flood) await run('ip', ['netns', 'exec', ns, 'bridge', 'fdb', 'append', '00:00:00:00:00:00', 'dev', dev, 'dst', dst])
    await run('ip', ['link', 'add', 'name', 'h0', 'netns', ns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', hostNs])
    await this.ip(ns, 'link', 'set', 'h0', 'master', 'br0', 'up')
    const mtu = Number((JSON.parse(await this.ip(ns, '-j', 'link', 'show', dev)) as Array<{ mtu: number }>)[0]?.mtu)
    const host = await this.address(hostNs, spec.name, 'eth0', spec.host, mtu)
    const v: KernelVtep = { name: spec.name, ns, addr: spec.addr, vni: spec.vni, dev, host }
    this.vteps.push(v)
    return v
  }

  /** A namespace with a TAP that a tap-agent (in `sw`) made there and keeps on switchd. */
  async addAgent (spec: AgentSpec): Promise<AgentHost> {
    const n = this.seq++
    const ns = `${this.prefix}-${this.tag}-a${n}`
    const tap = `tvx${this.tag}${n}`
    await this.netns(ns)
    const mtu = spec.mtu ?? OVERLAY_MTU
    const logged = spawnLogged(spec.name, 'ip', ['netns', 'exec', this.sw, process.execPath, path.join(ROOT, 'bin', 'tap-agent.js'),
      '--url', `ws://127.0.0.1:${this.port}${spec.path ?? '/'}`, '--tap', tap, '--netns', ns, '--mac', spec.address.mac, '--name', spec.name,
      '--mtu', String(mtu), '--reconnect-max', '1', ...(spec.args ?? [])], (l) => { this.onLog(`${spec.name}: ${l}`) })
    await waitForLine(logged, spec.name, (l) => l.includes('"event":"uplink_connected"'), MIN_WAIT_MS)
    const st = await this.address(ns, spec.name, tap, spec.address, mtu)
    const a: AgentHost = { ...st, port: spec.name, logged }
    this.agents.push(a)
    return a
  }

  /** GET a switchd JSON endpoint (curl inside `sw`). */
  async api<T = unknown> (p: string): Promise<T> {
    return JSON.parse(await this.curl(p)) as T
  }

  async curl (p: string, method = 'GET'): Promise<string> {
    return await run('ip', ['netns', 'exec', this.sw, 'curl', '-sS', '--fail-with-body', '--max-time', '10', '-X', method, `http://127.0.0.1:${this.port}${p}`], 20_000)
  }

  async ports (): Promise<PortRow[]> { return await this.api<PortRow[]>('/api/v1/ports') }

  async portView (name: string): Promise<PortRow> {
    const p = (await this.ports()).find((x) => x.name === name)
    if (p === undefined) throw new Error(`no port ${name} on switchd: ${(await this.ports()).map((x) => x.name).join(', ')}`)
    return p
  }

  /** The fdb entry of `mac`, once switchd has one (bounded wait). */
  async fdbPort (mac: string): Promise<string> {
    let found: FdbRow | undefined
    await until(async () => {
      found = (await this.api<FdbRow[]>('/api/v1/fdb')).find((e) => e.mac === mac)
      return found !== undefined
    }, MIN_WAIT_MS, `an fdb entry for ${mac}`)
    return (found as FdbRow).port
  }

  /** A switchd metric's value (the sum over series whose labels include every `labels` pair). */
  async metric (name: string, labels: Record<string, string> = {}): Promise<number> {
    return metricSum(await this.curl('/metrics'), name, labels)
  }

  /** `ip -n ns …` */
  async ip (ns: string, ...args: string[]): Promise<string> { return await run('ip', ['-n', ns, ...args]) }

  /** Run a command inside `ns`. */
  async exec (ns: string, cmd: string[], ms = 20_000): Promise<string> { return await run('ip', ['netns', 'exec', ns, ...cmd], ms) }

  /** Run a command inside `ns` that may fail (a ping that must not be answered): its exit code and output, never a rejection. */
  async tryExec (ns: string, cmd: string[], ms = 20_000): Promise<{ code: number, out: string }> {
    return await new Promise((resolve) => {
      execFile('ip', ['netns', 'exec', ns, ...cmd], { timeout: ms, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, out: `${stdout}${stderr}` })
      })
    })
  }

  async mtuOf (ns: string, dev: string): Promise<number> {
    return Number((JSON.parse(await this.ip(ns, '-j', 'link', 'show', dev)) as Array<{ mtu: number }>)[0]?.mtu)
  }

  /** Create namespace `ns` (lo up) and remember it for stop(). */
  async netns (ns: string): Promise<void> {
    await run('ip', ['netns', 'add', ns])
    this.made.push(ns)
    await this.ip(ns, 'link', 'set', 'lo', 'up')
  }

  /** Stop the agents and switchd (by PID), delete the namespaces (their veths go with them). Safe to repeat. */
  async stop (): Promise<void> {
    await Promise.all(this.agents.map(async (a) => { await stopChild(a.logged.child) }))
    await this.stopSwitchd()
    for (const ns of this.made.splice(0).reverse()) await run('ip', ['netns', 'del', ns]).catch(() => {})
    fs.rmSync(this.dir, { recursive: true, force: true })
  }

  async address (ns: string, name: string, dev: string, a: HostAddress, mtu: number): Promise<Station> {
    await this.ip(ns, 'link', 'set', dev, 'address', a.mac, 'mtu', String(mtu))
    if (a.ipv4 !== undefined) await this.ip(ns, 'addr', 'add', `${a.ipv4}/${a.prefix4 ?? 24}`, 'dev', dev)
    if (a.ipv6 !== undefined) await this.ip(ns, '-6', 'addr', 'add', `${a.ipv6}/64`, 'dev', dev, 'nodad')
    await this.ip(ns, 'link', 'set', dev, 'up')
    return { name, ns, tap: dev, mac: a.mac, ipv4: a.ipv4 ?? '', ipv6: a.ipv6 ?? '' }
  }
}
