/**
 * A network's options and the small types its users share (a leaf, so the
 * decision, the switch and their users import it without a circle).
 */

import type { FdbOptions } from './fdb'
import type { DropLog } from './droplog'
import type { HeldBudget } from './held-queue'
import type { Port } from './port'

export const DEFAULT_LOOP_HOLD_DOWN = 30

export interface SwitchOptions extends FdbOptions {
  /** Network name, for logs. */
  name?: string
  /** Largest frame forwarded, Ethernet header and any tag included (default 1518). */
  maxFrameSize?: number
  /** Seconds a port stays blocked after loop protection blocked it. */
  loopHoldDown?: number
  /** This switchd's spanning-tree bridge id (stp.ts); random by default. */
  bridgeId?: string
  /** Where dropped frames are recorded (shared by a switchd's networks); a small one of its own by default. */
  dropLog?: DropLog
  /** Bit X set: flood 01:80:c2:00:00:0X (classify.ts forwardsGroup); default DEFAULT_GROUP_FWD_MASK. */
  groupFwdMask?: number
  /** What link-condition queues may hold (shared by a switchd's networks); one of its own with the defaults otherwise. */
  heldBudget?: HeldBudget
}

/** Link-local groups flooded by default: STP BPDUs only (while the network has no trunks), as a Linux bridge without STP. */
export const DEFAULT_GROUP_FWD_MASK = 0x0001

/**
 * A live capture (capture.ts): offered every frame the switch forwards or
 * floods while it is attached. `egress` is undefined for a flood.
 */
export interface FrameTap {
  offer (ingress: Port, egress: Port | undefined, vid: number, buf: Buffer, off: number, len: number): void
}
