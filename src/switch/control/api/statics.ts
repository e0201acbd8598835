/**
 * Static fdb entries: POST /api/v1/fdb/static {network?, vlan?, mac, port,
 * detached?} (detached: the port has not connected yet) and
 * DELETE /api/v1/fdb/static?network=&vlan=&mac=. A network holds at most
 * MAX_STATIC_ENTRIES of them, configured and added here together (409).
 */

import type { Switch } from '../../core/switch'
import type { ApiRequest } from './route'
import { MAX_STATIC_ENTRIES } from '../../core/fdb'
import { HttpError, send, readJson, optString, optVlan, optMac } from './http'
import { lookupNetwork, staticTarget, staticNotFound } from '../names'
import { formatMac } from '../../../common/ethernet'
import { logger } from '../../../common/log'

const log = logger('api')

/** The network, VLAN (default 1) and station MAC an entry is for. */
function entryOf (server: ApiRequest['server'], b: Record<string, unknown>): { sw: Switch, vid: number, mac: number } {
  const sw = lookupNetwork(server, optString(b.network, 'network'))
  const mac = optMac(b.mac)
  if (mac === undefined) throw new HttpError(400, 'mac: required')
  if (Math.floor(mac / 2 ** 40) % 2 === 1) throw new HttpError(400, 'mac: a group address cannot be a station')
  return { sw, vid: optVlan(b.vlan) ?? 1, mac }
}

export async function addStatic ({ req, res, server }: ApiRequest): Promise<void> {
  const b = await readJson(req)
  const { sw, vid, mac } = entryOf(server, b)
  const port = optString(b.port, 'port')
  if (port === undefined) throw new HttpError(400, 'port: required')
  const detached = staticTarget(server, sw, port, b.detached === true)
  if (sw.staticCount >= MAX_STATIC_ENTRIES && !sw.hasStatic(vid, mac)) {
    throw new HttpError(409, `network ${sw.name} has its maximum of ${MAX_STATIC_ENTRIES} static entries; remove one first`)
  }
  sw.addStatic({ vid, mac, port })
  log.info('fdb_static_added', { network: sw.name, vlan: vid, mac: formatMac(mac), port, detached })
  send(res, 201, { network: sw.name, vlan: vid, mac: formatMac(mac), port, detached })
}

export function removeStatic ({ res, server, q }: ApiRequest): void {
  const { sw, vid, mac } = entryOf(server, Object.fromEntries(q))
  if (!sw.removeStatic(vid, mac)) throw staticNotFound(sw, vid, mac)
  log.info('fdb_static_removed', { network: sw.name, vlan: vid, mac: formatMac(mac) })
  send(res, 200, { removed: 1 })
}
