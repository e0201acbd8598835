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

/**
 * The key per-address limits count by: an IPv4 address as is (IPv4-mapped
 * IPv6 too), an IPv6 address by its /64. One host is usually given a whole
 * /64 (RFC 6177), so counting exact IPv6 addresses would let it take 2^64
 * slots; this is how fail2ban and nginx's limit_conn users group IPv6.
 */
export function addressKey (address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped !== null) return mapped[1] as string
  if (!address.includes(':')) return address
  const bare = address.split('%')[0] as string // zone id
  const [head = '', tail] = bare.split('::')
  const h = head === '' ? [] : head.split(':')
  const t = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups = tail === undefined ? h : [...h, ...new Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t]
  return groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(':') + '::/64'
}
