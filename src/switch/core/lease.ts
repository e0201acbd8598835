/**
 * One record of the gateway's lease table (leases.ts): a MAC, its address,
 * its state and until when, the port it is behind and the client it counts
 * for. A leaf, so that the table, its books (lease-books.ts) and the lease
 * file's serial form (lease-json.ts) share it without a circle.
 */

import type { Port } from './port'

/** States: offered (held for an OFFER), bound (ACKed), expired (free, remembered as the MAC's previous address). */
export const LEASE_OFFERED = 1
export const LEASE_BOUND = 2
export const LEASE_EXPIRED = 3

export class Lease {
  /** The client key this lease counts for (none: read from the file, not bound again yet). */
  holder: string | null = null
  constructor (readonly mac: number, readonly ip: number, public state: number, public expires: number, public port: Port | null) {}
}
