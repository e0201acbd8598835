/**
 * GET /api/v1/drops[?since=&limit=&network=&port=&reason=]: the last dropped
 * frames, from the networks' drop logs (core/droplog.ts).
 */

import type { ApiRequest } from './route'
import type { SwitchdView } from '../view'
import type { DropsJson, DropJson } from '../../../common/api-types'
import { DROP_REASONS } from '../../core/drops'
import { DEFAULT_DROP_LOG_SIZE, type DropRecord } from '../../core/droplog'
import { HttpError, send, optInt } from './http'
import { networksFor, checkPortFilter } from '../names'
import { formatMac } from '../../../common/ethernet'

export function getDrops ({ res, server, q }: ApiRequest): void {
  send(res, 200, readDrops(server, q))
}

/**
 * GET /api/v1/drops: one network's drop log (`network=`), or every
 * network's merged in sequence order; `lost` counts what came after `since`
 * and is no longer held.
 */
function readDrops (server: SwitchdView, q: URLSearchParams): DropsJson {
  const size = DEFAULT_DROP_LOG_SIZE
  const since = Math.floor(optInt(q.get('since'), 'since', 0, Number.MAX_SAFE_INTEGER, 0))
  const limit = Math.floor(optInt(q.get('limit'), 'limit', 1, size, size))
  const net = q.get('network'); const port = q.get('port'); const reason = q.get('reason')
  // The drop log outlives ports: a port it names is a port to ask about.
  const nets = networksFor(server, net)
  checkPortFilter(server, port, nets, nets.flatMap((sw) => sw.dropLog.read(0, sw.dropLog.size).records.map((r) => r.port)))
  if (reason !== null && !DROP_REASONS.some((d) => d.reason === reason)) throw new HttpError(400, `reason: expected one of ${DROP_REASONS.map((d) => d.reason).join(', ')}`)
  const last = server.networks.dropSequence.last
  let records: DropRecord[]
  let lost: number
  if (net !== null) {
    const r = server.networks.get(net)?.dropLog.read(since, limit) ?? { records: [], lost: 0 }
    records = r.records
    lost = r.lost
  } else {
    // Every record numbered after `since` is in some network's log, or was pushed out (or its network has gone).
    records = server.networks.all().flatMap((sw) => sw.dropLog.read(since, sw.dropLog.size).records).sort((a, b) => a.seq - b.seq)
    lost = Math.max(0, last - since - records.length)
    records = records.slice(Math.max(0, records.length - limit))
  }
  const drops: DropJson[] = []
  for (const r of records) {
    const why = (DROP_REASONS[r.reason] as { reason: string }).reason
    if ((port !== null && r.port !== port) || (reason !== null && why !== reason)) continue
    drops.push({
      seq: r.seq,
      // The switch clock is performance.now() (daemon/switchd.ts nowMs): its epoch is timeOrigin.
      time: new Date(performance.timeOrigin + r.timeMs).toISOString(),
      network: r.network,
      port: r.port,
      src: r.src < 0 ? null : formatMac(r.src),
      dst: r.dst < 0 ? null : formatMac(r.dst),
      vlan: r.vid === 0 ? null : r.vid,
      reason: why
    })
  }
  return { last, lost, size, drops }
}
