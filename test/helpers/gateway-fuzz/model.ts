/**
 * What the gateway fuzz expects, written from docs/GATEWAY.md rather than
 * from the code under test:
 *
 *  - LeaseModel: every OFFER and ACK the stations see. An address is given
 *    only from the pool, or as the asking MAC's static lease; never to a MAC
 *    while another MAC holds it by an ACK that cannot have expired yet (its
 *    REQUEST left before switchd decided, so switchd's expiry is no earlier
 *    than the request's time plus the lease time) and that it did not give
 *    back (RELEASE, DECLINE, a REQUEST for another address); a lease its MAC
 *    holds is never NAKed while valid (the gateway forgot it); a message
 *    whose chaddr was forged is never answered.
 *  - destinationReason: the counter a frame to the gateway moves, by the
 *    table of "What a station reaches".
 */

import { DHCPOFFER, DHCPACK, DHCPNAK } from '../../../src/common/dhcp'
import { ipText, macText, type DhcpSeen } from './frames'

export interface FuzzNet {
  subnet: number
  mask: number
  gw: number
  dns: number
  poolStart: number
  poolSize: number
  /** Static leases, MAC to address. */
  statics: ReadonlyMap<number, number>
  nat: 'on' | 'off'
  /** TCP host ports listed (nat on only). */
  hostPorts: ReadonlySet<number>
  /** switchd's own TCP ports (its listener, --metrics-listen, a QEMU TCP listener). */
  selfPorts: number[]
  /** This host's own IPv4 addresses (outside 127/8). */
  hostAddresses: readonly number[]
}

export function inSubnet (n: FuzzNet, ip: number): boolean { return ((ip & n.mask) >>> 0) === n.subnet }

interface Claim { ip: number, from: number, until: number }

export class LeaseModel {
  /** ACKed leases the stations hold, by MAC. */
  readonly claims = new Map<number, Claim>()
  /** When each MAC last sent a REQUEST (its ACK's lease counts from then). */
  private readonly requested = new Map<number, number>()
  /** xids of messages whose chaddr was forged: never to be answered. */
  readonly forged = new Set<number>()
  /** MACs that asked in their own name. */
  readonly askers = new Set<number>()
  /** The address a REQUEST (by xid) asked for: a NAK of it while its MAC holds it is a forgotten lease. */
  readonly requestedIp = new Map<number, number>()
  /** The first reply seen to each xid. */
  readonly replies = new Map<number, DhcpSeen>()
  private readonly seen = new Set<string>()
  offers = 0
  acks = 0
  naks = 0

  constructor (readonly net: FuzzNet) {}

  /** `mac` sends a REQUEST for `ip` at `now`: a claim of another address is given up (switchd moves the lease). */
  request (mac: number, ip: number, now: number): void {
    this.askers.add(mac)
    this.requested.set(mac, now)
    const c = this.claims.get(mac)
    if (c !== undefined && c.ip !== ip) this.claims.delete(mac)
  }

  /** `mac` gives its lease back (RELEASE, DECLINE): from now on the address may be another's. */
  giveUp (mac: number): void { this.claims.delete(mac) }

  /** The address `mac` holds now by the model, if any (with `marginMs` before its end). */
  holds (mac: number, now: number, marginMs = 0): number | undefined {
    const c = this.claims.get(mac)
    return c !== undefined && now < c.until - marginMs ? c.ip : undefined
  }

  /** The MAC holding `ip` now, if any. */
  holder (ip: number, now: number): number | undefined {
    for (const [mac, c] of this.claims) if (c.ip === ip && now < c.until) return mac
    return undefined
  }

