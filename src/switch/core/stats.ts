/**
 * A network's counters (per-port ones live on Port). A leaf: the decision,
 * the readers (drops.ts, the metrics) and the slow-path modules share it
 * without importing the switch.
 */

import { dropCounts } from './reasons'

/** Network-wide counters, plain fields read at scrape time. */
export class SwitchStats {
  forwarded = 0
  floodedBroadcast = 0
  floodedMulticast = 0
  floodedUnknown = 0
  /**
   * Dropped frames by reason (reasons.ts R_*), bumped with the port's own by
   * Switch.drop(). Backpressure: only that of ports that have left (live
   * ports keep their own; drops.ts networkDrops adds them).
   */
  readonly drops = dropCounts()
  /** Offload frames converted for ports without offload: GSO frames segmented, checksums finished. */
  offloadSegmented = 0
  offloadChecksummed = 0
  /** Control messages (BPDUs) not sent because the trunk peer was not reading; ports keep their own dropControl. */
  controlDropped = 0
  loopsDetected = 0
  portsAdded = 0
  portsRemoved = 0
}
