/**
 * The console's capture view: reads the pcap stream GET /api/v1/capture sends
 * (as it arrives) and describes each frame in one line, tcpdump-style:
 *
 *   02:00:00:00:00:01 > 02:00:00:00:00:02, IPv4 10.0.0.1 > 10.0.0.2: ICMP echo request id 7 seq 1, length 98
 *
 * Ethernet (with 802.1Q / 802.1ad tags), ARP, IPv4, IPv6, ICMP, ICMPv6, TCP
 * and UDP ports; anything else by its ethertype. Runs in the browser and in
 * unit tests: no DOM, no Node (Uint8Array and DataView only). Frames are
 * untrusted: every read is bounds-checked, and a short frame says so.
 */

/** One pcap record: when, and the frame. */
export interface PcapRecord { timeMs: number, frame: Uint8Array }

const PCAP_MAGIC_LE = 0xa1b2c3d4
/** The largest record we accept; the switch's snap length is 262144 (capture.ts). */
const MAX_RECORD = 262144

/**
 * Incremental pcap reader: push() the stream's chunks, get whole records
 * back. It holds at most one partial record, so its memory is bounded.
 */
export class PcapReader {
  private buf = new Uint8Array(0)
  private headerSeen = false
  private littleEndian = true
  /** Set when the stream is not a pcap we understand; push() then returns nothing more. */
  error: string | undefined

  push (chunk: Uint8Array): PcapRecord[] {
    if (this.error !== undefined) return []
    const joined = new Uint8Array(this.buf.length + chunk.length)
    joined.set(this.buf, 0)
    joined.set(chunk, this.buf.length)
    const out: PcapRecord[] = []
    const v = new DataView(joined.buffer, joined.byteOffset, joined.byteLength)
    let off = 0
    if (!this.headerSeen) {
      if (joined.length < 24) { this.buf = joined; return out }
      const magic = v.getUint32(0, true)
      if (magic === PCAP_MAGIC_LE) this.littleEndian = true
      else if (v.getUint32(0, false) === PCAP_MAGIC_LE) this.littleEndian = false
      else { this.error = 'not a pcap stream'; return out }
      this.headerSeen = true
      off = 24
    }
    const le = this.littleEndian
    while (joined.length - off >= 16) {
      const sec = v.getUint32(off, le)
      const usec = v.getUint32(off + 4, le)
      const incl = v.getUint32(off + 8, le)
      if (incl > MAX_RECORD) { this.error = `record of ${incl} bytes`; return out }
      if (joined.length - off - 16 < incl) break
      out.push({ timeMs: sec * 1000 + usec / 1000, frame: joined.slice(off + 16, off + 16 + incl) })
      off += 16 + incl
    }
    this.buf = joined.slice(off)
    return out
  }
}

function hex2 (n: number): string { return (n < 16 ? '0' : '') + n.toString(16) }

/** aa:bb:cc:dd:ee:ff */
export function macText (f: Uint8Array, off: number): string {
  let s = ''
  for (let i = 0; i < 6; i++) s += (i > 0 ? ':' : '') + hex2(f[off + i] as number)
  return s
}

function ipv4Text (f: Uint8Array, off: number): string {
  return `${f[off] as number}.${f[off + 1] as number}.${f[off + 2] as number}.${f[off + 3] as number}`
}

/** RFC 5952 text: lower case, longest run of zero groups as "::". */
export function ipv6Text (f: Uint8Array, off: number): string {
  const g: number[] = []
  for (let i = 0; i < 8; i++) g.push(((f[off + 2 * i] as number) << 8) | (f[off + 2 * i + 1] as number))
  let bestAt = -1; let bestLen = 1
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > bestLen) { bestAt = i; bestLen = j - i }
    i = j
  }
  const part = (a: number[]): string => a.map((x) => x.toString(16)).join(':')
  if (bestAt < 0) return part(g)
  return part(g.slice(0, bestAt)) + '::' + part(g.slice(bestAt + bestLen))
}

const u16 = (f: Uint8Array, off: number): number => ((f[off] as number) << 8) | (f[off + 1] as number)
const u32 = (f: Uint8Array, off: number): number => (u16(f, off) * 65536) + u16(f, off + 2)

const ICMP4: Record<number, string> = { 0: 'echo reply', 3: 'destination unreachable', 5: 'redirect', 8: 'echo request', 11: 'time exceeded' }
const ICMP6: Record<number, string> = {
  1: 'destination unreachable', 2: 'packet too big', 3: 'time exceeded', 128: 'echo request', 129: 'echo reply',
  130: 'multicast listener query', 131: 'multicast listener report', 132: 'multicast listener done', 143: 'multicast listener report v2',
  133: 'router solicitation', 134: 'router advertisement', 135: 'neighbor solicitation', 136: 'neighbor advertisement'
}
const TCP_FLAGS = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG']

