/**
 * TCP frames as a kernel with offloads hands them over, and an independent
 * check of what a wire may carry. Nothing here uses src/common/gso.ts: the
 * checksums are computed again, differently (32-bit word sums over a copy),
 * so a bug there cannot hide itself.
 */

export const MAC_DST = Buffer.from('020000000002', 'hex')
export const MAC_SRC = Buffer.from('020000000001', 'hex')

export interface TcpFrameOptions {
  v6?: boolean
  /** 802.1Q VID after the source MAC (none if undefined). */
  vlan?: number
  payload: Buffer
  seq?: number
  /** TCP flags byte: ACK by default. */
  flags?: number
  /** GSO segment size; 0 = not a GSO frame (still NEEDS_CSUM). */
  mss?: number
  /** IPv4 identification. */
  id?: number
  /** Set the ECN bit of gso_type. */
  ecn?: boolean
  dst?: Buffer
  src?: Buffer
}

export const FIN = 0x01
export const PSH = 0x08
export const ACK = 0x10
export const CWR = 0x80

/** Sum of 16-bit words, by reading 32-bit words where it can (a different route than gso.ts). */
function sum16 (buf: Buffer): number {
  let s = 0
  let i = 0
  for (; i + 4 <= buf.length; i += 4) { const w = buf.readUInt32BE(i); s += (w >>> 16) + (w & 0xffff) }
  for (; i + 2 <= buf.length; i += 2) s += buf.readUInt16BE(i)
  if (i < buf.length) s += (buf[i] as number) * 256
  return s
}
function fold16 (s: number): number { while (s >= 0x10000) s = (s % 0x10000) + Math.floor(s / 0x10000); return s }

/** The one's-complement checksum of `parts` concatenated (complemented, as stored in headers). */
export function checksum (...parts: Buffer[]): number {
  return (~fold16(sum16(Buffer.concat(parts))) & 0xffff)
}

function pseudoHeader (ip: Buffer, v6: boolean, tcpLen: number): Buffer {
  if (!v6) {
    const p = Buffer.alloc(12)
    ip.copy(p, 0, 12, 20)
    p[9] = 6
    p.writeUInt16BE(tcpLen & 0xffff, 10)
    return p
  }
  const p = Buffer.alloc(40)
  ip.copy(p, 0, 8, 40)
  p.writeUInt32BE(tcpLen, 32)
  p[39] = 6
  return p
}

/**
 * A TCP frame with a 32-byte TCP header (timestamps), its checksum field
 * seeded with the folded pseudo-header sum as Linux does for CHECKSUM_PARTIAL,
 * and its virtio-net header: NEEDS_CSUM, and GSO TCPv4/v6 if `mss`.
 */
