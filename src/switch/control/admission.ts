/**
 * Fair admission: what one client address may hold of what switchd shares
 * before it knows who the client is. Every such resource is counted per
 * client address (common/address.ts addressKey: an IPv4 address, an IPv6
 * /64, all of loopback as one), and one address may hold at most its share,
 * so it cannot lock the others out however many connections it opens:
 *
 *  - connections not yet upgraded (limits.maxPendingPerAddress of the
 *    switchd-wide limits.maxPending, which stays as a backstop);
 *  - ports, parked ones included (limits.maxPortsPerAddress; daemon/port-table.ts);
 *  - web consoles (console.ts MAX_CLIENTS_PER_ADDRESS);
 *  - failed admin-token guesses (throttle.ts).
 *
 * A share is a count, not a queue: what is over it is refused at once and
 * counted, never held. The decisions here are pure (literal numbers in unit
 * tests); daemon/admit.ts, port-table.ts and listener-guard.ts call them and does the refusing.
 */

import { addressKey } from '../../common/address'

/**
 * Counts by client address. A key is present only while its count is above
 * zero, so the map never holds more keys than there are things counted.
 */
export class AddressCounts {
  private readonly counts = new Map<string, number>()
  /** Sum over every address. */
  total = 0

  /** The count of `address` (any address of its key). */
  of (address: string): number { return this.counts.get(addressKey(address)) ?? 0 }

  /** Count one more for `address`; returns its key. */
  add (address: string): string { return this.addKey(addressKey(address)) }

  /** Count one more for the address `key`; returns it. */
  addKey (key: string): string {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1)
    this.total++
    return key
  }

  /** Count one less for the address `key` (as add() returned it). */
  remove (key: string): void {
    const n = this.counts.get(key)
    if (n === undefined) return
    if (n <= 1) this.counts.delete(key); else this.counts.set(key, n - 1)
    this.total--
  }

  /** Addresses with a count (for tests and the memory bound). */
  get addresses (): number { return this.counts.size }
}

export interface PendingLimits {
  /** Connections not yet upgraded, switchd-wide (the backstop). */
  maxPending: number
  /** Of them, from one client address. */
  maxPendingPerAddress: number
}

/** Why a new connection is refused before its request is read. */
export type PendingRefusal = 'limit_pending' | 'limit_pending_address'

/**
 * May a new connection from an address that already has `fromAddress`
 * connections pending be taken, with `total` pending in all? The address's
 * share is checked first: an address over it is refused as such even when
 * the whole pool is full, so the metric names who filled it.
 */
export function pendingRefusal (total: number, fromAddress: number, limits: PendingLimits): PendingRefusal | undefined {
  if (fromAddress >= limits.maxPendingPerAddress) return 'limit_pending_address'
  if (total >= limits.maxPending) return 'limit_pending'
  return undefined
}

/**
 * The connections on the listener that have not become a WebSocket (a port
 * or a console) yet, per address: opened minus upgraded. Counting both (as
 * the server did switchd-wide) rather than flagging each socket works the
 * same with TLS, where the upgrade's socket is not the one accepted.
 */
export class PendingConnections {
  private readonly open = new AddressCounts()
  private readonly upgraded = new AddressCounts()

  /** Pending in all. */
  get total (): number { return Math.max(0, this.open.total - this.upgraded.total) }

  /** Pending from `address`'s key. A socket's close and its WebSocket's close come apart: never below 0 meanwhile. */
  from (address: string): number { return Math.max(0, this.open.of(address) - this.upgraded.of(address)) }

  /** Why a new connection from `address` must be refused, or undefined. */
  refusal (address: string, limits: PendingLimits): PendingRefusal | undefined {
    return pendingRefusal(this.total, this.from(address), limits)
  }

  /** A connection from `address` was accepted; call the returned function once, when it closes. */
  opened (address: string): () => void {
    const key = this.open.add(address)
    return () => { this.open.remove(key) }
  }

  /** A connection from `address` became a WebSocket; call the returned function once, when that closes. */
  upgrade (address: string): () => void {
    const key = this.upgraded.add(address)
    return () => { this.upgraded.remove(key) }
  }

  /** Addresses counted (the memory bound: at most the connections open). */
  get addresses (): number { return this.open.addresses }
}

/**
 * Ports per client address (limits.maxPortsPerAddress): handshakes (upgraded,
 * no hello yet) and ports, parked ones included, for as long as they exist.
 * An upgrade is judged by the handshakes and connected ports of its address
 * (a parked port may be what it comes to resume); a new port by every port
 * of its address, parked ones included; a resume from another address moves
 * its port there, so it must fit there too. Pure book-keeping: daemon/port-table.ts
 * tells it what happens.
 */
export class PortShares {
  private readonly handshakes = new AddressCounts()
  private readonly ports = new AddressCounts()
  private readonly parked = new AddressCounts()

  /** What an upgrade from `address` is judged by: its handshakes and connected (not parked) ports. */
  upgradeCount (address: string): number { return this.handshakes.of(address) + this.ports.of(address) - this.parked.of(address) }

  /** Ports of `address`, parked ones included: what a new or resumed port must fit beside. */
  portsOf (address: string): number { return this.ports.of(address) }

  /** A handshake from `address` began; returns its key for handshakeEnded(). */
  handshake (address: string): string { return this.handshakes.add(address) }
  handshakeEnded (key: string): void { this.handshakes.remove(key) }

  /** A port now counts under `key` (its handshake's, or the one it resumed from). */
  portAdded (key: string): string { return this.ports.addKey(key) }
  portRemoved (key: string, parked: boolean): void {
    if (parked) this.parked.remove(key)
    this.ports.remove(key)
  }

  parkedAt (key: string): void { this.parked.addKey(key) }
  unparkedAt (key: string): void { this.parked.remove(key) }

  /** Addresses with a handshake or a port (the memory bound: at most one per port and handshake). */
  get addresses (): number { return Math.max(this.handshakes.addresses, this.ports.addresses) }
}

/** limits.maxPendingPerAddress when not configured: a sixteenth of the pool, so sixteen addresses are needed to fill it. */
export function defaultPendingPerAddress (maxPending: number): number {
  return Math.max(1, Math.floor(maxPending / 16))
}
