/**
 * 802.1Q on the frame path. A frame enters with or without a tag; it leaves
 * each egress port tagged or untagged as that port's mode says. The switch
 * decides an egress op per port; this module writes the frame that op asks
 * for into a destination buffer, in one pass, with no allocation.
 *
 * Tag layout after the source MAC: TPID 0x8100 (2) | PCP(3) DEI(1) VID(12) (2).
 */

/** TPID of an 802.1Q tag. */
export const ETH_P_8021Q = 0x8100
/** TPIDs of the other tags a frame may carry inside an 802.1Q tag: 802.1ad S-tag, and the old pre-standard Q-in-Q one. */
export const ETH_P_8021AD = 0x88a8
export const ETH_P_QINQ1 = 0x9100

/** Is `type` (the EtherType after a tag) another tag? */
export function isTagTpid (type: number): boolean {
  return type === ETH_P_8021Q || type === ETH_P_8021AD || type === ETH_P_QINQ1
}

/** Offset of the TPID (or the EtherType of an untagged frame). */
export const TPID_OFFSET = 12
/** Lowest and highest usable VLAN ids (0 = priority tag, 4095 reserved). */
export const VID_MIN = 1
export const VID_MAX = 4094
export const VLAN_COUNT = 4096

/** Egress ops: the frame goes out as it came. */
export const OP_ASIS = 0
/** Remove the tag (tagged in, untagged out). */
export const OP_STRIP = 1
/** Insert a tag carrying `vid` (untagged in, tagged out). */
export const OP_PUSH = 2
/** Keep the tag but set its VID to `vid` (priority-tagged in, tagged out). */
export const OP_RETAG = 3

/** Length of the frame `op` produces from a frame of `len` bytes. */
export function egressLength (len: number, op: number): number {
  return op === OP_STRIP ? len - 4 : op === OP_PUSH ? len + 4 : len
}

/**
 * Write buf[off, off + len) transformed by `op` into `out` at `outOff`;
 * returns the number of bytes written. The caller ensures room.
 */
export function writeEgress (out: Buffer, outOff: number, buf: Buffer, off: number, len: number, op: number, vid: number): number {
  if (op === OP_ASIS) {
    buf.copy(out, outOff, off, off + len)
    return len
  }
  if (op === OP_STRIP) {
    buf.copy(out, outOff, off, off + TPID_OFFSET)
    buf.copy(out, outOff + TPID_OFFSET, off + TPID_OFFSET + 4, off + len)
    return len - 4
  }
  if (op === OP_PUSH) {
    buf.copy(out, outOff, off, off + TPID_OFFSET)
    out.writeUInt16BE(ETH_P_8021Q, outOff + TPID_OFFSET)
    out.writeUInt16BE(vid, outOff + TPID_OFFSET + 2)
    buf.copy(out, outOff + TPID_OFFSET + 4, off + TPID_OFFSET, off + len)
    return len + 4
  }
  // OP_RETAG: keep PCP/DEI, replace the VID.
  buf.copy(out, outOff, off, off + len)
  const tci = buf.readUInt16BE(off + TPID_OFFSET + 2)
  out.writeUInt16BE((tci & 0xf000) | vid, outOff + TPID_OFFSET + 2)
  return len
}
