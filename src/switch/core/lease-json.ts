/**
 * The lease file's serial form (io/lease-file.ts writes and reads the file
 * itself, atomically): the lease table's bound and remembered leases as
 * JSON, and back, all or nothing. A file that is not a whole, valid lease
 * file of its network is refused with LeaseFileInvalid naming the entry,
 * never read half.
 */

import { Lease, LEASE_BOUND, LEASE_EXPIRED, LEASE_OFFERED } from './lease'
import { parseMac, formatMac } from '../../common/ethernet'
import { parseIpv4, formatIpv4 } from '../../common/dhcp'

/** The lease file's format; another is refused, never read half. */
export const LEASE_FILE_VERSION = 1
/** The client keys a lease file keeps (common/address.ts clientKeyOf): an address's; a port's (`port 7`) names another port after a restart. */
const ADDRESS_HOLDER = 'address '

/** The lease file's JSON. */
export interface LeaseFileJson {
  version: number
  network: string
  /** `holder`: the client a bound lease counts for, if it is an address's (a port's key is not the same port's after a restart). */
  leases: Array<{ mac: string, ip: string, state: 'bound' | 'expired', expires: string, holder?: string }>
}

/** Thrown by LeaseTable.load for a file that is not a whole, valid lease file. */
export class LeaseFileInvalid extends Error {}

/** What the lease file holds: bound and remembered leases (offers are not worth a write). */
export function leaseFileJson (leases: Iterable<Lease>, network: string): LeaseFileJson {
  const out: LeaseFileJson['leases'] = []
  for (const l of leases) {
    if (l.state === LEASE_OFFERED) continue
    const e: LeaseFileJson['leases'][number] = { mac: formatMac(l.mac), ip: formatIpv4(l.ip), state: l.state === LEASE_BOUND ? 'bound' : 'expired', expires: new Date(l.expires).toISOString() }
    if (l.state === LEASE_BOUND && l.holder !== null && l.holder.startsWith(ADDRESS_HOLDER)) e.holder = l.holder
    out.push(e)
  }
  return { version: LEASE_FILE_VERSION, network, leases: out }
}

/**
 * The leases of a lease file's JSON of `network`, at most `maxEntries`, each
 * MAC and address once; a bound lease past its time by `now` is read as
 * expired. Throws LeaseFileInvalid naming the entry.
 */
export function parseLeaseFile (raw: unknown, network: string, now: number, maxEntries: number): Lease[] {
  const o = raw as Partial<LeaseFileJson> | null
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new LeaseFileInvalid('not a JSON object')
  if (o.version !== LEASE_FILE_VERSION) throw new LeaseFileInvalid(`version ${JSON.stringify(o.version)}: this switchd reads version ${LEASE_FILE_VERSION}`)
  if (o.network !== network) throw new LeaseFileInvalid(`it is network ${JSON.stringify(o.network)}'s, not ${network}'s`)
  if (!Array.isArray(o.leases) || o.leases.length > maxEntries) throw new LeaseFileInvalid('"leases" is not a list of leases')
  const parsed: Lease[] = []
  const macs = new Set<number>()
  const ips = new Set<number>()
  for (const [i, e] of (o.leases as unknown[]).entries()) {
    const l = parseEntry(e, `leases[${i}]`, now)
    if (macs.has(l.mac) || ips.has(l.ip)) throw new LeaseFileInvalid(`leases[${i}]: ${macs.has(l.mac) ? `MAC ${formatMac(l.mac)}` : `address ${formatIpv4(l.ip)}`} is leased twice`)
    macs.add(l.mac)
    ips.add(l.ip)
    parsed.push(l)
  }
  return parsed
}

function parseEntry (e: unknown, where: string, now: number): Lease {
  const r = e as Record<string, unknown> | null
  if (typeof r !== 'object' || r === null) throw new LeaseFileInvalid(`${where}: not an object`)
  const macBytes = typeof r.mac === 'string' ? parseMac(r.mac) : undefined
  if (macBytes === undefined || ((macBytes[0] as number) & 1) === 1) throw new LeaseFileInvalid(`${where}.mac: not a station MAC`)
  const mac = macBytes.readUIntBE(0, 6)
  const ip = typeof r.ip === 'string' ? parseIpv4(r.ip) : undefined
  if (ip === undefined) throw new LeaseFileInvalid(`${where}.ip: not an IPv4 address`)
  const expires = typeof r.expires === 'string' ? Date.parse(r.expires) : NaN
  if (!Number.isFinite(expires)) throw new LeaseFileInvalid(`${where}.expires: not a time`)
  if (r.state !== 'bound' && r.state !== 'expired') throw new LeaseFileInvalid(`${where}.state: expected "bound" or "expired"`)
  if (r.holder !== undefined && (typeof r.holder !== 'string' || !r.holder.startsWith(ADDRESS_HOLDER) || r.holder.length > 80)) throw new LeaseFileInvalid(`${where}.holder: not a client address`)
  const l = new Lease(mac, ip, r.state === 'bound' && expires > now ? LEASE_BOUND : LEASE_EXPIRED, expires, null)
  if (l.state === LEASE_BOUND && typeof r.holder === 'string') l.holder = r.holder
  return l
}
