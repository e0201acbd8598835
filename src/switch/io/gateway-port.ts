/**
 * The port a network's gateway sits behind (kind `gateway`, named
 * `gateway`): its peer is libslirp in a QEMU child (gateway.ts), reached
 * over a socketpair in QEMU's stream framing (4-byte length + frame: batch
 * records, as for QEMU listeners). The port joins its network once and
 * stays while the child restarts: the stations' fdb entry for the gateway's
 * MAC never moves, and the rest of the network notices nothing.
 *
 * libslirp serves DNS and NAT and knows nothing of what QEMU 7.2 does not
 * let us tell it, so this port does the rest on egress, before a frame
 * reaches the child, and only for frames to the gateway (no other port pays):
 *
 *  - DHCP: every message to UDP port 67 goes to switchd's own DHCP server
 *    (core/dhcp-server.ts), never to slirp, whose pool is keyed by a chaddr
 *    anyone can forge and forgotten when the child restarts. Its replies
 *    enter the switch from this port on the next turn, as slirp's frames
 *    do; an ACK of a new binding waits until the lease file holds it
 *    (io/lease-file.ts). slirp learns the stations by ARP. ARPs that reach
 *    the gateway tell the lease table which addresses are in use (noteArp);
 *  - `dhcp: false`, `dnsForward: false`: DHCP and DNS to the gateway are
 *    dropped (slirp cannot turn them off);
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
 * Each is counted (switchd_gateway_filtered_frames_total).
 */

import type * as net from 'node:net'
import { NetPort, BatchSlab } from './net-port'
import type { Switch } from '../core/switch'
import type { GatewaySpec } from '../control/config/gateway'
import { DhcpServer, type DhcpAnswer } from '../core/dhcp-server'
import { ipv4At, l4At, L4_TOO_SHORT, formatIpv4, DHCP_SERVER_PORT } from '../../common/dhcp'
import { formatMac, macAt, ETH_SOURCE, ETH_P_ARP, IPPROTO_TCP, IPPROTO_UDP } from '../../common/ethernet'
import { ETH_P_8021Q } from '../../common/vlan'
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
  private readonly gw: number
  private readonly dns: number
  private readonly mac: number
  private readonly dhcp: boolean
  private readonly dnsForward: boolean
  private readonly hostOnly: boolean
  /** The network's DHCP server: its leases are the guards' binding table. */
  readonly server: DhcpServer
  /** Where ACKs of new bindings wait to be on disk (gateway.ts sets it; none: they go at once). */
  store: LeaseStore | null = null
  /** TCP ports of switchd's own listeners, refused through the gateway; empty when slirp reaches no host anyway. */
  selfPorts: readonly number[] = []
  private readonly replies: DhcpAnswer[] = []
  private readonly waiting: DhcpAnswer[] = []
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
    this.server = new DhcpServer({
      address: spec.address,
      mac: this.mac,
      mask: spec.mask,
      // With restrict=on (nat false) there is no route through the gateway, and so no DNS.
      router: spec.nat === 'off' ? 0 : spec.address,
      dns: this.dnsForward && spec.nat !== 'off' ? this.dns : 0,
      leaseSeconds: spec.leaseTime,
      leasesPerPort: spec.leasesPerPort,
      pool: {
        subnet: spec.subnet,
        mask: spec.mask,
        start: spec.dhcpStart,
        size: spec.poolSize,
        reserved: [spec.address, spec.dns],
        statics: new Map(spec.staticLeases.map((l) => [l.mac, l.ip]))
      }
    })
  }

  /** DHCP replies counted by the server (metrics): ACKs of leases, and of them static ones. */
  get leases (): number { return this.server.counters.acks }
  get staticLeases (): number { return this.server.counters.staticAcks }

  bufferedBytes (): number { return this.socket === undefined ? 0 : this.socket.writableLength }

  output (buf: Buffer, off: number, len: number, op: number, vid: number): void {
    if (this.socket === undefined) { this.dropDisconnected++; return }
    if (buf.readUInt16BE(off + 12) === ETH_P_ARP || (buf.readUInt16BE(off + 12) === ETH_P_8021Q && buf.readUInt16BE(off + 16) === ETH_P_ARP)) this.noteArp(buf, off, len)
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
    // DHCP is switchd's to answer, whatever the destination: none of it reaches slirp.
    if (proto === IPPROTO_UDP && dport === DHCP_SERVER_PORT) {
      if (!this.dhcp) this.filteredDhcp++
      else this.serveDhcp(buf, off, len)
      return false
    }
    if (dport === 53 && dst === this.dns && !this.dnsForward) { this.filteredDns++; return false }
    // slirp connects to this host's loopback for the gateway's address, and for 127/8 and 0.0.0.0 as any local process would.
    if (proto === IPPROTO_TCP && (dst === this.gw || (dst >>> 24) === 127 || dst === 0)) {
      const self = this.selfPorts
      for (let i = 0; i < self.length; i++) if (self[i] === dport) { this.filteredSelf++; return false }
    }
    return true
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
    this.server.leases.noteArp(spa, sha, this.network.fdb.lookup(this.pvid, sha), performance.timeOrigin + this.network.nowMs)
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
