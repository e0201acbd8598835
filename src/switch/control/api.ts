/**
 * The admin HTTP API (JSON), behind the admin token when one is configured
 * (`Authorization: Bearer <token>`, compared in constant time):
 *
 *   GET    /api/v1/networks                      networks and their counters
 *   GET    /api/v1/ports[?network=]              ports: VLAN mode, state, counters, drops
 *   GET    /api/v1/fdb[?network=&vlan=&port=&mac=]
 *   POST   /api/v1/fdb/flush   {network?, port?, mac?, vlan?}
 *   POST   /api/v1/fdb/static  {network?, vlan?, mac, port, detached?}   (detached: the port has not connected yet)
 *   DELETE /api/v1/fdb/static?network=&vlan=&mac=
 *   POST   /api/v1/ports/<name>/disable | enable | disconnect   (?network=: a name two networks have must be given one)
 *   GET    /api/v1/conditions[?network=]         link conditions and drills in force (docs/CONDITIONS.md)
 *   POST   /api/v1/ports/<name>/condition {direction?: in|out|both, delay?, jitter?, loss?, rate?, …}
 *   DELETE /api/v1/ports/<name>/condition[?direction=in|out|both]
 *   POST   /api/v1/ports/<name>/link {state: down|up, direction?: in|out|both, flap?: "2s/8s"}
 *   GET    /api/v1/capture[?network=&port=&vlan=&count=&bytes=&duration=]   a pcap stream
 *   POST   /api/v1/trace   {network?, in, frame}   the forwarding decision for a frame, now (changes nothing)
 *   GET    /api/v1/drops[?since=&limit=&network=&port=&reason=]   the last dropped frames
 *   GET    /api/v1/leases[?network=]             the gateways' DHCP leases, dynamic and static
 *
 * Without an admin token the API is served only where that is safe
 * (exposure.ts); with `api: false` it answers 404. Requests from browsers are
 * refused unless their Origin is allowed, and POST/DELETE must be JSON
 * (exposure.ts). At most limits.maxCaptures captures run at once (429), and a
 * network holds at most MAX_STATIC_ENTRIES static entries, configured and
 * added here together (409).
 *
 * A network, port, VLAN, static entry or gateway a request names that does
 * not exist answers 404 TSW_ERR_NOT_FOUND with what exists (names.ts),
 * before anything is done.
 *
 * Slow path only: views are built on request from the plain counter fields.
 */

import type * as http from 'node:http'
import type { SwitchdView, PortHandle, GatewayFacts } from './view'
import type { Switch } from '../core/switch'
import { MODE_TRUNK, BLOCK_LOOP, BLOCK_OPERATOR, BLOCK_STP, BLOCK_LINK, DIR_IN, DIR_OUT, portState } from '../core/port'
import { readCondition, conditionJson, type LinkCondition } from '../core/condition'
import { TapswitchError } from '../../common/errors'
import { portDropDetail, networkCounters } from '../core/drops'
import type { PortJson, NetworkJson, GatewayJson, FdbJson, ConditionJson, PortConditionJson, TraceJson, DropsJson, DropJson, LeaseJson } from '../../common/api-types'
import { LEASE_OFFERED, LEASE_BOUND } from '../core/leases'
import { formatIpv4 } from '../../common/dhcp'
import { traceFrame } from './trace'
import { DROP_REASONS } from '../core/drops'
import { DEFAULT_DROP_LOG_SIZE, type DropRecord } from '../core/droplog'
import { parseFrameSpec } from '../../common/framespec'
import { DEFAULT_LIMITS, type CaptureLimits } from './capture'
import { MAX_STATIC_ENTRIES } from '../core/fdb'
import { apiRequestRefusal } from './exposure'
import { formatMac, parseMac, macAt } from '../../common/ethernet'
import { logger } from '../../common/log'
import { requestUrl } from '../../common/cli'
import { bearerToken } from './auth'
import { checkAdminToken, type AdminVerdict } from './throttle'
import { RESPONSE_HEADERS } from './exposure'
import { NameError, lookupNetwork, lookupPort, networksFor, checkPortFilter, checkVlanFilter, notFound, staticTarget, staticNotFound } from './names'

