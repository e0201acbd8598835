/**
 * POST /api/v1/drain `{"drain": true}` (the default) or `{"drain": false}`:
 * hand this replica's ports to the others, or take it back (daemon/drain.ts
 * says what a drain does). Answers once the ports it closed are gone, so
 * `switchctl drain` returning means the replica holds no WebSocket port.
 * Behind the admin token and the browser rules like every route: a client
 * token or a web page cannot take a replica out of the balancer.
 */

import type { ApiRequest } from './route'
import { HttpError, readJson, send } from './http'
import type { DrainJson } from '../../../common/api-types'
import { clientAddressOf } from '../client-address'
import { logger } from '../../../common/log'

const log = logger('api')

export async function postDrain ({ req, res, server }: ApiRequest): Promise<void> {
  const body = await readJson(req)
  for (const k of Object.keys(body)) if (k !== 'drain') throw new HttpError(400, `unknown field "${k}": the body is {"drain": true} or {"drain": false}`)
  const on = body.drain ?? true
  if (typeof on !== 'boolean') throw new HttpError(400, 'drain: expected true (drain this replica) or false (serve again)')
  log.info(on ? 'drain_requested' : 'undrain_requested', { remote: clientAddressOf(req, server.config), was_draining: server.draining })
  const answer: DrainJson = await server.drain(on)
  send(res, 200, answer)
}