  /** A DHCP reply from the gateway, seen at `now`: the violation it shows, if any. */
  observe (r: DhcpSeen, now: number): string | undefined {
    const key = `${r.xid}/${r.type}/${r.chaddr}/${r.yiaddr}`
    if (this.seen.has(key)) return undefined
    this.seen.add(key)
    if (!this.replies.has(r.xid)) this.replies.set(r.xid, r)
    const who = `${r.type === DHCPOFFER ? 'OFFER' : r.type === DHCPACK ? 'ACK' : r.type === DHCPNAK ? 'NAK' : `type ${r.type}`} of ${ipText(r.yiaddr)} to ${macText(r.chaddr)} (xid ${r.xid})`
    if (this.forged.has(r.xid)) return `a message with a forged chaddr was answered: ${who}`
    if (!this.askers.has(r.chaddr)) return `a reply for a MAC that never asked in its own name: ${who}`
    if (r.type === DHCPNAK) {
      this.naks++
      const c = this.claims.get(r.chaddr)
      if (c !== undefined && now < c.until && this.requestedIp.get(r.xid) === c.ip) return `the gateway forgot a lease: ${who}, which it holds until ${new Date(c.until).toISOString()}`
      return undefined
    }
    if (r.type !== DHCPOFFER && r.type !== DHCPACK) return `unexpected ${who}`
    if (r.yiaddr === 0) return undefined // an INFORM's ACK: options only
    const fixed = this.net.statics.get(r.chaddr)
    if (fixed !== undefined && r.yiaddr !== fixed) return `${who}, whose static lease is ${ipText(fixed)}`
    if (fixed === undefined && !this.inPool(r.yiaddr)) return `${who}: outside the pool (or a static, gateway or DNS address)`
    const other = this.holder(r.yiaddr, now)
    if (other !== undefined && other !== r.chaddr) return `an address given twice: ${who}, while ${macText(other)} holds it until ${new Date(this.claims.get(other)?.until ?? 0).toISOString()}`
    if (r.type === DHCPOFFER) { this.offers++; return undefined }
    this.acks++
    const sent = this.requested.get(r.chaddr) ?? now
    if (r.leaseSeconds > 0) this.claims.set(r.chaddr, { ip: r.yiaddr, from: now, until: sent + r.leaseSeconds * 1000 })
    return undefined
  }

  inPool (ip: number): boolean {
    const n = this.net
    if (ip < n.poolStart || ip >= n.poolStart + n.poolSize || ip === n.gw || ip === n.dns) return false
    const broadcast = (n.subnet | ~n.mask) >>> 0
    if (ip === n.subnet || ip === broadcast) return false
    for (const s of n.statics.values()) if (s === ip) return false
    return true
  }
}

/** The gateway filter's counters, as GatewayPort names them (docs/GATEWAY.md: switchd_gateway_filtered_frames_total). */
export type FilterReason = 'switchd' | 'host' | 'not_routable' | 'outside' | 'dns' | 'source' | 'fragment' | 'protocol'

/**
 * What a TCP or UDP frame to the gateway's MAC from a station's own address
 * meets: a refusal reason, or 'flow' (it may reach slirp, within its
 * client's share). DHCP (UDP to 67) is not asked about here.
 */
export function destinationReason (n: FuzzNet, proto: 'tcp' | 'udp', dst: number, dport: number): FilterReason | 'flow' {
  const self = proto === 'tcp' && n.selfPorts.includes(dport)
  if (dst === n.dns) return n.nat === 'on' && dport === 53 ? 'flow' : 'dns'
  if (dst === n.gw || dst === 0xffffffff) {
    if (self) return 'switchd'
    return n.nat === 'on' && proto === 'tcp' && n.hostPorts.has(dport) ? 'flow' : 'host'
  }
  const top = dst >>> 24
  if (top === 0 || top === 127) return self ? 'switchd' : 'not_routable'
  if (top >= 224 || (dst >>> 16) === 0xa9fe || inSubnet(n, dst)) return 'not_routable'
  if (n.hostAddresses.includes(dst)) return self ? 'switchd' : 'host'
  return n.nat === 'on' ? 'flow' : 'outside'
}
