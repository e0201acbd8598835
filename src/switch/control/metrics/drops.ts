/**
 * Frames dropped, by reason (core/drops.ts's table): a port's, and a
 * network's, which outlive the ports that leave. Read only through
 * portDrops() and networkDrops(), so the drop table's shape stays core's.
 */

import { counter, type MetricDef } from './define'
import { DROP_REASONS, portDrops, networkDrops } from '../../core/drops'

export const dropMetrics: readonly MetricDef[] = [
  counter('switchd_port_drops_total', 'Frames dropped on a port, by reason', ['network', 'port', 'reason'], (emit, s) => {
    s.eachPort((p, network) => {
      const d = portDrops(p)
      for (const { reason } of DROP_REASONS) emit({ network, port: p.name, reason }, d[reason] ?? 0)
    })
  }),
  counter('switchd_frames_dropped_total', 'Frames dropped in a network, by reason (kept across ports leaving)', ['network', 'reason'], (emit, s) => {
    for (const sw of s.networks()) {
      const d = networkDrops(sw.stats, sw.ports)
      for (const { reason } of DROP_REASONS) emit({ network: sw.name, reason }, d[reason] ?? 0)
    }
  })
]
