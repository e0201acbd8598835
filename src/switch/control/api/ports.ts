/**
 * Ports: GET /api/v1/ports[?network=], and what an operator may do to one,
 * POST /api/v1/ports/<name>/disable | enable | disconnect (?network=: a name
 * two networks have must be given one).
 */

import type { ApiRequest } from './route'
import { send } from './http'
import { portView } from './views'
import { lookupPort, networksFor } from '../names'
import { logger } from '../../../common/log'

const log = logger('api')

export function getPorts ({ res, server, q }: ApiRequest): void {
  const nets = networksFor(server, q.get('network'))
  send(res, 200, server.ports().filter((p) => nets.includes(p.network)).map(portView))
}

/** The handler of POST /api/v1/ports/<name>/<verb>. */
export function portAction (verb: 'disable' | 'enable' | 'disconnect'): (r: ApiRequest) => void {
  return ({ res, server, q, params }) => {
    const p = lookupPort(server, params.port as string, q.get('network'))
    if (verb === 'disable') server.disablePort(p)
    else if (verb === 'enable') server.enablePort(p)
    else server.disconnectPort(p, 'disconnected by an operator')
    log.info(`port_${verb === 'disconnect' ? 'disconnected' : verb + 'd'}`, { network: p.network.name, port: p.name })
    send(res, 200, { port: p.name, action: verb })
  }
}
