/** GET /api/v1/leases[?network=]: the gateways' DHCP leases, dynamic and static (docs/GATEWAY.md). */

import type { ApiRequest } from './route'
import type { SwitchdView } from '../view'
import type { LeaseJson } from '../../../common/api-types'
import { LEASE_OFFERED, LEASE_BOUND } from '../../core/leases'
import { formatIpv4 } from '../../../common/dhcp'
import { formatMac } from '../../../common/ethernet'
import { send } from './http'
import { lookupNetwork, notFound } from '../names'

export function getLeases ({ res, server, q }: ApiRequest): void {
  const net = q.get('network')
  if (net !== null) {
    lookupNetwork(server, net)
    const withGateway = server.gateways().map((g) => g.network)
    if (!withGateway.includes(net)) throw notFound('gateway', net, `network ${net} has no gateway`, withGateway, 'networks with one', 'no network has one: docs/GATEWAY.md')
  }
  send(res, 200, leaseRows(server, net))
}

/** The leases of every gateway (of network `net` only, if given): the static ones first, then the pool's by address. */
function leaseRows (server: SwitchdView, net: string | null): LeaseJson[] {
  const rows: LeaseJson[] = []
  for (const g of server.gateways()) {
    const sw = server.networks.get(g.network)
    if ((net !== null && g.network !== net) || sw === undefined || g.leaseTable === undefined) continue
    const table = g.leaseTable
    const portOf = new Map(table.pool.statics.size === 0 ? [] : sw.fdb.rows().map((r) => [r.mac, r.port.name]))
    for (const [mac, ip] of table.pool.statics) {
      const port = portOf.get(mac) ?? null
      rows.push({ network: g.network, mac: formatMac(mac), ip: formatIpv4(ip), kind: 'static', state: 'bound', expires: null, port })
    }
    for (const l of table.rows().sort((a, b) => a.ip - b.ip)) {
      rows.push({
        network: g.network,
        mac: formatMac(l.mac),
        ip: formatIpv4(l.ip),
        kind: 'dynamic',
        state: l.state === LEASE_OFFERED ? 'offered' : l.state === LEASE_BOUND ? 'bound' : 'expired',
        expires: new Date(l.expires).toISOString(),
        port: l.port?.name ?? null
      })
    }
  }
  return rows
}
