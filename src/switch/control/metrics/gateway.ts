/**
 * A network's gateway (docs/GATEWAY.md): its child, its DHCP leases, what
 * its filters dropped, the host sockets it holds. Every network has these
 * series (0 without a gateway), so a dashboard can group by network from the
 * start.
 */

import type { GatewayFacts } from '../view'
import { counter, perNetwork, type MetricDef } from './define'

/** The gateway's counters. */
type GatewayCounter = { [K in keyof GatewayFacts]: GatewayFacts[K] extends number ? K : never }[keyof GatewayFacts]

/** switchd_gateway_filtered_frames_total's reasons, and the gateway's counter of each. */
const FILTERED: ReadonlyArray<readonly [string, GatewayCounter]> = [
  ['dhcp', 'filteredDhcp'], ['dhcp_chaddr', 'filteredChaddr'], ['dhcp_limit', 'filteredLimit'], ['dhcp_rate', 'filteredRate'], ['dhcp_pool', 'filteredPool'],
  ['dns', 'filteredDns'], ['outside', 'filteredOutside'], ['switchd', 'filteredSelf'], ['host', 'filteredHost'], ['not_routable', 'filteredNotRoutable'],
  ['fragment', 'filteredFragment'], ['protocol', 'filteredProtocol'], ['flows', 'filteredFlows'], ['source', 'filteredSource'], ['arp_rate', 'filteredArpRate']
]

export const gatewayMetrics: readonly MetricDef[] = [
  perNetwork('gauge', 'switchd_gateway_up', '1 while the network\'s gateway (its QEMU child) is running and ready', (sw, s) => s.gatewayOf(sw.name)?.up === true ? 1 : 0),
  perNetwork('counter', 'switchd_gateway_starts_total', 'Gateway children started (the first, and every restart)', (sw, s) => s.gatewayOf(sw.name)?.starts ?? 0),
  perNetwork('gauge', 'switchd_gateway_leases', 'DHCP leases the gateway\'s pool has bound now (static leases not counted)', (sw, s) => s.gatewayOf(sw.name)?.leasesHeld ?? 0),
  perNetwork('counter', 'switchd_gateway_lease_file_errors_total', 'Writes of the gateway\'s lease file that failed (retried each second; new leases wait for them)', (sw, s) => s.gatewayOf(sw.name)?.leaseFileErrors ?? 0),
  counter('switchd_gateway_leases_total', 'DHCP leases the gateway gave (DHCPACKs): dynamic (its pool) or static', ['network', 'kind'], (emit, s) => {
    for (const sw of s.networks()) {
      const p = s.gatewayOf(sw.name)
      emit({ network: sw.name, kind: 'dynamic' }, p === undefined ? 0 : p.leases - p.staticLeases)
      emit({ network: sw.name, kind: 'static' }, p?.staticLeases ?? 0)
    }
  }),
  counter('switchd_gateway_filtered_frames_total', `Frames to the gateway dropped, by reason (docs/GATEWAY.md): ${FILTERED.map(([reason]) => reason).join(', ')}`, ['network', 'reason'], (emit, s) => {
    for (const sw of s.networks()) {
      const p = s.gatewayOf(sw.name)
      for (const [reason, key] of FILTERED) emit({ network: sw.name, reason }, p?.[key] ?? 0)
    }
  }),
  perNetwork('gauge', 'switchd_gateway_flows', 'Host sockets the gateway\'s child holds for the stations now (UDP, TCP, ICMP echo), as switchd models them', (sw, s) => s.gatewayOf(sw.name)?.flows ?? 0)
]