const log = logger('api')
const MAX_BODY = 64 * 1024

class HttpError extends Error {
  constructor (readonly status: number, message: string) { super(message) }
}

export function portView (p: PortHandle): PortJson {
  const nowMs = p.network.nowMs
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
    state: portState(p),
    blockedSeconds: (p.blocked & (BLOCK_OPERATOR | BLOCK_STP)) === 0 && (p.blocked & BLOCK_LOOP) !== 0 ? Math.max(0, Math.ceil((p.loopUntil - nowMs) / 1000)) : 0,
    fdbEntries: p.fdbEntries,
    maxMacs: p.maxMacs,
    offload: p.offload,
    ...(p.stp !== null ? { stp: stpView(p, p.stp) } : {}),
    counters: {
      rxFrames: p.rxFrames,
      rxBytes: p.rxBytes,
      txFrames: p.txFrames,
      txBytes: p.txBytes,
      loopBlocks: p.loopBlocks,
      securityViolations: p.securityViolations
    },
    ...(hasCondition(p) ? { condition: conditionView(p) } : {}),
    drops: portDropDetail(p)
  }
}

/** A trunk's spanning-tree state, and what it knows of the switch at its far end. */
function stpView (p: PortHandle, st: NonNullable<PortHandle['stp']>): NonNullable<PortJson['stp']> {
  return {
    role: st.role,
    forwarding: st.forwarding,
    neighbour: st.info?.bridge,
    // A trunk we dialled is named `<our name>@<its host>`; one we accepted, by the name the far switch asked for.
    peer: p.kind === 'trunk' ? p.remote : p.name,
    neighbourRoot: st.info?.root,
    neighbourCost: st.info?.cost,
    bpdusIn: st.bpdusIn,
    bpdusOut: st.bpdusOut,
    badBpdus: st.badBpdus
  }
}

/** Whether the port has a link condition, a one-way drill or a flap (the slow path's question). */
export function hasCondition (p: PortHandle): boolean {
  return p.condIn !== null || p.condOut !== null || p.flap !== undefined || (p.blocked & BLOCK_LINK) !== 0
}

function directionView (c: LinkCondition | null): ConditionJson | undefined {
  if (c === null) return undefined
  return { ...conditionJson(c.params), down: c.down, queuedFrames: c.queuedFrames, queuedBytes: c.queuedBytes } as ConditionJson
}

export function conditionView (p: PortHandle): PortConditionJson {
  const v: PortConditionJson = { port: p.name, network: p.network.name, framesDelayed: p.framesDelayed }
  const i = directionView(p.condIn)
  const o = directionView(p.condOut)
  if (i !== undefined) v.in = i
  if (o !== undefined) v.out = o
  if (p.flap !== undefined) v.flap = { down: p.flap.down, every: p.flap.every }
  return v
}

/** The directions a request names: in, out, or both (the default). */
function directions (v: unknown): number[] {
  if (v === undefined || v === null || v === '' || v === 'both') return [DIR_IN, DIR_OUT]
  if (v === 'in') return [DIR_IN]
  if (v === 'out') return [DIR_OUT]
  throw new HttpError(400, 'direction: expected "in" (toward the switch), "out" (toward the endpoint) or "both"')
}

/** Most seconds in a flap's period: a drill, not a schedule for the year. */
const MAX_FLAP_SECONDS = 86_400

/** `flap`: "2s/8s" (down 2 s every 8 s) or {down, every} in seconds. */
function readFlap (v: unknown): { down: number, every: number } {
  let down: number; let every: number
  const sec = (x: string): number => { const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m)?\s*$/.exec(x); return m === null ? NaN : Number(m[1]) * (m[2] === 'ms' ? 0.001 : m[2] === 'm' ? 60 : 1) }
  if (typeof v === 'string' && v.includes('/')) {
    const [a, b] = v.split('/') as [string, string]
    down = sec(a); every = sec(b)
  } else if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    down = Number((v as Record<string, unknown>).down); every = Number((v as Record<string, unknown>).every)
  } else throw new HttpError(400, 'flap: expected "DOWN/EVERY" like "2s/8s", or {"down": 2, "every": 8} in seconds')
  if (!Number.isFinite(down) || !Number.isFinite(every) || down < 0.05 || every > MAX_FLAP_SECONDS || down >= every) {
    throw new HttpError(400, `flap: expected DOWN from 0.05 s, shorter than EVERY, and EVERY up to ${MAX_FLAP_SECONDS} s`)
  }
  return { down, every }
}

