/**
 * The port a network's gateway sits behind (kind `gateway`, named
 * `gateway`): its peer is libslirp in a QEMU child (gateway.ts), reached
 * over a socketpair in QEMU's stream framing (4-byte length + frame: batch
 * records, as for QEMU listeners). The port joins its network once and
 * stays while the child restarts: the stations' fdb entry for the gateway's
 * MAC never moves, and the rest of the network notices nothing.
 *
 * Every frame to the gateway passes here first (no other port pays):
 *
 *  - what a station may reach through slirp is an allowlist
 *    (core/gateway-filter.ts): DHCP, DNS, the host ports the operator lists,
 *    replies on published ports, the outside with nat on, from a station's
 *    own address (its lease, where the guards inspect ARP); everything else, fragments and EtherTypes other than IPv4
 *    and ARP included, is dropped and counted by reason;
 *  - each client gets a share of the ARPs slirp learns stations from
 *    (core/gateway-arp.ts: its table has 16 entries, taken in turn);
 *  - each client gets a share of the host sockets slirp opens for them
 *    (core/gateway-flows.ts, fed from both directions: output() here, and
 *    track() over each batch from the child); over it, a new flow is dropped;
 *  - DHCP: every message to UDP port 67 goes to switchd's own DHCP server
 *    (core/dhcp-server.ts), never to slirp, whose pool is keyed by a chaddr
 *    anyone can forge and forgotten when the child restarts. Its replies
 *    enter the switch from this port on the next turn, as slirp's frames
 *    do; an ACK of a new binding waits until the lease file holds it
 *    (io/lease-file.ts). slirp learns the stations by ARP. ARPs that reach
 *    the gateway tell the lease table which addresses are in use (noteArp);
 *  - `dhcp: false`, `dnsForward: false`: DHCP and DNS to the gateway are
 *    dropped (slirp cannot turn them off).
 *
 * Each is counted (switchd_gateway_filtered_frames_total).
 */

import type * as net from 'node:net'
import { NetPort, BatchSlab } from './net-port'
import type { Switch } from '../core/switch'
import { R_MALFORMED as DROP_MALFORMED } from '../core/reasons'
import type { GatewaySpec } from '../core/gateway-spec'
import { DhcpServer, type DhcpAnswer } from '../core/dhcp-server'
import { ipv4At, formatIpv4 } from '../../common/dhcp'
import { formatMac, macAt, ETH_SOURCE, ETH_P_ARP, IPPROTO_TCP, IPPROTO_UDP } from '../../common/ethernet'
import { ETH_P_8021Q } from '../../common/vlan'
import {
  GatewayFilter, PortSet, Published, type AddressSet, type Underlay, V_PASS, V_DHCP, V_FLOW, R_MALFORMED, R_DNS, R_OUTSIDE, R_SWITCHD, R_HOST, R_NOT_ROUTABLE, R_FRAGMENT, R_SOURCE
} from '../core/gateway-filter'
import { GatewayFlows } from '../core/gateway-flows'
import { ArpBudget, slirpLearns } from '../core/gateway-arp'
import { hostAddresses } from './host-addresses'
import { RECORD_HEADER } from '../../common/protocol'
import { logger } from '../../common/log'

const log = logger('gateway')

/** slirp's own MAC: 52:55 and then its IPv4 address (libslirp special_ethaddr). */
export function slirpMac (address: number): number { return 0x5255 * 2 ** 32 + address }

/** DHCP replies waiting to enter the switch (made inside output(), they enter on the next turn), and ACKs waiting for the lease file. */
const MAX_PENDING_REPLIES = 64
const MAX_WAITING_ACKS = 256

/** Where the DHCP server's ACKs wait for the lease file (io/lease-file.ts). */
export interface LeaseStore {
  /** The lease table's version on disk. */
  readonly landed: number
  /** Write the table if the file lacks a change. */
  request: () => void
}

