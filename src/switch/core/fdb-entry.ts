/**
 * The fdb's entries, counters, options and learn() answers (fdb.ts is the
 * table). A leaf beside it, so that what reads an entry imports no table.
 *
 * Port security: a port may hold at most `port.maxMacs` entries; a new MAC
 * beyond that is refused (LEARN_LIMIT) and the caller drops the frame.
 *
 * MAC moves and spoofing (issue 12, finding 11): a MAC seen on a second port
 * while its own port is still sending it is not moved. The frame is refused
 * (LEARN_HELD) and the MAC's unicast stays where it is, as Cisco
 * port-security treats an address secured on one port and seen on another:
 * a violation on the port where it was seen. The MAC moves once its port has
 * sent nothing from it for `moveHold` ms (a migrated VM goes quiet on its old
 * port), and at once back to its `home`: the port it was learned on, which
 * changes only when the MAC has lived elsewhere for the ageing time. So a
 * port spoofing a station's MAC neither takes its unicast while the station
 * keeps sending nor can get the station's own port blocked. moveHold 0 is
 * Linux's behaviour (move at once, home still protected).
 *
 * Loop detection: a MAC claimed by different ports, alternately, `loopMoves`
 * times within `loopWindow` ms is flapping, the signature of a forwarding
 * loop or of spoofing (LEARN_FLAP; `flapFrom` is the previous claimant and
 * `flapHome` the MAC's home, which the caller never blocks). A single move (a
 * migrated VM) is normal.
 *
 * Duplicate MACs (issue 15): two stations with one MAC (cloned VMs) take
 * turns as its claimant, each still sending. A claimant change between the
 * MAC's home and one other port (a rival) is a turn; three turns spread over
 * more than the loop window, with the rival heard from within the ageing
 * time, is a duplicate: logged (`duplicate_mac`, both port names) and counted
 * once per DUP_REPORT_MS per MAC. A single move (a migrated VM) is one turn;
 * a loop takes turns faster than loopMoves per loopWindow and is reported
 * as a loop instead (a flap starts the count again). Detection never drops a
 * frame: what happens to them is the moves and holds above.
 *
 */

import { LRUCache } from 'lru-cache'
import type { Port } from './port'

export const DEFAULT_AGEING_TIME = 300
export const DEFAULT_MAX_ENTRIES = 8192
export const DEFAULT_LOOP_MOVES = 5
export const DEFAULT_LOOP_WINDOW_MS = 1000
/** A MAC reported as duplicate is reported again at most this often. */
export const DUP_REPORT_MS = 60_000
/** How long a MAC's port must have been quiet before another port may take the MAC. */
export const DEFAULT_MOVE_HOLD_MS = 1000
/** Static entries per VLAN table, on top of the dynamic budget. */
export const MAX_STATIC_ENTRIES = 1024

/** learn() results. */
export const LEARN_OK = 0
/** The port is at its MAC limit: drop the frame (port security). */
export const LEARN_LIMIT = 1
/** The MAC is flapping between ports: a loop. `flapFrom` is the port it left. */
export const LEARN_FLAP = 2
/** The MAC is static on another port: drop the frame. */
export const LEARN_PINNED = 3
/** The MAC lives on another port that is still sending it: drop the frame (it is not moved). */
export const LEARN_HELD = 4
/** Both: the frame is refused and the MAC is flapping. Test bits with LEARN_FLAP / LEARN_HELD. */
export const LEARN_FLAP_HELD = LEARN_FLAP | LEARN_HELD

export interface FdbOptions {
  /** Seconds an entry may stay idle before it expires (>= 1). */
  ageingTime?: number
  /** Most dynamic entries in the network (>= 1). */
  maxEntries?: number
  /** Moves within loopWindow that mean a loop (>= 2). */
  loopMoves?: number
  /** Milliseconds. */
  loopWindow?: number
  /** Milliseconds a MAC's port must have been quiet before another port may take it (0 = at once). */
  moveHold?: number
  /** Network name, for logs. */
  name?: string
}

/** One learned MAC. Mutated in place; allocated only on first sighting. */
export class FdbEntry {
  /** Changes of claimant within the loop window, and when that window began (ms). */
  moves = 0
  movesSince = 0
  /** Where the MAC lives: its station's own port. It reclaims the MAC at once and loop protection spares it. */
  home: Port
  /** The last port that sent this MAC as a source (it may have been refused). */
  claimant: Port
  /** When `port` last sent the MAC (ms), and when it last did from home before it moved away. */
  seenMs: number
  leftHomeMs = 0
  /** Duplicate detection: the port taking turns with home, turns since `rivalSinceMs`, the last turn, the last report. */
  rival: Port | null = null
  turns = 0
  rivalSinceMs = 0
  rivalSeenMs = 0
  dupReportedMs = -DUP_REPORT_MS
  constructor (public port: Port, public updated: number, readonly vid: number, readonly mac: number, readonly isStatic: boolean, nowMs = 0) {
    this.home = port
    this.claimant = port
    this.seenMs = nowMs
  }

  /**
   * The claimant changed from `from` to `to` (not a flap), at `nowMs`: a turn
   * if it is between the MAC's home and its rival. Returns the rival when
   * this turn makes a duplicate to report (see the header), else null.
   */
  turn (from: Port, to: Port, nowMs: number, loopWindow: number, ageingMs: number): Port | null {
    const rival = from === this.home ? to : to === this.home ? from : null
    if (rival === null) { this.rival = null; this.turns = 0; return null }
    if (rival !== this.rival || this.turns === 0 || nowMs - this.rivalSeenMs > ageingMs) {
      this.rival = rival; this.turns = 0; this.rivalSinceMs = nowMs
    }
    this.rivalSeenMs = nowMs
    if (++this.turns < 3 || nowMs - this.rivalSinceMs <= loopWindow || nowMs - this.dupReportedMs < DUP_REPORT_MS) return null
    this.dupReportedMs = nowMs
    return rival
  }
}

export class FdbStats {
  learned = 0
  moved = 0
  expired = 0
  evicted = 0
  /** Frames refused because their port was at its limit. */
  limited = 0
  /** Frames refused because their MAC lives on another port that is still sending it. */
  held = 0
  flaps = 0
  /** MACs reported as claimed by two ports at once (duplicate_mac). */
  duplicates = 0
  /** MACs sent by a local port and by a mesh port (another replica) in turn: a station on two replicas, or a spoofer. */
  meshConflicts = 0
}

/** A read-only view of one entry for admin tools (slow path). */
export interface FdbRow { vid: number, mac: number, port: Port, age: number, isStatic: boolean }

/**
 * One VLAN's table: an lru-cache with the ageing time as its TTL on the
 * switch's clock (`perf`, ms). `maxSize` is only a backstop (the fdb's own
 * budget evicts first); maxSize, not max: max preallocates typed arrays for
 * that many entries (~430 KiB here) in every table.
 */
export function newTable (maxSize: number, ttlMs: number, perf: { now: () => number }, dispose: (e: FdbEntry, reason: LRUCache.DisposeReason) => void): LRUCache<number, FdbEntry> {
  return new LRUCache<number, FdbEntry>({
    maxSize,
    sizeCalculation: () => 1,
    ttl: ttlMs,
    ttlAutopurge: false,
    ttlResolution: 0,
    updateAgeOnGet: false,
    allowStale: false,
    perf,
    dispose: (entry, _mac, reason) => { dispose(entry, reason) }
  })
}
