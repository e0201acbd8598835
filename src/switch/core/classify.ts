/**
 * Steps of the forwarding decision that the frame path (switch.ts
 * handleFrame) and the frame trace (trace.ts) both take, so the trace cannot
 * drift from what the switch does: VLAN classification, the egress tagging,
 * and which IEEE link-local groups a network forwards. Pure functions of
 * their arguments; they allocate nothing (results are integers).
 */

import { ETH_HLEN } from '../../common/ethernet'
import { ETH_P_8021Q, TPID_OFFSET, isTagTpid, OP_ASIS, OP_STRIP, OP_PUSH, OP_RETAG } from '../../common/vlan'
import { MODE_TRUNK, type Port } from './port'

/** classify() result: the VID in the low 12 bits, and these flags. */
export const CLASS_VID = 0xfff
/** The frame carries an 802.1Q tag. */
export const CLASS_TAGGED = 0x1000
/** ... whose VID is not 0 (not a priority tag): the frame's VLAN is its tag's. */
export const CLASS_TAG_VID = 0x2000
/** Drop: too short for its tag (runt). */
export const CLASS_RUNT = 0x4000
/** Drop: a second tag right behind the first (double-tag VLAN hopping). */
export const CLASS_DOUBLE_TAG = 0x8000
/** Drop: VLAN 0 or 4095, or one the port is not a member of; the VID bits say which. */
export const CLASS_NOT_MEMBER = 0x10000
export const CLASS_DROP = CLASS_RUNT | CLASS_DOUBLE_TAG | CLASS_NOT_MEMBER

/**
 * VLAN classification of buf[off, off + len) (at least ETH_HLEN bytes) on
 * `ingress`: the tag's VID, or the port's pvid for untagged and
 * priority-tagged frames; then membership.
 */
export function classify (ingress: Port, buf: Buffer, off: number, len: number): number {
  let c = 0
  let vid = ingress.pvid
  if (buf.readUInt16BE(off + TPID_OFFSET) === ETH_P_8021Q) {
    if (len < ETH_HLEN + 4) return CLASS_RUNT
    // Double-tag VLAN hopping: [8100 VID 1 or 0][8100 VID 10] from an access port in VLAN 1 would
    // leave a trunk whose native VLAN is 1 with its outer tag stripped, and the peer would take it
    // as VLAN 10. We carry one tag; a tag right behind it is dropped wherever it enters (issue 12).
    const tagVid = buf.readUInt16BE(off + TPID_OFFSET + 2) & 0xfff
    if (isTagTpid(buf.readUInt16BE(off + TPID_OFFSET + 4))) return CLASS_DOUBLE_TAG | tagVid
    c = CLASS_TAGGED
    if (tagVid !== 0) { c |= CLASS_TAG_VID; vid = tagVid }
  }
  if (vid === 0 || vid === 0xfff || ingress.member[vid] === 0) return CLASS_NOT_MEMBER | vid
  return c | vid
}

/** The egress op (common/vlan.ts) for a frame of `vid` leaving by `egress`, tagged or untagged as its mode says. */
export function egressOp (egress: Port, tagged: boolean, tagVid: number, vid: number): number {
  const tagOut = egress.mode === MODE_TRUNK && vid !== egress.pvid
  return tagOut === tagged ? (tagged && tagVid !== vid ? OP_RETAG : OP_ASIS) : tagOut ? OP_PUSH : OP_STRIP
}

/**
 * The low nibble X of an IEEE 802.1D reserved group address
 * 01:80:c2:00:00:0X at buf[off], or -1 for any other destination. Bridges do
 * not forward these by default (802.1D 7.12.6; Linux br_handle_frame).
 */
export function linkLocalGroup (buf: Buffer, off: number): number {
  if (buf[off] !== 0x01 || buf[off + 1] !== 0x80 || buf[off + 2] !== 0xc2 || buf[off + 3] !== 0 || buf[off + 4] !== 0) return -1
  const x = buf[off + 5] as number
  return x < 16 ? x : -1
}

/** 01:80:c2:00:00:00, spanning-tree BPDUs. */
export const GROUP_STP = 0

/**
 * Names for the groups in `networks[].forwardGroups` (any X from 0 to 15
 * may also be given as a number): STP BPDUs, MAC Control (pause), Slow
 * Protocols (LACP, marker, OAM), 802.1X port access (EAPOL), LLDP (also
 * PTP peer delay).
 */
export const LINK_LOCAL_GROUPS: Readonly<Record<string, number>> = Object.freeze({ stp: 0x00, pause: 0x01, lacp: 0x02, '8021x': 0x03, lldp: 0x0e })

/**
 * Whether a network with forwarding mask `mask` (bit X: flood 01:80:c2:00:00:0X)
 * floods group `x` now. STP BPDUs of endpoints only while the network runs
 * no spanning tree of its own (no trunks): a switch that runs its own tree
 * does not pass others' BPDUs through it (docs/TRACE.md "Lab protocols").
 */
export function forwardsGroup (mask: number, x: number, trunks: number): boolean {
  return ((mask >> x) & 1) === 1 && (x !== GROUP_STP || trunks === 0)
}