/** A gateway as GET /api/v1/networks shows it. */
export function gatewayView (g: GatewayFacts): GatewayJson {
  return {
    up: g.up,
    starts: g.starts,
    sandbox: g.sandbox ?? 'starting',
    ...(g.sandboxWhy !== undefined ? { sandboxWhy: g.sandboxWhy } : {}),
    fdLimit: g.fdLimit,
    flows: g.flows,
    maxFlows: g.maxFlows,
    flowsPerClient: g.flowsPerClient,
    clients: g.flowClients,
    filtered: {
      dhcp: g.filteredDhcp, dhcp_chaddr: g.filteredChaddr, dhcp_limit: g.filteredLimit, dhcp_rate: g.filteredRate, dhcp_pool: g.filteredPool, dns: g.filteredDns, outside: g.filteredOutside, switchd: g.filteredSelf, host: g.filteredHost,
      not_routable: g.filteredNotRoutable, fragment: g.filteredFragment, protocol: g.filteredProtocol, flows: g.filteredFlows,
      source: g.filteredSource, arp_rate: g.filteredArpRate
    }
  }
}

export function networkView (sw: Switch, gateway?: GatewayFacts): NetworkJson {
  // First: the fast path folds what it forwarded into the counters below.
  const fastPath = sw.fastPath?.stats()
  return {
    name: sw.name,
    ports: sw.ports.length,
    maxFrameSize: sw.maxFrameSize,
    fdb: { entries: sw.fdb.size, maxEntries: sw.fdb.maxEntries, ageingTime: sw.fdb.ageingTime, ...sw.fdb.stats },
    stp: { bridge: sw.stp.bridgeId, root: sw.stp.rootId, rootCost: sw.stp.rootCost, rootPort: sw.stp.rootPort?.name, trunks: sw.stp.ports.length, topologyChanges: sw.stp.topologyChanges },
    counters: networkCounters(sw.stats),
    ...(fastPath !== undefined ? { fastPath } : {}),
    ...(gateway !== undefined ? { gateway: gatewayView(gateway) } : {})
  }
}

function send (res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { ...RESPONSE_HEADERS, 'content-type': 'application/json' }).end(JSON.stringify(body, null, 2) + '\n')
}

/**
 * Answer a request whose admin token did not pass (throttle.ts): 401 with
 * the Bearer challenge, or 429 with Retry-After; counted and logged within
 * the client's log budget.
 */
export function refuseAdmin (res: http.ServerResponse, server: SwitchdView, remote: string, path: string, verdict: Exclude<AdminVerdict, { ok: true }>): void {
  if (verdict.status === 429) {
    server.refusedApi('auth_throttled')
    log.client('warn', 'admin_throttled', remote, { remote, path, retry_after: verdict.retryAfter })
    res.setHeader('retry-after', String(verdict.retryAfter))
  } else {
    if (verdict.hadToken) server.refusedApi('unauthorized')
    log.client('warn', 'admin_unauthorized', remote, { remote, path, had_token: verdict.hadToken })
    res.setHeader('www-authenticate', 'Bearer realm="switchd"')
  }
  send(res, verdict.status, { error: verdict.message })
}

async function readJson (req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY) throw new HttpError(413, `body over ${MAX_BODY} bytes`)
    chunks.push(chunk)
  }
  if (size === 0) return {}
  let v: unknown
  try { v = JSON.parse(Buffer.concat(chunks).toString('utf8')) } catch { throw new HttpError(400, 'body is not JSON') }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HttpError(400, 'body must be a JSON object')
  return v as Record<string, unknown>
}

function optString (v: unknown, key: string): string | undefined {
  if (v === undefined || v === null || v === '') return undefined
  if (typeof v !== 'string') throw new HttpError(400, `${key}: expected a string`)
  return v
}

