/**
 * The gateway's DHCP server (RFC 2131): every DHCP message a station sends
 * to the gateway is answered here, never by libslirp, whose pool is keyed by
 * the BOOTP chaddr (anyone's to forge), lives only in its memory and never
 * frees an address (issue 21, findings 4 and 5). Pure policy: it reads a
 * frame in place, decides with the lease table (leases.ts) and builds the
 * reply frame; the gateway port (io/gateway-port.ts) wires it, and the lease
 * file (io/lease-file.ts) keeps the table across restarts.
 *
 * Who asks is the frame's source MAC and the port the switch learned it on,
 * never what the message says: a chaddr other than the source MAC is
 * dropped (dhcp_chaddr). Each port gets a share: at most `leasesPerPort`
 * addresses offered, bound or declined at once (trunks, which carry another
 * switch's stations, are exempt), and a token bucket of DHCP messages
 * (dhcp_rate), so a flood costs bounded CPU and disk. Each client
 * (Port.clientKey: a WebSocket address or IPv6 /64; any other port, a trunk
 * too, is its own) gets one more, `leasesPerClient` of the pool: one
 * address may open a thousand ports. Over either: dhcp_limit. Ports the
 * guards trust are held to neither.
 *
 *  - DISCOVER: OFFER the MAC's static address, else its current or previous
 *    one, else the one it asks for, else the lowest free (LeaseTable.pick);
 *    the offer holds the address OFFER_HOLD_MS. None free: no offer (dhcp_pool).
 *  - REQUEST (§4.3.2): SELECTING (server id ours, requested address): ACK
 *    our offer, or the address if it is free now, else NAK; naming another
 *    server: our offer goes, silently. INIT-REBOOT (requested address, no
 *    server id): ACK the MAC's own address, NAK another, silence for a MAC we
 *    have no record of. RENEWING/REBINDING (ciaddr): ACK the MAC's own
 *    address, else NAK.
 *  - RELEASE frees, DECLINE frees and holds the address back (leases.ts),
 *    both only for the MAC's own lease and from its port (as IOS DHCP
 *    snooping drops them from another interface); INFORM gets an ACK of
 *    options only.
 *
 * An ACK of a new or moved binding waits for the lease file (its `version`);
 * a renewal's goes at once. Replies go to the client's MAC (never flooded),
 * to its ciaddr when it has one (RFC 2131 §4.1), else to 255.255.255.255.
 */

import type { Port } from './port'
import { LeaseTable, LEASE_BOUND, LEASE_EXPIRED, type Lease, type PoolSpec } from './leases'
import {
  ipv4At, dhcpAt, dhcpType, dhcpClientMac, dhcpClientAddress, dhcpAddressOption, buildDhcpReply,
  DHCP_CLIENT_PORT, DHCP_SERVER_PORT, DHCPDISCOVER, DHCPOFFER, DHCPREQUEST, DHCPDECLINE, DHCPACK, DHCPNAK, DHCPRELEASE, DHCPINFORM,
  OPT_REQUESTED_IP, OPT_SERVER_ID
} from '../../common/dhcp'
import { ETH_SOURCE, macAt } from '../../common/ethernet'

/** ms an OFFER holds its address for the REQUEST that should follow. */
export const OFFER_HOLD_MS = 30_000
/** Per-port DHCP messages: a bucket of RATE_BURST, refilled RATE_PER_SECOND a second (a client sends a handful per lease). */
export const RATE_PER_SECOND = 4
export const RATE_BURST = 16

export interface DhcpServerOptions {
  /** The server: the gateway's address (server id) and MAC (the replies' source). */
  address: number
  mac: number
  mask: number
  /** 0: no router option (nat false), no DNS option (dnsForward false or nat false). */
  router: number
  dns: number
  leaseSeconds: number
  leasesPerPort: number
  leasesPerClient: number
  pool: PoolSpec
}

/** What the server counted (GatewayFacts; metrics `switchd_gateway_filtered_frames_total{reason}` and leases). */
export class DhcpCounters {
  /** Not a DHCP request we serve (BOOTP without the magic cookie, a reply, a relayed or broken message). */
  notDhcp = 0
  chaddr = 0
  limit = 0
  rate = 0
  /** DISCOVERs that found no free address. */
  pool = 0
  offers = 0
  naks = 0
  /** ACKs of leases, and of them static ones. */
  acks = 0
  staticAcks = 0
}

