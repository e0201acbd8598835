/**
 * The forwarding database of one network: (VLAN, source MAC) -> port,
 * learned from traffic.
 *
 * Keys are 48-bit MACs as integers (ethernet.ts macAt): a Map lookup on a
 * number is 2.5-3.5x faster than on a hex string and allocates nothing. VLAN
 * and MAC do not fit one exact double (60 bits), so there is one table per
 * VLAN, as 802.1Q's independent VLAN learning has it. A table exists only
 * while it holds entries: it is created by the first entry and dropped when
 * its last one goes (expiry, port removal, flush), and it grows with what it
 * holds (no preallocation), so a frame in each of 4094 VLANs costs what 4094
 * entries cost, not 4094 full-size tables (issue 12, finding 12). There are
 * never more tables than entries.
 *
 * Each table is an lru-cache with per-entry TTL. The TTL is the ageing time
 * (802.1D / Linux `ageing_time`, default 300 s): an entry whose MAC sent
 * nothing that long expires. It is refreshed when the MAC is seen again, but at
 * most once per second, so a busy MAC costs one Map lookup per frame and one
 * lru-cache `set` per second. Time is the switch's clock, injected as
 * lru-cache's `perf`; expiry runs on the switch's timer (`expire()`, Linux
 * br_fdb_cleanup), and `lookup()` ignores entries already stale.
 *
 * Capacity is one budget for the whole network (`maxEntries`, Open vSwitch's
 * 8,192). When it is full, learning evicts the oldest entry of the port that
 * holds the most (OVS mac-learning fairness), so a port spraying random
 * source MACs pushes out its own entries, not everyone else's. The table keeps
 * each port's entries in refresh order (its per-port book, as Open vSwitch's
 * mac_learning_port; Port only carries the count) so that eviction is
 * O(ports).
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
 * Dry runs (the frame trace, the fast path's revalidation): learn() with
 * `commit` false answers exactly what it would do now and changes nothing
 * (no entry, no age, no move, no counter, no log); `dryVictim` is then the
 * entry learning would have evicted, if any. One function, so the trace
 * cannot disagree with learning.
 *
 * Static entries (from configuration) never age, are never evicted, do not
 * count against a port's limit, and a static MAC is not learned elsewhere.
 */

import { LRUCache } from 'lru-cache'
import type { Port } from './port'
import { VLAN_COUNT } from '../../common/vlan'
import { formatMac } from '../../common/ethernet'
import { logger } from '../../common/log'

const log = logger('fdb')

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
}

/** A read-only view of one entry for admin tools (slow path). */
export interface FdbRow { vid: number, mac: number, port: Port, age: number, isStatic: boolean }

const PEEK = { allowStale: false }
const STATIC = { ttl: 0 }
const NO_ENTRIES: ReadonlySet<FdbEntry> = new Set()

export class Fdb {
  readonly ageingTime: number
  readonly maxEntries: number
  readonly name: string
  /** Loop detection thresholds; changeable on configuration reload. */
  loopMoves: number
  loopWindow: number
  moveHold: number
  readonly stats = new FdbStats()
  /** Set when learn() returns LEARN_FLAP: the port the MAC moved away from, and the port it was first learned on. */
  flapFrom: Port | undefined
  flapHome: Port | undefined
  /** Dynamic entries in all VLANs. */
  size = 0
  /** After a dry learn() of a new MAC into a full table: the entry it would evict (else undefined). */
  dryVictim: FdbEntry | undefined
  /**
   * Called when an entry is created, moves to another port or goes (expiry,
   * eviction, delete, flush, static change): the switch drops the flows of
   * its fast path (Switch.invalidate). Never for a refresh.
   */
  onChange: (() => void) | null = null
  private nowMs: number
  private nowS: number
  private readonly tables: Array<LRUCache<number, FdbEntry> | undefined> = new Array(VLAN_COUNT).fill(undefined)
  /** Tables that exist (each holds at least one entry, but for a moment inside learn()). */
  private tableCount = 0
  /**
   * The per-port books: each port holding at least one dynamic entry, with
   * its entries in refresh order (oldest first). The candidates for fair eviction.
   */
  private readonly books = new Map<Port, Set<FdbEntry>>()

  constructor (opts: FdbOptions = {}, nowMs = 0) {
    this.ageingTime = opts.ageingTime ?? DEFAULT_AGEING_TIME
    this.maxEntries = opts.maxEntries ?? DEFAULT_MAX_ENTRIES
    this.loopMoves = opts.loopMoves ?? DEFAULT_LOOP_MOVES
    this.loopWindow = opts.loopWindow ?? DEFAULT_LOOP_WINDOW_MS
    this.moveHold = opts.moveHold ?? DEFAULT_MOVE_HOLD_MS
    this.name = opts.name ?? 'default'
    this.nowMs = nowMs
    this.nowS = Math.floor(nowMs / 1000)
  }

