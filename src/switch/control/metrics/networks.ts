/**
 * Per-network series, {network}, that always exist: its ports, its fdb, what
 * it forwarded and flooded, loops and duplicate MACs, and offload frames it
 * made plain. Totals kept on the network stay monotonic as ports come and go.
 */

import { counter, perNetwork, type MetricDef } from './define'

/** The fdb's own counters (core/fdb.ts FdbStats), and what each counts. */
const FDB_COUNTERS = [['learned', 'MACs learned'], ['moved', 'MACs that moved to another port'], ['expired', 'entries aged out'], ['evicted', 'entries evicted because the fdb was full']] as const

export const networkMetrics: readonly MetricDef[] = [
  perNetwork('gauge', 'switchd_ports', 'Ports connected', (sw) => sw.ports.length),
  perNetwork('gauge', 'switchd_fdb_entries', 'Learned MACs (all VLANs)', (sw) => sw.fdb.size),
  perNetwork('gauge', 'switchd_fdb_max_entries', 'fdb capacity', (sw) => sw.fdb.maxEntries),
  ...FDB_COUNTERS.map(([what, help]) => perNetwork('counter', `switchd_fdb_${what}_total`, `fdb: ${help}`, (sw) => sw.fdb.stats[what])),
  perNetwork('counter', 'switchd_forwarded_frames_total', 'Frames forwarded to one known port', (sw) => sw.stats.forwarded),
  counter('switchd_flooded_frames_total', 'Frames flooded, by destination kind', ['network', 'kind'], (emit, s) => {
    for (const sw of s.networks()) {
      emit({ network: sw.name, kind: 'broadcast' }, sw.stats.floodedBroadcast)
      emit({ network: sw.name, kind: 'multicast' }, sw.stats.floodedMulticast)
      emit({ network: sw.name, kind: 'unknown_unicast' }, sw.stats.floodedUnknown)
    }
  }),
  counter('switchd_offload_fallback_frames_total', 'Offload frames made plain for ports without offload: GSO frames segmented, partial checksums finished', ['network', 'kind'], (emit, s) => {
    for (const sw of s.networks()) {
      emit({ network: sw.name, kind: 'segmented' }, sw.stats.offloadSegmented)
      emit({ network: sw.name, kind: 'checksummed' }, sw.stats.offloadChecksummed)
    }
  }),
  perNetwork('counter', 'switchd_duplicate_macs_total', 'MACs claimed by two ports taking turns (cloned VMs), logged as duplicate_mac; at most one per MAC a minute', (sw) => sw.fdb.stats.duplicates),
  perNetwork('counter', 'switchd_loops_detected_total', 'Loops detected (a port was blocked)', (sw) => sw.stats.loopsDetected)
]
