/**
 * The gateway fuzz's state and the invariants it checks after every step
 * (steps.ts makes the steps, run.ts the switchd and the loop):
 *
 *  - no station reaches switchd: no SYN-ACK from the gateway for a SYN the
 *    model says nothing may answer (switchd's ports at any address, an
 *    unlisted host port, anything with nat off), and switchd counts no
 *    connection from the gateway's child (`gateway_child`);
 *  - no address is given twice, nor one outside the pool (LeaseModel);
 *  - nothing the guards must stop reaches another station: a marked frame,
 *    an ARP claiming the gateway's or DNS address, a DHCP server message or
 *    IPv4 from the gateway's address from any MAC but the gateway's;
 *  - queue memory within its bound: every link condition holds at most its
 *    queueBytes and queueFrames, checked at every poll of every wait;
 *  - switchd never throws.
 *
 * Steps add their own: every frame they send that must be refused moves
 * the counter of its reason (or a drop on its path: a link condition, a
 * link down), and what must arrive arrives.
 */

import * as fs from 'node:fs'
import type { SwitchServer } from '../../../src/switch/daemon/switchd'
import type { GatewayPort } from '../../../src/switch/io/gateway-port'
import type { Switch } from '../../../src/switch/core/switch'
import type { Port } from '../../../src/switch/core/port'
import type { NetPort } from '../../../src/switch/io/net-port'
import { BLOCK_LINK } from '../../../src/switch/core/port'
import { RECORD_BYTES } from '../../../src/switch/core/held-queue'
import { readTcp } from '../ipv4'
import { Rng } from '../rawws'
import { poll } from '../net'
import { LeaseModel, type FuzzNet } from './model'
import { readArp, readDhcpReply, isDhcpServerPort, readMark, slirpMac, ipText, macText, MAGIC_DROP, MAGIC_OK, UDP_PAYLOAD } from './frames'
import type { Station, Endpoints } from './stations'
import { R_ARP_INSPECTION, R_BACKPRESSURE, R_CONDITION, R_CONDITION_QUEUE, R_DHCP_SNOOPING, R_DISABLED, R_DISCONNECTED, R_EGRESS_BLOCKED, R_IP_SOURCE_GUARD, R_LINK_DOWN, R_LOOP, R_PORT_SECURITY, R_RATE, R_STORM } from '../../../src/switch/core/reasons'

const SYN = 0x02
const ACK = 0x10

/** How long a wait may take before the run calls it a hang: never a speed the machine must reach. */
export const GUARD_MS = 30_000

/** What the process may grow by beyond what the link conditions hold: the stations, their buffers, the model, the garbage not yet collected. */
const MEMORY_SLACK = 256 * 1024 * 1024

/** Descriptors of the child beyond its flows: sockets slirp is still closing, a reply on its way. */
const CHILD_FD_SLACK = 16

/** A SYN a station sent: whether anything may answer it. */
interface SynSent { dst: number, dport: number, may: boolean, step: number, station: number }

/** Counters a step reads before and after (ports' drops, the gateway filter's and DHCP server's). */
export interface Counts { [name: string]: number }

/** Port drop counters that say a frame was lost on its way (not refused by what a step tests). */
const PATH_DROPS = [R_CONDITION, R_CONDITION_QUEUE, R_LINK_DOWN, R_BACKPRESSURE, R_DISCONNECTED, R_EGRESS_BLOCKED,
  R_DISABLED, R_LOOP, R_RATE, R_STORM, R_PORT_SECURITY] as const

/** What the run gives the steps besides the Fuzz: where to join, from which addresses, the static leases' MACs. */
export interface Setting {
  endpoints: Endpoints
  /** Loopback addresses raw and agent stations join from: each a client of its own. */
  clientAddresses: readonly string[]
  /** MACs with a static lease (a station may be given one). */
  staticMacs: readonly number[]
  /** Addresses outside the subnet that are no station's (ARP senders that pass the guards, not the gateway). */
  foreign: readonly number[]
  /** Destinations beyond the machine (documentation ranges): nat on sends them to slirp, which finds no route. */
  outside: readonly number[]
  /** Ports of host services on 127.0.0.1 the floods aim at too (the listed one and the unlisted one). */
  services: readonly number[]
  maxStations: number
}

