/**
 * A network's guards, as a managed switch has them, with Cisco IOS's
 * semantics (docs/SECURITY.md says where we differ):
 *
 *  - DHCP snooping: only trusted ports may send DHCP server messages. From
 *    an untrusted port, IPv4 UDP from port 67 or to port 68 (a BOOTREPLY:
 *    OFFER, ACK, NAK) is dropped, so a station cannot hand the others a
 *    router or DNS server of its own (issue 21, finding 6).
 *  - Dynamic ARP inspection: an ARP from an untrusted port must say what is
 *    true: its sender MAC is the frame's source MAC (IOS `validate src-mac`),
 *    and a sender address inside the gateway's subnet is bound to that MAC
 *    and that port in the binding table (the gateway's leases, leases.ts,
 *    and its static leases; with `dhcp: false` there are none, and only
 *    the next check is made). Nobody but the gateway's port claims the
 *    gateway's or the DNS address, by ARP or as the source of IPv4 (counted
 *    as ip_source_guard): a station that sends an ICMP redirect "from the
 *    gateway" makes a Linux station route a destination through it for 300 s
 *    (accept_redirects is on for hosts), no ARP needed. Sender 0.0.0.0
 *    (RFC 5227 probes) passes; addresses outside the subnet are not inspected
 *    (hand-set addresses of other subnets keep working).
 *  - IP source guard (optional): an IPv4 frame from an untrusted port whose
 *    source is inside the subnet must come from a binding (0.0.0.0: DHCP
 *    clients, passes).
 *
 * Trusted: the gateway's port and the ports the operator lists
 * (`guards.trusted`), by a name the port owns (Port.ownsName: given by the
 * configuration or a token, never claimed by a client). The guard looks at
 * frames in the gateway's VLAN only (`vid`; 0: every VLAN).
 *
 * The switch asks admit() once per frame, after VLAN classification and
 * before learning (switch.ts, one null check; the trace observes that
 * step). It reads integers in place and allocates nothing. The native fast
 * path never carries a frame from a port the guard inspects (fastpath.ts).
 */

import type { Port } from './port'
import { R_DHCP_SNOOPING, R_ARP_INSPECTION, R_IP_SOURCE_GUARD } from './reasons'
import { ETH_HLEN, ETH_SOURCE, ETH_P_ARP, ETH_P_IP, IPPROTO_UDP, macAt, formatMac } from '../../common/ethernet'
import { ETH_P_8021Q } from '../../common/vlan'
import { l4At, L4_TOO_SHORT, DHCP_SERVER_PORT, DHCP_CLIENT_PORT, formatIpv4 } from '../../common/dhcp'

/** admit(): the frame passes. Any other answer is a drops.ts reason index. */
export const GUARD_PASS = -1

/** `networks.NAME.guards` (control/config/network.ts). */
export interface GuardSpec {
  dhcpSnooping: boolean
  arpInspection: boolean
  ipSourceGuard: boolean
  /** Names of trusted ports (the gateway's is among them on a network with a gateway). */
  trusted: readonly string[]
  /** The gateway serves DHCP: an address inside the subnet must be bound (false: only the gateway's and DNS addresses are checked). */
  leases: boolean
  /** The gateway's subnet and mask (mask 0: no gateway, no address is inspected), its address and DNS address. */
  subnet: number
  mask: number
  gateway: number
  dns: number
}

/** The binding table (leases.ts LeaseTable). */
export interface Bindings {
  /** Whether `mac` may use `ip` behind `port`. */
  bound: (mac: number, ip: number, port: Port) => boolean
  /** `port` left the network: its bindings wait for the station to come back. */
  portLeft: (port: Port) => void
}

export class Guard {
  /** The gateway's lease table, once its gateway runs; until then nothing inside the subnet is bound. */
  bindings: Bindings | null = null
  /** The VLAN guarded (the gateway port's); 0: all. */
  vid = 0
  private readonly trusted: ReadonlySet<string>

  constructor (readonly spec: GuardSpec) {
    this.trusted = new Set(spec.trusted)
  }

  /** Whether the guards let `p` through unseen. */
  trusts (p: Port): boolean { return p.ownsName && this.trusted.has(p.name) }

  /** Whether admit() may drop frames from `p`: the fast path must not carry them. */
  inspects (p: Port): boolean {
    const s = this.spec
    return (s.dhcpSnooping || s.arpInspection || s.ipSourceGuard) && !this.trusts(p)
  }

