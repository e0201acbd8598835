/**
 * The daemon's one list of ports, keyed by network and name: every port
 * switchd made, whoever made it (a WebSocket session, or one of the
 * configured endpoints: a QEMU listener, a TAP, a trunk we dialled, a
 * gateway; or a mesh link we dialled to another replica). The view (control/view.ts ports()), the API's name lookups,
 * reload and shutdown all read it; nothing else keeps a list of ports.
 *
 * Names are unique in a network, not across networks (every gateway is
 * `gateway`), and even in one network two connections presenting one token
 * that pins a name share it: a name finds a list, and the API answers 409
 * when it finds more than one.
 *
 * Some endpoint ports exist before they join their network and may leave it
 * on their own (a QEMU port joins when its VM first connects, a gateway's
 * with its first child, a TAP leaves when shut): those are listed only while
 * they are members of their network, as the view has always shown them.
 */

import type { Switch } from '../core/switch'
import type { NetPort } from '../io/net-port'

/** Who made a port; the listing order (sessions first, then each endpoint kind). */
export const OWNERS = ['session', 'qemu', 'tap', 'trunk', 'mesh', 'gateway', 'vxlan'] as const
export type Owner = typeof OWNERS[number]

/** Owners whose ports are listed only while they are members of their network (see above). */
const LISTED_WHILE_MEMBER: ReadonlySet<Owner> = new Set<Owner>(['qemu', 'tap', 'gateway'])

/** One owner's ports, as a set whose writes go through the registry (PortTable.ports). */
export interface OwnedPorts<P extends NetPort> extends Iterable<P> {
  readonly size: number
  has (port: P): boolean
  add (port: P): this
  delete (port: P): boolean
}

export class PortRegistry {
  private readonly byOwner = new Map<Owner, Set<NetPort>>(OWNERS.map((o) => [o, new Set<NetPort>()]))
  private readonly owners = new Map<NetPort, Owner>()
  /** network → name → ports with that name there (usually one). */
  private readonly byName = new Map<Switch, Map<string, NetPort[]>>()

  add (port: NetPort, owner: Owner): void {
    if (this.owners.has(port)) return
    this.owners.set(port, owner)
    this.set(owner).add(port)
    let names = this.byName.get(port.network)
    if (names === undefined) { names = new Map(); this.byName.set(port.network, names) }
    const same = names.get(port.name)
    if (same === undefined) names.set(port.name, [port])
    else same.push(port)
  }

  delete (port: NetPort): boolean {
    const owner = this.owners.get(port)
    if (owner === undefined) return false
    this.owners.delete(port)
    this.set(owner).delete(port)
    const names = this.byName.get(port.network)
    const same = names?.get(port.name)
    if (names !== undefined && same !== undefined) {
      const i = same.indexOf(port)
      if (i >= 0) same.splice(i, 1)
      if (same.length === 0) names.delete(port.name)
      if (names.size === 0) this.byName.delete(port.network)
    }
    return true
  }

  has (port: NetPort): boolean { return this.owners.has(port) }

  /** Every port that has joined a network: sessions (parked ones too), then each endpoint kind, each in the order it came. */
  list (): NetPort[] {
    const out: NetPort[] = []
    for (const owner of OWNERS) for (const p of this.set(owner)) if (this.listed(p, owner)) out.push(p)
    return out
  }

  /** The listed ports named `name` in `network`, or in any network when it is undefined. */
  find (name: string, network?: Switch): NetPort[] {
    const nets = network === undefined ? [...this.byName.values()] : [this.byName.get(network)]
    const out: NetPort[] = []
    for (const names of nets) for (const p of names?.get(name) ?? []) if (this.listed(p, this.owners.get(p) as Owner)) out.push(p)
    return out
  }

  /** `owner`'s ports as a set (listed or not); adding to it registers the port. */
  owned<P extends NetPort> (owner: Owner): OwnedPorts<P> {
    const set = this.set(owner) as Set<P>
    const registry = this
    return {
      get size () { return set.size },
      has: (p) => set.has(p),
      add (p) { registry.add(p, owner); return this },
      delete: (p) => registry.delete(p),
      [Symbol.iterator]: () => set.values()
    }
  }

  private set (owner: Owner): Set<NetPort> { return this.byOwner.get(owner) as Set<NetPort> }

  private listed (p: NetPort, owner: Owner): boolean {
    return !LISTED_WHILE_MEMBER.has(owner) || p.network.ports.includes(p)
  }
}
