/**
 * Per-port series, {network, port}: bounded by the ports connected, and
 * switched off entirely with perPortMetrics=false (or beyond maxPortSeries
 * ports) for very large installations (Scrape.eachPort). A port's drops are
 * in drops.ts.
 */

import { gauge, perPort, type MetricDef } from './define'

export const portMetrics: readonly MetricDef[] = [
  perPort('counter', 'switchd_port_receive_frames_total', 'Frames received on a port', (p) => p.rxFrames),
  perPort('counter', 'switchd_port_receive_bytes_total', 'Bytes of frames received on a port', (p) => p.rxBytes),
  perPort('counter', 'switchd_port_transmit_frames_total', 'Frames sent out of a port', (p) => p.txFrames),
  perPort('counter', 'switchd_port_transmit_bytes_total', 'Bytes of frames sent out of a port', (p) => p.txBytes),
  perPort('gauge', 'switchd_port_blocked', '1 while loop protection, the spanning tree, an operator or a link drill keeps the port from forwarding', (p) => p.blocked !== 0 ? 1 : 0),
  perPort('counter', 'switchd_port_condition_delayed_frames_total', 'Frames a link condition held back (delay, rate limit, duplicate or corrupted copies), both directions', (p) => p.framesDelayed),
  gauge('switchd_port_condition_queue_frames', 'Frames a link condition holds now, by direction (in: toward the switch, out: toward the endpoint)', ['network', 'port', 'direction'], (emit, s) => {
    s.eachPort((p, network) => {
      emit({ network, port: p.name, direction: 'in' }, p.condIn?.queuedFrames ?? 0)
      emit({ network, port: p.name, direction: 'out' }, p.condOut?.queuedFrames ?? 0)
    })
  }),
  gauge('switchd_port_condition_queue_bytes', 'Bytes a link condition holds now, by direction', ['network', 'port', 'direction'], (emit, s) => {
    s.eachPort((p, network) => {
      emit({ network, port: p.name, direction: 'in' }, p.condIn?.queuedBytes ?? 0)
      emit({ network, port: p.name, direction: 'out' }, p.condOut?.queuedBytes ?? 0)
    })
  }),
  perPort('gauge', 'switchd_port_fdb_entries', 'MACs learned on a port', (p) => p.fdbEntries)
]
