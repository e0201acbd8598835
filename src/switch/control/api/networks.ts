/** GET /api/v1/networks: every network, its counters and its gateway's. */

import type { ApiRequest } from './route'
import { send } from './http'
import { networkView } from './views'

export function getNetworks ({ res, server }: ApiRequest): void {
  const gateways = server.gateways()
  send(res, 200, server.networks.all().map((sw) => networkView(sw, gateways.find((g) => g.network === sw.name))))
}
