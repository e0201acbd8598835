/**
 * Just enough IPv4, UDP and DHCP (RFC 2131, options RFC 2132) for the
 * gateway port: find a frame's IPv4 header in place, recognise DHCP by its
 * ports, read one option, and build the replies of switchd's DHCP server
 * (core/dhcp-server.ts, docs/GATEWAY.md). DNS and NAT are libslirp's, in
 * the gateway's QEMU child: this is not a TCP/IP stack.
 *
 * IPv4 addresses are unsigned 32-bit integers, like MACs are 48-bit ones.
 * The readers allocate nothing; the builder allocates one Buffer per reply
 * (a DHCP exchange, never a frame of ordinary traffic).
 */

import { ETH_HLEN, ETH_P_IP, IPPROTO_TCP, IPPROTO_UDP } from './ethernet'
import { ETH_P_8021Q } from './vlan'
/** RFC 2131 §4.1: servers listen on 67, clients on 68. */
export const DHCP_SERVER_PORT = 67
export const DHCP_CLIENT_PORT = 68
/** BOOTP fixed part (op … file) before the magic cookie. */
const BOOTP_FIXED = 236
/** RFC 2131 §3: the first four octets of the options field. */
export const DHCP_MAGIC = 0x63825363
/** Option 53 values (RFC 2132 §9.6). */
export const DHCPDISCOVER = 1
export const DHCPOFFER = 2
export const DHCPREQUEST = 3
export const DHCPDECLINE = 4
export const DHCPACK = 5
export const DHCPNAK = 6
export const DHCPRELEASE = 7
export const DHCPINFORM = 8
export const OPT_SUBNET_MASK = 1
export const OPT_ROUTER = 3
export const OPT_DNS = 6
export const OPT_REQUESTED_IP = 50
export const OPT_LEASE_TIME = 51
export const OPT_MESSAGE_TYPE = 53
export const OPT_SERVER_ID = 54
/** Renewal (T1) and rebinding (T2) times, RFC 2132 §9.11-9.12. */
export const OPT_RENEWAL_TIME = 58
export const OPT_REBINDING_TIME = 59
export const OPT_END = 255
const OPT_PAD = 0

/** Offset of the IPv4 header in buf[off, off + len) (untagged or one 802.1Q tag), or -1 if not IPv4. */
export function ipv4At (buf: Buffer, off: number, len: number): number {
  if (len < ETH_HLEN + 20) return -1
  let l3 = off + ETH_HLEN
  let type = buf.readUInt16BE(off + 12)
  if (type === ETH_P_8021Q) {
    if (len < ETH_HLEN + 24) return -1
    type = buf.readUInt16BE(off + 16)
    l3 += 4
  }
  if (type !== ETH_P_IP || ((buf[l3] as number) >> 4) !== 4) return -1
  return l3
}

/**
 * l4At's answer for a first fragment (or datagram) too short to hold 8 bytes
 * of its UDP or TCP header. No stack sends one; a filter that let it through
 * unread would be open to RFC 1858's tiny-fragment attack (the ports, or part
 * of them, in a fragment it never looked at), so its callers drop it.
 */
export const L4_TOO_SHORT = -2

/**
 * Offset of the UDP or TCP header after the IPv4 header at `l3`; -1 if none
 * is there to read (another protocol, a later fragment, a bad header length),
 * L4_TOO_SHORT if fewer than 8 of its bytes are (within the frame and the IPv4 total length).
 */
export function l4At (buf: Buffer, l3: number, end: number): number {
  const p = buf[l3 + 9] as number
  if (p !== IPPROTO_UDP && p !== IPPROTO_TCP) return -1
  if ((buf.readUInt16BE(l3 + 6) & 0x1fff) !== 0) return -1
  const ihl = ((buf[l3] as number) & 15) * 4
  if (ihl < 20) return -1
  const l4 = l3 + ihl
  const ipEnd = Math.min(end, l3 + buf.readUInt16BE(l3 + 2))
  return ipEnd - l4 >= 8 ? l4 : L4_TOO_SHORT
}

/**
 * Offset of the BOOTP message in a UDP datagram from port `src` to port
 * `dst` with the DHCP magic cookie, after the IPv4 header at `l3`; -1 otherwise.
 */
