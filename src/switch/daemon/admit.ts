/**
 * Admission in one place: what switchd does with a request once Node has
 * parsed its head, as a pure function of the request (method, target,
 * headers, client address) and of the state it needs (the configuration in
 * force, whether switchd is closing, the ports it holds). It returns a
 * decision, never acts: the wiring (http.ts) answers, counts and logs it.
 * Every check is here in its order, as ws's handleUpgrade has them, so a new
 * rule is one line here and one literal request in test/unit/admit.test.ts.
 *
 * An upgrade may become a port only after, in this order:
 *  - switchd is not shutting down (503);
 *  - the Host names us (DNS rebinding: 421);
 *  - (the console's event stream goes to the console hub's own admission);
 *  - this replica is not draining (503: a balancer tries the next upstream);
 *  - from a browser, an allowed Origin (403): a page the operator visits
 *    must not join the LAN from inside their browser;
 *  - the subprotocol: none (raw mode) or tapswitch.v1 (400);
 *  - the path names a network: `/` or `/net/<name>` (404);
 *  - the fleet credential (another replica's mesh link, docs/FLEET.md):
 *    admitted without a client token, over tapswitch.v1 only; its hello
 *    must then ask for `mesh` (port-table.ts);
 *  - the token, when tokens are configured (401 missing or unknown, 403 for
 *    another network);
 *  - room: 503 when the switch is full, 429 for the client address's share
 *    (an IPv6 client's /64, all of loopback as one);
 *  - the network exists or may be made (404), and the address may make one (429).
 * The network itself is opened only once the upgrade has succeeded
 * (switchd.ts), so refused handshakes cannot use up maxNetworks.
 */

import type { IncomingHttpHeaders } from 'node:http'
import type { SwitchdConfig } from '../control/config'
import type { TokenGrant } from '../control/auth'
import { authenticate, bearerToken, tokenMatches, BEARER_PREFIX } from '../control/auth'
import { networkFromPath } from '../control/networks'
import { hostAllowed, originAllowed } from '../control/exposure'
import { EVENTS_PATH } from '../control/console'
import { requestUrl } from '../../common/cli'
import { SUBPROTOCOL_V1 } from '../../common/protocol'

/** What admission reads of a request. */
export interface RequestFacts {
  readonly method?: string
  readonly url?: string
  readonly headers: IncomingHttpHeaders
  /** The client's address, as its socket gave it. */
  readonly remote: string
}

/** What admission reads of switchd. */
export interface AdmissionState {
  readonly config: Pick<SwitchdConfig, 'allowedHosts' | 'allowedOrigins' | 'tokens' | 'limits' | 'adminToken' | 'fleet'>
  /** Shutting down: no new port, not ready. */
  readonly closing: boolean
  /** Draining (drain.ts): no new port, not ready; the console and the API still answer. */
  readonly draining: boolean
  /** Listening with a loaded configuration (/readyz). */
  readonly listening: boolean
  /** Whether /metrics is served on this listener (no --metrics-listen), and the admin surface is open without a token. */
  readonly metricsHere: boolean
  readonly adminOpen: boolean
  /** Ports and handshakes held (limits.maxPorts). */
  readonly ports: number
  /** Handshakes and connected ports from the address's key (limits.maxPortsPerAddress). */
  portsFrom (address: string): number
  /** Why network `name` cannot be joined, if it cannot; and why `address` may not make it. */
  networkRefusal (name: string): string | undefined
  addressRefusal (name: string, address: string): string | undefined
}

/** What switchd (switchd.ts's SwitchServer) offers admissionOf: a view by shape, so this file imports no daemon. */
export interface AdmissionSource {
  readonly config: AdmissionState['config']
  readonly isClosing: boolean
  readonly draining: boolean
  readonly isListening: boolean
  readonly metricsHere: boolean
  readonly adminOpen: boolean
  readonly portTable: { readonly size: number, countFrom: (address: string) => number }
  readonly networks: { refusal: (name: string) => string | undefined, addressRefusal: (name: string, address: string) => string | undefined }
}

