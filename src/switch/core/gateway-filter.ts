/**
 * What a station may send to a network's gateway: an allowlist of
 * destination classes, decided per IPv4 frame before it reaches libslirp.
 *
 * libslirp 4.7.0 turns a station's destination into a host socket's
 * (socket.c sotranslate_out4): the gateway's address AND 255.255.255.255
 * become 127.0.0.1 with the same port, the DNS address:53 becomes the host's
 * resolver, and every other address is connected to as given. So 0.0.0.0
 * and 127/8 are this host's loopback, the host's interface addresses reach
 * its listeners there, 169.254.169.254 a cloud's metadata service, an
 * address of the gateway's subnet a machine of the host's LAN with that
 * number, and with NAT on everything else leaves the machine. A list of
 * what to refuse cannot be complete; this file says what passes, and a
 * frame that matches no class is dropped under the reason of the class it
 * fell into (GatewayPort counts them: switchd_gateway_filtered_frames_total):
 *
 *  - DHCP (UDP to port 67 of the gateway or 255.255.255.255): V_DHCP, the
 *    gateway port's DHCP handling decides;
 *  - the DNS address: UDP and TCP port 53 with dnsForward (and NAT not off),
 *    ICMP echo (slirp answers it itself); anything else `dns`;
 *  - this host, as slirp maps it (the gateway's address, 255.255.255.255):
 *    TCP and UDP to the operator's `hostPorts` only, ICMP echo to the
 *    gateway's address; switchd's own TCP and UDP ports (VXLAN listeners)
 *    `switchd`, the rest `host`.
 *    This host's own interface addresses (AddressSet, refreshed by io/) are
 *    `host` whatever the port, as slirp would connect to them as given;
 *  - never (`not_routable`): 0/8 and 127/8 (`switchd` for switchd's ports),
 *    169.254/16, 224/4, 240/4, the gateway's subnet other than its two
 *    addresses (stations talk on-link; slirp would dial the host's LAN), and
 *    IPv4 to a MAC other than the gateway's or broadcast (flooded frames for
 *    another station, which slirp would act on all the same);
 *  - UDP to one of switchd's VTEPs, or to its VXLAN listeners at any address
 *    slirp maps to this host (`switchd`), even as an answer on a published
 *    port: through NAT it would leave from this host's address, which the
 *    VTEP trusts as switchd's;
 *  - the outside (everything else): with `nat: true` only, else `outside`;
 *  - replies on published ports (hostfwd): slirp presents those connections
 *    as coming from their host peer (the gateway's address for a loopback
 *    one), so a station's TCP from a published (guest, port) that is not a
 *    bare SYN passes wherever it goes (slirp opens a socket only for a bare
 *    SYN: tcp_input.c), and its UDP passes to a peer that sent to it through
 *    the gateway (GatewayFlows keeps those), not to any port of this host;
 *  - the source must be a station's (`source`): an address of the subnet
 *    other than its network, broadcast, gateway and DNS addresses (DHCP's
 *    0.0.0.0 goes to switchd's server, never to slirp). slirp answers a
 *    broadcast or 0.0.0.0 source by Ethernet broadcast (arp_table_search),
 *    so one station's echo request would reach every station as a reply;
 *    and it ARPs for any other. An ARP to slirp passes only if it is an
 *    Ethernet/IPv4 one whose sender is 0.0.0.0 or such an address: slirp's
 *    ARP table has 16 entries taken round-robin (arp_table.c), and 16
 *    made-up senders from beyond the subnet would push every station out.
 *    Other EtherTypes (IPv6, which is off; NC-SI, which slirp answers) are
 *    `protocol`;
 *  - IPv4 fragments (`fragment`): slirp would hold them without bound
 *    (ip_input.c ip_reass), and no filter on ports survives overlapping
 *    fragments; stations send datagrams under their MTU and TCP never
 *    fragments. Protocols other than TCP, UDP and ICMP echo requests
 *    (`protocol`): slirp serves no others.
 *
 * V_FLOW frames may make slirp open a host socket: GatewayFlows counts them
 * against the client's share. Everything here reads integers from the frame
 * in place and allocates nothing.
 */

