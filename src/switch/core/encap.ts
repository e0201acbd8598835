/**
 * The VXLAN (RFC 7348) and GENEVE (RFC 8926) headers around an Ethernet
 * frame in a UDP datagram, read and written in place: no I/O, no allocation
 * per packet (io/vxlan.ts does the sockets).
 *
 * Both headers keep the 24-bit VNI in bytes 4-6, so one vniAt() serves both.
 *
 *   VXLAN   | flags (0x08 = I) | 3 reserved | VNI (3) | reserved |   8 bytes
 *   GENEVE  | Ver(2) OptLen(6) | O C rsvd(6) | protocol type (2) | VNI (3) | reserved | options (OptLen * 4)
 *
 * Receipt follows the RFCs' "ignore reserved bits" rule for VXLAN, and for
 * GENEVE refuses what we cannot honour: a version other than 0, a control
 * packet (O), a critical option (C: we understand no option, so every
 * critical one is one we must not ignore), a payload that is not Ethernet
 * (protocol type 0x6558, Transparent Ethernet Bridging). We send no options.
 *
 * The UDP source port of what we send is a hash of the inner flow (RFC 7348
 * §5, RFC 8926 §3.3): the underlay's ECMP and RSS then spread flows and keep
 * each one in order. flowHash() reads the inner frame where it lies.
 */

import { ETH_HLEN, ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP, IPPROTO_UDP } from '../../common/ethernet'
import { isTagTpid, TPID_OFFSET } from '../../common/vlan'

export const ENCAP_VXLAN = 0
export const ENCAP_GENEVE = 1
export type Encap = 'vxlan' | 'geneve'

/** IANA's UDP ports. */
export const VXLAN_PORT = 4789
export const GENEVE_PORT = 6081
/** Both base headers are 8 bytes; GENEVE's options follow its base. */
export const ENCAP_HLEN = 8
/** The largest VNI (24 bits). */
export const VNI_MAX = 0xffffff
/** VXLAN's I flag: the VNI is valid. */
export const VXLAN_FLAG_I = 0x08
/** GENEVE's protocol type for an Ethernet payload (Transparent Ethernet Bridging). */
export const ETH_P_TEB = 0x6558
const GENEVE_O = 0x80
const GENEVE_C = 0x40

/**
 * Why a listener drops a datagram (switchd_vxlan_dropped_total{reason}), in
 * its counters' order: from an address no VNI lists, for a VNI not configured
 * for that VTEP, a bad header, shorter than its header and an Ethernet
 * header, a send that failed.
 */
export const VXLAN_DROP_REASONS = ['unlisted_source', 'unknown_vni', 'bad_header', 'truncated', 'send_error'] as const
export type VxlanDropReason = typeof VXLAN_DROP_REASONS[number]

/** parseHeader() answers: the inner frame's offset (>= 8), or one of these. */
export const PARSE_TRUNCATED = -1
export const PARSE_BAD_HEADER = -2

/**
 * The offset of the inner frame in buf[0, len), a datagram's payload, or
 * PARSE_TRUNCATED (shorter than its header and a minimal Ethernet header) or
 * PARSE_BAD_HEADER (see the file's header for what each encapsulation refuses).
 */
export function parseHeader (encap: number, buf: Buffer, len: number): number {
  if (len < ENCAP_HLEN) return PARSE_TRUNCATED
  let hlen = ENCAP_HLEN
  const b0 = buf[0] as number
  if (encap === ENCAP_VXLAN) {
    if ((b0 & VXLAN_FLAG_I) === 0) return PARSE_BAD_HEADER
  } else {
    if ((b0 >> 6) !== 0) return PARSE_BAD_HEADER
    if (((buf[1] as number) & (GENEVE_O | GENEVE_C)) !== 0) return PARSE_BAD_HEADER
    if (((buf[2] as number) << 8 | (buf[3] as number)) !== ETH_P_TEB) return PARSE_BAD_HEADER
    hlen += (b0 & 0x3f) * 4
  }
  return len < hlen + ETH_HLEN ? PARSE_TRUNCATED : hlen
}

/** The 24-bit VNI of a header at buf[0] (both encapsulations keep it in bytes 4-6). */
export function vniAt (buf: Buffer): number {
  return (buf[4] as number) << 16 | (buf[5] as number) << 8 | (buf[6] as number)
}

