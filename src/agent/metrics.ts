/**
 * tap-agent's Prometheus metrics, served at /metrics on --metrics-listen.
 * Values are read from the TAP binding's counters, the agent's and the
 * uplink's plain fields at scrape time.
 */

import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'
import type { Agent } from './agent'
import { scrapedCounter, scrapedGauge, createRegistry, packageVersion } from '../common/metrics'

/** `endpoint`: the TAP-less mode's handle (modes.ts), whose listener counts the QEMU connections it refused. */
export function agentRegistry (agent: Agent, endpoint?: { refused: () => number }): Registry {
  const reg = createRegistry('tap_agent', packageVersion())
  // The TAP's counters and the native link's, folded in (agent.ts fold) before any of the agent's or the uplink's is read.
  const tap = (): ReturnType<Agent['tap']['stats']> => agent.endpointStats()
  const labels = (): { tap: string } => ({ tap: agent.tap.name })
  scrapedCounter(reg, 'tap_agent_tap_receive_frames_total', 'Frames read from the TAP', ['tap'], (emit) => { emit(labels(), tap().rxFrames) })
  scrapedCounter(reg, 'tap_agent_tap_receive_bytes_total', 'Bytes of frames read from the TAP', ['tap'], (emit) => { emit(labels(), tap().rxBytes) })
  scrapedCounter(reg, 'tap_agent_tap_transmit_frames_total', 'Frames written to the TAP', ['tap'], (emit) => { emit(labels(), tap().txFrames) })
  scrapedCounter(reg, 'tap_agent_tap_transmit_bytes_total', 'Bytes of frames written to the TAP', ['tap'], (emit) => { emit(labels(), tap().txBytes) })
  scrapedCounter(reg, 'tap_agent_tap_write_errors_total', 'Frames the TAP refused: queue_full (EAGAIN), error, malformed batch records', ['tap', 'kind'], (emit) => {
    const s = tap()
    emit({ ...labels(), kind: 'queue_full' }, s.txDropped)
    emit({ ...labels(), kind: 'error' }, s.txErrors)
    emit({ ...labels(), kind: 'malformed' }, s.txMalformed)
  })
  scrapedCounter(reg, 'tap_agent_tap_read_errors_total', 'Failed reads from the TAP', ['tap'], (emit) => { emit(labels(), tap().rxErrors) })
  scrapedCounter(reg, 'tap_agent_frames_dropped_total', 'Frames read from the TAP but not sent: uplink disconnected, or the switch not reading fast enough', ['tap', 'reason'], (emit) => {
    agent.fold()
    emit({ ...labels(), reason: 'disconnected' }, agent.stats.droppedDisconnected)
    emit({ ...labels(), reason: 'backpressure' }, agent.stats.droppedBackpressure)
  })
  scrapedCounter(reg, 'tap_agent_link_cpu_moves_total', 'Changes of the native link thread\'s CPU affinity: to the CPU the uplink\'s frames arrive on while the link is quiet, back to its whole mask when busy, placed by a flood\'s direction (--no-cpu-follow: none)', ['tap'], (emit) => {
    agent.fold()
    emit(labels(), agent.stats.cpuMoves)
  })
  scrapedCounter(reg, 'tap_agent_link_udp_run_frames_total', 'Frames from the switch the native link wrote to the TAP as part of a UDP run: up to 64 datagrams of one flow in one write, which the kernel segments back (--udp-runs, USO, Linux 6.2+; offload records only)', ['tap'], (emit) => {
    agent.fold()
    emit(labels(), agent.stats.udpRunFrames)
  })
  scrapedCounter(reg, 'tap_agent_link_coalesce_waits_total', 'Times the native link read a flood\'s burst from the TAP and left it to fill for --coalesce-usecs before reading it again', ['tap'], (emit) => {
    agent.fold()
    emit(labels(), agent.stats.coalesceWaits)
  })
  scrapedCounter(reg, 'tap_agent_link_udp_runs_refused_total', 'Times the kernel refused a UDP run (--udp-runs; GSO_UDP_L4 on a TAP needs Linux 6.2+): the agent wrote every frame alone from then on, losing none (0 or 1)', ['tap'], (emit) => {
    agent.fold()
    emit(labels(), agent.stats.udpRunsRefused)
  })
  scrapedGauge(reg, 'tap_agent_uplink_up', '1 while the uplink to switchd is connected and welcomed', [], (emit) => { emit({}, agent.uplink.isUp ? 1 : 0) })
  scrapedGauge(reg, 'tap_agent_offload', '1 while the uplink carries TAP offloads (TSO and partial checksums as large frames, as the switch granted)', ['tap'], (emit) => {
    emit(labels(), agent.uplink.isUp && agent.offload ? 1 : 0)
  })
  scrapedGauge(reg, 'tap_agent_uplink_info', 'The switch port this agent is (always 1 while up): join on it to match an agent to switchd_port_* series', ['network', 'port'], (emit) => {
    const w = agent.uplink.welcome
    if (agent.uplink.isUp && w !== undefined) emit({ network: w.network ?? 'default', port: w.name }, 1)
  })
  scrapedCounter(reg, 'tap_agent_uplink_connects_total', 'Successful connections (hello answered by a welcome)', [], (emit) => { emit({}, agent.uplink.stats.connects) })
  scrapedCounter(reg, 'tap_agent_uplink_disconnects_total', 'Connections lost after the welcome', [], (emit) => { emit({}, agent.uplink.stats.disconnects) })
  scrapedCounter(reg, 'tap_agent_uplink_sent_bytes_total', 'Bytes of batch messages sent to the switch', [], (emit) => { agent.fold(); emit({}, agent.uplink.stats.txBytes) })
  scrapedCounter(reg, 'tap_agent_uplink_received_bytes_total', 'Bytes of batch messages received from the switch', [], (emit) => { agent.fold(); emit({}, agent.uplink.stats.rxBytes) })
  scrapedCounter(reg, 'tap_agent_uplink_refused_total', 'What the switch sent that was refused: malformed batch messages (dropped), pings unanswered while the send queue was full', ['kind'], (emit) => {
    agent.fold()
    emit({ kind: 'malformed_batch' }, agent.uplink.stats.rxMalformed)
    emit({ kind: 'pong_dropped' }, agent.uplink.stats.pongsDropped)
  })
  scrapedCounter(reg, 'tap_agent_qemu_refused_total', 'Connections to --qemu-listen refused: --qemu-max-vms VMs were connected already', [], (emit) => { emit({}, endpoint?.refused() ?? 0) })
  scrapedGauge(reg, 'tap_agent_uplink_rtt_seconds', 'Round-trip time of the last WebSocket ping to switchd', [], (emit) => {
    if (agent.uplink.stats.rttSeconds >= 0) emit({}, agent.uplink.stats.rttSeconds)
  })
  return reg
}

/** Serve /metrics and /healthz on `host:port`; resolves with the bound address. */
export async function serveMetrics (reg: Registry, host: string, port: number): Promise<{ server: http.Server, address: AddressInfo }> {
  const server = http.createServer((req, res) => {
    if (req.url === '/healthz') { res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n'); return }
    if (req.url !== '/metrics') { res.writeHead(404).end(); return }
    reg.metrics().then(
      (text) => { res.writeHead(200, { 'content-type': reg.contentType }).end(text) },
      (err: Error) => { res.writeHead(500).end(err.message) }
    )
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  return { server, address: server.address() as AddressInfo }
}
