/**
 * The answering end of a mesh link (issue 25, docs/FLEET.md): what a hello
 * and the fleet credential make of a connection. A hello asking for `mesh`
 * needs the fleet credential (admit.ts checked it at the upgrade), and the
 * credential opens nothing but a mesh link; anything else is refused (1008,
 * counted `mesh_refused`). The port's VLANs are the fleet's, whatever the
 * hello asks: VLAN 1 untagged and `--fleet-vlans` tagged. port-table.ts acts
 * on the verdict.
 */

import { DEFAULT_POLICY, MODE_ACCESS, MODE_TRUNK, type PortPolicy } from '../core/port'
import { REPLICA_NAME } from '../core/fleet-plan'
import type { BatchPort } from '../io/ws-port'
import { setOffload } from '../io/ws-session'
import { CAP_MESH, CAP_TRUNK, type Hello } from '../../common/protocol'

/** What the hello makes of the connection: a mesh link (with the peer's replica name), an ordinary port, or a refusal's words. */
export type MeshVerdict = { mesh: true, peer: string } | { mesh: false } | { refuse: string }

/** The name a mesh link's dialler gives itself in its hello: `mesh-<its replica>`. */
export const MESH_PREFIX = 'mesh-'

export function meshVerdict (hello: Hello, fleet: boolean): MeshVerdict {
  const caps = hello.capabilities ?? []
  const asks = caps.includes(CAP_MESH)
  if (!asks) return fleet ? { refuse: 'the fleet credential opens only mesh links: ask for the "mesh" capability' } : { mesh: false }
  if (!fleet) return { refuse: 'a mesh link needs the fleet credential (the same --fleet-token-file on every replica)' }
  if (caps.includes(CAP_TRUNK)) return { refuse: 'a mesh link is not a trunk: ask for "mesh" alone' }
  const peer = hello.name?.startsWith(MESH_PREFIX) === true ? hello.name.slice(MESH_PREFIX.length) : ''
  if (!REPLICA_NAME.test(peer)) return { refuse: 'a mesh link names itself mesh-<replica> (a DNS label)' }
  return { mesh: true, peer }
}

/** A mesh port's policy: VLAN 1 untagged, the fleet's VLANs tagged, no MAC limit but the network's. */
export function meshPolicy (vlans: readonly number[], fdbMax: number): PortPolicy {
  const base = { ...DEFAULT_POLICY, maxMacs: fdbMax }
  if (vlans.length === 0) return Object.freeze({ ...base, mode: MODE_ACCESS, pvid: 1, vlans: Object.freeze([1]) })
  return Object.freeze({ ...base, mode: MODE_TRUNK, pvid: 1, vlans: Object.freeze([1, ...vlans.filter((v) => v !== 1)]) })
}

/**
 * Make `port` a mesh port: kind mesh, never parked or resumed (the dialler
 * redials instead), its VLANs its own and not our profiles' (reload leaves
 * them), its name vouched for by the fleet credential. It stays on the JS
 * path (native-ports.ts) and runs no spanning tree (joined without).
 */
export function meshPort (port: BatchPort, offload: boolean): BatchPort {
  port.kind = 'mesh'
  port.mesh = true
  port.noResume = true
  port.policyFromPeer = true
  port.nameTrusted = true
  setOffload(port, offload)
  return port
}
