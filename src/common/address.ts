/**
 * Addresses as the switch and the agent read them: loopback tests, HOST:PORT
 * splitting, and the key per-address limits count by. One copy each.
 */

/** Loopback hosts (names or literals, brackets allowed): reachable only from this machine. */
export function isLoopback (host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '')
  return h === 'localhost' || h === '::1' || /^127\./.test(h)
}

/** `HOST:PORT` or `[V6]:PORT` as [host without brackets, port]. */
export function splitHostPort (text: string): [string, number] {
  const i = text.lastIndexOf(':')
  return [text.slice(0, i).replace(/^\[|\]$/g, ''), Number(text.slice(i + 1))]
}

/** What every loopback address of this host counts as in per-address limits. */
export const LOOPBACK_KEY = 'loopback'

/**
 * The key a client at `address` is known by where clients of every kind are
 * counted together (a port's Port.clientKey, the log's budgets): its
 * address's key, prefixed so that it never equals another kind's (`port 7`).
 */
export function clientKeyOf (address: string): string { return 'address ' + addressKey(address) }

/**
 * The key per-address limits count by: an IPv4 address as is (IPv4-mapped
 * IPv6 too), an IPv6 address by its /64. One host is usually given a whole
 * /64 (RFC 6177), so counting exact IPv6 addresses would let it take 2^64
 * slots; this is how fail2ban and nginx's limit_conn users group IPv6.
 *
 * Every loopback address (127.0.0.0/8, ::1, and 127/8 mapped into IPv6) is
 * one key, LOOPBACK_KEY: any local process may bind any of the 16 million
 * addresses of 127/8 without privilege, so counting them apart would give
 * each local process as many shares as it likes. Local clients cannot be
 * told apart over TCP (no peer credentials), so they share one
 * (docs/SECURITY.md "Per-address shares").
 */
export function addressKey (address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  const v4 = mapped !== null ? mapped[1] as string : address
  if (!v4.includes(':')) return /^127\./.test(v4) ? LOOPBACK_KEY : v4
  const bare = address.split('%')[0] as string // zone id
  const [head = '', tail] = bare.split('::')
  const h = head === '' ? [] : head.split(':')
  const t = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups = tail === undefined ? h : [...h, ...new Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t]
  const hex = groups.map((g) => parseInt(g, 16))
  if (hex.length === 8 && hex.every((g, i) => g === (i === 7 ? 1 : 0))) return LOOPBACK_KEY // ::1
  return hex.slice(0, 4).map((g) => g.toString(16)).join(':') + '::/64'
}
