/**
 * The daemon's side of the fleet (issue 25, docs/FLEET.md): what this
 * replica says of itself on GET /fleet/v1/state, and what the membership
 * loop (io/fleet.ts) and its mesh links (io/mesh-link.ts) are given of the
 * daemon: the networks with local ports, the networks to join, the one port
 * registry. switchd.ts starts it after listening and stops it on close.
 */

import { randomBytes } from 'node:crypto'
import type { Switch } from '../core/switch'
import type { NetPort } from '../io/net-port'
import type { TrunkPort } from '../io/trunk'
import { Fleet, type FleetHost } from '../io/fleet'
import { meshKey } from '../core/fleet-plan'
import { MESH_PREFIX } from './mesh-admit'
import type { MeshLink } from '../io/mesh-link'
import type { Networks } from '../control/networks'
import type { SwitchdConfig } from '../control/config'
import type { PortRegistry } from './registry'
import type { FleetStateJson } from '../../common/api-types'
import { logger } from '../../common/log'

const log = logger('fleet')

/** What the fleet reads of the daemon. */
export interface FleetDaemon {
  readonly config: SwitchdConfig
  readonly networks: Networks
  readonly portRegistry: PortRegistry
  readonly isClosing: boolean
  /** A drain (drain.ts) is under way: peers dial no new mesh link to us. */
  readonly draining: boolean
  readonly portTable: { allocateId: () => number }
}

/**
 * The networks this replica has a local port in: any port but a mesh link
 * (that is what the mesh joins) or a gateway (configured alike on every
 * replica, it would mesh every replica with every other for nothing: a
 * network is shared when stations are).
 */
export function localNetworks (registry: PortRegistry): Set<string> {
  const out = new Set<string>()
  for (const p of registry.list()) if (!p.mesh && p.kind !== 'gateway') out.add(p.network.name)
  return out
}

const instances = new WeakMap<FleetDaemon, string>()

/** This switchd process's random id (one per daemon: tests run several in one process), so a peer with our name is told from ourselves. */
function instanceOf (d: FleetDaemon): string {
  let id = instances.get(d)
  if (id === undefined) { id = randomBytes(8).toString('hex'); instances.set(d, id) }
  return id
}

/**
 * The mesh links peers dialled to us, by meshKey(peer, network): mesh ports
 * the port table answered (named mesh-<peer>, or mesh-<peer>-<id> beside an
 * older one), not those our own links hold.
 */
export function answeredLinks (registry: PortRegistry, dialled: { has: (p: NetPort) => boolean }): Set<string> {
  const out = new Set<string>()
  for (const p of registry.list()) {
    if (!p.mesh || dialled.has(p) || !p.name.startsWith(MESH_PREFIX)) continue
    const peer = p.name.slice(MESH_PREFIX.length)
    out.add(meshKey(peer, p.network.name))
    const cut = /^(.+)-\d+$/.exec(peer)
    if (cut !== null) out.add(meshKey(cut[1] as string, p.network.name))
  }
  return out
}

/** This replica's answer on /fleet/v1/state. */
export function fleetState (d: FleetDaemon): FleetStateJson {
  return { replica: d.config.replica, draining: d.isClosing || d.draining, networks: [...localNetworks(d.portRegistry)].sort(), instance: instanceOf(d) }
}

/** The host the membership loop and its mesh links are given. */
function fleetHost (d: FleetDaemon): FleetHost {
  const linkOf = new WeakMap<NetPort, MeshLink>()
  return {
    localNetworks: () => localNetworks(d.portRegistry),
    allocateId: () => d.portTable.allocateId(),
    answeredLinks: () => answeredLinks(d.portRegistry, d.portRegistry.owned<NetPort>('mesh')),
    instance: instanceOf(d),
    get portBuffer () { return d.config.portBuffer },
    open: (name: string): Switch | string => d.networks.open(name),
    release: (sw: Switch) => { d.networks.release(sw) },
    portChanged: (link: MeshLink, port: TrunkPort | undefined) => {
      for (const p of d.portRegistry.owned<NetPort>('mesh')) if (linkOf.get(p) === link) d.portRegistry.delete(p)
      if (port !== undefined) { linkOf.set(port, link); d.portRegistry.add(port, 'mesh') }
    }
  }
}

/** Start the fleet's loop if `--fleet` is set (after listening: our own state must be answerable). */
export async function startFleet (d: FleetDaemon, tls: boolean): Promise<Fleet | undefined> {
  const spec = d.config.fleet
  if (spec === undefined) return undefined
  const fleet = new Fleet(d.config.replica, spec, tls, fleetHost(d))
  await fleet.start()
  log.info('fleet_started', { replica: d.config.replica, peers: spec.peers.map((p) => p.kind === 'url' ? p.url : `dns://${p.name}:${p.port}`).join(','), vlans: spec.vlans.join(',') })
  return fleet
}