export class FuzzFailure extends Error {}

export class Fuzz {
  readonly rng: Rng
  step = 0
  readonly tally: Record<string, number> = {}
  readonly stations: Station[] = []
  readonly everyone = new Map<number, Station>()
  readonly model: LeaseModel
  readonly gwMac: number
  /** Every record switchd read, by port (run.ts counts them where the switch reads them). */
  readonly arrivals = new Map<Port, number>()
  /** Arrivals of a port before its current station joined (QEMU listener ports outlive their VMs). */
  readonly arrivalBase = new Map<Station, number>()
  readonly syns = new Map<string, SynSent>()
  /** Legit broadcasts (marked MAGIC_OK) and who received them: station id and step → receivers. */
  readonly delivered = new Map<string, Set<number>>()
  readonly thrown: Error[] = []
  /** What switchd's DHCP server decided about each message it was given (run.ts records it): an answer's type, or 0 for none. */
  readonly decisions: number[] = []
  /** ARP replies from the gateway each station received (the barrier's answer). */
  readonly gatewayReplies = new Map<number, number>()
  nextSport = 20000
  nextXid = 1
  private childRejected0 = 0
  /** Log lines kept for a failure's report. */
  readonly logs: string[] = []

  constructor (readonly seed: number, public server: SwitchServer, readonly net: FuzzNet, readonly setting: Setting, readonly extraCheck: () => string | undefined = () => undefined) {
    this.rng = new Rng(seed)
    this.model = new LeaseModel(net)
    this.gwMac = slirpMac(net.gw)
    this.childRejected0 = server.rejectedBy.gateway_child ?? 0
  }

  get sw (): Switch { return this.gateway.network }
  get gateway (): GatewayPort { return this.server.gatewayChildren[0]?.port as GatewayPort }

  /** Stop switchd and start it again on the same state directory (run.ts sets it). */
  restart: () => Promise<void> = async () => {}

  /** After a restart: the new switchd, its own ports. Stations, leases held and the model stay. */
  rebase (server: SwitchServer, selfPorts: readonly number[]): void {
    this.server = server
    this.net.selfPorts.splice(0, this.net.selfPorts.length, ...selfPorts)
    this.childRejected0 = server.rejectedBy.gateway_child ?? 0
  }

  count (what: string, n = 1): void { this.tally[what] = (this.tally[what] ?? 0) + n }

  fail (what: string): never {
    throw new FuzzFailure(`gateway model fuzz (seed ${this.seed}, replay: MODEL_SEED=${this.seed}) step ${this.step}: ${what}\n  tally: ${this.tallyText()}`)
  }

  tallyText (): string { return Object.entries(this.tally).map(([k, v]) => `${k} ${v}`).join(', ') }

  live (): Station[] { return this.stations.filter((s) => !s.closed) }