  /** Advance the clock (ms, any epoch). */
  tick (nowMs: number): void {
    this.nowMs = nowMs
    this.nowS = Math.floor(nowMs / 1000)
  }

  /**
   * Record that `mac` was seen as a source on `port` in VLAN `vid`; see
   * LEARN_*. With `commit` false, only answer what it would do (see the header).
   */
  learn (vid: number, mac: number, port: Port, commit = true): number {
    let table = this.tables[vid]
    const e = table === undefined ? undefined : table.peek(mac, PEEK)
    if (e !== undefined && table !== undefined) {
      if (e.port === port) {
        if (commit) {
          e.seenMs = this.nowMs
          if (e.updated !== this.nowS && !e.isStatic) this.refresh(table, e)
        }
        return e.claimant === port ? LEARN_OK : this.reclaim(e, port, commit)
      }
      if (e.isStatic) return LEARN_PINNED
      return this.claim(table, e, port, commit)
    }
    if (port.fdbEntries >= port.maxMacs) { if (commit) this.stats.limited++; return LEARN_LIMIT }
    if (!commit) {
      this.dryVictim = this.size >= this.maxEntries ? this.oldestOfBusiest(port) : undefined
      return LEARN_OK
    }
    if (this.size >= this.maxEntries) {
      this.evictFromBusiestPort(port)
      // Eviction may have emptied, and dropped, this very table.
      table = this.tables[vid]
    }
    if (table === undefined) table = this.createTable(vid)
    const entry = new FdbEntry(port, this.nowS, vid, mac, false, this.nowMs)
    this.hold(entry)
    // A stale entry still in the table is replaced: lru-cache disposes it as 'set'.
    table.set(mac, entry)
    this.stats.learned++
    if (this.onChange !== null) this.onChange()
    return LEARN_OK
  }

  /** The port `mac` was learned on in VLAN `vid`, or undefined (unknown or aged out). */
  lookup (vid: number, mac: number): Port | undefined {
    const table = this.tables[vid]
    if (table === undefined) return undefined
    const e = table.peek(mac, PEEK)
    return e === undefined ? undefined : e.port
  }

  /**
   * `port` sent `mac` in `vid` through the native fast path since the last
   * tick: refresh its age as learn() would, if the entry is still `port`'s
   * and claimed by it (a flow exists only then). Returns whether it did.
   */
  touch (vid: number, mac: number, port: Port): boolean {
    const table = this.tables[vid]
    const e = table === undefined ? undefined : table.peek(mac, PEEK)
    if (e === undefined || table === undefined || e.isStatic || e.port !== port || e.claimant !== port) return false
    e.seenMs = this.nowMs
    if (e.updated !== this.nowS) this.refresh(table, e)
    return true
  }

  /** The live entry for `mac` in `vid`, without touching its age (slow path: trace, admin). */
  peek (vid: number, mac: number): FdbEntry | undefined {
    return this.tables[vid]?.peek(mac, PEEK)
  }

  /** Pin `mac` in `vid` to `port`; replaces a dynamic entry. Slow path. */
  addStatic (vid: number, mac: number, port: Port): void {
    const table = this.tables[vid] ?? this.createTable(vid)
    table.delete(mac)
    table.set(mac, new FdbEntry(port, this.nowS, vid, mac, true), STATIC)
    if (this.onChange !== null) this.onChange()
  }

  /** Remove every static entry. */
  clearStatic (): void {
    for (let vid = 0; vid < VLAN_COUNT; vid++) {
      const table = this.tables[vid]
      if (table === undefined) continue
      const macs: number[] = []
      for (const [mac, e] of table.entries()) if (e.isStatic) macs.push(mac)
      for (const mac of macs) table.delete(mac)
      this.dropIfEmpty(vid)
    }
    if (this.onChange !== null) this.onChange()
  }

  /** Remove entries idle longer than the ageing time; returns how many. */
  expire (): number {
    const before = this.stats.expired
    for (let vid = 0; vid < VLAN_COUNT; vid++) {
      const table = this.tables[vid]
      if (table === undefined) continue
      table.purgeStale()
      this.dropIfEmpty(vid)
    }
    return this.stats.expired - before
  }

  /** Forget every dynamic MAC learned on `port` (Linux br_fdb_delete_by_port); returns how many. */
  deletePort (port: Port): number {
    const book = this.books.get(port)
    if (book === undefined) return 0
    const n = book.size
    // Copy: deleting disposes the entry, which removes it from the book.
    for (const e of [...book]) {
      this.tables[e.vid]?.delete(e.mac)
      this.dropIfEmpty(e.vid)
    }
    return n
  }

