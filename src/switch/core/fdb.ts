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
 * Port security, MAC moves and spoofing, loop detection and duplicate MACs:
 * what learn() answers (LEARN_*), in fdb-entry.ts.
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
import {
  DEFAULT_AGEING_TIME, DEFAULT_MAX_ENTRIES, DEFAULT_LOOP_MOVES, DEFAULT_LOOP_WINDOW_MS, DEFAULT_MOVE_HOLD_MS, MAX_STATIC_ENTRIES,
  LEARN_OK, LEARN_LIMIT, LEARN_FLAP, LEARN_PINNED, LEARN_HELD, LEARN_FLAP_HELD, FdbEntry, FdbStats, newTable, type FdbOptions, type FdbRow
} from './fdb-entry'
import { PortBooks } from './fdb-books'
import { VLAN_COUNT } from '../../common/vlan'
import { formatMac } from '../../common/ethernet'
import { logger } from '../../common/log'

const log = logger('fdb')

export * from './fdb-entry'


const PEEK = { allowStale: false }
const STATIC = { ttl: 0 }

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
  /** The per-port books (fdb-books.ts): each port's dynamic entries, and how many there are in all. */
  private readonly books = new PortBooks()
  /** The table's clock for lru-cache (+1: it treats a start time of 0 as "no TTL"). */
  private readonly perf = { now: (): number => this.nowMs + 1 }

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
    const table = this.tables[vid]
    const e = table === undefined ? undefined : table.peek(mac, PEEK)
    // The frame path's common case, small enough for the decision to inline: a MAC its own port sends again.
    if (e !== undefined && e.port === port && e.claimant === port && commit) {
      e.seenMs = this.nowMs
      if (e.updated !== this.nowS && !e.isStatic) this.refresh(table as LRUCache<number, FdbEntry>, e)
      return LEARN_OK
    }
    return this.learnOther(table, e, vid, mac, port, commit)
  }

  /** learn() for a new MAC, a moving or reclaimed one, or a dry run. */
  private learnOther (table: LRUCache<number, FdbEntry> | undefined, e: FdbEntry | undefined, vid: number, mac: number, port: Port, commit: boolean): number {
    if (!commit) this.dryVictim = undefined
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
      this.dryVictim = this.books.entries >= this.maxEntries ? this.books.oldestOfBusiest(port) : undefined
      return LEARN_OK
    }
    if (this.books.entries >= this.maxEntries) {
      this.evictFromBusiestPort(port)
      // Eviction may have emptied, and dropped, this very table.
      table = this.tables[vid]
    }
    if (table === undefined) table = this.createTable(vid)
    const entry = new FdbEntry(port, this.nowS, vid, mac, false, this.nowMs)
    this.books.hold(entry)
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
    const book = this.books.of(port)
    if (book.size === 0) return 0
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
  bookOf (port: Port): ReadonlySet<FdbEntry> { return this.books.of(port) }

  /** Dynamic entries in all VLANs. */
  get size (): number { return this.books.entries }

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
    if (commit && from.mesh !== port.mesh) this.stats.meshConflicts++
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
      if (from.mesh !== port.mesh) this.stats.meshConflicts++
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
    this.books.release(e)
    e.port = port
    this.books.hold(e)
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

  /** The claimant changed from `from` to `to` (not a flap): count a turn, and report a duplicate MAC (fdb-entry.ts). */
  private turn (e: FdbEntry, from: Port, to: Port): void {
    const rival = e.turn(from, to, this.nowMs, this.loopWindow, this.ageingTime * 1000)
    if (rival === null) return
    this.stats.duplicates++
    log.limited('warn', 'duplicate_mac', { network: this.name, vlan: e.vid, mac: formatMac(e.mac), ports: `${e.home.name},${rival.name}`, turns: e.turns })
  }

  private refresh (table: LRUCache<number, FdbEntry>, e: FdbEntry): void {
    // The MAC has lived on this port for the ageing time without its home claiming it: it moved for good.
    if (e.port !== e.home && this.nowMs - e.leftHomeMs >= this.ageingTime * 1000) e.home = e.port
    e.updated = this.nowS
    table.set(e.mac, e)
    this.books.refreshed(e)
  }

  private evictFromBusiestPort (learner: Port): void {
    const oldest = this.books.oldestOfBusiest(learner)
    if (oldest === undefined) return
    this.stats.evicted++
    if (log.isEnabled('info')) log.limited('info', 'fdb_full', { evicted_port: oldest.port.name, entries: this.books.entries, max_entries: this.maxEntries })
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
    const table = newTable(this.maxEntries + MAX_STATIC_ENTRIES, this.ageingTime * 1000, this.perf, (entry, reason) => {
      if (this.onChange !== null) this.onChange()
      if (entry.isStatic) return
      this.books.release(entry)
      // 'set' replaces a stale entry that had not been purged yet: it expired too.
      if (reason === 'expire' || reason === 'set') this.stats.expired++
      else if (reason === 'evict') this.stats.evicted++
    })
    this.tables[vid] = table
    this.tableCount++
    return table
  }
}