export function dhcpAt (buf: Buffer, l3: number, end: number, src: number, dst: number): number {
  if (buf[l3 + 9] !== IPPROTO_UDP) return -1
  const l4 = l4At(buf, l3, end)
  if (l4 < 0 || buf.readUInt16BE(l4) !== src || buf.readUInt16BE(l4 + 2) !== dst) return -1
  const bootp = l4 + 8
  if (end - bootp < BOOTP_FIXED + 5 || buf.readUInt32BE(bootp + BOOTP_FIXED) !== DHCP_MAGIC) return -1
  return bootp
}

/** Offset of the value of option `code` (its length is the byte before), or -1. Bounded by `end`: a lying length stops the walk. */
export function dhcpOption (buf: Buffer, bootp: number, end: number, code: number): number {
  let i = bootp + BOOTP_FIXED + 4
  while (i < end) {
    const c = buf[i] as number
    if (c === OPT_END) return -1
    if (c === OPT_PAD) { i++; continue }
    if (i + 1 >= end) return -1
    const n = buf[i + 1] as number
    if (i + 2 + n > end) return -1
    if (c === code) return i + 2
    i += 2 + n
  }
  return -1
}

/** The DHCP message type (option 53), or 0. */
export function dhcpType (buf: Buffer, bootp: number, end: number): number {
  const v = dhcpOption(buf, bootp, end, OPT_MESSAGE_TYPE)
  return v < 0 || buf[v - 1] !== 1 ? 0 : buf[v] as number
}

/** A 4-byte option's value as an address, or 0. */
export function dhcpAddressOption (buf: Buffer, bootp: number, end: number, code: number): number {
  const v = dhcpOption(buf, bootp, end, code)
  return v < 0 || buf[v - 1] !== 4 ? 0 : buf.readUInt32BE(v)
}

/** The client hardware address (chaddr) as a 48-bit integer. */
export function dhcpClientMac (buf: Buffer, bootp: number): number { return buf.readUIntBE(bootp + 28, 6) }
/** yiaddr: the address a server gives. */
export function dhcpYourAddress (buf: Buffer, bootp: number): number { return buf.readUInt32BE(bootp + 16) }
/** ciaddr: the client's current address (renewals). */
export function dhcpClientAddress (buf: Buffer, bootp: number): number { return buf.readUInt32BE(bootp + 12) }

/** Slow path: dotted quad to integer; undefined if malformed. */
export function parseIpv4 (text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text)
  if (m === null) return undefined
  const parts = m.slice(1).map(Number)
  if (parts.some((p) => p > 255)) return undefined
  return (((parts[0] as number) << 24) | ((parts[1] as number) << 16) | ((parts[2] as number) << 8) | (parts[3] as number)) >>> 0
}

