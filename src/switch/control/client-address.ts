/**
 * Whose request this is: the TCP peer's address, or, only when that peer is
 * a proxy the operator listed (--trusted-proxy, `trustedProxies`), the
 * address the proxy put in X-Forwarded-For. Behind a balancer every client
 * has the balancer's address, so without this one client fills every
 * per-address share (ports, handshakes, auth throttling, the console) for
 * all. The header is an allowlist's privilege: from any other peer it is
 * ignored, whatever it says (docs/SECURITY.md).
 *
 * decideClient() is the one decision (pure); clientOf() caches it per
 * request so every share and log line of one request names the same client.
 */

import { BlockList, isIP } from 'node:net'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { logger } from '../../common/log'

const log = logger('server')

/** Longest X-Forwarded-For taken: a proxy that sets it writes one address (an IPv6 literal is at most 45 characters). */
export const MAX_FORWARDED_LENGTH = 128

/** Why a trusted proxy's header was not taken (the proxy's own address was used instead). */
export type BadForwarded = 'absent' | 'too_long' | 'malformed'

export interface ClientAddress {
  /** The client's address: the header's (proxied) or the TCP peer's. */
  readonly address: string
  /** The address came from a trusted proxy's X-Forwarded-For. */
  readonly proxied: boolean
  /** A trusted proxy sent no usable header: `address` is the proxy's. */
  readonly bad?: BadForwarded
}

/** An IPv4-mapped IPv6 address (::ffff:192.0.2.1) as its IPv4 address; IPv6 in lower case. */
export function normalizeAddress (address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  return mapped !== null ? mapped[1] as string : address.toLowerCase()
}

/** `ADDRESS/BITS` or one address: the shape --trusted-proxy takes (checked again by parseTrustedProxies). */
export const TRUSTED_PROXY_PATTERN = /^[0-9A-Fa-f.:]+(\/\d{1,3})?$/

/**
 * Trusted ranges, one BlockList per family: Node's BlockList matches an IPv4
 * address against an IPv6 subnet through ::ffff:0:0/96, so in one list `::/0`
 * (or any IPv6 range over ::ffff:0:0/96) would trust every IPv4 peer.
 */
export interface TrustedRanges { readonly v4: BlockList, readonly v6: BlockList }

/**
 * The ranges of `list` (`10.0.0.0/8`, `fd00::/8`, `127.0.0.1`); throws naming
 * the entry that is not a range. An IPv4 range also holds its IPv4-mapped
 * IPv6 addresses (addresses are normalized first); an IPv6 range holds no
 * IPv4 address.
 */
export function parseTrustedProxies (list: readonly string[]): TrustedRanges {
  const ranges = { v4: new BlockList(), v6: new BlockList() }
  for (const entry of list) {
    const [address = '', bits] = entry.split('/')
    const family = isIP(address)
    const max = family === 4 ? 32 : 128
    const prefix = bits === undefined ? max : Number(bits)
    if (family === 0 || !TRUSTED_PROXY_PATTERN.test(entry) || !Number.isInteger(prefix) || prefix < 0 || prefix > max) {
      throw new Error(`"${entry}" is not an address range: expected CIDR like 10.0.0.0/8, fd00::/8 or one address like 127.0.0.1`)
    }
    // An IPv4-mapped range (::ffff:10.0.0.0/104) is held as its IPv4 range: addresses are normalized before the check.
    const v4 = normalizeAddress(address)
    if (family === 6 && isIP(v4) === 4) ranges.v4.addSubnet(v4, Math.max(0, prefix - 96), 'ipv4')
    else if (family === 4) ranges.v4.addSubnet(v4, prefix, 'ipv4')
    else ranges.v6.addSubnet(v4, prefix, 'ipv6')
  }
  return ranges
}

function inRanges (address: string, ranges: TrustedRanges): boolean {
  const family = isIP(address)
  return family === 4 ? ranges.v4.check(address, 'ipv4') : family === 6 && ranges.v6.check(address, 'ipv6')
}

/**
 * The client of a request whose TCP peer is `socketAddress`: the LAST entry
 * of X-Forwarded-For (what the trusted proxy itself saw; nginx sets it to
 * $remote_addr) when the peer is in `trusted`, else the peer. A trusted
 * proxy's header that is absent, too long, or whose last entry is not one IP
 * literal: the proxy's address, with `bad` saying why.
 */
export function decideClient (socketAddress: string | undefined, headers: IncomingHttpHeaders, trusted: TrustedRanges | undefined): ClientAddress {
  const peer = normalizeAddress(socketAddress ?? '?')
  if (trusted === undefined || !inRanges(peer, trusted)) return { address: peer, proxied: false }
  // Node joins repeated X-Forwarded-For headers with ", ": the last is still the last.
  const raw = headers['x-forwarded-for']
  const header = Array.isArray(raw) ? raw.join(', ') : raw
  if (header === undefined || header === '') return { address: peer, proxied: false, bad: 'absent' }
  if (header.length > MAX_FORWARDED_LENGTH) return { address: peer, proxied: false, bad: 'too_long' }
  const last = (header.split(',').pop() as string).trim()
  // One literal, no port, no zone id (a zone would make one host many keys).
  if (isIP(last) === 0 || last.includes('%')) return { address: peer, proxied: false, bad: 'malformed' }
  return { address: normalizeAddress(last), proxied: true }
}

const decided = new WeakMap<IncomingMessage, ClientAddress>()
const parsed = new WeakMap<readonly string[], TrustedRanges>()

/** What the daemon knows of the trusted proxies (the configuration in force: a reload changes it). */
export interface TrustedProxies { readonly trustedProxies?: readonly string[] }

/**
 * The client of `req`, decided once per request (the first caller decides;
 * later ones see the same answer). A trusted proxy's unusable header is
 * logged at warn, naming the fix, under the proxy's budget (a missing one at
 * debug: that is every direct request from inside the ranges).
 */
export function clientOf (req: IncomingMessage, config: TrustedProxies): ClientAddress {
  const known = decided.get(req)
  if (known !== undefined) return known
  const list = config.trustedProxies ?? []
  let ranges = parsed.get(list)
  if (ranges === undefined && list.length > 0) { ranges = parseTrustedProxies(list); parsed.set(list, ranges) }
  const client = decideClient(req.socket.remoteAddress, req.headers, ranges)
  decided.set(req, client)
  if (client.bad !== undefined) {
    // No header at all is a peer in the ranges talking to switchd directly (a fleet peer's poll every second, a
    // probe, switchctl, Prometheus): at warn, each would spend the address's log budget and bury its real lines.
    log.client(client.bad === 'absent' ? 'debug' : 'warn', 'forwarded_for_ignored', client.address, {
      remote: client.address,
      reason: client.bad,
      fix: 'this peer is a trusted proxy (--trusted-proxy) but sent no usable X-Forwarded-For: its own address is used. Have it set one address (nginx: proxy_set_header X-Forwarded-For $remote_addr;)'
    })
  }
  return client
}

/** The client's address of `req` (clientOf's), for shares and log lines. */
export function clientAddressOf (req: IncomingMessage, config: TrustedProxies): string {
  return clientOf(req, config).address
}
