/**
 * What the view (control/view.ts) reads of the daemon's endpoints that is not
 * a port's: a gateway's leases, filters, flows and sandbox.
 */

import type { Gateway } from '../io/gateway'
import type { GatewayFacts } from '../control/view'

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
