/**
 * The gateway's lease table: which MAC holds which address of the pool,
 * until when, and behind which port. It is RFC 2131's record of bindings for
 * the DHCP server (dhcp-server.ts) and the binding table the guards read
 * (guard.ts), as Cisco IOS's DHCP snooping binding table is for dynamic ARP
 * inspection and IP source guard.
 *
 * A MAC has at most one record, an address at most one:
 *  - OFFERED: an OFFER holds the address for OFFER_HOLD_MS (dhcp-server.ts);
 *  - BOUND: ACKed, until `expires` (epoch ms: the table is persisted and
 *    read again after a restart, so its times are wall-clock times);
 *  - EXPIRED: free, but remembered as the MAC's previous address, so a
 *    station that comes back gets it again if nobody took it meanwhile.
 *    Remembered addresses are offered to others only when no address is
 *    left that nobody remembers (the one expired longest ago first).
 * Expiry runs from a timer (expire(), each second), never in a lookup.
 *
 * An address is never offered while someone else may be using it: a
 * record of another MAC (offered or bound), a static lease (those
 * addresses are reserved even inside the pool), the gateway's and DNS
 * addresses, an address a client DECLINEd (held DECLINE_HOLD_MS), and an
 * address an ARP showed in use by another MAC in the last SEEN_HOLD_MS
 * (noteArp: a station with a hand-set address, or one whose lease we lost).
 *
 * Per-port books (OVS's mac_learning_port; lease-books.ts): each port's
 * offered and bound leases and declined addresses are counted, for the DHCP
 * server's per-port limit; the port of a lease is not persisted, so a record read
 * from the file, or whose port left, has none until the station's next
 * DHCP message or ARP to the gateway (noteArp) binds it again.
 *
 * Per-client books: the same are counted for the client (Port.clientKey: a
 * WebSocket address or IPv6 /64; any other port is its own) of the port
 * that took them, its `holder`, for the server's per-client limit. A lease
 * keeps its holder when its port leaves: a client that closes its ports
 * and opens new ones still holds what it took (issue 21 attacked afresh:
 * reconnecting gave a fresh share each time, and one client took the pool);
 * and across a restart, through the file, when the holder is an address.
 *
 * Changes that must be on disk before their ACK leaves (a new or moved
 * binding) bump `version`; the rest (a renewal's new expiry, a release)
 * set `lazy` and reach the file with the next write (its serial form:
 * lease-json.ts). Pool-indexed state is in typed arrays, so ARP snooping
 * allocates nothing.
 */

import type { Port } from './port'
import { Lease, LEASE_OFFERED, LEASE_BOUND, LEASE_EXPIRED } from './lease'
import { LeaseBooks } from './lease-books'
import { leaseFileJson, parseLeaseFile, type LeaseFileJson } from './lease-json'
import { formatMac } from '../../common/ethernet'
import { formatIpv4 } from '../../common/dhcp'

export { Lease, LEASE_OFFERED, LEASE_BOUND, LEASE_EXPIRED } from './lease'
export { LeaseFileInvalid, LEASE_FILE_VERSION, type LeaseFileJson } from './lease-json'

/** ms an address a client declined (RFC 2131 §4.3.3: in use by someone we do not know) is not offered. */
export const DECLINE_HOLD_MS = 600_000
/** ms an address an ARP showed in use by a MAC without its lease stays out of offers, from the last such ARP. */
export const SEEN_HOLD_MS = 600_000
/** The dynamic pool and what in it is not the pool's to give. */
export interface PoolSpec {
  /** The subnet (network address) and its mask. */
  subnet: number
  mask: number
  /** First address and how many. */
  start: number
  size: number
  /** Never offered: the gateway's and the DNS address. */
  reserved: readonly number[]
  /** Static leases, MAC to address: their addresses are reserved. */
  statics: ReadonlyMap<number, number>
}

/** A lease as the API shows it. */
export interface LeaseRow { mac: number, ip: number, state: number, expires: number, port: Port | null }

