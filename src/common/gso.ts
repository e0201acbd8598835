/**
 * virtio-net headers on the frame path, and the software fallback for ports
 * that did not negotiate offload.
 *
 * An agent whose TAP has IFF_VNET_HDR and TUNSETOFFLOAD hands the switch
 * what the sending kernel produced: TCP segments up to 64 KiB with one
 * `struct virtio_net_hdr` describing how to cut them (GSO), and frames whose
 * TCP/UDP checksum is only seeded with the pseudo-header sum (NEEDS_CSUM).
 * Between two such ports the switch forwards them untouched: the receiving
 * kernel finishes the work, or a NIC does, or nobody needs to (one host). A
 * port that did not negotiate offload (a browser VM, QEMU, an agent with
 * --offload off) must see only what a wire carries, so for it the switch
 * does what the kernel's skb_checksum_help() and tcp_gso_segment() would:
 * it finishes the checksum, or cuts the frame into MSS-sized segments with
 * their own IP lengths, ids, sequence numbers, flags and checksums.
 *
 * checkOffload() is on the per-frame path of offload ports: a few reads, no
 * allocation, and a verdict (forward, oversize, malformed) so that bad input
 * is dropped and counted where it enters, never at each egress. The
 * fallback (toPlainFrames) is the slow path: it allocates the frames it
 * produces, which the egress ports may then hold (ws queues views).
 *
 * Header layout (little-endian, as TAP uses on little-endian hosts and as we
 * fix with TUNSETVNETLE):
 *   u8 flags | u8 gso_type | u16 hdr_len | u16 gso_size | u16 csum_start | u16 csum_offset
 * csum_start is counted from the first byte of the Ethernet header.
 */

import { ETH_HLEN, ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP, TCP_FIN, TCP_PSH, TCP_CWR } from './ethernet'
import { ETH_P_8021Q } from './vlan'
import { VNET_HDR_LEN, MAX_FRAME_SIZE_LIMIT } from './protocol'

/** flags: the checksum at csum_start + csum_offset holds only the pseudo-header sum. */
export const VNET_F_NEEDS_CSUM = 1
/** flags: the sender's stack has verified the checksum (a hint only). */
export const VNET_F_DATA_VALID = 2
export const VNET_GSO_NONE = 0
export const VNET_GSO_TCPV4 = 1
export const VNET_GSO_TCPV6 = 4
/** gso_type bit: the flow uses ECN, so CWR goes on the first segment only. */
export const VNET_GSO_ECN = 0x80

/** The largest frame a GSO record may carry: the jumbo ceiling, which any 64 KiB TSO frame fits. */
export const MAX_GSO_FRAME_SIZE = MAX_FRAME_SIZE_LIMIT

/**
 * The smallest gso_size accepted: Linux's TCP_MIN_MSS (include/net/tcp.h),
 * the least MSS an application may set with TCP_MAXSEG. No stack cuts TCP
 * finer, and each segment costs the fallback a header copy, a checksum and
 * a Buffer view: with gso_size 1 one 64 KiB record became ~65,000 segments
 * per plain port (issue 12, finding 5).
 */
export const MIN_GSO_SIZE = 88
/**
 * The most segments one GSO frame may be cut into. A 64 KiB TSO frame is
 * ~45 segments at an Ethernet MSS and 123 at the IPv4 default MSS of 536
 * (RFC 9293); 256 leaves room for that twice over and bounds the fallback's
 * work at a few times a normal frame's, where tun's own limit (GSO_MAX_SEGS,
 * 65535) does not.
 */
export const MAX_GSO_SEGMENTS = 256

/** checkOffload() verdicts. */
export const OFFLOAD_OK = 0
/** A plain frame over the maximum frame size, or a GSO frame whose segments would be. */
export const OFFLOAD_OVERSIZE = 1
/** A header that no kernel would accept, or a GSO frame whose headers do not parse. */
export const OFFLOAD_MALFORMED = 2