import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, ETH_P_ARP, ETH_P_IP, ICMP_ECHO, TCP_SYN } from '../../common/ethernet'
import { ETH_P_8021Q } from '../../common/vlan'
import type { GatewayFlows } from './gateway-flows'
import { TCP_OPEN_MASK } from './l4-valid'

/** Verdicts: pass as is, to the DHCP handling, or through the flow table. */
export const V_PASS = 0
export const V_DHCP = 1
export const V_FLOW = 2
/** Drop reasons (each one of GatewayPort's counters). */
export const R_MALFORMED = 3
export const R_DNS = 4
export const R_OUTSIDE = 5
export const R_SWITCHD = 6
export const R_HOST = 7
export const R_NOT_ROUTABLE = 8
export const R_FRAGMENT = 9
export const R_PROTOCOL = 10
export const R_SOURCE = 11

export type Nat = 'on' | 'host' | 'off'

/** switchd's VXLAN/GENEVE side, as a gateway's stations must not reach it: its listeners' UDP ports (as bound) and its IPv4 VTEPs. */
export interface Underlay {
  udpPorts: readonly number[]
  vteps: readonly number[]
}

/** A set of IPv4 addresses and prefixes, read per frame without allocating: sorted /32s (binary search) and a few prefixes. */
export class AddressSet {
  private hosts = new Uint32Array(0)
  private nets = new Uint32Array(0)
  private masks = new Uint32Array(0)

  /** Replace the contents (slow path). */
  set (hosts: readonly number[], prefixes: ReadonlyArray<readonly [number, number]> = []): void {
    this.hosts = Uint32Array.from(new Set(hosts)).sort()
    const masks = prefixes.map(([, len]) => len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0)
    this.nets = Uint32Array.from(prefixes.map(([net], i) => (net & (masks[i] as number)) >>> 0))
    this.masks = Uint32Array.from(masks)
  }

  has (ip: number): boolean {
    const h = this.hosts
    let lo = 0
    let hi = h.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      const v = h[mid] as number
      if (v === ip) return true
      if (v < ip) lo = mid + 1; else hi = mid - 1
    }
    const n = this.nets
    for (let i = 0; i < n.length; i++) if (((ip & (this.masks[i] as number)) >>> 0) === n[i]) return true
    return false
  }

  get size (): number { return this.hosts.length + this.nets.length }
}

/** TCP or UDP port ranges as two 65536-bit sets. */
export class PortSet {
  private readonly tcp = new Uint8Array(8192)
  private readonly udp = new Uint8Array(8192)

  add (proto: number, from: number, to: number): void {
    const bits = proto === IPPROTO_TCP ? this.tcp : this.udp
    for (let p = from; p <= to; p++) bits[p >>> 3] = (bits[p >>> 3] as number) | (1 << (p & 7))
  }

  has (proto: number, port: number): boolean {
    const bits = proto === IPPROTO_TCP ? this.tcp : proto === IPPROTO_UDP ? this.udp : undefined
    return bits !== undefined && ((bits[port >>> 3] as number) & (1 << (port & 7))) !== 0
  }
}

/** Published ports (hostfwd): which (proto, guest address, guest port) a host peer may reach. */
export class Published {
  private readonly ports = new PortSet()
  private readonly protos: number[] = []
  private readonly guests: number[] = []
  private readonly guestPorts: number[] = []

  add (proto: number, guest: number, guestPort: number): void {
    this.ports.add(proto, guestPort, guestPort)
    this.protos.push(proto); this.guests.push(guest); this.guestPorts.push(guestPort)
  }

