/**
 * The fdb's per-port books, kept by the table as Open vSwitch's
 * mac_learning_port is: for each port holding at least one dynamic entry,
 * its entries in refresh order (oldest first), so that eviction is fair
 * (the port holding the most loses its oldest) and O(ports), and forgetting
 * a port's MACs walks only its own. Port itself carries only the count
 * (Port.fdbEntries, read by the API and port security).
 */

import type { Port } from './port'
import type { FdbEntry } from './fdb-entry'

const NO_ENTRIES: ReadonlySet<FdbEntry> = new Set()

export class PortBooks {
  /** Dynamic entries in all VLANs. */
  entries = 0
  private readonly books = new Map<Port, Set<FdbEntry>>()

  /** `port`'s entries, oldest refresh first (empty if none). */
  of (port: Port): ReadonlySet<FdbEntry> { return this.books.get(port) ?? NO_ENTRIES }

  /** A new entry, or one that moved to its port. */
  hold (e: FdbEntry): void {
    const p = e.port
    let book = this.books.get(p)
    if (book === undefined) { book = new Set(); this.books.set(p, book) }
    book.add(e)
    p.fdbEntries++
    this.entries++
  }

  /** An entry went (or is moving away from its port). */
  release (e: FdbEntry): void {
    const p = e.port
    const book = this.books.get(p) as Set<FdbEntry>
    book.delete(e)
    if (--p.fdbEntries === 0) this.books.delete(p)
    this.entries--
  }

  /** The entry was refreshed: last in its port's order. */
  refreshed (e: FdbEntry): void {
    const book = this.books.get(e.port) as Set<FdbEntry>
    book.delete(e)
    book.add(e)
  }

  /**
   * The oldest entry of the port holding the most: what learning a new MAC
   * on `learner` evicts when full. Ties go against the learning port: a port
   * can only push out ports holding fewer entries than it does.
   */
  oldestOfBusiest (learner: Port): FdbEntry | undefined {
    let busiest: Port | undefined = learner.fdbEntries > 0 ? learner : undefined
    for (const p of this.books.keys()) if (busiest === undefined || p.fdbEntries > busiest.fdbEntries) busiest = p
    return busiest === undefined ? undefined : (this.books.get(busiest) as Set<FdbEntry>).values().next().value
  }
}
