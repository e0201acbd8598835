/**
 * The port a network's gateway sits behind (kind `gateway`, named
 * `gateway`): its peer is libslirp in a QEMU child (gateway.ts), reached
 * over a socketpair in QEMU's stream framing (4-byte length + frame: batch
 * records, as for QEMU listeners). The port joins its network once and
 * stays while the child restarts: the stations' fdb entry for the gateway's
 * MAC never moves, and the rest of the network notices nothing.
 *
 * libslirp serves DHCP, DNS and NAT and knows nothing of what QEMU 7.2 does
 * not let us tell it, so this port does the rest on egress, before a frame
 * reaches the child, and only for frames to the gateway (no other port pays):
 *
 *  - static leases: a DHCP request from a MAC with a static lease is answered
 *    here (buildDhcpReply), never by slirp, whose pool has no per-MAC
 *    address. slirp then learns the station by ARP like any other;
 *  - `dhcp: false`, `dnsForward: false`: DHCP and DNS to the gateway are
 *    dropped (slirp cannot turn them off), and slirp's DNS option is
 *    blanked in its offers (snoop);
 *  - `nat: "host"`: IPv4 for anything but the gateway and DNS addresses is
 *    dropped, so the stations reach this host and nothing beyond it;
 *  - a TCP or UDP first fragment too short to show its ports is dropped as
 *    malformed (RFC 1858), so no filter here can be passed in pieces;
 *  - switchd itself: the gateway's address is the host's loopback (and so
 *    are 127/8 and 0.0.0.0, to which slirp connects as any local process
 *    would), where switchd's API and WebSocket port listen, open there
 *    without tokens. TCP to those ports through the gateway is dropped, so a
 *    station cannot administer the switch nor join another network that way.
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
  ipv4At, l4At, L4_TOO_SHORT, dhcpAt, dhcpType, dhcpClientMac, dhcpYourAddress, dhcpClientAddress, dhcpAddressOption, buildDhcpReply, formatIpv4,
  DHCP_SERVER_PORT, DHCP_CLIENT_PORT, DHCPDISCOVER, DHCPREQUEST, DHCPOFFER, DHCPACK, DHCPNAK, OPT_REQUESTED_IP, OPT_SERVER_ID, OPT_DNS, dhcpOption
} from '../../common/dhcp'
import { formatMac, IPPROTO_TCP, IPPROTO_UDP } from '../../common/ethernet'
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
  private readonly hostOnly: boolean
  private readonly statics: ReadonlyMap<number, number> | null
  /** TCP ports of switchd's own listeners, refused through the gateway; empty when slirp reaches no host anyway. */
  selfPorts: readonly number[] = []
  private readonly replies: Buffer[] = []
  /** DHCPACKs out of the gateway (slirp's and ours), and ours alone. */
  leases = 0
  staticLeases = 0
  /** Frames to the gateway dropped, by reason. */
  filteredDhcp = 0
  filteredDns = 0
  filteredOutside = 0
  filteredSelf = 0

  constructor (id: number, readonly spec: GatewaySpec, highWaterMark: number, sw: Switch) {
    super(id, spec.name, 'qemu user-mode network', highWaterMark, sw)
    this.gw = spec.address
    this.dns = spec.dns
    this.mac = slirpMac(spec.address)
    this.dhcp = spec.dhcp
    this.dnsForward = spec.dnsForward
    this.hostOnly = spec.nat === 'host'
    this.statics = spec.staticLeases.length === 0 ? null : new Map(spec.staticLeases.map((l) => [l.mac, l.ip]))
  }

  bufferedBytes (): number { return this.socket === undefined ? 0 : this.socket.writableLength }

  output (buf: Buffer, off: number, len: number, op: number, vid: number): void {
    if (this.socket === undefined) { this.dropAway(buf, off, len, vid); return }
    if (!this.admit(buf, off, len)) return
    this.enqueue(this.batch, buf, off, len, op, vid, -1)
  }

  flush (): void {
    const b = this.batch.take()
    if (b !== undefined) this.socket?.write(b)
  }

  /** The child went away: what was queued for it is gone with it. */
  detach (): void {
    this.socket = undefined
    this.batch.discard()
  }

  shutdown (code: number, reason: string): void {
    // An operator's disconnect, or a policy change: the gateway is the configuration's, so only its child restarts.
    log.warn('port_shutdown', { port: this.name, network: this.network.name, code, reason, note: 'the gateway child restarts' })
    this.socket?.destroy()
  }

  /** Whether a frame may go on to slirp; false if dropped (counted) or answered here. Reads integers only. */
  private admit (buf: Buffer, off: number, len: number): boolean {
    const l3 = ipv4At(buf, off, len)
    if (l3 < 0) return true
    const end = off + len
    const dst = buf.readUInt32BE(l3 + 16)
    if (this.hostOnly && dst !== this.gw && dst !== this.dns && dst !== 0xffffffff) { this.filteredOutside++; return false }
    const l4 = l4At(buf, l3, end)
    if (l4 === L4_TOO_SHORT) { this.dropMalformed++; this.network.stats.dropMalformed++; return false }
    if (l4 < 0) return true
    const proto = buf[l3 + 9]
    const dport = buf.readUInt16BE(l4 + 2)
    if (proto === IPPROTO_UDP && dport === DHCP_SERVER_PORT) {
      if (!this.dhcp) { this.filteredDhcp++; return false }
      return this.statics === null || !this.answerStatic(buf, l3, end)
    }
    if (dport === 53 && dst === this.dns && !this.dnsForward) { this.filteredDns++; return false }
    // slirp connects to this host's loopback for the gateway's address, and for 127/8 and 0.0.0.0 as any local process would.
    if (proto === IPPROTO_TCP && (dst === this.gw || (dst >>> 24) === 127 || dst === 0)) {
      const self = this.selfPorts
      for (let i = 0; i < self.length; i++) if (self[i] === dport) { this.filteredSelf++; return false }
    }
    return true
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