const TCP_CSUM_OFFSET = 16

/** Does a frame with this header need the fallback before a plain port may have it? */
export function needsSoftware (buf: Buffer, hdrOff: number): boolean {
  return buf[hdrOff + 1] !== VNET_GSO_NONE || ((buf[hdrOff] as number) & VNET_F_NEEDS_CSUM) !== 0
}

/** Offset of the IP header in the frame at `off` (after one 802.1Q tag, if any), or -1 if it has none. */
function l3Offset (buf: Buffer, off: number, len: number): number {
  if (buf.readUInt16BE(off + 12) !== ETH_P_8021Q) return ETH_HLEN
  return len < ETH_HLEN + 4 ? -1 : ETH_HLEN + 4
}

/**
 * For a GSO frame: the offset (from the frame's start) where the TCP header
 * ends and the payload begins, or -1 if the headers do not say TCP over the
 * IP version `gso` names, or disagree with csum_start (`l4`).
 */
export function tcpHeadersEnd (buf: Buffer, off: number, len: number, gso: number, l4: number): number {
  const l3 = l3Offset(buf, off, len)
  if (l3 < 0) return -1
  const type = buf.readUInt16BE(off + l3 - 2)
  if (gso === VNET_GSO_TCPV4) {
    if (type !== ETH_P_IP || l3 + 20 > len) return -1
    const vihl = buf[off + l3] as number
    // GSO frames are never IP fragments: a fragment cannot be cut by TCP sequence.
    if (vihl >> 4 !== 4 || l3 + (vihl & 15) * 4 !== l4 || (vihl & 15) < 5) return -1
    if (buf[off + l3 + 9] !== IPPROTO_TCP || (buf.readUInt16BE(off + l3 + 6) & 0x3fff) !== 0) return -1
  } else {
    // Extension headers, if any, sit between the IPv6 header and csum_start.
    if (type !== ETH_P_IPV6 || l3 + 40 > l4 || (buf[off + l3] as number) >> 4 !== 6) return -1
    if (l4 === l3 + 40 && buf[off + l3 + 6] !== IPPROTO_TCP) return -1
  }
  if (l4 + 20 > len) return -1
  const end = l4 + ((buf[off + l4 + 12] as number) >> 4) * 4
  return end < l4 + 20 || end > len ? -1 : end
}

/**
 * Judge the header at buf[hdrOff] of the frame buf[off, off + len) (len >=
 * ETH_HLEN): OFFLOAD_OK, OFFLOAD_OVERSIZE or OFFLOAD_MALFORMED. A plain frame
 * must fit `maxFrameSize`; a GSO frame may be up to MAX_GSO_FRAME_SIZE if each
 * of its segments would fit `maxFrameSize`. Reads only; allocates nothing.
 */
export function checkOffload (buf: Buffer, hdrOff: number, off: number, len: number, maxFrameSize: number): number {
  const flags = buf[hdrOff] as number
  const type = buf[hdrOff + 1] as number
  if ((flags & ~(VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID)) !== 0) return OFFLOAD_MALFORMED
  // The receiving kernel refuses a hdr_len beyond the frame (tun_get_user: EINVAL).
  if (buf.readUInt16LE(hdrOff + 2) > len) return OFFLOAD_MALFORMED
  const csumStart = buf.readUInt16LE(hdrOff + 6)
  const csumOffset = buf.readUInt16LE(hdrOff + 8)
  if ((flags & VNET_F_NEEDS_CSUM) !== 0 && (csumStart < ETH_HLEN || csumStart + csumOffset + 2 > len)) return OFFLOAD_MALFORMED
  if (type === VNET_GSO_NONE) return len > maxFrameSize ? OFFLOAD_OVERSIZE : OFFLOAD_OK
  const gso = type & ~VNET_GSO_ECN
  // UDP (UFO/USO) is never offered, so never accepted: we could not cut it for a plain port.
  if (gso !== VNET_GSO_TCPV4 && gso !== VNET_GSO_TCPV6) return OFFLOAD_MALFORMED
  const mss = buf.readUInt16LE(hdrOff + 4)
  if ((flags & VNET_F_NEEDS_CSUM) === 0 || csumOffset !== TCP_CSUM_OFFSET || mss < MIN_GSO_SIZE) return OFFLOAD_MALFORMED
  if (len > MAX_GSO_FRAME_SIZE) return OFFLOAD_OVERSIZE
  const headers = tcpHeadersEnd(buf, off, len, gso, csumStart)
  if (headers < 0) return OFFLOAD_MALFORMED
  if (headers + mss > maxFrameSize) return OFFLOAD_OVERSIZE
  // Bound the fallback's work per input byte (MAX_GSO_SEGMENTS).
  return len - headers > mss * MAX_GSO_SEGMENTS ? OFFLOAD_MALFORMED : OFFLOAD_OK
}

