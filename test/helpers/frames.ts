/**
 * Frame fixtures, ws-test style: hex with spaces for readability.
 *   frame('ffffffffffff 020000000001 0806', 28)
 */

/** Hex (spaces ignored) to a Buffer, padded with zero bytes to `padTo`. */
export function frame (hex: string, padTo = 0): Buffer {
  const b = Buffer.from(hex.replace(/\s+/g, ''), 'hex')
  if (b.length >= padTo) return b
  return Buffer.concat([b, Buffer.alloc(padTo - b.length)])
}

export const BROADCAST = 'ffffffffffff'
export const MAC_A = '020000000001'
export const MAC_B = '020000000002'
export const MAC_C = '020000000003'
export const MAC_D = '020000000004'

/** A 60-byte frame dst <- src with EtherType 0x88b5 (local experimental) and a tag byte. */
export function eth (dst: string, src: string, tag = 0, size = 60): Buffer {
  const f = frame(`${dst} ${src} 88b5`, size)
  f[14] = tag & 0xff
  return f
}

/** An 802.1Q-tagged 64-byte frame: dst <- src, VID `vid` (PCP `pcp`), EtherType 0x88b5, tag byte at 18. */
export function tagged (dst: string, src: string, vid: number, tag = 0, pcp = 0): Buffer {
  const f = frame(`${dst} ${src} 8100 ${((pcp << 13) | vid).toString(16).padStart(4, '0')} 88b5`, 64)
  f[18] = tag & 0xff
  return f
}

/** The VID of a tagged frame, or -1 if untagged. */
export function vidOf (f: Buffer): number {
  return f.readUInt16BE(12) === 0x8100 ? f.readUInt16BE(14) & 0xfff : -1
}

/** An ARP (op 1 request, 2 reply) from `src` (the frame's source) saying `sha` is at `spa`, asking for `tpa`. */
export function arp (src: number, sha: number, spa: number, tpa: number, op = 1, dst = 0xffffffffffff): Buffer {
  const f = Buffer.alloc(60)
  f.writeUIntBE(dst, 0, 6); f.writeUIntBE(src, 6, 6); f.writeUInt16BE(0x0806, 12)
  f.writeUInt16BE(1, 14); f.writeUInt16BE(0x0800, 16); f[18] = 6; f[19] = 4; f.writeUInt16BE(op, 20)
  f.writeUIntBE(sha, 22, 6); f.writeUInt32BE(spa, 28); f.writeUInt32BE(tpa, 38)
  return f
}

/** Dotted IPv4 text to its number. */
const ipNumber = (t: string): number => t.split('.').reduce((n, o) => n * 256 + Number(o), 0)

/** An ARP who-has `target` from a station `mac` at `ip` (its own frame source): the gateway's answer is a barrier. */
export function whoHas (mac: number, ip: string, target = '10.0.2.2', dst = 0xffffffffffff): Buffer {
  return arp(mac, mac, ipNumber(ip), ipNumber(target), 1, dst)
}

/** Whether `f` is an ARP reply. */
export const isArpReply = (f: Buffer): boolean => f.length >= 22 && f.readUInt16BE(12) === 0x0806 && f.readUInt16BE(20) === 2

/** An IPv4 UDP datagram (checksum 0) from `src` at `srcIp`:`sport` to `dst` at `dstIp`:`dport`. */
export function udp (dst: number, src: number, srcIp: number, dstIp: number, sport: number, dport: number, payload = 8): Buffer {
  const f = Buffer.alloc(14 + 20 + 8 + payload)
  f.writeUIntBE(dst, 0, 6); f.writeUIntBE(src, 6, 6); f.writeUInt16BE(0x0800, 12)
  f[14] = 0x45; f.writeUInt16BE(20 + 8 + payload, 16); f[22] = 64; f[23] = 17
  f.writeUInt32BE(srcIp, 26); f.writeUInt32BE(dstIp, 30)
  f.writeUInt16BE(sport, 34); f.writeUInt16BE(dport, 36); f.writeUInt16BE(8 + payload, 38)
  return f
}
