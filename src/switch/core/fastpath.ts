/**
 * The rule of the native fast path (native/fastpath.cc, io/fast-path.ts):
 * when a frame the slow path forwarded may be forwarded from then on by the
 * native thread alone, as Open vSwitch's datapath caches the slow path's
 * decision as an exact-match flow after an upcall, and its revalidators
 * re-run that decision to see whether a flow still holds.
 *
 * A flow (ingress, dst, src) -> egress is installed only from a decision
 * handleFrame() just took (Switch: the offer after a known-unicast forward),
 * and is kept only while that same decision, run dry on the flow's key
 * (revalidate()), still forwards to the same egress. So the fast path cannot
 * disagree with the decision by construction; what is left here is what is
 * about the fast path itself (mayShortcut; the offer is made only between
 * two TAPs of the same fast path): untagged access ports of the flow's VLAN (native code neither
 * tags nor matches tagged frames), with no link condition (the edge is JS),
 * no byte rate on either port (native code meters nothing), the same offload, no capture on
 * the network, a source learned on and claimed by the ingress (native code
 * learns nothing; the tick refreshes its age), and an ingress the network's
 * guards do not inspect (a flow matches MACs, not ARP or DHCP). Anything that
 * changes a decision calls Switch.invalidate() (every flow goes at once), and
 * each tick revalidates the remaining flows.
 *
 * No I/O; a revalidation allocates nothing.
 */

import { MODE_ACCESS, type Port } from './port'
import { S_LOOKUP, S_EGRESS, S_DROP, type DecisionObserver } from './observe'
import type { Switch } from './switch'

export type { FastPathHooks, FastPathStats } from './port'

/** Whether a flow from `ingress` to `egress` in `vid` for `src` is something the native fast path can carry. */
export function mayShortcut (sw: Switch, ingress: Port, egress: Port, vid: number, src: number): boolean {
  if (ingress === egress || sw.taps.length !== 0) return false
  if (ingress.mode !== MODE_ACCESS || egress.mode !== MODE_ACCESS || ingress.pvid !== vid || egress.pvid !== vid) return false
  if (ingress.edge !== null || egress.edge !== null) return false
  if (ingress.rateBps !== 0 || egress.rateBps !== 0 || ingress.offload !== egress.offload) return false
  if (sw.guard !== null && sw.guard.inspects(ingress)) return false
  const s = sw.fdb.peek(vid, src)
  return s !== undefined && !s.isStatic && s.port === ingress && s.claimant === ingress
}

/** What a dry run of the decision did with a flow's key. */
class FlowProbe implements DecisionObserver {
  lookup: Port | undefined = undefined
  egress: Port | undefined = undefined
  egresses = 0
  dropped = false

  reset (): void { this.lookup = undefined; this.egress = undefined; this.egresses = 0; this.dropped = false }

  step (code: number, _a: number, _b: number, port: Port | undefined): void {
    if (code === S_LOOKUP) this.lookup = port
    else if (code === S_EGRESS) { this.egress = port; this.egresses++ } else if (code === S_DROP) this.dropped = true
  }
}

const probe = new FlowProbe()
/** The flow's key as the smallest untagged frame: dst, src, an ethertype no guard reads. */
const key = Buffer.alloc(60)
key.writeUInt16BE(0x88b5, 12)

/**
 * Whether the flow (ingress, dst, src) -> egress in `vid` still holds: the
 * fast path may carry it, and the decision run dry on its key forwards it
 * to `egress` and nowhere else.
 */
export function revalidate (sw: Switch, ingress: Port, egress: Port, vid: number, dst: number, src: number): boolean {
  if (!mayShortcut(sw, ingress, egress, vid, src)) return false
  key.writeUIntBE(dst, 0, 6)
  key.writeUIntBE(src, 6, 6)
  probe.reset()
  sw.handleFrame(ingress, key, 0, key.length, -1, probe, false)
  return !probe.dropped && probe.lookup === egress && probe.egress === egress && probe.egresses === 1
}
