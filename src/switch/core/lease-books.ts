/**
 * The lease table's per-port and per-client books (OVS's
 * mac_learning_port): how many offered and bound leases, declined
 * addresses and ARP marks each port and each client (Port.clientKey: a
 * WebSocket address or IPv6 /64; any other port is its own) holds, for the
 * DHCP server's per-port and per-client limits (leasesPerPort,
 * leasesPerClient). The table (leases.ts) says what to count; the books
 * only count, and forget a count at 0 so they hold only who holds something.
 */

import type { Port } from './port'

export class LeaseBooks {
  private readonly perPort = new Map<Port, number>()
  private readonly perClient = new Map<string, number>()

  /** Count one more (d = 1) or one less (-1) for `port` and the client `key` (null: none). */
  charge (port: Port | null, key: string | null, d: number): void {
    this.chargePort(port, d)
    this.chargeClient(key, d)
  }

  chargePort (port: Port | null, d: number): void { if (port !== null) bump(this.perPort, port, d) }
  chargeClient (key: string | null, d: number): void { if (key !== null) bump(this.perClient, key, d) }

  /** What `port` holds. */
  countFor (port: Port): number { return this.perPort.get(port) ?? 0 }

  /** What the client `key` holds, over its ports, present and past. */
  countForClient (key: string): number { return this.perClient.get(key) ?? 0 }

  /** Whether `port` holds anything. */
  hasPort (port: Port): boolean { return this.perPort.has(port) }

  /** `port` left: what it held is counted for its clients only. */
  forgetPort (port: Port): void { this.perPort.delete(port) }
}

/** Add `d` to a count, forgetting it at 0. */
function bump<K> (counts: Map<K, number>, key: K, d: number): void {
  const n = (counts.get(key) ?? 0) + d
  if (n <= 0) counts.delete(key)
  else counts.set(key, n)
}
