/**
 * Ethernet header access for the per-frame path. MACs are read straight out of
 * the frame into integers (48 bits fit exactly in a double), so the fdb never
 * sees strings or sub-buffers; `formatMac` and `parseMac` are for logs and
 * configuration only.
 */

/** Destination (6) + source (6) + EtherType (2). */
export const ETH_HLEN = 14
/** Offset of the source MAC within a frame. */
export const ETH_SOURCE = 6
/** 802.1Q tag length; the default maximum frame size leaves room for one. */
export const VLAN_HLEN = 4
/** EtherTypes and IP protocol numbers the switch looks at (offload, the gateway's DHCP and filters). */
export const ETH_P_IP = 0x0800
export const ETH_P_IPV6 = 0x86dd
export const ETH_P_ARP = 0x0806
export const IPPROTO_ICMP = 1
export const IPPROTO_TCP = 6
export const IPPROTO_UDP = 17
/** TCP header flags (RFC 9293), and the ICMP echo request type. */
export const TCP_FIN = 0x01
export const TCP_SYN = 0x02
export const TCP_RST = 0x04
export const TCP_PSH = 0x08
export const TCP_ACK = 0x10
export const TCP_CWR = 0x80
export const ICMP_ECHO = 8

/** 48-bit MAC at `off` as an integer (exact: < 2**53). */
export function macAt (buf: Buffer, off: number): number {
  // Byte loads rather than buf.readUIntBE(off, 6), whose generic argument checks cost more than the read
  // on the frame path (twice a frame); past the end it throws RangeError as readUIntBE does.
  if (!(off >= 0 && off + 6 <= buf.length)) throw new RangeError(`no MAC address at offset ${off} of ${buf.length} bytes`)
  return ((buf[off] as number) * 0x100 + (buf[off + 1] as number)) * 0x100000000 +
    (((buf[off + 2] as number) << 24) >>> 0) + (((buf[off + 3] as number) << 16) | ((buf[off + 4] as number) << 8) | (buf[off + 5] as number))
}

/** I/G bit: a group (multicast or broadcast) address. */
export function isGroup (buf: Buffer, off: number): boolean {
  return ((buf[off] as number) & 1) === 1
}

/** ff:ff:ff:ff:ff:ff */
export function isBroadcast (buf: Buffer, off: number): boolean {
  return buf.readUInt32BE(off) === 0xffffffff && buf.readUInt16BE(off + 4) === 0xffff
}

/** Slow path: integer MAC to `02:00:00:00:00:01`. */
export function formatMac (mac: number): string {
  const hex = mac.toString(16).padStart(12, '0')
  return hex.replace(/(..)(?!$)/g, '$1:')
}

/** Slow path: `02:00:00:00:00:01` (or with `-`) to 6 bytes; undefined if malformed. */
export function parseMac (text: string): Buffer | undefined {
  if (!/^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$/.test(text)) return undefined
  return Buffer.from(text.replace(/[:-]/g, ''), 'hex')
}