/**
 * Move the offsets of a header copied to out[at] by `delta` bytes: an egress
 * that pushes (+4) or strips (-4) an 802.1Q tag moves everything after the
 * MACs. hdr_len 0 means "no hint" and stays 0.
 */
export function shiftHeader (out: Buffer, at: number, delta: number): void {
  if (((out[at] as number) & VNET_F_NEEDS_CSUM) !== 0) out.writeUInt16LE(Math.max(0, out.readUInt16LE(at + 6) + delta), at + 6)
  const hdrLen = out.readUInt16LE(at + 2)
  if (hdrLen !== 0) out.writeUInt16LE(Math.max(0, hdrLen + delta), at + 2)
}

/** One's-complement sum of buf[start, end) as big-endian 16-bit words, plus `sum`, not yet folded. */
export function onesSum (buf: Buffer, start: number, end: number, sum: number): number {
  let i = start
  for (; i + 1 < end; i += 2) sum += ((buf[i] as number) << 8) | (buf[i + 1] as number)
  if (i < end) sum += (buf[i] as number) << 8
  return sum
}

/** Fold a sum to 16 bits (end-around carry). */
export function fold (sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000)
  return sum
}

/**
 * A copy of the frame with its checksum finished, as skb_checksum_help()
 * does: sum from csum_start to the end (the seed in the field included),
 * store the complement, and 0 as 0xffff (UDP reads 0 as "no checksum").
 */
export function completeChecksum (buf: Buffer, hdrOff: number, off: number, len: number): Buffer {
  const out = Buffer.allocUnsafe(len)
  buf.copy(out, 0, off, off + len)
  const start = buf.readUInt16LE(hdrOff + 6)
  const at = start + buf.readUInt16LE(hdrOff + 8)
  const c = ~fold(onesSum(out, start, len, 0)) & 0xffff
  out.writeUInt16BE(c === 0 ? 0xffff : c, at)
  return out
}

/** IPv4 header checksum of the header at out[l3] (its checksum field must be zero). */
function ipv4Checksum (out: Buffer, l3: number): number {
  return ~fold(onesSum(out, l3, l3 + ((out[l3] as number) & 15) * 4, 0)) & 0xffff
}

/** Full TCP checksum of the segment out[at, at + segLen) (its checksum field must be zero). */
function tcpChecksum (out: Buffer, at: number, l3: number, l4: number, segLen: number, v4: boolean): number {
  const tcpLen = segLen - l4
  // Pseudo-header: addresses, protocol and TCP length (RFC 793 / RFC 8200 §8.1).
  let sum = v4 ? onesSum(out, at + l3 + 12, at + l3 + 20, 0) : onesSum(out, at + l3 + 8, at + l3 + 40, 0)
  sum += IPPROTO_TCP + (tcpLen & 0xffff) + Math.floor(tcpLen / 0x10000)
  return ~fold(onesSum(out, at + l4, at + segLen, sum)) & 0xffff
}