function optVlan (v: unknown, key = 'vlan'): number | undefined {
  if (v === undefined || v === null || v === '') return undefined
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1 || n > 4094) throw new HttpError(400, `${key}: expected a VLAN id 1..4094`)
  return n
}

function optMac (v: unknown): number | undefined {
  const text = optString(v, 'mac')
  if (text === undefined) return undefined
  const b = parseMac(text)
  if (b === undefined) throw new HttpError(400, 'mac: expected 02:00:00:00:00:01')
  return macAt(b, 0)
}

function optInt (v: string | null, key: string, min: number, max: number, def: number): number {
  if (v === null || v === '') return def
  const n = Number(v)
  if (!Number.isFinite(n) || n < min || n > max) throw new HttpError(400, `${key}: expected a number from ${min} to ${max}`)
  return n
}

/** The names of the ports the fdb entries of `nets` point at (a static entry's port may be away: "(detached)"). */
function fdbPortNames (nets: readonly Switch[]): string[] {
  return nets.flatMap((sw) => sw.fdb.rows().map((r) => r.port.name))
}

/** Serve /api/v1/*; returns false for any other path. */
export function handleApi (req: http.IncomingMessage, res: http.ServerResponse, server: SwitchdView): boolean {
  const url = requestUrl(req.url)
  if (url === undefined) { send(res, 400, { error: 'not a valid request target' }); return true }
  if (!url.pathname.startsWith('/api/')) return false
  if (!server.config.api) { send(res, 404, { error: 'the admin API is off (api: false)' }); return true }
  const refusal = apiRequestRefusal(req, server.config.allowedOrigins, server.config.allowedHosts)
  if (refusal !== undefined) {
    server.refusedApi('bad_origin')
    log.client('warn', 'admin_refused', req.socket.remoteAddress, { remote: req.socket.remoteAddress, path: url.pathname, reason: refusal })
    send(res, 403, { error: refusal })
    return true
  }
  const token = server.adminToken
  if (token === undefined && !server.adminOpen) {
    // Start refuses this set-up (exposure.ts); never serve it should one slip through.
    send(res, 403, { error: 'the admin API needs an admin token here (--admin-token)' })
    return true
  }
  const remote = req.socket.remoteAddress ?? '?'
  const verdict = checkAdminToken(server.authThrottle, remote, bearerToken(req), token)
  if (!verdict.ok) {
    refuseAdmin(res, server, remote, url.pathname, verdict)
    return true
  }
  route(req, res, server, url).catch((err: Error) => {
    const status = err instanceof HttpError || err instanceof NameError ? err.status : 500
    if (status === 500) log.error('api_error', { path: url.pathname, error: err.message })
    if (!res.headersSent) send(res, status, err instanceof NameError ? err.body() : { error: err.message })
    else res.destroy()
  })
  return true
}

