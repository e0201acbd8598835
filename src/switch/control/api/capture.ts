/**
 * GET /api/v1/capture[?network=&port=&vlan=&count=&bytes=&duration=]: a
 * pcap stream of what the network switches (control/capture.ts). At most
 * limits.maxCaptures run at once (429).
 */

import type { ApiRequest } from './route'
import { DEFAULT_LIMITS, type CaptureLimits } from '../capture'
import { RESPONSE_HEADERS } from '../exposure'
import { HttpError, optVlan, optInt } from './http'
import { lookupNetwork, lookupPort, checkPortFilter, checkVlanFilter } from '../names'

export function getCapture ({ res, server, q }: ApiRequest): void {
  const port = q.get('port') ?? undefined
  // Without a network, the port's own (else "default"): a port of another network is not "no frames".
  const sw = q.get('network') === null && port !== undefined ? lookupPort(server, port, null).network : lookupNetwork(server, q.get('network'))
  const vlan = optVlan(q.get('vlan'))
  // Before the pcap header: a name that does not exist fails now, not after a silent --duration.
  checkPortFilter(server, port, [sw])
  checkVlanFilter(server, vlan, [sw])
  const limits: CaptureLimits = {
    count: optInt(q.get('count'), 'count', 1, 10_000_000, DEFAULT_LIMITS.count),
    bytes: optInt(q.get('bytes'), 'bytes', 1, 10_000_000_000, DEFAULT_LIMITS.bytes),
    duration: optInt(q.get('duration'), 'duration', 0.1, 86_400, DEFAULT_LIMITS.duration)
  }
  const max = server.config.limits.maxCaptures
  if (server.captures.size >= max) {
    res.setHeader('retry-after', '10')
    throw new HttpError(429, `${max} captures are running (limits.maxCaptures); try again when one ends`)
  }
  res.writeHead(200, { ...RESPONSE_HEADERS, 'content-type': 'application/vnd.tcpdump.pcap' })
  const stop = server.captures.start(sw, { port, vlan }, limits, res)
  res.on('close', stop)
}
