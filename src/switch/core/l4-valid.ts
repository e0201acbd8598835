/**
 * What libslirp 4.7.0 accepts of a station's TCP segment or UDP datagram
 * before it acts on it (ip_input.c, tcp_input.c, udp.c): lengths, TTL and
 * checksums. The gateway's flow model (gateway-flows.ts) believes a close, or
 * a datagram to DNS, only of a frame that passes; the gateway's filter
 * (gateway-filter.ts) shares the flag mask slirp opens a socket on. A leaf:
 * both import it, and it imports neither.
 */

import { IPPROTO_TCP, IPPROTO_UDP } from '../../common/ethernet'

/** The flags libslirp looks at to open a socket: a segment with SYN alone among them does (tcp_input.c). */
export const TCP_OPEN_MASK = 0x37

/** One's-complement sum of buf[start, end) added to `sum`, not folded. */
function sum16 (buf: Buffer, start: number, end: number, sum: number): number {
  let i = start
  for (; i + 1 < end; i += 2) sum += buf.readUInt16BE(i)
  if (i < end) sum += (buf[i] as number) << 8
  return sum
}

function fold (sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16)
  return sum
}

/**
 * Whether libslirp's ip_input passes this IPv4 datagram on (ip_input.c):
 * lengths within the frame, header checksum right, and a TTL that is not 0
 * (slirp answers that with time-exceeded and drops it). What the flow
 * model believes of a station's frame, it believes only of one that passes.
 */
function ipv4Accepted (buf: Buffer, l3: number, end: number, ihl: number, total: number): boolean {
  if (ihl < 20 || total < ihl || l3 + total > end || buf[l3 + 8] === 0) return false
  return fold(sum16(buf, l3, l3 + ihl, 0)) === 0xffff
}

/**
 * Whether libslirp would accept this TCP segment as it is: ipv4Accepted,
 * the data offset within the segment and the TCP checksum right
 * (tcp_input.c). GatewayFlows asks before it believes a station's RST or
 * FIN: slirp drops a segment with a bad checksum or TTL 0, and a close it
 * never saw must not free the station's share.
 */
export function tcpSegmentValid (buf: Buffer, l3: number, end: number): boolean {
  const ihl = ((buf[l3] as number) & 15) * 4
  const total = buf.readUInt16BE(l3 + 2)
  if (total < ihl + 20 || !ipv4Accepted(buf, l3, end, ihl, total)) return false
  const l4 = l3 + ihl
  const tcpLen = total - ihl
  const doff = ((buf[l4 + 12] as number) >> 4) * 4
  if (doff < 20 || doff > tcpLen) return false
  let sum = sum16(buf, l3 + 12, l3 + 20, 0) + IPPROTO_TCP + tcpLen
  sum = sum16(buf, l4, l4 + tcpLen, sum)
  return fold(sum) === 0xffff
}

/**
 * Whether libslirp's udp_input gets as far as recording this datagram's
 * destination port on its socket (udp.c): ipv4Accepted, a UDP length of at
 * least its header and within the datagram, and the checksum right or 0.
 * GatewayFlows asks before it believes a station's datagram went to port 53
 * (which shortens slirp's hold on the socket after a reply).
 */
export function udpDatagramValid (buf: Buffer, l3: number, end: number): boolean {
  const ihl = ((buf[l3] as number) & 15) * 4
  const total = buf.readUInt16BE(l3 + 2)
  if (total < ihl + 8 || !ipv4Accepted(buf, l3, end, ihl, total)) return false
  const l4 = l3 + ihl
  const ulen = buf.readUInt16BE(l4 + 4)
  if (ulen < 8 || ulen > total - ihl) return false
  if (buf.readUInt16BE(l4 + 6) === 0) return true
  let sum = sum16(buf, l3 + 12, l3 + 20, 0) + IPPROTO_UDP + ulen
  sum = sum16(buf, l4, l4 + ulen, sum)
  return fold(sum) === 0xffff
}