export interface DhcpAnswer {
  frame: Buffer
  /** The lease table's version the lease file must hold before the reply leaves; 0: now. */
  version: number
  /** For the `lease` log line: an ACK of this address (0 otherwise), to this MAC, static or not. */
  ack: number
  mac: number
  isStatic: boolean
}

interface Bucket { tokens: number, at: number }

export class DhcpServer {
  readonly leases: LeaseTable
  readonly counters = new DhcpCounters()
  /** Ports held to no share (the wiring sets it: the ports the guards trust). */
  exempt: (port: Port) => boolean = () => false
  private readonly buckets = new WeakMap<Port, Bucket>()

  constructor (readonly opts: DhcpServerOptions) {
    this.leases = new LeaseTable(opts.pool)
  }

  /**
   * A frame to UDP port 67 that reached the gateway from the station at its
   * source MAC, which the switch learned on `port` (undefined: not learned).
   * Returns the reply to send, or null (dropped, counted, or nothing to say).
   */
  receive (buf: Buffer, off: number, len: number, port: Port | undefined, now: number): DhcpAnswer | null {
    const c = this.counters
    const end = off + len
    const l3 = ipv4At(buf, off, len)
    const b = l3 < 0 ? -1 : dhcpAt(buf, l3, end, DHCP_CLIENT_PORT, DHCP_SERVER_PORT)
    if (b < 0 || port === undefined || buf[b] !== 1 || buf.readUInt32BE(b + 24) !== 0) { c.notDhcp++; return null }
    if (!this.admit(port, now)) { c.rate++; return null }
    const mac = macAt(buf, off + ETH_SOURCE)
    if (buf[b + 1] !== 1 || buf[b + 2] !== 6 || dhcpClientMac(buf, b) !== mac) { c.chaddr++; return null }
    const type = dhcpType(buf, b, end)
    if (type === DHCPDISCOVER) return this.discover(buf, b, end, mac, port, now)
    if (type === DHCPREQUEST) return this.request(buf, b, end, mac, port, now)
    const server = dhcpAddressOption(buf, b, end, OPT_SERVER_ID)
    if (type === DHCPINFORM) return this.reply(DHCPACK, buf, b, mac, 0, dhcpClientAddress(buf, b), 0, false)
    const lease = this.leases.lookup(mac)
    if (type !== DHCPRELEASE && type !== DHCPDECLINE) { c.notDhcp++; return null }
    // Cisco IOS DHCP snooping: a RELEASE or DECLINE from another port than the lease's is dropped (a MAC spoofer's).
    if (server !== this.opts.address || lease === undefined || lease.state !== LEASE_BOUND || (lease.port !== null && lease.port !== port)) return null
    if (type === DHCPRELEASE && dhcpClientAddress(buf, b) === lease.ip) this.leases.release(lease, now)
    if (type === DHCPDECLINE && dhcpAddressOption(buf, b, end, OPT_REQUESTED_IP) === lease.ip) this.leases.decline(lease, port, now)
    return null
  }

  /**
   * An ARP to the gateway from `mac` at `ip`, learned on `port`: the lease
   * table's note (a lease bound to its port again, or the address marked in
   * use); a new mark only within the client's share, as a lease.
   */
  noteArp (ip: number, mac: number, port: Port | undefined, now: number): void {
    const may = port !== undefined && (this.exempt(port) || this.leases.countForClient(port.clientKey) < this.opts.leasesPerClient)
    this.leases.noteArp(ip, mac, port, now, may)
  }

  /** Expire offers, leases and declines (each second). */
  tick (now: number): void { this.leases.expire(now) }

  private discover (buf: Buffer, b: number, end: number, mac: number, port: Port, now: number): DhcpAnswer | null {
    const fixed = this.leases.staticFor(mac)
    if (fixed !== 0) return this.reply(DHCPOFFER, buf, b, mac, fixed, 0, 0, true)
    const cur = this.leases.lookup(mac)
    if (!this.mayHold(port, cur)) { this.counters.limit++; return null }
    const ip = this.leases.pick(mac, dhcpAddressOption(buf, b, end, OPT_REQUESTED_IP), now)
    if (ip === 0) { this.counters.pool++; return null }
    this.leases.offer(mac, ip, port, now + OFFER_HOLD_MS)
    this.counters.offers++
    return this.reply(DHCPOFFER, buf, b, mac, ip, 0, 0, false)
  }

