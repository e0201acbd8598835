/**
 * IPv4 frames for the gateway's tests: TCP, UDP, ICMP or any protocol, with
 * the IPv4, TCP, UDP and ICMP checksums right (libslirp checks them), from a
 * station to the gateway's MAC unless told otherwise; and a reader for the
 * frames that come back.
 */

import { parseIpv4 } from '../../src/common/dhcp'

export const TCP = 6
export const UDP = 17
export const ICMP = 1
export const FIN = 0x01
export const SYN = 0x02
export const RST = 0x04
export const PSH = 0x08
export const ACK = 0x10

/** slirp's MAC for 10.0.2.2 (52:55 and its address). */
export const GW_MAC = 0x52550a000202
export const STATION_MAC = 0x020000000001

export interface Ip4 {
  src?: string | number
  dst: string | number
  proto: number
  dmac?: number
  smac?: number
  sport?: number
  dport?: number
  /** TCP */
  flags?: number
  seq?: number
  ack?: number
  win?: number
  /** ICMP type (default 8, echo request), its id and sequence (or quoted bytes for an error: payload). */
  type?: number
  id?: number
  icmpSeq?: number
  payload?: Buffer
  /** IPv4 flags and fragment offset (the 16-bit field): 0x2000 more fragments, an offset in 8-byte units. */
  frag?: number
  /** The IPv4 total length, when it must lie. */
  totalLength?: number
  ipId?: number
  /** IPv4 time to live (default 64); 0 is one libslirp drops (ip_input.c), answering time-exceeded. */
  ttl?: number
  /** A UDP or TCP checksum that is wrong by one (libslirp drops the datagram). */
  badChecksum?: boolean
}

const addr = (a: string | number): number => typeof a === 'number' ? a >>> 0 : parseIpv4(a) as number

function sum (buf: Buffer, start: number, end: number, init = 0): number {
  let s = init
  let i = start
  for (; i + 1 < end; i += 2) s += buf.readUInt16BE(i)
  if (i < end) s += (buf[i] as number) << 8
  return s
}

function fold (s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16)
  return (~s) & 0xffff
}

/** One Ethernet + IPv4 frame. */
export function ip4 (o: Ip4): Buffer {
  const payload = o.payload ?? Buffer.alloc(0)
  const l4len = o.proto === TCP ? 20 : o.proto === UDP || o.proto === ICMP ? 8 : 0
  const ipLen = 20 + l4len + payload.length
  const f = Buffer.alloc(Math.max(60, 14 + ipLen))
  f.writeUIntBE(o.dmac ?? GW_MAC, 0, 6)
  f.writeUIntBE(o.smac ?? STATION_MAC, 6, 6)
  f.writeUInt16BE(0x0800, 12)
  f[14] = 0x45
  f.writeUInt16BE(o.totalLength ?? ipLen, 16)
  f.writeUInt16BE(o.ipId ?? 1, 18)
  f.writeUInt16BE(o.frag ?? 0, 20)
  f[22] = o.ttl ?? 64
  f[23] = o.proto
  f.writeUInt32BE(addr(o.src ?? '10.0.2.15'), 26)
  f.writeUInt32BE(addr(o.dst), 30)
  f.writeUInt16BE(fold(sum(f, 14, 34)), 24)
  const l4 = 34
  if (o.proto === TCP) {
    f.writeUInt16BE(o.sport ?? 40000, l4); f.writeUInt16BE(o.dport ?? 80, l4 + 2)
    f.writeUInt32BE((o.seq ?? 1000) >>> 0, l4 + 4); f.writeUInt32BE((o.ack ?? 0) >>> 0, l4 + 8)
    f[l4 + 12] = 0x50; f[l4 + 13] = o.flags ?? SYN; f.writeUInt16BE(o.win ?? 65535, l4 + 14)
  } else if (o.proto === UDP) {
    f.writeUInt16BE(o.sport ?? 40000, l4); f.writeUInt16BE(o.dport ?? 53, l4 + 2); f.writeUInt16BE(8 + payload.length, l4 + 4)
  } else if (o.proto === ICMP) {
    f[l4] = o.type ?? 8; f.writeUInt16BE(o.id ?? 7, l4 + 4); f.writeUInt16BE(o.icmpSeq ?? 1, l4 + 6)
  }
  payload.copy(f, l4 + l4len)
  const end = l4 + l4len + payload.length
  if (o.proto === TCP || o.proto === UDP) {
    let s = sum(f, 26, 34) + o.proto + (end - l4)
    s = sum(f, l4, end, s)
    const c = fold(s)
    const cks = o.proto === UDP && c === 0 ? 0xffff : c
    f.writeUInt16BE(o.badChecksum === true ? cks ^ 1 : cks, l4 + (o.proto === TCP ? 16 : 6))
  } else if (o.proto === ICMP) {
    f.writeUInt16BE(fold(sum(f, l4, end)), l4 + 2)
  }
  return f
}