  has (proto: number, guest: number, guestPort: number): boolean {
    if (!this.ports.has(proto, guestPort)) return false
    for (let i = 0; i < this.guests.length; i++) {
      if (this.guests[i] === guest && this.guestPorts[i] === guestPort && this.protos[i] === proto) return true
    }
    return false
  }
}

export interface GatewayFilterOptions {
  /** The gateway's address, its DNS address, its subnet and mask, its MAC (slirp's). */
  gw: number
  dns: number
  subnet: number
  mask: number
  mac: number
  nat: Nat
  dnsForward: boolean
  /** `hostPorts`: what the stations may reach of this host. */
  hostPorts: PortSet
  published: Published
  /** This host's own addresses (io/host-addresses.ts refreshes it). */
  hostAddresses: AddressSet
}

export class GatewayFilter {
  /** switchd's own ports (TCP: its listener, --metrics-listen, QEMU listeners; UDP: its VXLAN/GENEVE listeners): counted as `switchd`, never listed (has() is false for ICMP's dport -1). */
  readonly selfPorts = new PortSet()
  /**
   * switchd's VTEPs (IPv4 `vxlan` remotes): UDP to them is `switchd` on any
   * port. Through NAT a station's datagram would leave from this host's
   * address, the one a VTEP trusts as switchd (and a Linux VTEP takes from
   * anyone): the station would inject frames into any VNI of the fabric.
   */
  readonly vteps = new AddressSet()
  private readonly gw: number
  private readonly dns: number
  private readonly subnet: number
  private readonly mask: number
  private readonly mac: number
  private readonly broadcast: number
  private readonly natOn: boolean
  private readonly natOff: boolean
  private readonly dnsOpen: boolean
  private readonly hostPorts: PortSet
  private readonly published: Published
  private readonly hostAddresses: AddressSet

  constructor (o: GatewayFilterOptions, private readonly flows: GatewayFlows) {
    this.gw = o.gw; this.dns = o.dns; this.subnet = o.subnet; this.mask = o.mask; this.mac = o.mac
    this.broadcast = (o.subnet | ~o.mask) >>> 0
    this.natOn = o.nat === 'on'
    this.natOff = o.nat === 'off'
    // With restrict=on slirp forwards no DNS either (udp.c drops it before any socket).
    this.dnsOpen = o.dnsForward && o.nat !== 'off'
    this.hostPorts = o.hostPorts
    this.published = o.published
    this.hostAddresses = o.hostAddresses
  }

  /** The verdict for the IPv4 frame at `off` (its header at `l3`, the frame ending at `end`): V_* or R_*. */
  classify (buf: Buffer, off: number, l3: number, end: number, nowMs: number): number {
    if ((buf.readUInt16BE(l3 + 6) & 0x3fff) !== 0) return R_FRAGMENT
    const ihl = ((buf[l3] as number) & 15) * 4
    const l4 = l3 + ihl
    const ipEnd = Math.min(end, l3 + buf.readUInt16BE(l3 + 2))
    const proto = buf[l3 + 9] as number
    // 8 bytes show UDP's and ICMP's header and TCP's ports (RFC 1858); TCP's flags need 14.
    if (ihl < 20 || ipEnd - l4 < (proto === IPPROTO_TCP ? 14 : 8)) return proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_ICMP ? R_MALFORMED : R_PROTOCOL
    let dport = -1
    if (proto === IPPROTO_TCP || proto === IPPROTO_UDP) dport = buf.readUInt16BE(l4 + 2)
    else if (proto !== IPPROTO_ICMP || buf[l4] !== ICMP_ECHO) return R_PROTOCOL
    const dmac = buf.readUIntBE(off, 6)
    if (dmac !== this.mac && dmac !== 0xffffffffffff) return R_NOT_ROUTABLE
    const dst = buf.readUInt32BE(l3 + 16)
    const src = buf.readUInt32BE(l3 + 12)
    if (dport >= 0) {
      // Not even as an answer on a published port: a spoofed peer at a VTEP's address would have it sent from this host.
      if (proto === IPPROTO_UDP && this.isUnderlay(dst, dport)) return R_SWITCHD
      const sport = buf.readUInt16BE(l4)
      if (this.published.has(proto, src, sport)) {
        if (proto === IPPROTO_TCP && ((buf[l4 + 13] as number) & TCP_OPEN_MASK) !== TCP_SYN) return V_FLOW
        if (proto === IPPROTO_UDP && this.flows.touchPeer(src, sport, dst, dport, nowMs)) return V_PASS
      }
    }
    const v = this.destination(proto, dst, dport)
    // DHCP (from 0.0.0.0) is switchd's to answer; anything for slirp must come from a station's address.
    return v === V_DHCP || v >= R_MALFORMED || this.isStation(src) ? v : R_SOURCE
  }