/** What admission reads of `d`, read when a request comes (the configuration changes on reload). */
export function admissionOf (d: AdmissionSource): AdmissionState {
  return {
    get config () { return d.config },
    get closing () { return d.isClosing },
    get draining () { return d.draining },
    get listening () { return d.isListening },
    get metricsHere () { return d.metricsHere },
    get adminOpen () { return d.adminOpen },
    get ports () { return d.portTable.size },
    portsFrom: (address) => d.portTable.countFrom(address),
    networkRefusal: (name) => d.networks.refusal(name),
    addressRefusal: (name, address) => d.networks.addressRefusal(name, address)
  }
}

/** A refusal: the HTTP status, the reason counted (connections_rejected_total) and logged, the client's answer. */
export interface Refusal {
  readonly refuse: true
  readonly status: number
  readonly reason: string
  readonly message: string
  /** The token's id, when a known token was refused (logged, never the token). */
  readonly token?: string
}

/** A port's upgrade; `fleet`: it presented the fleet credential (a mesh link from another replica). */
export type UpgradeDecision = Refusal | { refuse: false, to: 'console' } | { refuse: false, to: 'port', network: string, grant: TokenGrant | undefined, fleet?: true }

export type RequestRoute = Refusal | { refuse: false, to: 'healthz' | 'metrics' | 'api' | 'console' | 'other' | 'not_found' } |
  { refuse: false, to: 'readyz', ready: boolean, draining: boolean } | { refuse: false, to: 'fleet', status: 200 | 401 | 404 | 405 }

/** Another replica asks what this one holds (docs/FLEET.md). */
export const FLEET_STATE_PATH = '/fleet/v1/state'

export const BAD_HOST = 'unknown Host: use an IP address, localhost, or a name in allowedHosts (--allowed-hosts)'

function refusal (status: number, reason: string, message: string, token?: string): Refusal {
  return token === undefined ? { refuse: true, status, reason, message } : { refuse: true, status, reason, message, token }
}

/** A DNS-rebinding page's requests carry its own name: Hosts that do not name us are refused (421). */
function hostRefusal (req: RequestFacts, state: AdmissionState): Refusal | undefined {
  return hostAllowed(req.headers.host, state.config.allowedHosts) ? undefined : refusal(421, 'bad_host', BAD_HOST)
}

/** The main listener's plain requests: which handler serves it. */
export function routeRequest (req: RequestFacts, state: AdmissionState): RequestRoute {
  const host = hostRefusal(req, state)
  if (host !== undefined) return host
  if (req.url === '/healthz') return { refuse: false, to: 'healthz' }
  // Ready: listening with a loaded configuration, not shutting down and not draining (a balancer's health check takes it out).
  if (req.url === '/readyz') return { refuse: false, to: 'readyz', ready: state.listening && !state.closing && !state.draining, draining: state.draining }
  if (req.url === '/metrics' && state.metricsHere && (state.config.adminToken !== undefined || state.adminOpen)) return { refuse: false, to: 'metrics' }
  const target = requestUrl(req.url)
  if (target?.pathname === FLEET_STATE_PATH) return { refuse: false, to: 'fleet', status: fleetStatus(req, state) }
  // The API answers a target it cannot parse (400) and everything under /api/.
  if (target === undefined || target.pathname.startsWith('/api/')) return { refuse: false, to: 'api' }
  if (target.pathname === '/ui' || target.pathname.startsWith('/ui/')) return { refuse: false, to: 'console' }
  return { refuse: false, to: 'other' }
}

/** /fleet/v1/state: 404 without --fleet (nothing to ask), 401 without the fleet credential, 405 but to GET. */
function fleetStatus (req: RequestFacts, state: AdmissionState): 200 | 401 | 404 | 405 {
  const fleet = state.config.fleet
  if (fleet === undefined) return 404
  if (req.method !== 'GET' && req.method !== 'HEAD') return 405
  return tokenMatches(bearerToken(req) ?? '', fleet.token) ? 200 : 401
}

