/**
 * What the modules around the decision (the spanning tree, loop protection,
 * link conditions at the port's edge) may ask of a network. Switch
 * implements it; they import this instead of switch.ts, so that the switch
 * can import them and no type goes round in a circle.
 */

import type { Port } from './port'
import type { Fdb } from './fdb'
import type { SwitchStats } from './stats'
import type { HeldBudget } from './held-queue'

export interface Network {
  readonly name: string
  readonly fdb: Fdb
  readonly stats: SwitchStats
  /** What link-condition queues may hold. */
  readonly heldBudget: HeldBudget
  /** The switch clock, ms. */
  readonly nowMs: number
  /** Seconds loop protection blocks a port. */
  readonly loopHoldDown: number
  /** True while a port's edge hands out held frames (Switch.releasing). */
  releasing: boolean
  /** The fine clock link conditions run on, ms. */
  preciseClock: () => number
  /** Every cached decision goes (Switch.invalidate). */
  invalidate: () => void
  /** The one writer of Port.blocked (Switch.setBlocked). */
  setBlocked: (port: Port, bit: number, on: boolean) => void
  /** Count, log and report one dropped frame (Switch.drop). */
  drop: (port: Port, reason: number, buf: Buffer, off: number, len: number, vid: number) => void
  /** The forwarding decision for one frame from `ingress` (Switch.handleFrame). */
  handleFrame: (ingress: Port, buf: Buffer, off: number, len: number, hdrOff: number) => void
  /** End of an ingress message: send what the decision queued (Switch.flushDirty). */
  flushDirty: () => void
}