export class LeaseTable {
  private readonly byMac = new Map<number, Lease>()
  private readonly byIp = new Map<number, Lease>()
  /** Static addresses to their MAC. */
  private readonly staticIps = new Map<number, number>()
  private readonly reserved: ReadonlySet<number>
  private readonly broadcast: number
  /** Per pool index: when a DECLINEd address may be offered again (0: not declined), and the port it counts for. */
  private readonly declinedUntil: Float64Array
  private readonly declinedBy: Array<Port | null>
  private readonly declinedHolder: Array<string | null>
  /** Per pool index: a MAC an ARP showed using the address (0: none), until when that counts, and the client it counts for. */
  private readonly seenMac: Float64Array
  private readonly seenUntil: Float64Array
  private readonly seenHolder: Array<string | null>
  private readonly books = new LeaseBooks()
  /** Bumped by each change that must be on disk before its ACK (a new or moved binding). */
  version = 0
  /** Changes the file may learn later (renewals, releases, declines, expiry). */
  lazy = false
  /** BOUND leases now. */
  held = 0

  constructor (readonly pool: PoolSpec) {
    this.reserved = new Set(pool.reserved)
    this.broadcast = (pool.subnet | ~pool.mask) >>> 0
    for (const [mac, ip] of pool.statics) this.staticIps.set(ip, mac)
    this.declinedUntil = new Float64Array(pool.size)
    this.declinedBy = new Array<Port | null>(pool.size).fill(null)
    this.declinedHolder = new Array<string | null>(pool.size).fill(null)
    this.seenMac = new Float64Array(pool.size)
    this.seenUntil = new Float64Array(pool.size)
    this.seenHolder = new Array<string | null>(pool.size).fill(null)
  }

  get size (): number { return this.byMac.size }

  lookup (mac: number): Lease | undefined { return this.byMac.get(mac) }

  /** The static address of `mac`, or 0. */
  staticFor (mac: number): number { return this.pool.statics.get(mac) ?? 0 }

  /** Whether `ip` is inside the subnet (network and broadcast addresses included). */
  inSubnet (ip: number): boolean { return ((ip & this.pool.mask) >>> 0) === this.pool.subnet }

  /** Whether `ip` is one the pool may give at all (not reserved, static, network or broadcast). */
  inPool (ip: number): boolean {
    const p = this.pool
    return ip >= p.start && ip < p.start + p.size && ip !== p.subnet && ip !== this.broadcast && !this.reserved.has(ip) && !this.staticIps.has(ip)
  }

  /** Whether `ip` may be given to `mac` now: in the pool, held by nobody else, not declined, not seen in use by another MAC. */
  available (ip: number, mac: number, now: number): boolean {
    if (!this.inPool(ip)) return false
    const l = this.byIp.get(ip)
    if (l !== undefined && l.mac !== mac && l.state !== LEASE_EXPIRED) return false
    const i = ip - this.pool.start
    if ((this.declinedUntil[i] as number) > now) return false
    const seen = this.seenMac[i] as number
    return seen === 0 || seen === mac || (this.seenUntil[i] as number) <= now
  }

  /**
   * The address to offer `mac`: its current or previous one, else the one it
   * asks for (`requested`, 0 if none), else the lowest address nobody
   * remembers, else the remembered one that expired longest ago; 0 if none.
   */
  pick (mac: number, requested: number, now: number): number {
    const cur = this.byMac.get(mac)
    if (cur !== undefined && this.available(cur.ip, mac, now)) return cur.ip
    if (requested !== 0 && this.available(requested, mac, now)) return requested
    let fallback = 0
    let oldest = Infinity
    const p = this.pool
    for (let ip = p.start; ip < p.start + p.size; ip++) {
      if (!this.available(ip, mac, now)) continue
      const l = this.byIp.get(ip)
      if (l === undefined || l.mac === mac) return ip
      if (l.expires < oldest) { oldest = l.expires; fallback = ip }
    }
    return fallback
  }

  /**
   * Hold `ip` for `mac` until `until` (an OFFER); a BOUND lease of that
   * address stays bound. Its previous record, and another MAC's memory of the
   * address, go. The caller checked available().
   */
  offer (mac: number, ip: number, port: Port | null, until: number): Lease {
    const cur = this.byMac.get(mac)
    if (cur !== undefined && cur.ip === ip && cur.state === LEASE_BOUND) { this.setPort(cur, port); return cur }
    if (cur !== undefined) this.remove(cur)
    const other = this.byIp.get(ip)
    if (other !== undefined) this.remove(other)
    // The MAC's own mark on the address is now its record: it would count twice.
    if (this.seenMac[ip - this.pool.start] === mac) this.unsee(ip - this.pool.start)
    const l = new Lease(mac, ip, LEASE_OFFERED, until, port)
    l.holder = port === null ? null : port.clientKey
    this.byMac.set(mac, l)
    this.byIp.set(ip, l)
    this.hold(l, 1)
    return l
  }