  private request (buf: Buffer, b: number, end: number, mac: number, port: Port, now: number): DhcpAnswer | null {
    const server = dhcpAddressOption(buf, b, end, OPT_SERVER_ID)
    const requested = dhcpAddressOption(buf, b, end, OPT_REQUESTED_IP)
    const ciaddr = dhcpClientAddress(buf, b)
    if (server !== 0 && server !== this.opts.address) { this.leases.withdrawOffer(mac); return null }
    // SELECTING and INIT-REBOOT name the address in option 50, RENEWING and REBINDING in ciaddr.
    const selecting = server !== 0
    const want = requested !== 0 ? requested : ciaddr
    if (want === 0 || (selecting && requested === 0)) { this.counters.notDhcp++; return null }
    const fixed = this.leases.staticFor(mac)
    if (fixed !== 0) return this.reply(want === fixed ? DHCPACK : DHCPNAK, buf, b, mac, fixed, ciaddr, 0, true)
    const cur = this.leases.lookup(mac)
    const own = cur !== undefined && cur.ip === want && (cur.state !== LEASE_EXPIRED || this.leases.available(want, mac, now))
    if (!own) {
      // INIT-REBOOT from a client we have no record of: RFC 2131 §4.3.2 says stay silent.
      if (!selecting && requested !== 0 && cur === undefined && this.leases.inSubnet(want)) return null
      if (!selecting || !this.leases.available(want, mac, now)) return this.reply(DHCPNAK, buf, b, mac, 0, 0, 0, false)
    }
    if (!this.mayHold(port, cur)) { this.counters.limit++; return null }
    const lease = own && cur !== undefined ? cur : this.leases.offer(mac, want, port, now + OFFER_HOLD_MS)
    const durable = this.leases.bind(lease, port, now + this.opts.leaseSeconds * 1000)
    return this.reply(DHCPACK, buf, b, mac, want, ciaddr, durable ? this.leases.version : 0, false)
  }

  /**
   * Whether `port` may hold the address of a MAC whose record is `cur`: the
   * record (offered or bound) counts already where it is, so taking it, or
   * trading it for another address, adds nothing there; anything else adds
   * one to the port (trunks are not held to that) and to its client.
   */
  private mayHold (port: Port, cur: Lease | undefined): boolean {
    if (this.exempt(port)) return true
    const held = cur !== undefined && cur.state !== LEASE_EXPIRED
    if (port.stp === null && !(held && cur.port === port) && this.leases.countFor(port) >= this.opts.leasesPerPort) return false
    return (held && cur.holder === port.clientKey) || this.leases.countForClient(port.clientKey) < this.opts.leasesPerClient
  }

  /** The port's DHCP token bucket: false when it is empty. */
  private admit (port: Port, now: number): boolean {
    let k = this.buckets.get(port)
    if (k === undefined) { k = { tokens: RATE_BURST, at: now }; this.buckets.set(port, k) }
    k.tokens = Math.min(RATE_BURST, k.tokens + (now - k.at) * RATE_PER_SECOND / 1000)
    k.at = now
    if (k.tokens < 1) return false
    k.tokens--
    return true
  }

  private reply (type: number, buf: Buffer, b: number, mac: number, yiaddr: number, ciaddr: number, version: number, isStatic: boolean): DhcpAnswer {
    const o = this.opts
    if (type === DHCPNAK) this.counters.naks++
    const ack = type === DHCPACK && yiaddr !== 0
    if (ack) { this.counters.acks++; if (isStatic) this.counters.staticAcks++ }
    const inform = type === DHCPACK && yiaddr === 0
    const lease = type === DHCPNAK || inform ? 0 : o.leaseSeconds
    const frame = buildDhcpReply({
      type,
      serverMac: o.mac,
      server: o.address,
      clientMac: mac,
      xid: buf.readUInt32BE(b + 4),
      yiaddr: type === DHCPNAK ? 0 : yiaddr,
      mask: o.mask,
      router: o.router,
      dns: o.dns,
      leaseSeconds: lease,
      flags: buf.readUInt16BE(b + 10),
      ciaddr: type === DHCPNAK ? 0 : ciaddr,
      renewal: Math.floor(lease / 2),
      rebinding: Math.floor(lease * 7 / 8)
    })
    return { frame, version, ack: ack ? yiaddr : 0, mac, isStatic }
  }
}
