/**
 * What the view (control/view.ts) reads of the daemon's endpoints that is not
 * a port's: a gateway's leases, filters, flows and sandbox; a VXLAN
 * listener's datagrams and drops.
 */

import type { Gateway } from '../io/gateway'
import type { Endpoint } from './endpoints'
import type { GatewayFacts, VxlanFacts } from '../control/view'

export function gatewayFacts (g: Gateway): GatewayFacts {
  const p = g.port
  const c = p.server.counters
  return {
    network: g.spec.network, up: g.up, starts: g.starts, leases: p.leases, staticLeases: p.staticLeases,
    leaseTable: g.spec.dhcp ? p.server.leases : undefined, leasesHeld: p.server.leases.held, leaseFileErrors: g.leaseFile?.errors ?? 0,
    filteredChaddr: c.chaddr, filteredLimit: c.limit, filteredRate: c.rate, filteredPool: c.pool,
    filteredDhcp: p.filteredDhcp + c.notDhcp, filteredDns: p.filteredDns, filteredOutside: p.filteredOutside, filteredSelf: p.filteredSelf,
    filteredHost: p.filteredHost, filteredNotRoutable: p.filteredNotRoutable, filteredFragment: p.filteredFragment,
    filteredProtocol: p.filteredProtocol, filteredFlows: p.filteredFlows, filteredSource: p.filteredSource, filteredArpRate: p.filteredArpRate,
    flows: p.flows.flows, maxFlows: p.flows.maxFlows, flowsPerClient: p.flows.flowsPerClient, flowClients: p.flows.clients,
    sandbox: g.sandbox === undefined ? undefined : g.sandbox.landlock ? 'landlock' : 'weak', sandboxWhy: g.sandbox?.weak, fdLimit: g.sandbox?.nofile ?? 0
  }
}

/** Each VXLAN or GENEVE listener's counters, in configuration order. */
export function vxlanFacts (endpoints: readonly Endpoint[]): VxlanFacts[] {
  const out: VxlanFacts[] = []
  for (const e of endpoints) {
    if (e.kind !== 'vxlan') continue
    const l = e.listener
    out.push({ listener: l.label, encap: l.spec.encap, ports: l.ports.length, packetsIn: l.packetsIn, packetsOut: l.packetsOut, bytesIn: l.bytesIn, bytesOut: l.bytesOut, dropped: l.dropCounts() })
  }
  return out
}