  /** ACK: `lease` is bound to its MAC until `expires`, behind `port`. Returns whether the file must hold it before the ACK goes. */
  bind (lease: Lease, port: Port | null, expires: number): boolean {
    const durable = lease.state !== LEASE_BOUND
    if (lease.state === LEASE_EXPIRED) {
      // Remembered, it counted for nobody: it counts again, for whoever takes it now.
      lease.port = port
      lease.holder = port === null ? null : port.clientKey
      lease.state = LEASE_BOUND
      this.hold(lease, 1)
    }
    if (durable) this.held++
    lease.state = LEASE_BOUND
    lease.expires = expires
    this.setPort(lease, port)
    if (durable) this.version++
    else this.lazy = true
    return durable
  }

  /** A REQUEST chose another server: our offer to `mac` goes (a bound lease stays). */
  withdrawOffer (mac: number): void {
    const cur = this.byMac.get(mac)
    if (cur !== undefined && cur.state === LEASE_OFFERED) this.remove(cur)
  }

  /** RELEASE: the address is free, remembered as the MAC's previous one. */
  release (lease: Lease, now: number): void {
    if (lease.state === LEASE_EXPIRED) return
    this.unhold(lease)
    lease.expires = now
    this.lazy = true
  }

  /** DECLINE: the lease goes, and its address is not offered for DECLINE_HOLD_MS (counted for `port`). */
  decline (lease: Lease, port: Port | null, now: number): void {
    this.remove(lease)
    const i = lease.ip - this.pool.start
    if ((this.declinedUntil[i] as number) > 0) this.undecline(i)
    this.declinedUntil[i] = now + DECLINE_HOLD_MS
    this.declinedBy[i] = port
    this.declinedHolder[i] = port === null ? null : port.clientKey
    this.books.charge(port, this.declinedHolder[i] ?? null, 1)
    this.lazy = true
  }

  /**
   * An ARP (seen at the gateway, so after the switch accepted it) says `mac`
   * uses `ip`: a lease of that MAC and address with no port is bound to
   * `port`; an address of the pool that `mac` holds no lease for is not
   * offered to anyone else for SEEN_HOLD_MS. That mark counts for the
   * client of `port` as a lease does, and a new one is made only if `may`
   * (the server: within that client's share): else one client's ARPs for
   * every address of the pool, where the guards are off, took it from all
   * (issue 21 attacked afresh). Allocates nothing.
   */
  noteArp (ip: number, mac: number, port: Port | undefined, now: number, may = true): void {
    const l = this.byMac.get(mac)
    if (l !== undefined && l.ip === ip && l.state === LEASE_BOUND) {
      if (l.port === null && port !== undefined) this.setPort(l, port)
      return
    }
    const i = ip - this.pool.start
    if (i < 0 || i >= this.pool.size || port === undefined) return
    const holder = port.clientKey
    if (this.seenMac[i] !== mac || this.seenHolder[i] !== holder || (this.seenUntil[i] as number) <= now) {
      if (!may) return
      this.unsee(i)
      this.seenMac[i] = mac
      this.seenHolder[i] = holder
      this.books.chargeClient(holder, 1)
    }
    this.seenUntil[i] = now + SEEN_HOLD_MS
  }

  /** Offers and leases past their time, and declines past their hold; returns how many changed. */
  expire (now: number): number {
    let n = 0
    for (const l of this.byMac.values()) {
      if (l.expires > now || l.state === LEASE_EXPIRED) continue
      if (l.state === LEASE_OFFERED) this.remove(l)
      else { this.unhold(l); this.lazy = true }
      n++
    }
    const d = this.declinedUntil
    for (let i = 0; i < d.length; i++) {
      // Marks are not in the file: they change nothing it holds.
      if ((this.seenMac[i] as number) !== 0 && (this.seenUntil[i] as number) <= now) this.unsee(i)
      if ((d[i] as number) === 0 || (d[i] as number) > now) continue
      this.undecline(i)
      d[i] = 0
      n++
    }
    return n
  }

  /** Offered and bound leases and declined addresses counted for `port`. */
  countFor (port: Port): number { return this.books.countFor(port) }

  /** The same for the client `key` (Port.clientKey), over its ports, present and past, and the addresses its ARPs marked in use. */
  countForClient (key: string): number { return this.books.countForClient(key) }