export function tcpFrame (o: TcpFrameOptions): { header: Buffer, frame: Buffer, record: Buffer, l3: number, l4: number } {
  const v6 = o.v6 === true
  const l2 = Buffer.concat([o.dst ?? MAC_DST, o.src ?? MAC_SRC, ...(o.vlan !== undefined ? [Buffer.from([0x81, 0x00, o.vlan >> 8, o.vlan & 0xff])] : []), Buffer.from(v6 ? [0x86, 0xdd] : [0x08, 0x00])])
  const tcp = Buffer.alloc(32)
  tcp.writeUInt16BE(40000, 0)
  tcp.writeUInt16BE(5201, 2)
  tcp.writeUInt32BE(o.seq ?? 1000, 4)
  tcp.writeUInt32BE(777, 8)
  tcp[12] = 8 << 4
  tcp[13] = o.flags ?? ACK
  tcp.writeUInt16BE(502, 14)
  Buffer.from([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]).copy(tcp, 20)
  const tcpLen = tcp.length + o.payload.length
  let ip: Buffer
  if (!v6) {
    ip = Buffer.alloc(20)
    ip[0] = 0x45
    ip.writeUInt16BE(20 + tcpLen > 0xffff ? 0xffff : 20 + tcpLen, 2)
    ip.writeUInt16BE(o.id ?? 0x1234, 4)
    ip.writeUInt16BE(0x4000, 6)
    ip[8] = 64
    ip[9] = 6
    Buffer.from([192, 0, 2, 1, 192, 0, 2, 2]).copy(ip, 12)
    ip.writeUInt16BE(checksum(ip), 10)
  } else {
    ip = Buffer.alloc(40)
    ip[0] = 0x60
    ip.writeUInt16BE(tcpLen > 0xffff ? 0 : tcpLen, 4)
    ip[6] = 6
    ip[7] = 64
    Buffer.from('20010db8000000000000000000000001', 'hex').copy(ip, 8)
    Buffer.from('20010db8000000000000000000000002', 'hex').copy(ip, 24)
  }
  // CHECKSUM_PARTIAL: the field holds the pseudo-header sum, folded, not complemented.
  tcp.writeUInt16BE(~checksum(pseudoHeader(ip, v6, tcpLen)) & 0xffff, 16)
  const frame = Buffer.concat([l2, ip, tcp, o.payload])
  const l3 = l2.length
  const l4 = l3 + ip.length
  const header = Buffer.alloc(10)
  header[0] = 1 // NEEDS_CSUM
  header[1] = (o.mss ?? 0) === 0 ? 0 : (v6 ? 4 : 1) | (o.ecn === true ? 0x80 : 0)
  header.writeUInt16LE(l4 + 32, 2)
  header.writeUInt16LE(o.mss ?? 0, 4)
  header.writeUInt16LE(l4, 6)
  header.writeUInt16LE(16, 8)
  return { header, frame, record: Buffer.concat([header, frame]), l3, l4 }
}

/** A segment as a wire would carry it, parsed and checked. */
export interface Segment {
  vlan: number | undefined
  v6: boolean
  /** IPv4 total length or IPv6 payload length, as the header says. */
  ipLength: number
  id: number
  ipChecksumOk: boolean
  tcpChecksumOk: boolean
  seq: number
  flags: number
  payload: Buffer
}

/** Parse a plain TCP/IP frame and verify its checksums; throws if it is not one. */
export function parseSegment (f: Buffer): Segment {
  let l3 = 14
  let vlan: number | undefined
  if (f.readUInt16BE(12) === 0x8100) { vlan = f.readUInt16BE(14) & 0xfff; l3 = 18 }
  const type = f.readUInt16BE(l3 - 2)
  const v6 = type === 0x86dd
  if (!v6 && type !== 0x0800) throw new Error(`not IP: ethertype ${type.toString(16)}`)
  const ihl = v6 ? 40 : ((f[l3] as number) & 15) * 4
  const ip = f.subarray(l3, l3 + ihl)
  const l4 = l3 + ihl
  const ipLength = v6 ? ip.readUInt16BE(4) : ip.readUInt16BE(2)
  const end = v6 ? l4 + ipLength : l3 + ipLength
  if (end !== f.length) throw new Error(`IP length ${ipLength} disagrees with a frame of ${f.length}`)
  const tcp = f.subarray(l4, end)
  const thl = ((tcp[12] as number) >> 4) * 4
  return {
    vlan,
    v6,
    ipLength,
    id: v6 ? 0 : ip.readUInt16BE(4),
    ipChecksumOk: v6 || checksum(ip) === 0,
    // A correct TCP checksum makes the sum over pseudo-header and segment all ones.
    tcpChecksumOk: checksum(pseudoHeader(ip, v6, tcp.length), tcp) === 0,
    seq: tcp.readUInt32BE(4),
    flags: tcp[13] as number,
    payload: Buffer.from(tcp.subarray(thl))
  }
}

/** A payload whose bytes tell where they are, so a reordering or a gap shows. */
export function pattern (n: number, salt = 0): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 8) + salt) & 0xff
  return b
}