  /** GUARD_PASS, or the drops.ts reason to drop buf[off, off + len) from `ingress` in `vid`. Allocates nothing. */
  admit (ingress: Port, buf: Buffer, off: number, len: number, vid: number): number {
    if ((this.vid !== 0 && vid !== this.vid) || this.trusts(ingress)) return GUARD_PASS
    let l3 = off + ETH_HLEN
    let type = buf.readUInt16BE(off + 12)
    if (type === ETH_P_8021Q) { type = buf.readUInt16BE(off + 16); l3 += 4 }
    const end = off + len
    const s = this.spec
    if (type === ETH_P_ARP) return s.arpInspection ? this.arp(ingress, buf, off, l3, end) : GUARD_PASS
    if (type !== ETH_P_IP || end - l3 < 20 || ((buf[l3] as number) >> 4) !== 4) return GUARD_PASS
    if (s.dhcpSnooping && buf[l3 + 9] === IPPROTO_UDP) {
      const l4 = l4At(buf, l3, end)
      // A first fragment too short to show its ports could be a server message in pieces (RFC 1858).
      if (l4 === L4_TOO_SHORT) return R_DHCP_SNOOPING
      if (l4 >= 0 && (buf.readUInt16BE(l4) === DHCP_SERVER_PORT || buf.readUInt16BE(l4 + 2) === DHCP_CLIENT_PORT)) return R_DHCP_SNOOPING
    }
    const src = buf.readUInt32BE(l3 + 12)
    // The gateway's own addresses are nobody else's, ARP or not: an ICMP redirect "from the gateway" draws traffic.
    if (s.arpInspection && (src === s.gateway || src === s.dns) && s.mask !== 0) return R_IP_SOURCE_GUARD
    if (s.ipSourceGuard && src !== 0 && this.inSubnet(src) && !this.binds(macAt(buf, off + ETH_SOURCE), src, ingress)) return R_IP_SOURCE_GUARD
    return GUARD_PASS
  }

  portLeft (p: Port): void { if (this.bindings !== null) this.bindings.portLeft(p) }

  /**
   * Slow path (the frame trace): why admit() answered `verdict` for the
   * frame, in words.
   */
  explain (ingress: Port, buf: Buffer, vid: number, verdict: number): string {
    if (this.vid !== 0 && vid !== this.vid) return `VLAN ${vid} is not the gateway's (${this.vid}): not inspected`
    if (this.trusts(ingress)) return `port ${ingress.name} is trusted by the guards`
    if (verdict === GUARD_PASS) return `untrusted port ${ingress.name}: nothing in this frame the guards refuse`
    if (verdict === R_DHCP_SNOOPING) return `a DHCP server message (UDP from port 67 or to port 68) from untrusted port ${ingress.name}: only trusted ports may send them (DHCP snooping)`
    const l3 = buf.readUInt16BE(12) === ETH_P_8021Q ? 18 : ETH_HLEN
    if (verdict === R_IP_SOURCE_GUARD && (buf.readUInt32BE(l3 + 12) === this.spec.gateway || buf.readUInt32BE(l3 + 12) === this.spec.dns)) {
      return `IPv4 from ${formatIpv4(buf.readUInt32BE(l3 + 12))}, the gateway's own address, from untrusted port ${ingress.name}: only the gateway sends from it (dynamic ARP inspection)`
    }
    if (verdict === R_IP_SOURCE_GUARD) return `source ${formatIpv4(buf.readUInt32BE(l3 + 12))} from ${formatMac(macAt(buf, ETH_SOURCE))} on ${ingress.name} matches no binding (IP source guard)`
    if (buf.length - l3 < 28) return 'a truncated ARP (dynamic ARP inspection)'
    const sha = buf.readUIntBE(l3 + 8, 6)
    const spa = buf.readUInt32BE(l3 + 14)
    if (sha !== macAt(buf, ETH_SOURCE)) return `ARP sender MAC ${formatMac(sha)} is not the frame's source ${formatMac(macAt(buf, ETH_SOURCE))} (dynamic ARP inspection)`
    if (spa === this.spec.gateway || spa === this.spec.dns || !this.spec.leases) return `ARP claims ${formatIpv4(spa)}, the gateway's ${spa === this.spec.gateway ? 'address' : 'DNS address'}, from untrusted port ${ingress.name} (dynamic ARP inspection)`
    return `ARP claims ${formatIpv4(spa)} for ${formatMac(sha)} on ${ingress.name}: no lease binds them (dynamic ARP inspection)`
  }

  private arp (ingress: Port, buf: Buffer, off: number, l3: number, end: number): number {
    if (end - l3 < 28 || buf.readUInt16BE(l3) !== 1 || buf.readUInt16BE(l3 + 2) !== ETH_P_IP || buf[l3 + 4] !== 6 || buf[l3 + 5] !== 4) return R_ARP_INSPECTION
    const sha = buf.readUIntBE(l3 + 8, 6)
    if (sha !== macAt(buf, off + ETH_SOURCE)) return R_ARP_INSPECTION
    const spa = buf.readUInt32BE(l3 + 14)
    if (spa === 0 || !this.inSubnet(spa)) return GUARD_PASS
    if (spa === this.spec.gateway || spa === this.spec.dns) return R_ARP_INSPECTION
    return !this.spec.leases || this.binds(sha, spa, ingress) ? GUARD_PASS : R_ARP_INSPECTION
  }

  private inSubnet (ip: number): boolean {
    const m = this.spec.mask
    return m !== 0 && ((ip & m) >>> 0) === this.spec.subnet
  }

  private binds (mac: number, ip: number, port: Port): boolean {
    return this.bindings !== null && this.bindings.bound(mac, ip, port)
  }
}
