/**
 * switchd's Prometheus metrics (docs/METRICS.md lists them all; test/unit/docs.test.ts checks the list). Values are
 * read from Port, Switch, Fdb and server counters at scrape time.
 *
 * Per-port series carry {network, port}: bounded by the ports connected, and
 * switched off entirely with perPortMetrics=false (or beyond maxPortSeries
 * ports) for very large installations; the per-network series always exist.
 */

import type { Registry } from 'prom-client'
import type { SwitchdView, PortHandle, GatewayFacts } from '../view'
import { DROP_REASONS, portDrops, networkDrops } from '../../core/drops'
import { scrapedCounter, scrapedGauge, createRegistry, packageVersion } from '../../../common/metrics'

export interface MetricsOptions {
  /** Per-port series (default true). */
  perPort?: boolean
  /** No per-port series at all once more ports than this are connected (default 1000). */
  maxPortSeries?: number
}

export function switchdRegistry (server: SwitchdView, opts: MetricsOptions = {}): Registry {
  const reg = createRegistry('switchd', packageVersion())
  const perPort = opts.perPort ?? true
  const maxPorts = opts.maxPortSeries ?? 1000
  const eachPort = (fn: (p: PortHandle, network: string) => void): void => {
    if (!perPort) return
    const ports = server.ports()
    if (ports.length > maxPorts) return
    for (const p of ports) fn(p, p.network.name)
  }
  const nets = server.networks

  scrapedCounter(reg, 'switchd_port_receive_frames_total', 'Frames received on a port', ['network', 'port'], (emit) => { eachPort((p, network) => { emit({ network, port: p.name }, p.rxFrames) }) })
  scrapedCounter(reg, 'switchd_port_receive_bytes_total', 'Bytes of frames received on a port', ['network', 'port'], (emit) => { eachPort((p, network) => { emit({ network, port: p.name }, p.rxBytes) }) })
  scrapedCounter(reg, 'switchd_port_transmit_frames_total', 'Frames sent out of a port', ['network', 'port'], (emit) => { eachPort((p, network) => { emit({ network, port: p.name }, p.txFrames) }) })
  scrapedCounter(reg, 'switchd_port_transmit_bytes_total', 'Bytes of frames sent out of a port', ['network', 'port'], (emit) => { eachPort((p, network) => { emit({ network, port: p.name }, p.txBytes) }) })
  scrapedCounter(reg, 'switchd_port_drops_total', 'Frames dropped on a port, by reason', ['network', 'port', 'reason'], (emit) => {
    eachPort((p, network) => {
      const d = portDrops(p)
      for (const { reason } of DROP_REASONS) emit({ network, port: p.name, reason }, d[reason] ?? 0)
    })
  })
  scrapedGauge(reg, 'switchd_port_blocked', '1 while loop protection, the spanning tree, an operator or a link drill keeps the port from forwarding', ['network', 'port'], (emit) => {
    eachPort((p, network) => { emit({ network, port: p.name }, p.blocked !== 0 ? 1 : 0) })
  })
  scrapedCounter(reg, 'switchd_port_condition_delayed_frames_total', 'Frames a link condition held back (delay, rate limit, duplicate or corrupted copies), both directions', ['network', 'port'], (emit) => {
    eachPort((p, network) => { emit({ network, port: p.name }, p.framesDelayed) })
  })
  scrapedGauge(reg, 'switchd_port_condition_queue_frames', 'Frames a link condition holds now, by direction (in: toward the switch, out: toward the endpoint)', ['network', 'port', 'direction'], (emit) => {
    eachPort((p, network) => {
      emit({ network, port: p.name, direction: 'in' }, p.condIn?.queuedFrames ?? 0)
      emit({ network, port: p.name, direction: 'out' }, p.condOut?.queuedFrames ?? 0)
    })
  })
  scrapedGauge(reg, 'switchd_port_condition_queue_bytes', 'Bytes a link condition holds now, by direction', ['network', 'port', 'direction'], (emit) => {
    eachPort((p, network) => {
      emit({ network, port: p.name, direction: 'in' }, p.condIn?.queuedBytes ?? 0)
      emit({ network, port: p.name, direction: 'out' }, p.condOut?.queuedBytes ?? 0)
    })
  })
  scrapedGauge(reg, 'switchd_port_fdb_entries', 'MACs learned on a port', ['network', 'port'], (emit) => { eachPort((p, network) => { emit({ network, port: p.name }, p.fdbEntries) }) })

  scrapedGauge(reg, 'switchd_ports', 'Ports connected', ['network'], (emit) => { for (const sw of nets.all()) emit({ network: sw.name }, sw.ports.length) })
  scrapedGauge(reg, 'switchd_fdb_entries', 'Learned MACs (all VLANs)', ['network'], (emit) => { for (const sw of nets.all()) emit({ network: sw.name }, sw.fdb.size) })
  scrapedGauge(reg, 'switchd_fdb_max_entries', 'fdb capacity', ['network'], (emit) => { for (const sw of nets.all()) emit({ network: sw.name }, sw.fdb.maxEntries) })
  for (const [what, help] of [['learned', 'MACs learned'], ['moved', 'MACs that moved to another port'], ['expired', 'entries aged out'], ['evicted', 'entries evicted because the fdb was full']] as const) {
    scrapedCounter(reg, `switchd_fdb_${what}_total`, `fdb: ${help}`, ['network'], (emit) => { for (const sw of nets.all()) emit({ network: sw.name }, sw.fdb.stats[what]) })
  }
  scrapedCounter(reg, 'switchd_forwarded_frames_total', 'Frames forwarded to one known port', ['network'], (emit) => { for (const sw of nets.all()) emit({ network: sw.name }, sw.stats.forwarded) })
  // The native fast path of local TAPs (docs/LOCAL-TAPS.md): 0 for networks without one.
  scrapedGauge(reg, 'switchd_fast_path_flows', 'Flows in the native fast path of local TAPs', ['network'], (emit) => { for (const sw of nets.all()) emit({ network: sw.name }, sw.fastPath?.stats().flows ?? 0) })
  for (const [what, key, help] of [['forwarded_frames', 'forwarded', 'frames the native fast path forwarded (also in switchd_forwarded_frames_total)'], ['misses', 'misses', 'frames the native fast path handed to the switch'], ['miss_dropped', 'missDropped', 'misses dropped: the switch was that far behind']] as const) {
    scrapedCounter(reg, `switchd_fast_path_${what}_total`, `Fast path: ${help}`, ['network'], (emit) => { for (const sw of nets.all()) emit({ network: sw.name }, sw.fastPath?.stats()[key] ?? 0) })
  }
  scrapedCounter(reg, 'switchd_flooded_frames_total', 'Frames flooded, by destination kind', ['network', 'kind'], (emit) => {
    for (const sw of nets.all()) {
      emit({ network: sw.name, kind: 'broadcast' }, sw.stats.floodedBroadcast)
      emit({ network: sw.name, kind: 'multicast' }, sw.stats.floodedMulticast)
      emit({ network: sw.name, kind: 'unknown_unicast' }, sw.stats.floodedUnknown)
    }
  })
  scrapedCounter(reg, 'switchd_frames_dropped_total', 'Frames dropped in a network, by reason (kept across ports leaving)', ['network', 'reason'], (emit) => {
    for (const sw of nets.all()) {
      const d = networkDrops(sw.stats, sw.ports)
      for (const { reason } of DROP_REASONS) emit({ network: sw.name, reason }, d[reason] ?? 0)
    }
  })
  scrapedGauge(reg, 'switchd_stp_root_cost', 'Trunk hops from this switch to the spanning-tree root (0: this switch is the root)', ['network'], (emit) => {
    for (const sw of nets.all()) emit({ network: sw.name }, sw.stp.rootCost)
  })
  scrapedGauge(reg, 'switchd_stp_trunks', 'Trunks to other switches, by spanning-tree state', ['network', 'state'], (emit) => {
    for (const sw of nets.all()) {
      let forwarding = 0
      for (const p of sw.stp.ports) if (p.stp?.forwarding === true) forwarding++
      emit({ network: sw.name, state: 'forwarding' }, forwarding)
      emit({ network: sw.name, state: 'discarding' }, sw.stp.ports.length - forwarding)
    }
  })
  scrapedCounter(reg, 'switchd_stp_topology_changes_total', 'Spanning-tree topology changes acted on (trunk-learned MACs flushed)', ['network'], (emit) => {
    for (const sw of nets.all()) emit({ network: sw.name }, sw.stp.topologyChanges)
  })
  scrapedCounter(reg, 'switchd_stp_bpdus_ignored_total', 'BPDUs from a trunk over its rate (10/s, burst 20), ignored', ['network'], (emit) => {
    for (const sw of nets.all()) emit({ network: sw.name }, sw.stp.bpdusDropped)
  })
  scrapedCounter(reg, 'switchd_stp_root_guard_blocks_total', 'Times root guard made a trunk discard (its peer claimed a better root)', ['network'], (emit) => {
    for (const sw of nets.all()) emit({ network: sw.name }, sw.stp.rootGuardBlocks)
  })
  scrapedCounter(reg, 'switchd_ports_shut_total', 'Ports closed by a guard: not_reading (4004), bpdu_guard (4005)', ['reason'], (emit) => {
    const c = server.counters()
    emit({ reason: 'not_reading' }, c.closedNotReading)
    emit({ reason: 'bpdu_guard' }, c.bpduGuardShutdowns)
  })
  scrapedCounter(reg, 'switchd_replies_dropped_total', 'Replies not sent because the peer was not reading: pong (jor1k text and WebSocket pongs), bpdu (to a trunk)', ['kind'], (emit) => {
    emit({ kind: 'pong' }, server.counters().repliesDropped)
    let bpdus = 0
    for (const sw of nets.all()) bpdus += sw.stats.controlDropped
    emit({ kind: 'bpdu' }, bpdus)
  })
  scrapedCounter(reg, 'switchd_trunk_dials_refused_total', 'Trunks this switchd dialled and dropped: no_common_vlan (the other switch granted none of the VLANs we allow)', ['reason'], (emit) => {
    emit({ reason: 'no_common_vlan' }, server.counters().trunkVlansRefused)
  })
  scrapedCounter(reg, 'switchd_offload_fallback_frames_total', 'Offload frames made plain for ports without offload: GSO frames segmented, partial checksums finished', ['network', 'kind'], (emit) => {
    for (const sw of nets.all()) {
      emit({ network: sw.name, kind: 'segmented' }, sw.stats.offloadSegmented)
      emit({ network: sw.name, kind: 'checksummed' }, sw.stats.offloadChecksummed)
    }
  })
  scrapedCounter(reg, 'switchd_duplicate_macs_total', 'MACs claimed by two ports taking turns (cloned VMs), logged as duplicate_mac; at most one per MAC a minute', ['network'], (emit) => {
    for (const sw of nets.all()) emit({ network: sw.name }, sw.fdb.stats.duplicates)
  })
  scrapedCounter(reg, 'switchd_loops_detected_total', 'Loops detected (a port was blocked)', ['network'], (emit) => { for (const sw of nets.all()) emit({ network: sw.name }, sw.stats.loopsDetected) })
  scrapedCounter(reg, 'switchd_connections_accepted_total', 'WebSocket connections that became ports', [], (emit) => { emit({}, server.counters().accepted) })
  scrapedCounter(reg, 'switchd_connections_rejected_total', 'Connections refused, by reason', ['reason'], (emit) => {
    for (const [reason, n] of Object.entries(server.counters().rejectedBy)) emit({ reason }, n)
  })
  scrapedCounter(reg, 'switchd_config_reloads_total', 'Configuration reloads, applied or rejected (config_rejected: nothing of it was applied)', ['result'], (emit) => {
    const c = server.counters()
    emit({ result: 'applied' }, c.reloadsApplied); emit({ result: 'rejected' }, c.reloadsRejected)
  })
  // Every network has the gateway series (0 without a gateway), so a dashboard can group by network from the start.
  const gatewayOf = (name: string): GatewayFacts | undefined => server.gateways().find((g) => g.network === name)
  scrapedGauge(reg, 'switchd_gateway_up', '1 while the network\'s gateway (its QEMU child) is running and ready', ['network'], (emit) => {
    for (const sw of nets.all()) emit({ network: sw.name }, gatewayOf(sw.name)?.up === true ? 1 : 0)
  })
  scrapedCounter(reg, 'switchd_gateway_starts_total', 'Gateway children started (the first, and every restart)', ['network'], (emit) => {
    for (const sw of nets.all()) emit({ network: sw.name }, gatewayOf(sw.name)?.starts ?? 0)
  })
  scrapedGauge(reg, 'switchd_gateway_leases', 'DHCP leases the gateway\'s pool has bound now (static leases not counted)', ['network'], (emit) => {
    for (const sw of nets.all()) emit({ network: sw.name }, gatewayOf(sw.name)?.leasesHeld ?? 0)
  })
  scrapedCounter(reg, 'switchd_gateway_lease_file_errors_total', 'Writes of the gateway\'s lease file that failed (retried each second; new leases wait for them)', ['network'], (emit) => {
    for (const sw of nets.all()) emit({ network: sw.name }, gatewayOf(sw.name)?.leaseFileErrors ?? 0)
  })
  scrapedCounter(reg, 'switchd_gateway_leases_total', 'DHCP leases the gateway gave (DHCPACKs): dynamic (its pool) or static', ['network', 'kind'], (emit) => {
    for (const sw of nets.all()) {
      const p = gatewayOf(sw.name)
      emit({ network: sw.name, kind: 'dynamic' }, p === undefined ? 0 : p.leases - p.staticLeases)
      emit({ network: sw.name, kind: 'static' }, p?.staticLeases ?? 0)
    }
  })
  scrapedCounter(reg, 'switchd_gateway_filtered_frames_total', 'Frames to the gateway dropped, by reason (docs/GATEWAY.md): dhcp, dhcp_chaddr, dhcp_limit, dhcp_rate, dhcp_pool, ' +
    'dns, outside, switchd, host, not_routable, fragment, protocol, flows, source, arp_rate', ['network', 'reason'], (emit) => {
    for (const sw of nets.all()) {
      const p = gatewayOf(sw.name)
      emit({ network: sw.name, reason: 'dhcp' }, p?.filteredDhcp ?? 0)
      emit({ network: sw.name, reason: 'dhcp_chaddr' }, p?.filteredChaddr ?? 0)
      emit({ network: sw.name, reason: 'dhcp_limit' }, p?.filteredLimit ?? 0)
      emit({ network: sw.name, reason: 'dhcp_rate' }, p?.filteredRate ?? 0)
      emit({ network: sw.name, reason: 'dhcp_pool' }, p?.filteredPool ?? 0)
      emit({ network: sw.name, reason: 'dns' }, p?.filteredDns ?? 0)
      emit({ network: sw.name, reason: 'outside' }, p?.filteredOutside ?? 0)
      emit({ network: sw.name, reason: 'switchd' }, p?.filteredSelf ?? 0)
      emit({ network: sw.name, reason: 'host' }, p?.filteredHost ?? 0)
      emit({ network: sw.name, reason: 'not_routable' }, p?.filteredNotRoutable ?? 0)
      emit({ network: sw.name, reason: 'fragment' }, p?.filteredFragment ?? 0)
      emit({ network: sw.name, reason: 'protocol' }, p?.filteredProtocol ?? 0)
      emit({ network: sw.name, reason: 'flows' }, p?.filteredFlows ?? 0)
      emit({ network: sw.name, reason: 'source' }, p?.filteredSource ?? 0)
      emit({ network: sw.name, reason: 'arp_rate' }, p?.filteredArpRate ?? 0)
    }
  })
  scrapedGauge(reg, 'switchd_gateway_flows', 'Host sockets the gateway\'s child holds for the stations now (UDP, TCP, ICMP echo), as switchd models them', ['network'], (emit) => {
    for (const sw of nets.all()) emit({ network: sw.name }, gatewayOf(sw.name)?.flows ?? 0)
  })
  scrapedCounter(reg, 'switchd_capture_frames_total', 'Frames written to live captures', [], (emit) => { emit({}, server.captures.stats.frames) })
  scrapedCounter(reg, 'switchd_capture_dropped_frames_total', 'Frames live captures lost because their reader was slow', [], (emit) => { emit({}, server.captures.stats.dropped) })
  return reg
}
