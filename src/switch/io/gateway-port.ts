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
 *    replies on published ports, the outside with nat on; everything else,
 *    fragments included, is dropped and counted by reason;
 *  - each client gets a share of the host sockets slirp opens for them
 *    (core/gateway-flows.ts, fed from both directions: output() here, and
 *    track() over each batch from the child); over it, a new flow is dropped;
 *  - static leases: a DHCP request from a MAC with a static lease is answered
 *    here (buildDhcpReply), never by slirp, whose pool has no per-MAC
 *    address. slirp then learns the station by ARP like any other;
 *  - `dhcp: false`, `dnsForward: false`: DHCP and DNS to the gateway are
 *    dropped (slirp cannot turn them off), and slirp's DNS option is
 *    blanked in its offers (snoop).
 *
 * Each is counted (switchd_gateway_filtered_frames_total). Leases are seen
 * on ingress: DHCPACKs from slirp are counted and logged (`lease`) by a walk
 * over the batch that reads integers only.
 */

import type * as net from 'node:net'
import { NetPort, BatchSlab } from './net-port'
import type { Switch } from '../core/switch'
import type { GatewaySpec } from '../control/config/gateway'
import { LEASE_SECONDS } from '../control/config/gateway'
import {
  ipv4At, dhcpAt, dhcpType, dhcpClientMac, dhcpYourAddress, dhcpClientAddress, dhcpAddressOption, buildDhcpReply, formatIpv4,
  DHCP_SERVER_PORT, DHCP_CLIENT_PORT, DHCPDISCOVER, DHCPREQUEST, DHCPOFFER, DHCPACK, DHCPNAK, OPT_REQUESTED_IP, OPT_SERVER_ID, OPT_DNS, dhcpOption
} from '../../common/dhcp'
import { formatMac, IPPROTO_TCP, IPPROTO_UDP } from '../../common/ethernet'
import {
  GatewayFilter, PortSet, Published, type AddressSet, V_DHCP, V_FLOW, R_MALFORMED, R_DNS, R_OUTSIDE, R_SWITCHD, R_HOST, R_NOT_ROUTABLE, R_FRAGMENT
} from '../core/gateway-filter'
import { GatewayFlows } from '../core/gateway-flows'
import { hostAddresses } from './host-addresses'
import { RECORD_HEADER } from '../../common/protocol'
import { logger } from '../../common/log'

const log = logger('gateway')

/** slirp's own MAC: 52:55 and then its IPv4 address (libslirp special_ethaddr). */
export function slirpMac (address: number): number { return 0x5255 * 2 ** 32 + address }

/** Static-lease replies waiting to enter the switch: they are made inside output(), and enter on the next turn. */
const MAX_PENDING_REPLIES = 16

export class GatewayPort extends NetPort {
  readonly kind = 'gateway'
  socket: net.Socket | undefined
  private readonly batch = new BatchSlab()
  private readonly gw: number
  private readonly dns: number
  private readonly mac: number
  private readonly dhcp: boolean
  private readonly dnsForward: boolean
  private readonly statics: ReadonlyMap<number, number> | null
  /** What a station may reach (the allowlist), and the host sockets slirp holds for each client. */
  readonly filter: GatewayFilter
  readonly flows: GatewayFlows
  private selfList: readonly number[] = []
  private readonly replies: Buffer[] = []
  /** DHCPACKs out of the gateway (slirp's and ours), and ours alone. */
  leases = 0
  staticLeases = 0
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