  /** The admin API, as an operator would call it; the status it answered. */
  async api (method: string, path: string, body?: unknown): Promise<number> {
    const a = this.server.address()
    const host = a.address === '0.0.0.0' ? '127.0.0.1' : a.address
    const res = await fetch(`http://${host}:${a.port}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.server.config.adminToken ?? ''}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body)
    })
    await res.arrayBuffer()
    return res.status
  }

  /** A wait that must come true: every poll also checks the invariants. Fails the run after GUARD_MS (a hang). */
  async until (ok: () => boolean, what: string, ms = GUARD_MS): Promise<void> {
    if (!await poll(() => { this.check(); return ok() }, ms)) this.fail(`nothing happened within ${ms / 1000} s: ${what}`)
  }

  /** Records of `s` switchd has read. */
  arrived (s: Station): number { return (s.port === undefined ? 0 : this.arrivals.get(s.port) ?? 0) - (this.arrivalBase.get(s) ?? 0) }

  /** Until switchd has read everything `s` sent (or `s` closed), then until no link condition holds a frame. */
  async settle (s?: Station): Promise<void> {
    if (s !== undefined) await this.until(() => s.closed || this.arrived(s) >= s.sent, `switchd reading the ${s.sent} frames of station ${s.id}`)
    await this.until(() => this.held().frames === 0, 'the link conditions releasing what they hold')
  }

  /**
   * Frames and bytes every link condition of the network holds now. Fails
   * if one holds more than its queueFrames and queueBytes, or its memory
   * (ring and records) more than those allow; if what the budget says is
   * charged is not what the queues hold; or if the queues of one client
   * address, or of all switchd, hold more than limits.conditionBytesPerAddress
   * or limits.conditionBytes.
   */
  held (): { frames: number, bytes: number } {
    let frames = 0
    let bytes = 0
    let memory = 0
    const byClient = new Map<string, number>()
    for (const p of this.sw.ports) {
      for (const c of [p.condIn, p.condOut]) {
        if (c === null) continue
        const q = c.params
        if (c.queuedBytes > q.queueBytes || c.queuedFrames > q.queueFrames) {
          this.fail(`port ${p.name} holds ${c.queuedFrames} frames, ${c.queuedBytes} bytes: over its condition's queueFrames ${q.queueFrames}, queueBytes ${q.queueBytes}`)
        }
        if (c.memoryBytes > q.queueBytes + 2 * RECORD_BYTES * q.queueFrames) this.fail(`port ${p.name}'s condition takes ${c.memoryBytes} bytes of memory for queueBytes ${q.queueBytes}, queueFrames ${q.queueFrames}`)
        frames += c.queuedFrames
        bytes += c.queuedBytes
        memory += c.memoryBytes
        byClient.set(p.clientKey, (byClient.get(p.clientKey) ?? 0) + c.memoryBytes)
      }
    }
    const b = this.server.networks.heldBudget
    if (b.used !== memory) this.fail(`the link conditions' budget counts ${b.used} bytes, and their queues hold ${memory}`)
    if (b.used > b.total) this.fail(`the link conditions hold ${b.used} bytes, over limits.conditionBytes ${b.total}`)
    for (const [client, n] of byClient) {
      if (client !== '' && n > b.perClient) this.fail(`the link conditions of ${client}'s ports hold ${n} bytes, over limits.conditionBytesPerAddress ${b.perClient}`)
    }
    return { frames, bytes }
  }

  /** Whether frames from `s` to the gateway, and back, can pass at all now (no link down on either end). */
  pathUp (s: Station): boolean {
    const up = (p: NetPort | undefined): boolean => p !== undefined && (p.blocked & BLOCK_LINK) === 0 && p.condIn?.down !== true && p.condOut?.down !== true && p.flap === undefined
    return up(s.port) && up(this.gateway) && this.server.gatewayChildren[0]?.up === true
  }

  /**
   * Whether a flood (broadcast) reaches the gateway's port now: a flood
   * skips a port whose link is down without a count, as a switch does, so a
   * step expects nothing of the gateway for its broadcasts then.
   */
  floodsReachGateway (): boolean {
    const g = this.gateway
    return (g.blocked & BLOCK_LINK) === 0 && g.flap === undefined
  }

  /** Whether `p` has no link condition, drill or block: what passes it passes now and for sure. */
  clean (p: NetPort | undefined): boolean {
    return p !== undefined && p.condIn === null && p.condOut === null && p.flap === undefined && p.blocked === 0
  }

  counts (s: Station): Counts {
    const g = this.gateway
    const c = g.server.counters
    const out: Counts = {
      switchd: g.filteredSelf, host: g.filteredHost, not_routable: g.filteredNotRoutable, outside: g.filteredOutside, dns: g.filteredDns,
      source: g.filteredSource, fragment: g.filteredFragment, protocol: g.filteredProtocol, flows: g.filteredFlows, arp_rate: g.filteredArpRate,
      dhcp_chaddr: c.chaddr, dhcp_rate: c.rate, dhcp_limit: c.limit, dhcp_pool: c.pool, dhcp_other: c.notDhcp + g.filteredDhcp,
      arp_inspection: s.port?.drops[R_ARP_INSPECTION] ?? 0, dhcp_snooping: s.port?.drops[R_DHCP_SNOOPING] ?? 0, ip_source_guard: s.port?.drops[R_IP_SOURCE_GUARD] ?? 0,
      path: 0
    }
    for (const p of [s.port, g]) {
      if (p === undefined) continue
      for (const r of PATH_DROPS) out.path = (out.path as number) + p.drops[r]
    }
    return out
  }

  /** Each frame a step sent that must be refused moved its reason's counter, or a drop on its path. */
  refused (before: Counts, after: Counts, expected: Record<string, number>, what: string): void {
    const path = (after.path as number) - (before.path as number)
    for (const [reason, n] of Object.entries(expected)) {
      let moved = 0
      for (const r of reason.split('|')) moved += (after[r] as number) - (before[r] as number)
      if (moved + path >= n) continue
      const all = Object.keys(after).filter((k) => after[k] !== before[k]).map((k) => `${k} +${(after[k] as number) - (before[k] as number)}`).join(', ')
      this.fail(`${what}: ${n} frames to be refused as ${reason}, but that counter moved ${moved} (and ${path} were lost on the way); expected ${JSON.stringify(expected)}, moved: ${all}`)
    }
  }

  /** A SYN from `s` (its source address and port): whether anything may answer it. */
  noteSyn (s: Station, src: number, sport: number, dst: number, dport: number, may: boolean): void {
    this.syns.set(`${src}:${sport}`, { dst, dport, may, step: this.step, station: s.id })
  }

  /** The invariants over what every station received since the last check. */
  check (): void {
    if (this.thrown.length > 0) this.fail(`switchd threw: ${this.thrown[0]?.stack ?? ''}`)
    const rejected = (this.server.rejectedBy.gateway_child ?? 0) - this.childRejected0
    if (rejected !== 0) this.fail(`switchd refused ${rejected} connections from the gateway's child: a station reached one of its listeners`)
    for (const s of this.everyone.values()) {
      for (const f of s.inbox.splice(0)) this.received(s, f)
    }
    this.held()
    const extra = this.extraCheck()
    if (extra !== undefined) this.fail(extra)
  }

  /** Process memory (heap and external) when the run began, and the most it grew. */
  memory0 = 0
  memoryPeak = 0

  /**
   * Memory within a bound proportional to what is configured (once a step):
   * the lease table holds at most a record per address of the pool and the
   * static leases, the flow table at most maxFlows and each client its
   * share, the fdb what its ports may learn; and the process grows by no
   * more than MEMORY_SLACK beyond what the link conditions may hold
   * (limits.conditionBytes).
   */
  checkBounds (): void {
    const g = this.gateway
    const n = this.net
    if (g.server.leases.size > n.poolSize + n.statics.size) this.fail(`the lease table holds ${g.server.leases.size} records for a pool of ${n.poolSize} and ${n.statics.size} static leases`)
    if (g.flows.flows > g.flows.maxFlows) this.fail(`the gateway's flow table holds ${g.flows.flows} flows, over maxFlows ${g.flows.maxFlows}`)
    for (const s of this.live()) {
      const held = s.port === undefined ? 0 : g.flows.flowsOf(s.port.clientKey)
      if (held > g.flows.flowsPerClient) this.fail(`the client of station ${s.id} holds ${held} flows, over its share ${g.flows.flowsPerClient}`)
    }
    this.checkChild()
    let macs = 0
    for (const p of this.sw.ports) macs += p.maxMacs
    const rows = this.sw.fdb.rows().length
    if (rows > macs + 64) this.fail(`the fdb holds ${rows} entries for ports that may learn ${macs}`)
    const queues = this.server.networks.heldBudget.total
    const m = process.memoryUsage()
    const used = m.heapUsed + m.external
    if (this.memory0 === 0) this.memory0 = used
    const growth = used - this.memory0
    if (growth > this.memoryPeak) this.memoryPeak = growth
    if (growth > MEMORY_SLACK + queues) this.fail(`the process grew ${Math.round(growth / 1048576)} MiB, with link conditions that may hold ${Math.round(queues / 1048576)} MiB`)
  }

  /** The child's pid and the descriptors it held with no flows (right after it started). */
  private child = { pid: 0, base: 0 }

  /**
   * The gateway's child holds a host socket per flow: its descriptors stay
   * within what it held at start plus the flows the model counts (each
   * client's share, checked above), whatever the stations send.
   */
  private checkChild (): void {
    const g = this.server.gatewayChildren[0]
    const pid = g?.child?.pid
    if (pid === undefined || g?.up !== true) return
    let fds: number
    try { fds = fs.readdirSync(`/proc/${pid}/fd`).length } catch { return } // not ours to read (another user), or gone
    if (pid !== this.child.pid) { this.child = { pid, base: fds - this.gateway.flows.flows }; return }
    const bound = this.child.base + this.gateway.flows.flows + this.gateway.flows.peers + CHILD_FD_SLACK
    if (fds > bound) this.fail(`the gateway's child holds ${fds} descriptors: more than the ${this.child.base} it started with and the ${this.gateway.flows.flows} flows it may hold`)
  }

  private received (r: Station, f: Buffer): void {
    if (f.length < 14) return
    const src = f.readUIntBE(6, 6)
    const fromGw = src === this.gwMac
    const a = readArp(f)
    if (a !== undefined) {
      if (a.mark?.magic === MAGIC_DROP) this.fail(`station ${r.id} received an ARP the guards must drop (from station ${a.mark.station}, step ${a.mark.step}): ${macText(a.sha)} says it is ${ipText(a.spa)}`)
      if ((a.spa === this.net.gw || a.spa === this.net.dns) && !fromGw) this.fail(`station ${r.id} received an ARP from ${macText(src)} claiming the gateway's address ${ipText(a.spa)}`)
      if (a.mark?.magic === MAGIC_OK) this.deliveredTo(a.mark.station, a.mark.step, r.id)
      if (fromGw && a.op === 2) this.gatewayReplies.set(r.id, (this.gatewayReplies.get(r.id) ?? 0) + 1)
      return
    }
    if (f.readUInt16BE(12) !== 0x0800 || f.length < 34) return
    const ipSrc = f.readUInt32BE(26)
    if ((ipSrc === this.net.gw || ipSrc === this.net.dns) && !fromGw) this.fail(`station ${r.id} received IPv4 from the gateway's address ${ipText(ipSrc)} sent by ${macText(src)}`)
    if (isDhcpServerPort(f) && !fromGw) this.fail(`station ${r.id} received a DHCP server message from station MAC ${macText(src)} (DHCP snooping)`)
    const d = readDhcpReply(f)
    if (d !== undefined) {
      if (d.mark?.magic === MAGIC_DROP) this.fail(`station ${r.id} received a rogue DHCP message (from station ${d.mark.station}, step ${d.mark.step})`)
      if (fromGw) {
        const why = this.model.observe(d, Date.now())
        if (why !== undefined) this.fail(why)
        this.count(`dhcp ${d.type === 2 ? 'offer' : d.type === 5 ? 'ack' : d.type === 6 ? 'nak' : 'reply'} seen`)
      }
      return
    }
    const mark = readMark(f, UDP_PAYLOAD)
    if (mark?.magic === MAGIC_DROP) this.fail(`station ${r.id} received a frame the switch must drop (from station ${mark.station}, step ${mark.step}): ${f.subarray(0, 48).toString('hex')}`)
    const t = readTcp(f)
    if (t !== undefined && fromGw && (t.flags & (SYN | ACK)) === (SYN | ACK)) {
      const syn = this.syns.get(`${t.dst}:${t.dport}`)
      if (syn === undefined) this.fail(`station ${r.id} received a SYN-ACK from ${ipText(t.src)}:${t.sport} for no SYN it sent`)
      if (!syn.may) {
        const self = this.net.selfPorts.includes(syn.dport) ? ' (one of switchd\'s own ports: a station reached switchd)' : ''
        this.fail(`a SYN to ${ipText(syn.dst)}:${syn.dport}${self} from station ${syn.station} at step ${syn.step} was answered by a SYN-ACK`)
      }
      this.count('syn-ack (allowed)')
    }
  }

  private deliveredTo (station: number, step: number, receiver: number): void {
    const k = `${station}/${step}`
    let set = this.delivered.get(k)
    if (set === undefined) { set = new Set(); this.delivered.set(k, set) }
    set.add(receiver)
  }

  /** The receivers of station `station`'s marked broadcast of step `step`. */
  receiversOf (station: number, step: number): ReadonlySet<number> { return this.delivered.get(`${station}/${step}`) ?? new Set() }

  /** Port drops of a station (for a barrier refused at its ingress). */
  portDrops (p: NetPort | undefined): number {
    if (p === undefined) return 0
    let n = 0
    n += p.drops.reduce((a, b) => a + b, 0) + p.dropControl
    return n
  }
}

export { MAGIC_OK, MAGIC_DROP }