/** The transport layer (ICMP, TCP, UDP) of an IP packet whose payload starts at `off` and ends at `end`. */
function transport (f: Uint8Array, proto: number, off: number, end: number, src: string, dst: string, v6: boolean): string {
  const len = end - off
  if ((proto === 1 && !v6) || (proto === 58 && v6)) {
    if (len < 4) return `${src} > ${dst}: ICMP${v6 ? '6' : ''} (truncated)`
    const type = f[off] as number
    const name = (v6 ? ICMP6 : ICMP4)[type] ?? `type ${type} code ${f[off + 1] as number}`
    let more = ''
    if (((!v6 && (type === 0 || type === 8)) || (v6 && (type === 128 || type === 129))) && len >= 8) more = ` id ${u16(f, off + 4)} seq ${u16(f, off + 6)}`
    if (v6 && (type === 135 || type === 136) && len >= 24) more = ` ${ipv6Text(f, off + 8)}`
    return `${src} > ${dst}: ICMP${v6 ? '6' : ''} ${name}${more}`
  }
  if (proto === 6) {
    if (len < 20) return `${src} > ${dst}: TCP (truncated)`
    const flagBits = f[off + 13] as number
    const flags = TCP_FLAGS.filter((_, i) => (flagBits & (1 << i)) !== 0).join(',')
    const hdr = ((f[off + 12] as number) >> 4) * 4
    const sep = v6 ? '.' : ':'
    return `${src}${sep}${u16(f, off)} > ${dst}${sep}${u16(f, off + 2)}: TCP [${flags}] seq ${u32(f, off + 4)}${(flagBits & 16) !== 0 ? ` ack ${u32(f, off + 8)}` : ''} len ${Math.max(0, len - hdr)}`
  }
  if (proto === 17) {
    if (len < 8) return `${src} > ${dst}: UDP (truncated)`
    const sep = v6 ? '.' : ':'
    return `${src}${sep}${u16(f, off)} > ${dst}${sep}${u16(f, off + 2)}: UDP len ${Math.max(0, u16(f, off + 4) - 8)}`
  }
  return `${src} > ${dst}: protocol ${proto}`
}

function arp (f: Uint8Array, off: number): string {
  if (f.length - off < 28 || u16(f, off) !== 1 || u16(f, off + 2) !== 0x0800) return 'ARP (not Ethernet/IPv4 or truncated)'
  const op = u16(f, off + 6)
  const spa = ipv4Text(f, off + 14); const tpa = ipv4Text(f, off + 24)
  if (op === 1) return spa === tpa ? `ARP announce ${spa}` : `ARP who-has ${tpa} tell ${spa}`
  if (op === 2) return `ARP reply ${spa} is-at ${macText(f, off + 8)}`
  return `ARP op ${op}`
}

/** One line describing an Ethernet frame. */
export function describeFrame (f: Uint8Array): string {
  if (f.length < 14) return `runt frame, ${f.length} bytes`
  let line = `${macText(f, 6)} > ${macText(f, 0)}, `
  let off = 12
  let type = u16(f, off)
  // 802.1ad outer tags, then 802.1Q: say the VLAN ids, as tcpdump does.
  while ((type === 0x8100 || type === 0x88a8) && f.length - off >= 6) {
    line += `vlan ${u16(f, off + 2) & 0x0fff}, `
    off += 4
    type = u16(f, off)
  }
  off += 2
  const size = `, length ${f.length}`
  if (type < 0x0600) {
    // 802.3 length field with LLC: the spanning tree's BPDUs are the ones a switch shows.
    if (f[off] === 0x42 && f[off + 1] === 0x42) return line + 'STP BPDU' + size
    return line + `802.3 LLC` + size
  }
  if (type === 0x0806) return line + arp(f, off) + size
  if (type === 0x0800) {
    if (f.length - off < 20 || ((f[off] as number) >> 4) !== 4) return line + 'IPv4 (truncated)' + size
    const ihl = ((f[off] as number) & 15) * 4
    const end = Math.min(f.length, off + u16(f, off + 2))
    const fragOff = u16(f, off + 6) & 0x1fff
    const src = ipv4Text(f, off + 12); const dst = ipv4Text(f, off + 16)
    if (fragOff !== 0) return line + `IPv4 ${src} > ${dst}: fragment` + size
    return line + 'IPv4 ' + transport(f, f[off + 9] as number, off + ihl, end, src, dst, false) + size
  }
  if (type === 0x86dd) {
    if (f.length - off < 40) return line + 'IPv6 (truncated)' + size
    const src = ipv6Text(f, off + 8); const dst = ipv6Text(f, off + 24)
    let next = f[off + 6] as number
    let p = off + 40
    const end = Math.min(f.length, p + u16(f, off + 4))
    // Hop-by-hop, routing and destination options headers: follow them to the transport.
    while ((next === 0 || next === 43 || next === 60) && end - p >= 8) {
      next = f[p] as number
      p += ((f[p + 1] as number) + 1) * 8
    }
    return line + 'IPv6 ' + transport(f, next, p, end, src, dst, true) + size
  }
  const names: Record<number, string> = { 0x88cc: 'LLDP', 0x8809: 'slow protocols (LACP)', 0x88f7: 'PTP', 0x8847: 'MPLS' }
  return line + (names[type] ?? `ethertype 0x${type.toString(16).padStart(4, '0')}`) + size
}
