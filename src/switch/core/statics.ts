/**
 * Static fdb entries from configuration: a MAC that always lives behind the
 * port with a given name. They are bound by name, so they follow the port
 * across reconnects; while the port is away they point at a DetachedPort,
 * which drops (and counts) what is sent to them, as a Linux bridge drops
 * frames for a static entry on a port that is down.
 */

import { Port } from './port'
import type { Fdb } from './fdb'
import { R_BACKPRESSURE } from './reasons'

/** A configured static fdb entry: `mac` in `vid` always lives behind the port named `port`. */
export interface StaticEntry { vid: number, mac: number, port: string }

/** Where static entries point while their port is not connected. */
export class DetachedPort extends Port {
  output (): void { this.addDrops(R_BACKPRESSURE, 1) }
  flush (): void {}
  shutdown (): void {}
}

/** (Re)write every static entry into `fdb`, each bound to its connected port (one that owns the name) or to `detached`. */
export function bindStatics (fdb: Fdb, ports: readonly Port[], entries: readonly StaticEntry[], detached: Port): void {
  fdb.clearStatic()
  for (const e of entries) {
    let port = detached
    for (const p of ports) if (p.name === e.port && p.ownsName) { port = p; break }
    fdb.addStatic(e.vid, e.mac, port)
  }
}

/**
 * A network's static entries: the configured ones and those added at run
 * time (admin API, a gateway's own MAC), bound into the fdb by port name
 * whenever they or the ports change.
 */
export class StaticTable {
  private all: readonly StaticEntry[] = []
  private configured: readonly StaticEntry[] = []
  /** Added at run time: they last until removed or switchd restarts. */
  private extra: StaticEntry[] = []

  constructor (private readonly fdb: Fdb, private readonly ports: readonly Port[], private readonly detached: Port, private readonly changed: () => void) {}

  /** Entries in force. */
  get size (): number { return this.all.length }

  /** Replace the configured entries (configuration load or reload). */
  set (entries: readonly StaticEntry[]): void {
    this.configured = entries
    this.all = [...entries, ...this.extra]
    this.changed()
    bindStatics(this.fdb, this.ports, this.all, this.detached)
  }

  /** Add (or re-point) one at run time. */
  add (entry: StaticEntry): void {
    this.extra = [...this.extra.filter((e) => e.vid !== entry.vid || e.mac !== entry.mac), entry]
    this.set(this.configured.filter((e) => e.vid !== entry.vid || e.mac !== entry.mac))
  }

  has (vid: number, mac: number): boolean {
    for (const e of this.all) if (e.vid === vid && e.mac === mac) return true
    return false
  }

  /** Remove one (run-time or configured, until the next reload); false if there was none. */
  remove (vid: number, mac: number): boolean {
    const keep = (e: StaticEntry): boolean => e.vid !== vid || e.mac !== mac
    const before = this.all.length
    this.extra = this.extra.filter(keep)
    this.set(this.configured.filter(keep))
    return this.all.length < before
  }

  /** The ports changed: bind each entry to its port again. */
  rebind (): void {
    if (this.all.length > 0) bindStatics(this.fdb, this.ports, this.all, this.detached)
  }
}