async function route (req: http.IncomingMessage, res: http.ServerResponse, server: SwitchdView, url: URL): Promise<void> {
  const q = url.searchParams
  const method = req.method ?? 'GET'
  const path = url.pathname
  if (method === 'GET' && path === '/api/v1/networks') {
    const gateways = server.gateways()
    send(res, 200, server.networks.all().map((sw) => networkView(sw, gateways.find((g) => g.network === sw.name))))
    return
  }
  if (method === 'GET' && path === '/api/v1/ports') {
    const nets = networksFor(server, q.get('network'))
    send(res, 200, server.ports().filter((p) => nets.includes(p.network)).map(portView))
    return
  }
  if (method === 'GET' && path === '/api/v1/fdb') {
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
    return
  }
  if (method === 'POST' && path === '/api/v1/fdb/flush') {
    const b = await readJson(req)
    const nets = networksFor(server, optString(b.network, 'network'))
    const portName = optString(b.port, 'port'); const mac = optMac(b.mac); const vlan = optVlan(b.vlan)
    checkPortFilter(server, portName, nets, fdbPortNames(nets))
    checkVlanFilter(server, vlan, nets)
    let flushed = 0
    for (const sw of nets) flushed += sw.fdb.flushWhere((r) => (portName === undefined || r.port.name === portName) && (mac === undefined || r.mac === mac) && (vlan === undefined || r.vid === vlan))
    log.info('fdb_flushed', { network: optString(b.network, 'network') ?? '*', port: portName, mac: mac === undefined ? undefined : formatMac(mac), vlan, flushed })
    send(res, 200, { flushed })
    return
  }
  if (path === '/api/v1/fdb/static' && (method === 'POST' || method === 'DELETE')) {
    const b = method === 'POST' ? await readJson(req) : Object.fromEntries(q)
    const sw = lookupNetwork(server, optString(b.network, 'network'))
    const mac = optMac(b.mac)
    if (mac === undefined) throw new HttpError(400, 'mac: required')
    if (Math.floor(mac / 2 ** 40) % 2 === 1) throw new HttpError(400, 'mac: a group address cannot be a station')
    const vid = optVlan(b.vlan) ?? 1
    if (method === 'POST') {
      const port = optString(b.port, 'port')
      if (port === undefined) throw new HttpError(400, 'port: required')
      const detached = staticTarget(server, sw, port, b.detached === true)
      if (sw.staticCount >= MAX_STATIC_ENTRIES && !sw.hasStatic(vid, mac)) {
        throw new HttpError(409, `network ${sw.name} has its maximum of ${MAX_STATIC_ENTRIES} static entries; remove one first`)
      }
      sw.addStatic({ vid, mac, port })
      log.info('fdb_static_added', { network: sw.name, vlan: vid, mac: formatMac(mac), port, detached })
      send(res, 201, { network: sw.name, vlan: vid, mac: formatMac(mac), port, detached })
    } else {
      if (!sw.removeStatic(vid, mac)) throw staticNotFound(sw, vid, mac)
      log.info('fdb_static_removed', { network: sw.name, vlan: vid, mac: formatMac(mac) })
      send(res, 200, { removed: 1 })
    }
    return
  }
  if (method === 'GET' && path === '/api/v1/conditions') {
    const nets = networksFor(server, q.get('network'))
    send(res, 200, server.ports().filter((p) => nets.includes(p.network) && hasCondition(p)).map(conditionView))
    return
  }
  const cond = /^\/api\/v1\/ports\/([^/]+)\/(condition|link)$/.exec(path)
  if (cond !== null && (method === 'POST' || (method === 'DELETE' && cond[2] === 'condition'))) {
    const p = lookupPort(server, decodeURIComponent(cond[1] as string), q.get('network'))
    const sw = p.network
    const b = method === 'POST' ? await readJson(req) : Object.fromEntries(q)
    const dirs = directions(b.direction)
    if (cond[2] === 'condition') {
      if (method === 'DELETE') {
        for (const d of dirs) server.setCondition(p, d, null)
        log.info('condition_cleared', { network: sw.name, port: p.name, direction: String(b.direction ?? 'both') })
      } else {
        const { direction: _d, ...rest } = b
        let params
        try { params = readCondition(rest, 'condition') } catch (err) {
          if (err instanceof TapswitchError) throw new HttpError(400, err.message)
          throw err
        }
        for (const d of dirs) server.setCondition(p, d, params)
        log.info('condition_set', { network: sw.name, port: p.name, direction: String(b.direction ?? 'both'), condition: JSON.stringify(conditionJson(params)) })
      }
      send(res, 200, conditionView(p))
      return
    }
    const state = b.state
    if (state !== 'down' && state !== 'up') throw new HttpError(400, 'state: expected "down" or "up"')
    if (b.flap !== undefined && b.flap !== null) {
      if (state !== 'down' || dirs.length !== 2) throw new HttpError(400, 'flap: only with state "down" and both directions')
      const f = readFlap(b.flap)
      server.startFlap(p, f.down, f.every)
      log.info('link_flap', { network: sw.name, port: p.name, down_seconds: f.down, every_seconds: f.every })
    } else {
      // Up ends a flap too; down by hand replaces one.
      server.stopFlap(p)
      server.setLinkDown(p, dirs.length === 2 ? 'both' : dirs[0] as number, state === 'down')
      log.info(state === 'down' ? 'link_down' : 'link_up', { network: sw.name, port: p.name, direction: String(b.direction ?? 'both') })
    }
    send(res, 200, { ...conditionView(p), state: portState(p) })
    return
  }
  const action = /^\/api\/v1\/ports\/([^/]+)\/(disable|enable|disconnect)$/.exec(path)
  if (method === 'POST' && action !== null) {
    const p = lookupPort(server, decodeURIComponent(action[1] as string), q.get('network'))
    const verb = action[2] as string
    if (verb === 'disable') server.disablePort(p)
    else if (verb === 'enable') server.enablePort(p)
    else server.disconnectPort(p, 'disconnected by an operator')
    log.info(`port_${verb === 'disconnect' ? 'disconnected' : verb + 'd'}`, { network: p.network.name, port: p.name })
    send(res, 200, { port: p.name, action: verb })
    return
  }
  if (method === 'GET' && path === '/api/v1/capture') {
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
    return
  }
  if (method === 'POST' && path === '/api/v1/trace') {
    const b = await readJson(req)
    const portName = optString(b.in, 'in')
    if (portName === undefined) throw new HttpError(400, 'in: required (the ingress port)')
    // Without a network, the port's own (a name two networks have needs one: 409).
    const sw = lookupPort(server, portName, optString(b.network, 'network')).network
    const ingress = sw.ports.find((p) => p.name === portName)
    if (ingress === undefined) throw new HttpError(404, `no port "${portName}" in network ${sw.name}`)
    const spec = optString(b.frame, 'frame')
    if (spec === undefined) throw new HttpError(400, 'frame: required (e.g. dst=02:00:00:00:00:02,src=02:00:00:00:00:01,vlan=10)')
    let frame: Buffer
    try { frame = parseFrameSpec(spec) } catch (err) {
      if (err instanceof TapswitchError) throw new HttpError(400, err.message)
      throw err
    }
    const t: TraceJson = traceFrame(sw, ingress, frame)
    send(res, 200, t)
    return
  }
  if (method === 'GET' && path === '/api/v1/drops') {
    send(res, 200, readDrops(server, q))
    return
  }
  if (method === 'GET' && path === '/api/v1/leases') {
    const net = q.get('network')
    if (net !== null) {
      lookupNetwork(server, net)
      const withGateway = server.gateways().map((g) => g.network)
      if (!withGateway.includes(net)) throw notFound('gateway', net, `network ${net} has no gateway`, withGateway, 'networks with one', 'no network has one: docs/GATEWAY.md')
    }
    send(res, 200, leaseRows(server, net))
    return
  }
  throw new HttpError(404, `no endpoint ${method} ${path}`)
}

