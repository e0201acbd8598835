/**
 * GET /api/v1/status: this switchd as a replica of its fleet (issue 25):
 * its name (--replica), whether it runs with --fleet, the peers answering
 * now and its mesh links up (docs/FLEET.md).
 */

import type { ApiRequest } from './route'
import type { StatusJson } from '../../../common/api-types'
import { send } from './http'

export function getStatus ({ res, server }: ApiRequest): void {
  const body: StatusJson = {
    replica: server.replica,
    fleet: server.config.fleet !== undefined,
    peers: server.counters().fleetPeers,
    meshLinks: server.ports().filter((p) => p.mesh).length
  }
  send(res, 200, body)
}