export class GatewayPort extends NetPort {
  readonly kind = 'gateway'
  socket: net.Socket | undefined
  private readonly batch = new BatchSlab()
  private readonly mac: number
  private readonly dhcp: boolean
  /** The network's DHCP server: its leases are the guards' binding table. */
  readonly server: DhcpServer
  /** Where ACKs of new bindings wait to be on disk (gateway.ts sets it; none: they go at once). */
  store: LeaseStore | null = null
  /** What a station may reach (the allowlist), and the host sockets slirp holds for each client. */
  readonly filter: GatewayFilter
  readonly flows: GatewayFlows
  private selfList: readonly number[] = []
  private readonly replies: DhcpAnswer[] = []
  private readonly waiting: DhcpAnswer[] = []
  /** Frames to the gateway dropped, by reason (docs/GATEWAY.md "What a station reaches"). */
  filteredDhcp = 0
  filteredDns = 0
  filteredOutside = 0
  filteredSelf = 0
  filteredHost = 0
  filteredNotRoutable = 0
  filteredFragment = 0
  filteredProtocol = 0
  filteredFlows = 0
  filteredSource = 0
  filteredArpRate = 0
  /** ARPs slirp learns from, a bucket per client (core/gateway-arp.ts). */
  private readonly arps = new ArpBudget()

  /** `hosts`: this host's own addresses (io/host-addresses.ts; a test gives its own). */
  constructor (id: number, readonly spec: GatewaySpec, highWaterMark: number, sw: Switch, hosts: AddressSet = hostAddresses.set) {
    super(id, spec.name, 'qemu user-mode network', highWaterMark, sw)
    this.mac = slirpMac(spec.address)
    this.dhcp = spec.dhcp
    this.server = new DhcpServer({
      address: spec.address,
      mac: this.mac,
      mask: spec.mask,
      // With restrict=on (nat false) there is no route through the gateway, and so no DNS.
      router: spec.nat === 'off' ? 0 : spec.address,
      dns: spec.dnsForward && spec.nat !== 'off' ? spec.dns : 0,
      leaseSeconds: spec.leaseTime,
      leasesPerPort: spec.leasesPerPort,
      leasesPerClient: spec.leasesPerClient,
      pool: {
        subnet: spec.subnet,
        mask: spec.mask,
        start: spec.dhcpStart,
        size: spec.poolSize,
        reserved: [spec.address, spec.dns],
        statics: new Map(spec.staticLeases.map((l) => [l.mac, l.ip]))
      }
    })
    const hostPorts = new PortSet()
    for (const h of spec.hostPorts) hostPorts.add(h.proto === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP, h.from, h.to)
    const published = new Published()
    for (const p of spec.publish) published.add(p.proto === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP, p.guest, p.guestPort)
    const fdb = sw.fdb
    this.flows = new GatewayFlows({
      maxFlows: spec.maxFlows,
      flowsPerClient: spec.flowsPerClient,
      // The switch learned the frame's source just before forwarding it here: its port is the ingress.
      clientOf: (vid, mac) => fdb.lookup(vid, mac)?.clientKey ?? 'unknown',
      isPublishedUdp: (guest, port) => published.has(IPPROTO_UDP, guest, port)
    })
    this.filter = new GatewayFilter({
      gw: spec.address, dns: spec.dns, subnet: spec.subnet, mask: spec.mask, mac: this.mac, nat: spec.nat, dnsForward: spec.dnsForward,
      hostPorts, published, hostAddresses: hosts
    }, this.flows)
  }

  /** DHCP replies counted by the server (metrics): ACKs of leases, and of them static ones. */
  get leases (): number { return this.server.counters.acks }
  get staticLeases (): number { return this.server.counters.staticAcks }

  /** TCP ports of switchd's own listeners: counted as `switchd` whatever address a station uses (never in hostPorts). */
  get selfPorts (): readonly number[] { return this.selfList }
  set selfPorts (ports: readonly number[]) {
    this.selfList = ports
    for (const p of ports) this.filter.selfPorts.add(IPPROTO_TCP, p, p)
  }

  /** switchd's VXLAN/GENEVE side (gateway.ts Underlay): its listeners' UDP ports and its IPv4 VTEPs, both `switchd` to a station. */
  set underlay (u: Underlay) {
    for (const p of u.udpPorts) this.filter.selfPorts.add(IPPROTO_UDP, p, p)
    this.filter.vteps.set(u.vteps)
  }

