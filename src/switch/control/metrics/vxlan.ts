/**
 * VXLAN and GENEVE listeners (issue 26, docs/VXLAN.md): datagrams and bytes in
 * and out, and datagrams dropped by reason, per listener. The VTEPs' ports
 * are in the per-port series like any port's (their `underlay_mtu` drops too).
 */

import { counter, gauge, type MetricDef } from './define'
import type { SwitchdView, VxlanFacts } from '../view'

import { VXLAN_DROP_REASONS } from '../../core/encap'

const listeners = (s: SwitchdView): readonly VxlanFacts[] => s.vxlan?.() ?? []

export const vxlanMetrics: readonly MetricDef[] = [
  gauge('switchd_vxlan_ports', 'VXLAN or GENEVE ports of a listener: one per (VNI, remote VTEP)', ['listener', 'encap'], (emit, s) => {
    for (const l of listeners(s.server)) emit({ listener: l.listener, encap: l.encap }, l.ports)
  }),
  counter('switchd_vxlan_packets_total', 'Datagrams a VXLAN or GENEVE listener received (every one, dropped ones too) and sent', ['listener', 'direction'], (emit, s) => {
    for (const l of listeners(s.server)) { emit({ listener: l.listener, direction: 'in' }, l.packetsIn); emit({ listener: l.listener, direction: 'out' }, l.packetsOut) }
  }),
  counter('switchd_vxlan_bytes_total', 'UDP payload bytes (header and inner frame) a VXLAN or GENEVE listener received and sent', ['listener', 'direction'], (emit, s) => {
    for (const l of listeners(s.server)) { emit({ listener: l.listener, direction: 'in' }, l.bytesIn); emit({ listener: l.listener, direction: 'out' }, l.bytesOut) }
  }),
  counter('switchd_vxlan_dropped_total', 'Datagrams a VXLAN or GENEVE listener dropped: from an unlisted address, for a VNI not configured for that VTEP, a bad or truncated header, or a send that failed', ['listener', 'reason'], (emit, s) => {
    // Every reason, pre-zeroed: a rate is 0 rather than absent.
    for (const l of listeners(s.server)) for (const r of VXLAN_DROP_REASONS) emit({ listener: l.listener, reason: r }, l.dropped[r] ?? 0)
  })
]
