/**
 * What the daemon counts outside the switches (view.ts DaemonCounters):
 * connections admitted and refused, ports a guard closed, replies not sent,
 * reloads, and live captures.
 */

import { counter, type MetricDef } from './define'

export const daemonMetrics: readonly MetricDef[] = [
  counter('switchd_ports_shut_total', 'Ports closed by a guard: not_reading (4004), bpdu_guard (4005)', ['reason'], (emit, s) => {
    const c = s.server.counters()
    emit({ reason: 'not_reading' }, c.closedNotReading)
    emit({ reason: 'bpdu_guard' }, c.bpduGuardShutdowns)
  }),
  counter('switchd_replies_dropped_total', 'Replies not sent because the peer was not reading: pong (jor1k text and WebSocket pongs), bpdu (to a trunk)', ['kind'], (emit, s) => {
    emit({ kind: 'pong' }, s.server.counters().repliesDropped)
    let bpdus = 0
    for (const sw of s.networks()) bpdus += sw.stats.controlDropped
    emit({ kind: 'bpdu' }, bpdus)
  }),
  counter('switchd_trunk_dials_refused_total', 'Trunks this switchd dialled and dropped: no_common_vlan (the other switch granted none of the VLANs we allow)', ['reason'], (emit, s) => {
    emit({ reason: 'no_common_vlan' }, s.server.counters().trunkVlansRefused)
  }),
  counter('switchd_connections_accepted_total', 'WebSocket connections that became ports', [], (emit, s) => { emit({}, s.server.counters().accepted) }),
  counter('switchd_connections_rejected_total', 'Connections refused, by reason', ['reason'], (emit, s) => {
    for (const [reason, n] of Object.entries(s.server.counters().rejectedBy)) emit({ reason }, n)
  }),
  counter('switchd_config_reloads_total', 'Configuration reloads, applied or rejected (config_rejected: nothing of it was applied)', ['result'], (emit, s) => {
    const c = s.server.counters()
    emit({ result: 'applied' }, c.reloadsApplied); emit({ result: 'rejected' }, c.reloadsRejected)
  }),
  counter('switchd_capture_frames_total', 'Frames written to live captures', [], (emit, s) => { emit({}, s.server.captures.stats.frames) }),
  counter('switchd_capture_dropped_frames_total', 'Frames live captures lost because their reader was slow', [], (emit, s) => { emit({}, s.server.captures.stats.dropped) })
]