  bufferedBytes (): number { return this.socket === undefined ? 0 : this.socket.writableLength }

  output (buf: Buffer, off: number, len: number, op: number, vid: number): void {
    // The stream closed or the child is gone (it restarts): what was written now would be lost unseen.
    if (this.socket === undefined || this.socket.destroyed) { this.dropAway(buf, off, len, vid); return }
    // Dropped before the flow table sees it: a close that never reaches slirp must not free a share.
    if (this.bufferedBytes() + this.batch.queued > this.highWaterMark) { this.dropForBackpressure(); return }
    if (!this.admit(buf, off, len, vid)) return
    // Only an ARP that reaches slirp (a station's address, within its client's share) tells the lease table anything.
    const type = buf.readUInt16BE(off + 12)
    if (type === ETH_P_ARP || (type === ETH_P_8021Q && buf.readUInt16BE(off + 16) === ETH_P_ARP)) this.noteArp(buf, off, len)
    this.enqueue(this.batch, buf, off, len, op, vid, -1)
  }

  flush (): void {
    const b = this.batch.take()
    if (b !== undefined) this.socket?.write(b)
  }

  /** The child went away: what was queued for it is gone with it, and so are its sockets. */
  detach (): void {
    this.socket = undefined
    this.batch.discard()
    this.flows.clear()
  }

  shutdown (code: number, reason: string): void {
    // An operator's disconnect, or a policy change: the gateway is the configuration's, so only its child restarts.
    log.warn('port_shutdown', { port: this.name, network: this.network.name, code, reason, note: 'the gateway child restarts' })
    this.socket?.destroy()
  }

  /** Whether a frame may go on to slirp; false if dropped (counted) or answered here. Reads integers only. */
  private admit (buf: Buffer, off: number, len: number, vid: number): boolean {
    const l3 = ipv4At(buf, off, len)
    if (l3 < 0) {
      // ARP from a station's address passes (slirp answers for its own); any other EtherType is slirp's to misread.
      const o = this.filter.classifyOther(buf, off, len)
      if (o !== V_PASS) { this.refused(o); return false }
      return this.arpWithinShare(buf, off, vid)
    }
    const end = off + len
    const now = this.network.nowMs
    const v = this.filter.classify(buf, off, l3, end, now)
    if (v >= R_MALFORMED) { this.refused(v); return false }
    // DHCP is switchd's to answer: none of it reaches slirp.
    if (v === V_DHCP) {
      if (!this.dhcp) this.filteredDhcp++
      else this.serveDhcp(buf, off, len)
      return false
    }
    if (!this.ownSource(buf, off, l3, vid)) { this.filteredSource++; return false }
    if (v === V_FLOW && !this.flows.egress(buf, off, l3, end, vid, now)) { this.filteredFlows++; return false }
    return true
  }

  /**
   * Whether the frame's IPv4 source is its sender's own: where the guards
   * inspect ARP against the gateway's leases, a station speaks to slirp only
   * from an address bound to its MAC and port (a lease, or a static one), as
   * IP source guard would, for the gateway alone. slirp could not answer any
   * other (ARP inspection keeps it from learning it), so such a frame is a
   * forgery: two resets from another station's address and port cut its
   * connection (BSD's tcp_input takes any reset left of its window's edge).
   * Trusted ports are not asked. Two lookups per frame to the gateway.
   */
  private ownSource (buf: Buffer, off: number, l3: number, vid: number): boolean {
    const g = this.network.guard
    if (g === null || g.bindings === null || !g.spec.arpInspection || !g.spec.leases) return true
    const mac = macAt(buf, off + ETH_SOURCE)
    const port = this.network.fdb.lookup(vid, mac)
    if (port === undefined) return false
    return g.trusts(port) || g.bindings.bound(mac, buf.readUInt32BE(l3 + 12), port)
  }

  private refused (reason: number): void {
    switch (reason) {
      case R_MALFORMED: this.network.countDrops(this, DROP_MALFORMED, 1); break
      case R_DNS: this.filteredDns++; break
      case R_OUTSIDE: this.filteredOutside++; break
      case R_SWITCHD: this.filteredSelf++; break
      case R_HOST: this.filteredHost++; break
      case R_NOT_ROUTABLE: this.filteredNotRoutable++; break
      case R_FRAGMENT: this.filteredFragment++; break
      case R_SOURCE: this.filteredSource++; break
      default: this.filteredProtocol++
    }
  }