  /** Forget every dynamic entry in `vid` (a topology change: a port was blocked). */
  flushVlan (vid: number): number {
    const table = this.tables[vid]
    if (table === undefined) return 0
    table.purgeStale()
    const macs: number[] = []
    for (const [mac, e] of table.entries()) if (!e.isStatic) macs.push(mac)
    for (const mac of macs) table.delete(mac)
    this.dropIfEmpty(vid)
    return macs.length
  }

  /** Forget the dynamic entries `match` selects (admin flush); returns how many. */
  flushWhere (match: (r: FdbRow) => boolean): number {
    let n = 0
    for (let vid = 0; vid < VLAN_COUNT; vid++) {
      const table = this.tables[vid]
      if (table === undefined) continue
      const macs: number[] = []
      for (const e of table.values()) if (!e.isStatic && match({ vid: e.vid, mac: e.mac, port: e.port, age: this.nowS - e.updated, isStatic: false })) macs.push(e.mac)
      for (const mac of macs) table.delete(mac)
      this.dropIfEmpty(vid)
      n += macs.length
    }
    return n
  }

  /** `port`'s book: its dynamic entries, oldest refresh first (tests, admin). */
  bookOf (port: Port): ReadonlySet<FdbEntry> { return this.books.get(port) ?? NO_ENTRIES }

  /** Live entries (slow path: admin, tests). */
  rows (): FdbRow[] {
    const out: FdbRow[] = []
    for (const table of this.tables) {
      if (table === undefined) continue
      for (const e of table.values()) out.push({ vid: e.vid, mac: e.mac, port: e.port, age: e.isStatic ? 0 : this.nowS - e.updated, isStatic: e.isStatic })
    }
    return out
  }

  /** The MAC's own port sends it again after another port claimed it. */
  private reclaim (e: FdbEntry, port: Port, commit: boolean): number {
    const from = e.claimant
    if (this.flapping(e, from, commit)) {
      if (commit) { e.claimant = port; if (this.onChange !== null) this.onChange() }
      return LEARN_FLAP
    }
    if (!commit) return LEARN_OK
    e.claimant = port
    if (this.onChange !== null) this.onChange()
    this.turn(e, from, port)
    return LEARN_OK
  }

  /** `port` sends a MAC that lives on another port: move it, or refuse while that port still sends it. */
  private claim (table: LRUCache<number, FdbEntry>, e: FdbEntry, port: Port, commit: boolean): number {
    const from = e.claimant
    const flap = from !== port && this.flapping(e, from, commit)
    if (commit && from !== port) {
      e.claimant = port
      // Another port sends a MAC that lives elsewhere: the home port's flows must go back through learn() (reclaim, loop check).
      if (this.onChange !== null) this.onChange()
      if (!flap) this.turn(e, from, port)
    }
    if (port !== e.home && this.nowMs - e.seenMs < this.moveHold) {
      if (commit) this.stats.held++
      return flap ? LEARN_FLAP_HELD : LEARN_HELD
    }
    if (port.fdbEntries >= port.maxMacs) { if (commit) this.stats.limited++; return LEARN_LIMIT }
    if (!commit) return flap ? LEARN_FLAP : LEARN_OK
    const old = e.port
    if (old === e.home) e.leftHomeMs = e.seenMs
    this.release(e)
    e.port = port
    this.hold(e)
    this.refresh(table, e)
    e.seenMs = this.nowMs
    this.stats.moved++
    if (this.onChange !== null) this.onChange()
    if (log.isEnabled('info')) log.limited('info', 'fdb_moved', { mac: formatMac(e.mac), vlan: e.vid, from: old.name, to: port.name })
    return flap ? LEARN_FLAP : LEARN_OK
  }

  /**
   * Another change of claimant: true (and flapFrom, flapHome set) once there
   * were loopMoves within loopWindow. With `commit` false it only answers.
   */
  private flapping (e: FdbEntry, from: Port, commit: boolean): boolean {
    const fresh = this.nowMs - e.movesSince > this.loopWindow
    const moves = (fresh ? 0 : e.moves) + 1
    if (commit && fresh) e.movesSince = this.nowMs
    if (moves < this.loopMoves) { if (commit) e.moves = moves; return false }
    this.flapFrom = from
    this.flapHome = e.home
    if (!commit) return true
    e.moves = 0
    // A loop, not two stations: the duplicate count starts again.
    e.turns = 0
    this.stats.flaps++
    return true
  }