  /** `hosts`: this host's own addresses (io/host-addresses.ts; a test gives its own). */
  constructor (id: number, readonly spec: GatewaySpec, highWaterMark: number, sw: Switch, hosts: AddressSet = hostAddresses.set) {
    super(id, spec.name, 'qemu user-mode network', highWaterMark, sw)
    this.gw = spec.address
    this.dns = spec.dns
    this.mac = slirpMac(spec.address)
    this.dhcp = spec.dhcp
    this.dnsForward = spec.dnsForward
    this.statics = spec.staticLeases.length === 0 ? null : new Map(spec.staticLeases.map((l) => [l.mac, l.ip]))
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

  /** TCP ports of switchd's own listeners: counted as `switchd` whatever address a station uses (never in hostPorts). */
  get selfPorts (): readonly number[] { return this.selfList }
  set selfPorts (ports: readonly number[]) {
    this.selfList = ports
    for (const p of ports) this.filter.selfPorts.add(IPPROTO_TCP, p, p)
  }

  bufferedBytes (): number { return this.socket === undefined ? 0 : this.socket.writableLength }

  output (buf: Buffer, off: number, len: number, op: number, vid: number): void {
    if (this.socket === undefined) { this.dropDisconnected++; return }
    // Dropped before the flow table sees it: a close that never reaches slirp must not free a share.
    if (this.bufferedBytes() + this.batch.queued > this.highWaterMark) { this.dropForBackpressure(); return }
    if (!this.admit(buf, off, len, vid)) return
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
    if (l3 < 0) return true // ARP (slirp answers for its addresses); IPv6 is off in slirp (ipv6=off)
    const end = off + len
    const now = this.network.nowMs
    const v = this.filter.classify(buf, off, l3, end, now)
    if (v >= R_MALFORMED) { this.refused(v); return false }
    if (v === V_DHCP) {
      if (!this.dhcp) { this.filteredDhcp++; return false }
      return this.statics === null || !this.answerStatic(buf, l3, end)
    }
    if (v === V_FLOW && !this.flows.egress(buf, off, l3, end, vid, now)) { this.filteredFlows++; return false }
    return true
  }

  private refused (reason: number): void {
    switch (reason) {
      case R_MALFORMED: this.dropMalformed++; this.network.stats.dropMalformed++; break
      case R_DNS: this.filteredDns++; break
      case R_OUTSIDE: this.filteredOutside++; break
      case R_SWITCHD: this.filteredSelf++; break
      case R_HOST: this.filteredHost++; break
      case R_NOT_ROUTABLE: this.filteredNotRoutable++; break
      case R_FRAGMENT: this.filteredFragment++; break
      default: this.filteredProtocol++
    }
  }

  /** Once a second, from the switch's tick: forget the flows slirp has let go. */
  expire (nowMs: number): void { this.flows.expire(nowMs) }

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

  /**
   * A DHCP request from a MAC with a static lease: answer it (OFFER, ACK or
   * NAK) and return true; false for anyone else (slirp answers). RFC 2131
   * §4.3: a REQUEST naming another server, or any other message, is only
   * swallowed.
   */
  private answerStatic (buf: Buffer, l3: number, end: number): boolean {
    const b = dhcpAt(buf, l3, end, DHCP_CLIENT_PORT, DHCP_SERVER_PORT)
    if (b < 0 || buf[b] !== 1) return false
    const mac = dhcpClientMac(buf, b)
    const ip = (this.statics as ReadonlyMap<number, number>).get(mac)
    if (ip === undefined) return false
    const type = dhcpType(buf, b, end)
    let reply = 0
    if (type === DHCPDISCOVER) reply = DHCPOFFER
    else if (type === DHCPREQUEST) {
      const server = dhcpAddressOption(buf, b, end, OPT_SERVER_ID)
      if (server !== 0 && server !== this.gw) return true
      const asked = dhcpAddressOption(buf, b, end, OPT_REQUESTED_IP) || dhcpClientAddress(buf, b)
      reply = asked === 0 || asked === ip ? DHCPACK : DHCPNAK
    }
    if (reply === 0 || this.replies.length >= MAX_PENDING_REPLIES) return true
    const spec = this.spec
    this.replies.push(buildDhcpReply({
      type: reply,
      serverMac: this.mac,
      server: this.gw,
      clientMac: mac,
      xid: buf.readUInt32BE(b + 4),
      yiaddr: reply === DHCPNAK ? 0 : ip,
      mask: spec.mask,
      // As slirp does: with restrict=on (nat false) no route through the gateway, and so no DNS.
      router: spec.nat === 'off' ? 0 : this.gw,
      dns: this.dnsForward && spec.nat !== 'off' ? this.dns : 0,
      leaseSeconds: LEASE_SECONDS,
      flags: buf.readUInt16BE(b + 10)
    }))
    if (this.replies.length === 1) setImmediate(() => { this.sendReplies() })
    if (reply === DHCPACK) {
      this.leases++
      this.staticLeases++
      log.limited('info', 'lease', { network: this.network.name, mac: formatMac(mac), ip: formatIpv4(ip), static: true })
    }
    return true
  }

  /** Our replies enter the switch as frames from the gateway, as slirp's do. */
  private sendReplies (): void {
    const list = this.replies.splice(0)
    if (!this.network.ports.includes(this)) return
    for (const f of list) this.network.receiveFrame(this, f)
  }

  /**
   * Count and log the DHCPACKs in a batch from slirp (before it enters the
   * switch). With dnsForward false, slirp's offers still name its DNS
   * address: that option is blanked (PAD bytes, in place) and the UDP
   * checksum cleared (0: none, as IPv4 allows), so stations are not told of
   * a server that will not answer.
   */
  snoop (batch: Buffer): void {
    let off = 0
    const end = batch.length
    while (end - off >= RECORD_HEADER) {
      const len = batch.readUInt32BE(off)
      const f = off + RECORD_HEADER
      off = f + len
      if (off > end) return
      const l3 = ipv4At(batch, f, len)
      if (l3 < 0) continue
      const b = dhcpAt(batch, l3, off, DHCP_SERVER_PORT, DHCP_CLIENT_PORT)
      if (b < 0) continue
      if (!this.dnsForward) {
        const dns = dhcpOption(batch, b, off, OPT_DNS)
        if (dns >= 0) { batch.fill(0, dns - 2, dns + (batch[dns - 1] as number)); batch.writeUInt16BE(0, b - 2) }
      }
      if (dhcpType(batch, b, off) !== DHCPACK) continue
      this.leases++
      log.limited('info', 'lease', { network: this.network.name, mac: formatMac(dhcpClientMac(batch, b)), ip: formatIpv4(dhcpYourAddress(batch, b)), static: false })
    }
  }
}
