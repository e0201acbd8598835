/**
 * Static fdb entries from configuration: a MAC that always lives behind the
 * port with a given name. They are bound by name, so they follow the port
 * across reconnects; while the port is away they point at a DetachedPort,
 * which drops (and counts) what is sent to them, as a Linux bridge drops
 * frames for a static entry on a port that is down.
 */

import { Port } from './port'
import type { Fdb } from './fdb'

/** A configured static fdb entry: `mac` in `vid` always lives behind the port named `port`. */
export interface StaticEntry { vid: number, mac: number, port: string }

/** Where static entries point while their port is not connected. */
export class DetachedPort extends Port {
  output (): void { this.dropBackpressure++ }
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