/** The leases of every gateway (of network `net` only, if given): the static ones first, then the pool's by address. */
function leaseRows (server: SwitchdView, net: string | null): LeaseJson[] {
  const rows: LeaseJson[] = []
  for (const g of server.gateways()) {
    const sw = server.networks.get(g.network)
    if ((net !== null && g.network !== net) || sw === undefined || g.leaseTable === undefined) continue
    const table = g.leaseTable
    const portOf = new Map(table.pool.statics.size === 0 ? [] : sw.fdb.rows().map((r) => [r.mac, r.port.name]))
    for (const [mac, ip] of table.pool.statics) {
      const port = portOf.get(mac) ?? null
      rows.push({ network: g.network, mac: formatMac(mac), ip: formatIpv4(ip), kind: 'static', state: 'bound', expires: null, port })
    }
    for (const l of table.rows().sort((a, b) => a.ip - b.ip)) {
      rows.push({
        network: g.network,
        mac: formatMac(l.mac),
        ip: formatIpv4(l.ip),
        kind: 'dynamic',
        state: l.state === LEASE_OFFERED ? 'offered' : l.state === LEASE_BOUND ? 'bound' : 'expired',
        expires: new Date(l.expires).toISOString(),
        port: l.port?.name ?? null
      })
    }
  }
  return rows
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
      // The switch clock is performance.now() (server.ts nowMs): its epoch is timeOrigin.
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
