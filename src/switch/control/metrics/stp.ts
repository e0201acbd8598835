/** The spanning tree between switches (docs/TRUNKS.md), {network}. */

import { gauge, perNetwork, type MetricDef } from './define'

export const stpMetrics: readonly MetricDef[] = [
  perNetwork('gauge', 'switchd_stp_root_cost', 'Trunk hops from this switch to the spanning-tree root (0: this switch is the root)', (sw) => sw.stp.rootCost),
  gauge('switchd_stp_trunks', 'Trunks to other switches, by spanning-tree state', ['network', 'state'], (emit, s) => {
    for (const sw of s.networks()) {
      let forwarding = 0
      for (const p of sw.stp.ports) if (p.stp?.forwarding === true) forwarding++
      emit({ network: sw.name, state: 'forwarding' }, forwarding)
      emit({ network: sw.name, state: 'discarding' }, sw.stp.ports.length - forwarding)
    }
  }),
  perNetwork('counter', 'switchd_stp_topology_changes_total', 'Spanning-tree topology changes acted on (trunk-learned MACs flushed)', (sw) => sw.stp.topologyChanges),
  perNetwork('counter', 'switchd_stp_bpdus_ignored_total', 'BPDUs from a trunk over its rate (10/s, burst 20), ignored', (sw) => sw.stp.bpdusDropped),
  perNetwork('counter', 'switchd_stp_root_guard_blocks_total', 'Times root guard made a trunk discard (its peer claimed a better root)', (sw) => sw.stp.rootGuardBlocks)
]
