/**
 * GET /api/v1/status: who answers. A fleet of replicas sits behind one
 * balancer, and switchctl --url A,B,C (src/ctl/fleet.ts) labels each row with
 * the replica that holds it: the name comes from here.
 */

import type { ApiRequest } from './route'
import type { StatusJson } from '../../../common/api-types'
import { send } from './http'

export function getStatus ({ res, server }: ApiRequest): void {
  const body: StatusJson = { replica: server.replica }
  send(res, 200, body)
}
