/**
 * The rule of the native fast path (native/fastpath.cc, io/fast-path.ts):
 * when a frame the slow path forwarded may be forwarded from then on by the
 * native thread alone, as Open vSwitch's datapath caches the slow path's
 * decision as an exact-match flow after an upcall.
 *
 * A flow (ingress, dst, src) -> egress is a copy of handleFrame()'s known
 * unicast decision that is only right while everything else that decision
 * looks at does nothing: so both ports forward (blocked === 0), are untagged
 * access ports of the same VLAN (egress op ASIS; tagged frames always miss in
 * native code), have no link condition and no byte rate, the network has no
 * capture, `src` is learned on the ingress and claimed by it (learning would
 * change nothing), `dst` lives on the egress (dynamic or static), and a
 * token's MAC list allows `src`, and the network's guards do not inspect the
 * ingress (guard.ts: a flow matches MACs, not ARP or DHCP, so on a guarded
 * network only trusted ports get flows). Storm control only meters floods. Anything
 * that changes one of these calls Switch.invalidate() (every flow goes at
 * once), and each tick revalidates the remaining flows with this function.
 *
 * Pure: no I/O, nothing allocated.
 */

import { MODE_ACCESS, type Port } from './port'
import type { Switch } from './switch'


/** What the switch tells the io side that runs a network's fast path (io/fast-path.ts). */
export interface FastPathHooks {
  /** handleFrame() just forwarded a known-unicast untagged frame from `ingress` to `egress`: install a flow if the rule allows. */
  offer: (ingress: Port, egress: Port, vid: number, dst: number, src: number) => void
  /** Something that may change a decision happened: drop every flow now. */
  flush: () => void
  /** The tick, before fdb expiry: fold native counters in, refresh the ages of MACs that hit, revalidate. */
  sync: () => void
  /** For the API: syncs first. */
  stats: () => FastPathStats
}

export interface FastPathStats {
  /** Flows in force now. */
  flows: number
  /** Frames the native thread forwarded (also in the ports' and the network's counters). */
  forwarded: number
  /** Frames it handed to the slow path, and those it dropped because the slow path was that far behind. */
  misses: number
  missDropped: number
}

export function mayShortcut (sw: Switch, ingress: Port, egress: Port, vid: number, dst: number, src: number): boolean {
  if (ingress === egress || sw.taps.length !== 0) return false
  if (ingress.blocked !== 0 || egress.blocked !== 0) return false
  if (ingress.mode !== MODE_ACCESS || egress.mode !== MODE_ACCESS || ingress.pvid !== vid || egress.pvid !== vid) return false
  if (ingress.member[vid] !== 1 || egress.member[vid] !== 1) return false
  if (ingress.condIn !== null || ingress.condOut !== null || egress.condIn !== null || egress.condOut !== null) return false
  if (ingress.rateBps !== 0 || egress.rateBps !== 0) return false
  if (ingress.offload !== egress.offload) return false
  if (ingress.allowedMacs !== null && !ingress.allowedMacs.has(src)) return false
  if (sw.guard !== null && sw.guard.inspects(ingress)) return false
  const s = sw.fdb.peek(vid, src)
  if (s === undefined || s.isStatic || s.port !== ingress || s.claimant !== ingress) return false
  const d = sw.fdb.peek(vid, dst)
  return d !== undefined && d.port === egress
}