/** A TCP segment's fields, or undefined if `f` is not IPv4 TCP. */
export function readTcp (f: Buffer): { src: number, dst: number, sport: number, dport: number, flags: number, seq: number, ack: number, win: number, len: number } | undefined {
  if (f.length < 54 || f.readUInt16BE(12) !== 0x0800 || f[23] !== TCP) return undefined
  const l4 = 14 + ((f[14] as number) & 15) * 4
  return {
    src: f.readUInt32BE(26), dst: f.readUInt32BE(30), sport: f.readUInt16BE(l4), dport: f.readUInt16BE(l4 + 2), flags: f[l4 + 13] as number,
    seq: f.readUInt32BE(l4 + 4), ack: f.readUInt32BE(l4 + 8), win: f.readUInt16BE(l4 + 14),
    len: f.readUInt16BE(16) - ((f[14] as number) & 15) * 4 - ((f[l4 + 12] as number) >> 4) * 4
  }
}

/** A UDP datagram's fields and payload, or undefined. */
export function readUdp (f: Buffer): { src: number, dst: number, sport: number, dport: number, payload: Buffer } | undefined {
  if (f.length < 42 || f.readUInt16BE(12) !== 0x0800 || f[23] !== UDP || (f.readUInt16BE(20) & 0x1fff) !== 0) return undefined
  const l4 = 14 + ((f[14] as number) & 15) * 4
  return { src: f.readUInt32BE(26), dst: f.readUInt32BE(30), sport: f.readUInt16BE(l4), dport: f.readUInt16BE(l4 + 2), payload: f.subarray(l4 + 8, l4 + f.readUInt16BE(l4 + 4)) }
}

/** The same frame as one record of a QEMU stream batch (4-byte length first). */
export function record (...frames: Buffer[]): Buffer {
  return Buffer.concat(frames.flatMap((f) => { const h = Buffer.alloc(4); h.writeUInt32BE(f.length); return [h, f] }))
}

/** `frame` (one whole IPv4 datagram, no options) cut in two fragments, the first carrying `firstLen` bytes after the IPv4 header (a multiple of 8). */
export function fragments (frame: Buffer, firstLen: number): [Buffer, Buffer] {
  const total = frame.readUInt16BE(16)
  const data = frame.subarray(34, 14 + total)
  const piece = (part: Buffer, offset: number, more: boolean): Buffer => {
    const f = Buffer.alloc(Math.max(60, 34 + part.length))
    frame.copy(f, 0, 0, 34)
    f.writeUInt16BE(20 + part.length, 16)
    f.writeUInt16BE((more ? 0x2000 : 0) | (offset / 8), 20)
    f.writeUInt16BE(0, 24)
    f.writeUInt16BE(fold(sum(f, 14, 34)), 24)
    part.copy(f, 34)
    return f
  }
  return [piece(data.subarray(0, firstLen), 0, true), piece(data.subarray(firstLen), firstLen, false)]
}
