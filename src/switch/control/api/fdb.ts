/**
 * The fdb: GET /api/v1/fdb[?network=&vlan=&port=&mac=], and
 * POST /api/v1/fdb/flush {network?, port?, mac?, vlan?}.
 */

import type { Switch } from '../../core/switch'
import type { FdbJson } from '../../../common/api-types'
import type { ApiRequest } from './route'
import { send, readJson, optString, optVlan, optMac } from './http'
import { networksFor, checkPortFilter, checkVlanFilter } from '../names'
import { formatMac } from '../../../common/ethernet'
import { logger } from '../../../common/log'

const log = logger('api')

/** The names of the ports the fdb entries of `nets` point at (a static entry's port may be away: "(detached)"). */
function fdbPortNames (nets: readonly Switch[]): string[] {
  return nets.flatMap((sw) => sw.fdb.rows().map((r) => r.port.name))
}

export function getFdb ({ res, server, q }: ApiRequest): void {
  const nets = networksFor(server, q.get('network')); const port = q.get('port'); const vlan = optVlan(q.get('vlan')); const mac = optMac(q.get('mac'))
  checkPortFilter(server, port, nets, fdbPortNames(nets))
  checkVlanFilter(server, vlan, nets)
  const rows: FdbJson[] = []
  for (const sw of nets) {
    for (const r of sw.fdb.rows()) {
      if (port !== null && r.port.name !== port) continue
      if (vlan !== undefined && r.vid !== vlan) continue
      if (mac !== undefined && r.mac !== mac) continue
      rows.push({ network: sw.name, vlan: r.vid, mac: formatMac(r.mac), port: r.port.name, age: r.age, static: r.isStatic })
    }
  }
  send(res, 200, rows)
}

export async function flushFdb ({ req, res, server }: ApiRequest): Promise<void> {
  const b = await readJson(req)
  const nets = networksFor(server, optString(b.network, 'network'))
  const portName = optString(b.port, 'port'); const mac = optMac(b.mac); const vlan = optVlan(b.vlan)
  checkPortFilter(server, portName, nets, fdbPortNames(nets))
  checkVlanFilter(server, vlan, nets)
  let flushed = 0
  for (const sw of nets) flushed += sw.fdb.flushWhere((r) => (portName === undefined || r.port.name === portName) && (mac === undefined || r.mac === mac) && (vlan === undefined || r.vid === vlan))
  log.info('fdb_flushed', { network: optString(b.network, 'network') ?? '*', port: portName, mac: mac === undefined ? undefined : formatMac(mac), vlan, flushed })
  send(res, 200, { flushed })
}