  /** `port` left its network: its leases keep their addresses (and their holder) and lose their port until the station comes back. */
  portLeft (port: Port): void {
    if (!this.books.hasPort(port)) return
    for (const l of this.byMac.values()) if (l.port === port) l.port = null
    for (let i = 0; i < this.declinedBy.length; i++) if (this.declinedBy[i] === port) this.declinedBy[i] = null
    this.books.forgetPort(port)
  }

  /** Whether `mac` may use `ip` from `port`: a static lease, or a bound lease there (or with no port yet). For the guards. */
  bound (mac: number, ip: number, port: Port): boolean {
    if (this.pool.statics.get(mac) === ip) return true
    const l = this.byMac.get(mac)
    return l !== undefined && l.state === LEASE_BOUND && l.ip === ip && (l.port === port || l.port === null)
  }

  /** Every record (slow path: the API). */
  rows (): LeaseRow[] {
    return [...this.byMac.values()].map((l) => ({ mac: l.mac, ip: l.ip, state: l.state, expires: l.expires, port: l.port }))
  }

  /** What the lease file holds: bound and remembered leases (offers are not worth a write). */
  toJson (network: string): LeaseFileJson { return leaseFileJson(this.byMac.values(), network) }

  /**
   * Fill an empty table from a lease file's JSON, all or nothing: throws
   * LeaseFileInvalid (naming the entry) for anything that is not a whole,
   * valid file of `network`. Entries the configuration no longer allows (the
   * address left the pool or became static, the MAC got a static lease) are
   * left out and returned, for the caller to log: a configuration change is
   * not corruption.
   */
  load (raw: unknown, network: string, now: number): string[] {
    if (this.byMac.size !== 0) throw new Error('load() needs an empty table')
    const parsed = parseLeaseFile(raw, network, now, this.pool.size + this.pool.statics.size + 65536)
    const dropped: string[] = []
    for (const l of parsed) {
      if (!this.inPool(l.ip) || this.pool.statics.has(l.mac)) {
        dropped.push(`${formatMac(l.mac)} ${formatIpv4(l.ip)}: ${this.pool.statics.has(l.mac) ? 'the MAC has a static lease now' : 'the address is no longer in the pool'}`)
        continue
      }
      this.byMac.set(l.mac, l)
      this.byIp.set(l.ip, l)
      // Its client's share holds it across the restart, as it did across its port leaving.
      if (l.state === LEASE_BOUND) { this.held++; this.hold(l, 1) }
    }
    return dropped
  }

  private counts (l: Lease): boolean { return l.state !== LEASE_EXPIRED }

  /** `l` is behind `port` now: the port's count moves with it, and so does its holder when the port is another client's. */
  private setPort (l: Lease, port: Port | null): void {
    const holder = port === null ? l.holder : port.clientKey
    if (l.port === port && l.holder === holder) return
    if (this.counts(l)) this.hold(l, -1)
    l.port = port
    l.holder = holder
    if (this.counts(l)) this.hold(l, 1)
  }

  /** BOUND or OFFERED to EXPIRED: no longer held, still remembered. */
  private unhold (l: Lease): void {
    if (l.state === LEASE_BOUND) this.held--
    this.hold(l, -1)
    l.state = LEASE_EXPIRED
  }

  private remove (l: Lease): void {
    if (this.counts(l)) this.hold(l, -1)
    if (l.state === LEASE_BOUND) this.held--
    this.byMac.delete(l.mac)
    if (this.byIp.get(l.ip) === l) this.byIp.delete(l.ip)
  }

  /** Count `l` (d = 1) or stop counting it (-1) for its port and its holder. */
  private hold (l: Lease, d: number): void {
    this.books.charge(l.port, l.holder, d)
  }

  /** A declined address's hold ends: its port and holder count it no more. */
  private undecline (i: number): void {
    this.books.charge(this.declinedBy[i] ?? null, this.declinedHolder[i] ?? null, -1)
    this.declinedBy[i] = null
    this.declinedHolder[i] = null
  }

  /** An ARP's mark on a pool address ends: its client counts it no more. */
  private unsee (i: number): void {
    if ((this.seenMac[i] as number) === 0) return
    this.books.chargeClient(this.seenHolder[i] ?? null, -1)
    this.seenMac[i] = 0
    this.seenUntil[i] = 0
    this.seenHolder[i] = null
  }
}
