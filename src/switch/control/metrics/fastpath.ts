/** The native fast path of local TAPs (docs/LOCAL-TAPS.md), {network}: 0 for networks without one. */

import { perNetwork, type MetricDef } from './define'

/** Its counters (core/fastpath.ts stats()), as metric name, key and help. */
const FAST_PATH_COUNTERS = [
  ['forwarded_frames', 'forwarded', 'frames the native fast path forwarded (also in switchd_forwarded_frames_total)'],
  ['misses', 'misses', 'frames the native fast path handed to the switch'],
  ['miss_dropped', 'missDropped', 'misses dropped: the switch was that far behind']
] as const

export const fastPathMetrics: readonly MetricDef[] = [
  perNetwork('gauge', 'switchd_fast_path_flows', 'Flows in the native fast path of local TAPs', (sw) => sw.fastPath?.stats().flows ?? 0),
  ...FAST_PATH_COUNTERS.map(([what, key, help]) => perNetwork('counter', `switchd_fast_path_${what}_total`, `Fast path: ${help}`, (sw) => sw.fastPath?.stats()[key] ?? 0))
]