/** Write the 8-byte header for `vni` at out[off]: reserved bits zero, no GENEVE options. */
export function writeHeader (encap: number, out: Buffer, off: number, vni: number): void {
  if (encap === ENCAP_VXLAN) {
    out[off] = VXLAN_FLAG_I; out[off + 1] = 0; out[off + 2] = 0; out[off + 3] = 0
  } else {
    out[off] = 0; out[off + 1] = 0; out[off + 2] = ETH_P_TEB >> 8; out[off + 3] = ETH_P_TEB & 0xff
  }
  out[off + 4] = (vni >> 16) & 0xff; out[off + 5] = (vni >> 8) & 0xff; out[off + 6] = vni & 0xff; out[off + 7] = 0
}

/** IPv4 header + UDP header, and IPv6's. */
export const UNDERLAY_V4 = 20 + 8
export const UNDERLAY_V6 = 40 + 8

/**
 * The largest inner frame (its Ethernet header included, no FCS) that fits
 * one datagram on an underlay whose IP MTU is `mtu`: mtu - IP - UDP - 8. For
 * 1500 over IPv4 that is 1464, the inner IP MTU 1450 a Linux vxlan device
 * takes by default.
 */
export function maxInnerFrame (mtu: number, v6: boolean): number {
  return mtu - (v6 ? UNDERLAY_V6 : UNDERLAY_V4) - ENCAP_HLEN
}

/** One 32-bit mixing round (MurmurHash3's): a word into the running hash. */
function mix (h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51)
  k = (k << 15) | (k >>> 17)
  h ^= Math.imul(k, 0x1b873593)
  h = (h << 13) | (h >>> 19)
  return (Math.imul(h, 5) + 0xe6546b64) | 0
}

/** MurmurHash3's finaliser: every input bit reaches every output bit. */
function finish (h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

const u32 = (b: Buffer, o: number): number => ((b[o] as number) << 24 | (b[o + 1] as number) << 16 | (b[o + 2] as number) << 8 | (b[o + 3] as number))

/**
 * A 32-bit hash of the frame buf[off, off + len)'s flow, seeded: its IPv4 or
 * IPv6 addresses and protocol, with the TCP or UDP ports when the frame
 * carries them (not a later IPv4 fragment); else its MACs and EtherType.
 * VLAN tags are skipped. The same flow always hashes alike under one seed.
 */
export function flowHash (buf: Buffer, off: number, len: number, seed: number): number {
  let h = seed | 0
  let p = off + TPID_OFFSET
  const end = off + len
  let type = p + 2 <= end ? (buf[p] as number) << 8 | (buf[p + 1] as number) : 0
  while (isTagTpid(type) && p + 6 <= end) { p += 4; type = (buf[p] as number) << 8 | (buf[p + 1] as number) }
  const l3 = p + 2
  if (type === ETH_P_IP && l3 + 20 <= end) {
    const ihl = ((buf[l3] as number) & 0x0f) * 4
    const proto = buf[l3 + 9] as number
    h = mix(mix(mix(h, u32(buf, l3 + 12)), u32(buf, l3 + 16)), proto)
    const fragment = (((buf[l3 + 6] as number) & 0x1f) << 8 | (buf[l3 + 7] as number)) !== 0
    if ((proto === IPPROTO_TCP || proto === IPPROTO_UDP) && !fragment && ihl >= 20 && l3 + ihl + 4 <= end) h = mix(h, u32(buf, l3 + ihl))
    return finish(h)
  }
  if (type === ETH_P_IPV6 && l3 + 40 <= end) {
    for (let i = 8; i < 40; i += 4) h = mix(h, u32(buf, l3 + i))
    const next = buf[l3 + 6] as number
    h = mix(h, next)
    if ((next === IPPROTO_TCP || next === IPPROTO_UDP) && l3 + 44 <= end) h = mix(h, u32(buf, l3 + 40))
    return finish(h)
  }
  // Not IP (ARP, LLDP, anything else): the MACs and the EtherType.
  if (off + ETH_HLEN <= end) h = mix(mix(mix(mix(h, u32(buf, off)), u32(buf, off + 4)), u32(buf, off + 8)), type)
  return finish(h)
}

/** Which of `n` sending sockets a flow's hash picks (its high bits, as Linux udp_flow_src_port scales the hash). */
export function socketIndex (hash: number, n: number): number {
  return Math.floor((hash >>> 0) * n / 0x100000000)
}

/** The ephemeral range source ports are chosen in (RFC 7348 §5: 49152-65535 recommended). */
export const SOURCE_PORT_MIN = 49152
export const SOURCE_PORT_MAX = 65535