  /**
   * The verdict for a frame to the gateway that is not IPv4 (ipv4At found
   * none at `off`): V_PASS for an Ethernet/IPv4 ARP from 0.0.0.0 or a
   * station's address, else R_MALFORMED, R_SOURCE or R_PROTOCOL.
   */
  classifyOther (buf: Buffer, off: number, len: number): number {
    let a = off + 14
    let type = buf.readUInt16BE(off + 12)
    if (type === ETH_P_8021Q && len >= 18) { type = buf.readUInt16BE(off + 16); a += 4 }
    if (type === ETH_P_IP) return R_MALFORMED // ipv4At refused it: too short, or not version 4
    if (type !== ETH_P_ARP) return R_PROTOCOL
    if (a + 28 > off + len || buf.readUInt16BE(a) !== 1 || buf.readUInt16BE(a + 2) !== ETH_P_IP || buf[a + 4] !== 6 || buf[a + 5] !== 4) return R_MALFORMED
    const spa = buf.readUInt32BE(a + 14)
    return spa === 0 || this.isStation(spa) ? V_PASS : R_SOURCE
  }

  /** Whether `ip` may be a station's: inside the subnet, and not its network, broadcast, gateway or DNS address. */
  isStation (ip: number): boolean {
    return ((ip & this.mask) >>> 0) === this.subnet && ip !== this.subnet && ip !== this.broadcast && ip !== this.gw && ip !== this.dns
  }

  /** The class of `dst` (and `dport`, -1 for ICMP echo). */
  private destination (proto: number, dst: number, dport: number): number {
    if (dst === this.dns) {
      if (!this.dnsOpen) return R_DNS
      if (dport < 0) return V_PASS
      return dport === 53 ? V_FLOW : R_DNS
    }
    if (dst === this.gw || dst === 0xffffffff) {
      if (proto === IPPROTO_UDP && dport === 67) return V_DHCP
      if (dport < 0) return dst === this.gw ? V_PASS : R_HOST
      if (this.selfPorts.has(proto, dport)) return R_SWITCHD
      return !this.natOff && this.hostPorts.has(proto, dport) ? V_FLOW : R_HOST
    }
    const top = dst >>> 24
    if (top === 0 || top === 127) return this.selfPorts.has(proto, dport) ? R_SWITCHD : R_NOT_ROUTABLE
    if (top >= 224 || (dst >>> 16) === 0xa9fe || ((dst & this.mask) >>> 0) === this.subnet) return R_NOT_ROUTABLE
    if (this.hostAddresses.has(dst)) return this.selfPorts.has(proto, dport) ? R_SWITCHD : R_HOST
    return this.natOn ? V_FLOW : R_OUTSIDE
  }

  /** UDP to `dst`:`dport` would reach a VTEP, or one of switchd's VXLAN listeners at an address slirp maps to this host. */
  private isUnderlay (dst: number, dport: number): boolean {
    if (this.vteps.has(dst)) return true
    if (!this.selfPorts.has(IPPROTO_UDP, dport)) return false
    const top = dst >>> 24
    return dst === this.gw || dst === 0xffffffff || top === 0 || top === 127 || this.hostAddresses.has(dst)
  }
}