  /**
   * The claimant changed from `from` to `to` (not a flap): a turn if it is
   * between the MAC's home and its rival. Reports a duplicate MAC (see the
   * header) on the third turn that is more than a loop window after the first.
   */
  private turn (e: FdbEntry, from: Port, to: Port): void {
    const rival = from === e.home ? to : to === e.home ? from : null
    if (rival === null) { e.rival = null; e.turns = 0; return }
    if (rival !== e.rival || e.turns === 0 || this.nowMs - e.rivalSeenMs > this.ageingTime * 1000) {
      e.rival = rival; e.turns = 0; e.rivalSinceMs = this.nowMs
    }
    e.rivalSeenMs = this.nowMs
    if (++e.turns < 3 || this.nowMs - e.rivalSinceMs <= this.loopWindow || this.nowMs - e.dupReportedMs < DUP_REPORT_MS) return
    e.dupReportedMs = this.nowMs
    this.stats.duplicates++
    log.limited('warn', 'duplicate_mac', { network: this.name, vlan: e.vid, mac: formatMac(e.mac), ports: `${e.home.name},${rival.name}`, turns: e.turns })
  }

  private refresh (table: LRUCache<number, FdbEntry>, e: FdbEntry): void {
    // The MAC has lived on this port for the ageing time without its home claiming it: it moved for good.
    if (e.port !== e.home && this.nowMs - e.leftHomeMs >= this.ageingTime * 1000) e.home = e.port
    e.updated = this.nowS
    table.set(e.mac, e)
    // Keep the port's book in refresh order for fair eviction.
    const book = this.books.get(e.port) as Set<FdbEntry>
    book.delete(e)
    book.add(e)
  }

  private hold (e: FdbEntry): void {
    const p = e.port
    let book = this.books.get(p)
    if (book === undefined) { book = new Set(); this.books.set(p, book) }
    book.add(e)
    p.fdbEntries++
    this.size++
  }

  private release (e: FdbEntry): void {
    const p = e.port
    const book = this.books.get(p) as Set<FdbEntry>
    book.delete(e)
    if (--p.fdbEntries === 0) this.books.delete(p)
    this.size--
  }

  /**
   * The oldest entry of the port holding the most: what learning a new MAC
   * on `learner` evicts when full. Ties go against the learning port: a port
   * can only push out ports holding fewer entries than it does.
   */
  private oldestOfBusiest (learner: Port): FdbEntry | undefined {
    let busiest: Port | undefined = learner.fdbEntries > 0 ? learner : undefined
    for (const p of this.books.keys()) if (busiest === undefined || p.fdbEntries > busiest.fdbEntries) busiest = p
    return busiest === undefined ? undefined : (this.books.get(busiest) as Set<FdbEntry>).values().next().value
  }

  private evictFromBusiestPort (learner: Port): void {
    const oldest = this.oldestOfBusiest(learner)
    if (oldest === undefined) return
    this.stats.evicted++
    if (log.isEnabled('info')) log.limited('info', 'fdb_full', { evicted_port: oldest.port.name, entries: this.size, max_entries: this.maxEntries })
    this.tables[oldest.vid]?.delete(oldest.mac)
    this.dropIfEmpty(oldest.vid)
  }

  /** Per-VLAN tables in use (tests, admin): never more than the entries they hold. */
  get vlanTables (): number { return this.tableCount }

  /** Let an empty table go, so per-VLAN memory follows what is held. */
  private dropIfEmpty (vid: number): void {
    const table = this.tables[vid]
    if (table === undefined || table.size !== 0) return
    this.tables[vid] = undefined
    this.tableCount--
  }

  private createTable (vid: number): LRUCache<number, FdbEntry> {
    const table = new LRUCache<number, FdbEntry>({
      // Our budget evicts first; lru-cache's own bound is only a backstop. maxSize, not max: max
      // preallocates typed arrays for that many entries (~430 KiB here) in every table.
      maxSize: this.maxEntries + MAX_STATIC_ENTRIES,
      sizeCalculation: () => 1,
      ttl: this.ageingTime * 1000,
      ttlAutopurge: false,
      ttlResolution: 0,
      updateAgeOnGet: false,
      allowStale: false,
      // +1: lru-cache treats a start time of 0 as "no TTL".
      perf: { now: () => this.nowMs + 1 },
      dispose: (entry, _mac, reason) => {
        if (this.onChange !== null) this.onChange()
        if (entry.isStatic) return
        this.release(entry)
        // 'set' replaces a stale entry that had not been purged yet: it expired too.
        if (reason === 'expire' || reason === 'set') this.stats.expired++
        else if (reason === 'evict') this.stats.evicted++
      }
    })
    this.tables[vid] = table
    this.tableCount++
    return table
  }
}
