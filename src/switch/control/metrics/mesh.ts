/**
 * The fleet's mesh between replicas (issue 25, docs/FLEET.md): links up per
 * network, mesh hellos refused, BPDUs from mesh peers dropped, MACs seen on
 * a local port and from a mesh link in turn, and the peers answering.
 */

import { counter, gauge, perNetwork, type MetricDef } from './define'

export const meshMetrics: readonly MetricDef[] = [
  gauge('switchd_mesh_links', 'Mesh links to other replicas up, by network (both the ones this replica dialled and the ones it answered)', ['network'], (emit, s) => {
    for (const sw of s.networks()) {
      let n = 0
      for (const p of sw.ports) if (p.mesh) n++
      emit({ network: sw.name }, n)
    }
  }),
  counter('switchd_mesh_refused_total', 'Connections asking for a mesh link without the fleet credential, or presenting it for anything else (closed 1008)', [], (emit, s) => {
    emit({}, s.server.counters().rejectedBy.mesh_refused ?? 0)
  }),
  counter('switchd_mesh_bpdus_dropped_total', 'BPDUs from mesh links, dropped: no spanning tree runs over the mesh, so a peer replica never claims root', [], (emit, s) => {
    emit({}, s.server.counters().meshBpdusDropped)
  }),
  perNetwork('counter', 'switchd_mesh_mac_conflicts_total', 'MACs sent by a local port and by a mesh link in turn: a station on two replicas at once, or a spoofer', (sw) => sw.fdb.stats.meshConflicts),
  gauge('switchd_fleet_peers', 'Other replicas of the fleet that answered in the last seconds', [], (emit, s) => { emit({}, s.server.counters().fleetPeers) })
]
