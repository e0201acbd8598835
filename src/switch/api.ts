/**
 * Read-only JSON views of the switch over HTTP, for operators and tests:
 *   GET /api/v1/networks   networks with their counters
 *   GET /api/v1/ports      ports: name, network, VLAN mode, state, counters
 *   GET /api/v1/fdb        fdb entries; filters ?network= &vlan= &port= &mac=
 * Slow path only: built on request from the plain counter fields.
 */

import type * as http from 'node:http'
import type { SwitchServer } from './server'
import type { WsPort } from './ws-port'
import { MODE_TRUNK } from './port'
import { formatMac, parseMac, macAt } from '../common/ethernet'

function portView (p: WsPort, nowMs: number): Record<string, unknown> {
  return {
    id: p.id,
    name: p.name,
    network: p.network.name,
    kind: p.kind,
    remote: p.remote,
    connectedAt: new Date(p.connectedAt).toISOString(),
    mode: p.mode === MODE_TRUNK ? 'trunk' : 'access',
    pvid: p.pvid,
    vlans: p.policy.vlans,
    state: p.blockedUntil !== 0 ? 'blocked' : 'forwarding',
    blockedSeconds: p.blockedUntil !== 0 ? Math.max(0, Math.ceil((p.blockedUntil - nowMs) / 1000)) : 0,
    fdbEntries: p.fdbEntries,
    maxMacs: p.maxMacs,
    counters: {
      rxFrames: p.rxFrames,
      rxBytes: p.rxBytes,
      txFrames: p.txFrames,
      txBytes: p.txBytes,
      loopBlocks: p.loopBlocks,
      securityViolations: p.securityViolations
    },
    drops: {
      runt: p.dropRunt,
      oversize: p.dropOversize,
      badSource: p.dropBadSource,
      hairpin: p.dropHairpin,
      vlan: p.dropVlan,
      portSecurity: p.dropPortSecurity,
      stormBroadcast: p.dropStormBroadcast,
      stormMulticast: p.dropStormMulticast,
      stormUnknownUnicast: p.dropStormUnknownUnicast,
      loop: p.dropLoop,
      malformed: p.dropMalformed,
      backpressure: p.dropBackpressure
    }
  }
}

function send (res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body, null, 2) + '\n')
}

/** Serve /api/v1/*; returns false for any other path. */
export function handleApi (req: http.IncomingMessage, res: http.ServerResponse, server: SwitchServer): boolean {
  const url = new URL(req.url ?? '/', 'http://x')
  if (!url.pathname.startsWith('/api/')) return false
  if (req.method !== 'GET') { send(res, 405, { error: 'method not allowed' }); return true }
  const q = url.searchParams
  switch (url.pathname) {
    case '/api/v1/networks':
      send(res, 200, server.networks.all().map((sw) => ({
        name: sw.name,
        ports: sw.ports.length,
        maxFrameSize: sw.maxFrameSize,
        fdb: { entries: sw.fdb.size, maxEntries: sw.fdb.maxEntries, ageingTime: sw.fdb.ageingTime, ...sw.fdb.stats },
        counters: { ...sw.stats }
      })))
      return true
    case '/api/v1/ports': {
      const network = q.get('network')
      send(res, 200, server.ports().filter((p) => network === null || p.network.name === network).map((p) => portView(p, p.network.nowMs)))
      return true
    }
    case '/api/v1/fdb': {
      const network = q.get('network'); const port = q.get('port'); const vlan = q.get('vlan'); const macText = q.get('mac')
      const macBuf = macText === null ? undefined : parseMac(macText)
      if (macText !== null && macBuf === undefined) { send(res, 400, { error: 'mac: expected 02:00:00:00:00:01' }); return true }
      const mac = macBuf === undefined ? undefined : macAt(macBuf, 0)
      const rows = []
      for (const sw of server.networks.all()) {
        if (network !== null && sw.name !== network) continue
        for (const r of sw.fdb.rows()) {
          if (port !== null && r.port.name !== port) continue
          if (vlan !== null && String(r.vid) !== vlan) continue
          if (mac !== undefined && r.mac !== mac) continue
          rows.push({ network: sw.name, vlan: r.vid, mac: formatMac(r.mac), port: r.port.name, age: r.age, static: r.isStatic })
        }
      }
      send(res, 200, rows)
      return true
    }
    default:
      send(res, 404, { error: 'unknown endpoint', endpoints: ['/api/v1/networks', '/api/v1/ports', '/api/v1/fdb'] })
      return true
  }
}