  /** An ARP slirp would learn a station from takes one of its client's tokens (trusted ports: none); false if it has none left (counted). */
  private arpWithinShare (buf: Buffer, off: number, vid: number): boolean {
    const a = off + (buf.readUInt16BE(off + 12) === ETH_P_8021Q ? 18 : 14)
    if (!slirpLearns(buf, a, this.spec.address, this.spec.dns)) return true
    const port = this.network.fdb.lookup(vid, macAt(buf, off + ETH_SOURCE))
    if (port !== undefined && this.server.exempt(port)) return true
    if (this.arps.take(port?.clientKey ?? 'unknown', this.network.nowMs)) return true
    this.filteredArpRate++
    return false
  }

  /** Once a second, from the switch's tick: forget the flows slirp has let go, and the ARP buckets that are full again. */
  expire (nowMs: number): void {
    this.flows.expire(nowMs)
    this.arps.prune(nowMs)
  }

  /** Walk a batch from the child (before it enters the switch): what it tells of the flows. Reads integers only. */
  track (batch: Buffer): void {
    const now = this.network.nowMs
    let off = 0
    const end = batch.length
    while (end - off >= RECORD_HEADER) {
      const len = batch.readUInt32BE(off)
      const f = off + RECORD_HEADER
      off = f + len
      if (off > end) return
      const l3 = ipv4At(batch, f, len)
      if (l3 >= 0) this.flows.ingress(batch, l3, off, now)
    }
  }

  /** A DHCP message from a station: the server decides; a reply is queued, or waits for the lease file. */
  private serveDhcp (buf: Buffer, off: number, len: number): void {
    // The ingress: the switch learned the source on it just before this frame reached us.
    const port = this.network.fdb.lookup(this.pvid, macAt(buf, off + ETH_SOURCE))
    const a = this.server.receive(buf, off, len, port, Date.now())
    if (a === null) return
    const store = this.store
    if (a.version === 0 || store === null || a.version <= store.landed) { this.queueReply(a); return }
    if (this.waiting.length >= MAX_WAITING_ACKS) { this.server.counters.rate++; return }
    this.waiting.push(a)
    store.request()
  }

  /** The lease file holds `version`: the ACKs that waited for it go. */
  landed (version: number): void {
    let kept = 0
    for (const a of this.waiting) {
      if (a.version <= version) this.queueReply(a)
      else this.waiting[kept++] = a
    }
    this.waiting.length = kept
  }

  /** An ARP on its way to the gateway (after the switch accepted it): the lease table notes who uses which address. */
  private noteArp (buf: Buffer, off: number, len: number): void {
    const a = off + (buf.readUInt16BE(off + 12) === ETH_P_8021Q ? 18 : 14)
    if (a + 28 > off + len) return
    const sha = buf.readUIntBE(a + 8, 6)
    const spa = buf.readUInt32BE(a + 14)
    if (spa === 0 || sha !== macAt(buf, off + ETH_SOURCE)) return
    // The switch's coarse clock as wall-clock time: no clock read per ARP.
    this.server.noteArp(spa, sha, this.network.fdb.lookup(this.pvid, sha), performance.timeOrigin + this.network.nowMs)
  }

  private queueReply (a: DhcpAnswer): void {
    if (this.replies.length >= MAX_PENDING_REPLIES) { this.server.counters.rate++; return }
    this.replies.push(a)
    if (this.replies.length === 1) setImmediate(() => { this.sendReplies() })
  }

  /** Our replies enter the switch as frames from the gateway, as slirp's do. */
  private sendReplies (): void {
    const list = this.replies.splice(0)
    if (!this.network.ports.includes(this)) return
    for (const a of list) {
      if (a.ack !== 0) log.limited('info', 'lease', { network: this.network.name, mac: formatMac(a.mac), ip: formatIpv4(a.ack), static: a.isStatic })
      this.network.receiveFrame(this, a.frame)
    }
  }
}
