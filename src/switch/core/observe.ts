/**
 * Observing the forwarding decision (Open vSwitch's xlate_actions serves
 * forwarding, ofproto/trace and the revalidators alike): Switch.handleFrame
 * given an observer tells it each step it takes, as a small integer code
 * with integer arguments, and each drop (Switch.drop). With commit false the
 * decision changes nothing (a dry run); the frame trace
 * (control/trace.ts) renders the steps in words and the fast path's
 * revalidation (fastpath.ts) reads the egress.
 *
 * Steps are announced as they are reached: a step followed by another
 * passed; a step followed by drop() is where the frame was dropped. With no
 * observer the decision pays one null check per step and allocates nothing.
 */

import type { Port } from './port'

/** The ingress port is checked (blocked: the next call is a drop). */
export const S_INGRESS = 0
/** The port's byte rate: a = bytes in its bucket now. Only for a port with a rate. */
export const S_RATE = 1
/** Validation (length, source MAC, offload header, a token's MACs). */
export const S_VALIDATE = 2
/** VLAN classification: a = classify.ts's packed result. */
export const S_VLAN = 3
/** The network's guards: a = their verdict (GUARD_PASS or a reason). Only on a guarded network. */
export const S_GUARD = 4
/** Learning: a = fdb.ts LEARN_* result (what it did, or would do); port = the port loop protection blocks, if any. */
export const S_LEARN = 5
/** Lookup of a unicast destination: port = where it lives (undefined: unknown). */
export const S_LOOKUP = 6
/** A group destination: a = storm.ts KIND_BROADCAST or KIND_MULTICAST. */
export const S_GROUP = 7
/** An IEEE link-local group: a = its last byte. */
export const S_LINK_LOCAL = 8
/** Storm control: a = kind, b = tokens in its bucket. Only for a limited kind. */
export const S_STORM = 9
/** The frame goes out of `port` (once per egress; forward or flood). */
export const S_EGRESS = 10
/** Dropped: a = the reason (reasons.ts), b = the VID; port = the port counted. */
export const S_DROP = 11
/**
 * Split horizon: the frame came in on a mesh port (a link to another replica
 * of the fleet), so it leaves by no other mesh port. a = 0: a flood, which
 * reaches local ports only; a = 1: known unicast to another mesh port (port),
 * dropped.
 */
export const S_SPLIT_HORIZON = 12

export interface DecisionObserver {
  step: (code: number, a: number, b: number, port: Port | undefined) => void
}