/** Slow path: integer to dotted quad. */
export function formatIpv4 (ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`
}

/** RFC 1071 checksum of buf[start, end). */
export function ipChecksum (buf: Buffer, start: number, end: number): number {
  let sum = 0
  for (let i = start; i + 1 < end; i += 2) sum += buf.readUInt16BE(i)
  if (((end - start) & 1) === 1) sum += (buf[end - 1] as number) << 8
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16)
  return (~sum) & 0xffff
}

export interface DhcpReply {
  type: number
  /** The server: its MAC (frame source) and address (IP source, option 54, router). */
  serverMac: number
  server: number
  clientMac: number
  xid: number
  /** 0 for a NAK. */
  yiaddr: number
  mask: number
  /** 0 = no router option. */
  router: number
  /** 0 = no DNS option. */
  dns: number
  /** 0 = no lease time (a DHCPINFORM's ACK, RFC 2131 §4.3.5). */
  leaseSeconds: number
  /** The request's flags (the broadcast bit is echoed) and giaddr. */
  flags: number
  /** RFC 2131 §4.1: the client's ciaddr, echoed; the reply goes to it (unicast) rather than to 255.255.255.255. */
  ciaddr?: number
  /** T1 and T2 (options 58, 59), seconds; absent = not sent. */
  renewal?: number
  rebinding?: number
}

/**
 * An untagged Ethernet frame carrying a DHCP reply from the server port 67
 * to the client's port 68, sent to the client's MAC and the limited
 * broadcast address (RFC 2131 §4.1: a client without an address may not
 * accept unicast). UDP checksum 0: none, which IPv4 allows.
 */
export function buildDhcpReply (r: DhcpReply): Buffer {
  const opts: number[] = [OPT_MESSAGE_TYPE, 1, r.type, OPT_SERVER_ID, 4, ...bytes4(r.server)]
  if (r.type !== DHCPNAK) {
    if (r.leaseSeconds !== 0) opts.push(OPT_LEASE_TIME, 4, ...bytes4(r.leaseSeconds))
    if (r.leaseSeconds !== 0 && r.renewal !== undefined) opts.push(OPT_RENEWAL_TIME, 4, ...bytes4(r.renewal))
    if (r.leaseSeconds !== 0 && r.rebinding !== undefined) opts.push(OPT_REBINDING_TIME, 4, ...bytes4(r.rebinding))
    opts.push(OPT_SUBNET_MASK, 4, ...bytes4(r.mask))
    if (r.router !== 0) opts.push(OPT_ROUTER, 4, ...bytes4(r.router))
    if (r.dns !== 0) opts.push(OPT_DNS, 4, ...bytes4(r.dns))
  }
  opts.push(OPT_END)
  const ciaddr = r.ciaddr ?? 0
  const f = bootpFrame(r.clientMac, r.serverMac, r.server, DHCP_SERVER_PORT, DHCP_CLIENT_PORT, BOOTREPLY, r.xid, r.clientMac, opts, ciaddr === 0 ? 0xffffffff : ciaddr)
  const b = ETH_HLEN + 20 + 8
  f.writeUInt16BE(r.flags, b + 10)
  f.writeUInt32BE(ciaddr, b + 12)
  f.writeUInt32BE(r.yiaddr, b + 16)
  return f
}

/**
 * A DHCP client message (DISCOVER, REQUEST…) as a broadcast frame: for tests and tools. `ciaddr`
 * (renewals, RELEASE, INFORM) also becomes the IPv4 source; `chaddr` defaults to the frame's source MAC.
 */
export function buildDhcpRequest (clientMac: number, type: number, xid: number, requested = 0, server = 0, ciaddr = 0, chaddr = clientMac): Buffer {
  const opts: number[] = [OPT_MESSAGE_TYPE, 1, type]
  if (requested !== 0) opts.push(OPT_REQUESTED_IP, 4, ...bytes4(requested))
  if (server !== 0) opts.push(OPT_SERVER_ID, 4, ...bytes4(server))
  opts.push(OPT_END)
  const f = bootpFrame(0xffffffffffff, clientMac, ciaddr, DHCP_CLIENT_PORT, DHCP_SERVER_PORT, BOOTREQUEST, xid, chaddr, opts)
  f.writeUInt32BE(ciaddr, ETH_HLEN + 20 + 8 + 12)
  return f
}

const BOOTREQUEST = 1
const BOOTREPLY = 2

/**
 * An untagged frame of IPv4 to `dstIp` (the limited broadcast address unless given), UDP from `srcPort` to `dstPort`, and
 * a BOOTP message (Ethernet hardware addresses) with `opts` after the magic cookie, padded to the
 * 300 bytes of BOOTP's minimum. UDP checksum 0: none, which IPv4 allows. The fields the caller
 * needs beyond these (flags, yiaddr) it writes after.
 */
function bootpFrame (dstMac: number, srcMac: number, srcIp: number, srcPort: number, dstPort: number, op: number, xid: number, chaddr: number, opts: number[], dstIp = 0xffffffff): Buffer {
  const f = Buffer.alloc(ETH_HLEN + 20 + 8 + Math.max(BOOTP_FIXED + 4 + opts.length, 300 - 28))
  f.writeUIntBE(dstMac, 0, 6)
  f.writeUIntBE(srcMac, 6, 6)
  f.writeUInt16BE(ETH_P_IP, 12)
  const ip = ETH_HLEN
  const ipLen = f.length - ETH_HLEN
  f[ip] = 0x45
  f.writeUInt16BE(ipLen, ip + 2)
  f[ip + 8] = 64
  f[ip + 9] = IPPROTO_UDP
  f.writeUInt32BE(srcIp, ip + 12)
  f.writeUInt32BE(dstIp, ip + 16)
  f.writeUInt16BE(ipChecksum(f, ip, ip + 20), ip + 10)
  const udp = ip + 20
  f.writeUInt16BE(srcPort, udp)
  f.writeUInt16BE(dstPort, udp + 2)
  f.writeUInt16BE(ipLen - 20, udp + 4)
  const b = udp + 8
  f[b] = op
  f[b + 1] = 1 // Ethernet
  f[b + 2] = 6
  f.writeUInt32BE(xid, b + 4)
  f.writeUIntBE(chaddr, b + 28, 6)
  f.writeUInt32BE(DHCP_MAGIC, b + BOOTP_FIXED)
  Buffer.from(opts).copy(f, b + BOOTP_FIXED + 4)
  return f
}

function bytes4 (v: number): number[] {
  return [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255]
}
