/** Read a libpcap stream (tests only). */
export interface PcapRecord { tsSec: number, tsUsec: number, frame: Buffer }

export function parsePcap (buf: Buffer): { linktype: number, records: PcapRecord[] } {
  if (buf.length < 24 || buf.readUInt32LE(0) !== 0xa1b2c3d4) throw new Error('not a little-endian microsecond pcap')
  const linktype = buf.readUInt32LE(20)
  const records: PcapRecord[] = []
  let off = 24
  while (off + 16 <= buf.length) {
    const len = buf.readUInt32LE(off + 8)
    if (off + 16 + len > buf.length) throw new Error('truncated pcap record')
    records.push({ tsSec: buf.readUInt32LE(off), tsUsec: buf.readUInt32LE(off + 4), frame: buf.subarray(off + 16, off + 16 + len) })
    off += 16 + len
  }
  return { linktype, records }
}
