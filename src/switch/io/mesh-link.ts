/**
 * The dialling end of a mesh link (issue 25, docs/FLEET.md): this replica
 * joins one network to the same network on a peer replica, as a
 * tapswitch.v1 client offering the capability `mesh` with the fleet
 * credential as its token. The trunk's machinery (common/uplink.ts:
 * reconnect with backoff, TLS; io/trunk.ts TrunkPort and mirrorPolicy), with
 * three differences: the port is of kind `mesh` (split horizon in the
 * decision), it runs no spanning tree (a BPDU from the peer is dropped and
 * counted), and it carries only the fleet's VLANs, whatever the peer grants.
 *
 * Each connection is a new port (a new id) named `mesh-<peer replica>`; it
 * leaves the network, MACs and all, when the connection drops, and the link
 * redials until io/fleet.ts closes it (no longer needed).
 */

import { TrunkPort, mirrorPolicy } from './trunk'
import type { Switch } from '../core/switch'
import type { Uplink } from '../../common/uplink'
import { switchUplink, portLeft } from './switch-uplink'
import { CAP_MESH, CAP_OFFLOAD, CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_NORMAL, parseControl, type Welcome } from '../../common/protocol'
import { logger } from '../../common/log'

const log = logger('mesh')

/** Where a mesh link's token and URL come from, for the uplink's hints. */
const MESH_SOURCES = { url: 'the peer\'s address (--fleet)', token: 'the fleet credential (--fleet-token-file or SWITCHD_FLEET_TOKEN, the same on every replica)', ca: '--uplink-ca FILE' }

/** What a mesh link needs to know: who we are, whom and what it joins, with which credential and VLANs. */
export interface MeshLinkSpec {
  readonly self: string
  readonly peer: string
  readonly network: string
  /** The peer's base URL, http(s)://HOST:PORT. */
  readonly base: string
  readonly token: string
  readonly vlans: readonly number[]
  readonly ca: string | undefined
}

/** A peer's base URL and a network: the WebSocket URL of that network there. */
export function meshUrl (base: string, network: string): string {
  return `${base.replace(/^http/, 'ws')}/net/${encodeURIComponent(network)}`
}

/** What a mesh link asks of the daemon: its network, and to be told when its port comes and goes. */
export interface MeshHost {
  /** The network `name`, opened if it may be; or why not. */
  open (name: string): Switch | string
  /** `sw` may go if nothing holds it any more. */
  release (sw: Switch): void
  /** The link's port joined its network (up), or left it (undefined). */
  portChanged (link: MeshLink, port: TrunkPort | undefined): void
}

export class MeshLink {
  port: TrunkPort | undefined
  readonly uplink: Uplink
  /** BPDUs the peer sent (dropped: no spanning tree over the mesh). */
  bpdusDropped = 0
  /** Welcomes refused because the peer granted none of the fleet's VLANs. */
  vlansRefused = 0

  constructor (readonly spec: MeshLinkSpec, private readonly host: MeshHost, private readonly allocateId: () => number, private readonly portBuffer: number) {
    this.uplink = switchUplink(
      { url: meshUrl(spec.base, spec.network), name: `mesh-${spec.self}`, token: spec.token, capability: CAP_MESH, sources: MESH_SOURCES, ca: spec.ca, caSetting: `mesh ${spec.base}: --uplink-ca`, log, logFields: { peer: spec.peer } },
      { port: () => this.port, up: (welcome) => { this.onUp(welcome) }, down: () => { this.onDown() } })
    // No spanning tree over the mesh: a peer's BPDU (a claim to be root, or any) is dropped and counted; other control messages are ignored.
    this.uplink.onControl = (text) => { if (parseControl(text)?.type === 'bpdu') this.bpdusDropped++ }
  }

  start (): void { this.uplink.start() }

  /** Close for good: switchd stops (1001), or the link is no longer needed (1000). */
  async close (stopping: boolean): Promise<void> {
    await this.uplink.close(stopping ? CLOSE_GOING_AWAY : CLOSE_NORMAL, stopping ? 'switchd shutting down' : 'mesh link no longer needed')
    this.onDown()
  }

  private onUp (welcome: Welcome): void {
    const sw = this.host.open(this.spec.network)
    if (typeof sw === 'string') {
      log.warn('mesh_refused_locally', { peer: this.spec.peer, network: this.spec.network, reason: sw })
      this.uplink.drop(CLOSE_GOING_AWAY, 'no such network here')
      return
    }
    // The fleet's VLANs and nothing else, whatever the peer granted.
    const policy = mirrorPolicy(welcome.vlan, sw.fdb.maxEntries, [1, ...this.spec.vlans])
    if (typeof policy === 'string') {
      this.vlansRefused++
      log.limited('error', 'mesh_vlans_refused', { peer: this.spec.peer, network: sw.name, reason: policy, granted: JSON.stringify(welcome.vlan) })
      this.uplink.drop(CLOSE_POLICY, 'no VLAN in common')
      this.host.release(sw)
      return
    }
    const port = new TrunkPort(this.allocateId(), `mesh-${this.spec.peer}`, new URL(this.spec.base).host, this.portBuffer, sw, this.uplink)
    port.kind = 'mesh'
    port.mesh = true
    port.applyPolicy(policy)
    port.offload = welcome.capabilities.includes(CAP_OFFLOAD)
    sw.addPort(port, false)
    this.port = port
    this.host.portChanged(this, port)
    log.info('port_up', { port: port.name, id: port.id, network: sw.name, kind: 'mesh', remote: this.spec.base, offload: port.offload, vlan: JSON.stringify(welcome.vlan) })
  }

  private onDown (): void {
    const p = this.port
    if (p === undefined) return
    this.port = undefined
    portLeft(p, this, this.host, 'mesh', log)
  }
}
