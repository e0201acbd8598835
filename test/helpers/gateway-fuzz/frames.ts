/**
 * Frames the gateway fuzz's stations send (ARP, DHCP client and server
 * messages, TCP SYNs and UDP datagrams) and what it reads back. A frame the
 * model says must be dropped carries a marker (MAGIC_DROP, the sending
 * station and the step) where the switch does not look: an ARP's padding, a
 * BOOTP message's `sname`, a datagram's payload. A station that receives a
 * marked frame has seen what the guards should have stopped.
 */

import {
  buildDhcpRequest, buildDhcpReply, ipv4At, dhcpAt, dhcpType, dhcpClientMac, dhcpYourAddress, dhcpOption,
  DHCP_SERVER_PORT, DHCP_CLIENT_PORT, OPT_LEASE_TIME
} from '../../../src/common/dhcp'

export const MAGIC_DROP = 0x44524f50 // "DROP"
export const MAGIC_OK = 0x474f4f44 // "GOOD"
const ARP_MARK = 42
/** BOOTP `sname` (64 bytes, unused by our server): after Ethernet, IPv4 and UDP headers. */
const BOOTP_SNAME = 14 + 20 + 8 + 44

/** slirp's MAC for `address` (52:55 and the address). */
export function slirpMac (address: number): number { return 0x5255 * 2 ** 32 + address }

export function ipText (ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`
}

export function macText (mac: number): string {
  return mac.toString(16).padStart(12, '0').replace(/(..)(?!$)/g, '$1:')
}

export interface Mark { magic: number, station: number, step: number }

export interface ArpSpec {
  op: 1 | 2
  /** Frame source and destination MACs. */
  src: number
  dst: number
  /** Sender and target of the ARP itself. */
  sha: number
  spa: number
  tha?: number
  tpa: number
  mark: Mark
}

/** An Ethernet/IPv4 ARP, 60 bytes, marked in its padding. */
export function arp (a: ArpSpec): Buffer {
  const f = Buffer.alloc(60)
  f.writeUIntBE(a.dst, 0, 6)
  f.writeUIntBE(a.src, 6, 6)
  f.writeUInt16BE(0x0806, 12)
  f.writeUInt16BE(1, 14); f.writeUInt16BE(0x0800, 16); f[18] = 6; f[19] = 4; f.writeUInt16BE(a.op, 20)
  f.writeUIntBE(a.sha, 22, 6); f.writeUInt32BE(a.spa >>> 0, 28)
  f.writeUIntBE(a.tha ?? 0, 32, 6); f.writeUInt32BE(a.tpa >>> 0, 38)
  writeMark(f, ARP_MARK, a.mark)
  return f
}

export interface ArpSeen { op: number, src: number, sha: number, spa: number, tpa: number, mark: Mark | undefined }

export function readArp (f: Buffer): ArpSeen | undefined {
  if (f.length < 42 || f.readUInt16BE(12) !== 0x0806) return undefined
  return { op: f.readUInt16BE(20), src: f.readUIntBE(6, 6), sha: f.readUIntBE(22, 6), spa: f.readUInt32BE(28), tpa: f.readUInt32BE(38), mark: f.length >= 54 ? readMark(f, ARP_MARK) : undefined }
}

export interface DhcpClientSpec {
  /** The frame's source MAC, and the chaddr (another one is a forgery). */
  src: number
  chaddr: number
  type: number
  xid: number
  requested?: number
  server?: number
  ciaddr?: number
}

/** A DHCP client message (broadcast), its xid what the model tracks it by. */
export function dhcpClient (d: DhcpClientSpec): Buffer {
  return buildDhcpRequest(d.src, d.type, d.xid, d.requested ?? 0, d.server ?? 0, d.ciaddr ?? 0, d.chaddr)
}

/** A DHCP server message (OFFER or ACK) a rogue station sends from its own MAC, naming itself router and DNS server. */
export function rogueDhcp (o: { src: number, srcIp: number, client: number, dst: number, type: number, yiaddr: number, mark: Mark }): Buffer {
  const f = buildDhcpReply({
    type: o.type, serverMac: o.src, server: o.srcIp, clientMac: o.client, xid: o.mark.step, yiaddr: o.yiaddr,
    mask: 0xffffff00, router: o.srcIp, dns: o.srcIp, leaseSeconds: 86400, flags: 0
  })
  f.writeUIntBE(o.dst, 0, 6)
  writeMark(f, BOOTP_SNAME, o.mark)
  return f
}

export interface DhcpSeen { type: number, xid: number, chaddr: number, yiaddr: number, leaseSeconds: number, src: number, mark: Mark | undefined }

/** A DHCP server message (UDP 67 to 68), whoever sent it. */
export function readDhcpReply (f: Buffer): DhcpSeen | undefined {
  const l3 = ipv4At(f, 0, f.length)
  const b = l3 < 0 ? -1 : dhcpAt(f, l3, f.length, DHCP_SERVER_PORT, DHCP_CLIENT_PORT)
  if (b < 0) return undefined
  const lt = dhcpOption(f, b, f.length, OPT_LEASE_TIME)
  return {
    type: dhcpType(f, b, f.length), xid: f.readUInt32BE(b + 4), chaddr: dhcpClientMac(f, b), yiaddr: dhcpYourAddress(f, b),
    leaseSeconds: lt < 0 || f[lt - 1] !== 4 ? 0 : f.readUInt32BE(lt), src: f.readUIntBE(6, 6), mark: readMark(f, BOOTP_SNAME)
  }
}

/** Whether `f` is IPv4 UDP from port 67 or to port 68 (what DHCP snooping refuses from stations). */
export function isDhcpServerPort (f: Buffer): boolean {
  const l3 = ipv4At(f, 0, f.length)
  if (l3 < 0 || f[l3 + 9] !== 17 || (f.readUInt16BE(l3 + 6) & 0x1fff) !== 0) return false
  const l4 = l3 + ((f[l3] as number) & 15) * 4
  return f.length >= l4 + 4 && (f.readUInt16BE(l4) === DHCP_SERVER_PORT || f.readUInt16BE(l4 + 2) === DHCP_CLIENT_PORT)
}

export function writeMark (f: Buffer, at: number, m: Mark): void {
  f.writeUInt32BE(m.magic, at); f.writeUInt32BE(m.station, at + 4); f.writeUInt32BE(m.step, at + 8)
}

export function readMark (f: Buffer, at: number): Mark | undefined {
  if (f.length < at + 12) return undefined
  const magic = f.readUInt32BE(at)
  if (magic !== MAGIC_DROP && magic !== MAGIC_OK) return undefined
  return { magic, station: f.readUInt32BE(at + 4), step: f.readUInt32BE(at + 8) }
}

/** Where ip4() (helpers/ipv4.ts) puts a UDP payload in an untagged frame without IPv4 options. */
export const UDP_PAYLOAD = 42