/**
 * Cut a GSO TCP frame into segments of at most gso_size payload bytes, as
 * tcp_gso_segment() does: each gets the headers, its IPv4 total length and
 * id (incremented per segment) or IPv6 payload length, its sequence number,
 * FIN and PSH only on the last, CWR only on the first, and full checksums.
 * Returns views of one new buffer; [] if the headers do not parse.
 */
export function segment (buf: Buffer, hdrOff: number, off: number, len: number): Buffer[] {
  const gso = (buf[hdrOff + 1] as number) & ~VNET_GSO_ECN
  const mss = buf.readUInt16LE(hdrOff + 4)
  const l4 = buf.readUInt16LE(hdrOff + 6)
  const headers = tcpHeadersEnd(buf, off, len, gso, l4)
  if (headers < 0 || mss < MIN_GSO_SIZE) return []
  const l3 = l3Offset(buf, off, len)
  const v4 = gso === VNET_GSO_TCPV4
  const payload = len - headers
  const count = Math.max(1, Math.ceil(payload / mss))
  if (count > MAX_GSO_SEGMENTS) return []
  const out = Buffer.allocUnsafe(count * headers + payload)
  const seq = buf.readUInt32BE(off + l4 + 4)
  const id = v4 ? buf.readUInt16BE(off + l3 + 4) : 0
  const frames: Buffer[] = []
  let at = 0
  for (let i = 0; i < count; i++) {
    const from = i * mss
    const size = Math.min(mss, payload - from)
    const segLen = headers + size
    buf.copy(out, at, off, off + headers)
    buf.copy(out, at + headers, off + headers + from, off + headers + from + size)
    if (v4) {
      out.writeUInt16BE(segLen - l3, at + l3 + 2)
      out.writeUInt16BE((id + i) & 0xffff, at + l3 + 4)
      out.writeUInt16BE(0, at + l3 + 10)
      out.writeUInt16BE(ipv4Checksum(out, at + l3), at + l3 + 10)
    } else {
      out.writeUInt16BE(segLen - l3 - 40, at + l3 + 4)
    }
    out.writeUInt32BE((seq + from) % 0x100000000, at + l4 + 4)
    let tcpFlags = out[at + l4 + 13] as number
    if (i < count - 1) tcpFlags &= ~(TCP_FIN | TCP_PSH)
    if (i > 0) tcpFlags &= ~TCP_CWR
    out[at + l4 + 13] = tcpFlags
    out.writeUInt16BE(0, at + l4 + TCP_CSUM_OFFSET)
    out.writeUInt16BE(tcpChecksum(out, at, l3, l4, segLen, v4), at + l4 + TCP_CSUM_OFFSET)
    frames.push(out.subarray(at, at + segLen))
    at += segLen
  }
  return frames
}

/**
 * What a port without offload may have instead of the offload frame at
 * buf[off, off + len) with its header at buf[hdrOff]: the segments of a GSO
 * frame, or the frame with its checksum finished. [] if it cannot be done
 * (headers that do not parse). Allocates: the slow path only.
 */
export function toPlainFrames (buf: Buffer, hdrOff: number, off: number, len: number): Buffer[] {
  if (buf[hdrOff + 1] !== VNET_GSO_NONE) return segment(buf, hdrOff, off, len)
  return [completeChecksum(buf, hdrOff, off, len)]
}

/** Slow path (tests, tools): a 10-byte header. */
export function vnetHeader (h: { flags?: number, gsoType?: number, hdrLen?: number, gsoSize?: number, csumStart?: number, csumOffset?: number }): Buffer {
  const b = Buffer.alloc(VNET_HDR_LEN)
  b[0] = h.flags ?? 0
  b[1] = h.gsoType ?? 0
  b.writeUInt16LE(h.hdrLen ?? 0, 2)
  b.writeUInt16LE(h.gsoSize ?? 0, 4)
  b.writeUInt16LE(h.csumStart ?? 0, 6)
  b.writeUInt16LE(h.csumOffset ?? 0, 8)
  return b
}
