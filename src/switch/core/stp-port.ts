/**
 * One trunk's spanning-tree state, the book the tree keeps for each of its
 * ports (Port.stp), and the types it holds. A leaf: the port carries it
 * without importing the tree (stp.ts), which imports the port.
 */

/** BPDUs accepted from one port in a burst (stp.ts BPDU_RATE a second). */
export const BPDU_BURST = 20

export type StpRole = 'root' | 'designated' | 'alternate'

/** A priority vector: lower is better, compared field by field. */
export interface Vector {
  root: string
  cost: number
  bridge: string
  port: number
}

/** One trunk's spanning-tree state (Port.stp). */
export class StpPort {
  role: StpRole = 'designated'
  forwarding = false
  /** When the port last became root or designated (it forwards FORWARD_DELAY_MS later). */
  since: number
  /** The best vector the far side sent, and when; undefined when none is current. */
  info: Vector | undefined
  infoAt = 0
  /** Our own BPDUs come back on it: a trunk from this switchd to itself, never to forward. */
  looped = false
  /** Root guard: it may not be the root port; a better root heard on it makes it discard. */
  rootGuard = false
  /** Root guard has it discarding: its peer claims a better root than ours. */
  rootInconsistent = false
  /** Times root guard blocked it. */
  rootGuardBlocks = 0
  bpdusIn = 0
  bpdusOut = 0
  badBpdus = 0
  /** BPDUs over the port's rate (BPDU_RATE), ignored. */
  bpdusDropped = 0
  /** Token bucket for BPDU_RATE, refilled from the switch clock. */
  bpduTokens = BPDU_BURST
  bpduRefilledAt: number

  constructor (now: number) { this.since = now; this.bpduRefilledAt = now }
}