/** The metrics listener's requests (--metrics-listen): /metrics, or 404. */
export function routeMetricsRequest (req: RequestFacts, state: Pick<AdmissionState, 'config'>): RequestRoute {
  if (!hostAllowed(req.headers.host, state.config.allowedHosts)) return refusal(421, 'bad_host', '')
  return { refuse: false, to: req.url === '/metrics' ? 'metrics' : 'not_found' }
}

/** An upgrade on the main listener: a port of which network with which grant, the console, or a refusal. */
export function admitUpgrade (req: RequestFacts, state: AdmissionState): UpgradeDecision {
  if (state.closing) return refusal(503, 'shutting_down', 'switchd is shutting down')
  const host = hostRefusal(req, state)
  if (host !== undefined) return host
  if (requestUrl(req.url)?.pathname === EVENTS_PATH) return { refuse: false, to: 'console' }
  // Before any other check: whoever asks, the answer is "another replica" (nginx's proxy_next_upstream http_503 takes it there).
  if (state.draining) return refusal(503, 'draining', 'this replica is draining: connect through the balancer, which sends you to another replica')
  // Browsers always send Origin, other clients (tap-agent, ws) never do.
  if (!originAllowed(req.headers.origin, state.config.allowedOrigins)) {
    return refusal(403, 'bad_origin', `origin ${req.headers.origin ?? ''} is not allowed: add it to allowedOrigins (--allowed-origins)`)
  }
  const offered = req.headers['sec-websocket-protocol']
  if (offered !== undefined && !offered.split(',').map((p) => p.trim()).includes(SUBPROTOCOL_V1)) {
    // Never echo a console's bearer.<token> offered here by mistake: the answer may be logged or shown on the way back.
    const shown = offered.split(',').map((p) => p.trim()).filter((p) => !p.startsWith(BEARER_PREFIX)).join(', ')
    return refusal(400, 'unsupported_subprotocol', `unsupported subprotocol "${shown}": offer ${SUBPROTOCOL_V1}, or none for raw mode`)
  }
  const target = requestUrl(req.url)
  if (target === undefined) return refusal(400, 'bad_path', 'not a valid request target')
  const name = networkFromPath(target.pathname)
  if (name === undefined) return refusal(404, 'bad_path', 'connect to / (the default network) or /net/<name>')
  const fleet = state.config.fleet !== undefined && tokenMatches(bearerToken(req) ?? '', state.config.fleet.token)
  // The fleet credential opens mesh links, which speak tapswitch.v1: never a raw port.
  if (fleet && offered === undefined) return refusal(400, 'mesh_refused', `the fleet credential opens only mesh links: offer ${SUBPROTOCOL_V1} and the "mesh" capability`)
  const auth = fleet ? { ok: true as const, grant: undefined } : authenticate(state.config.tokens, req, name)
  if (!auth.ok) return refusal(auth.status, auth.reason, auth.message, auth.id)
  const limits = state.config.limits
  if (state.ports >= limits.maxPorts) return refusal(503, 'limit_ports', `switchd has its maximum of ${limits.maxPorts} ports`)
  if (state.portsFrom(req.remote) >= limits.maxPortsPerAddress) return refusal(429, 'limit_address', `at most ${limits.maxPortsPerAddress} ports per client address`)
  const why = state.networkRefusal(name)
  if (why !== undefined) return refusal(404, 'unknown_network', why)
  const full = state.addressRefusal(name, req.remote)
  if (full !== undefined) return refusal(429, 'limit_networks', full)
  return fleet ? { refuse: false, to: 'port', network: name, grant: undefined, fleet } : { refuse: false, to: 'port', network: name, grant: auth.grant }
}
