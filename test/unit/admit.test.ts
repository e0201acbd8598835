/**
 * Admission (src/switch/daemon/admit.ts) as a pure function: literal
 * requests and a literal state in, a decision out; no sockets.
 */

import { strict as assert } from 'node:assert'
import { admitUpgrade, routeRequest, routeMetricsRequest, BAD_HOST, type AdmissionState, type RequestFacts } from '../../src/switch/daemon/admit'
import { buildConfig } from '../../src/switch/control/config'
import { sha256Hex } from '../../src/switch/control/auth'
import { EVENTS_PATH } from '../../src/switch/control/console'

const ALICE = 'alice-token-0123456789abcdef'

function state (over: Partial<AdmissionState> = {}, config: Record<string, unknown> = {}): AdmissionState {
  return {
    config: buildConfig(config, 'test'),
    closing: false,
    draining: false,
    listening: true,
    metricsHere: true,
    adminOpen: true,
    ports: 0,
    portsFrom: () => 0,
    networkRefusal: () => undefined,
    addressRefusal: () => undefined,
    ...over
  }
}

function upgrade (url: string, headers: Record<string, string> = {}): RequestFacts {
  return { method: 'GET', url, headers: { host: '127.0.0.1:8080', ...headers }, remote: '127.0.0.1' }
}

function refusal (d: ReturnType<typeof admitUpgrade>): [number, string] {
  assert.ok(d.refuse, `expected a refusal, got ${JSON.stringify(d)}`)
  return [d.status, d.reason]
}

describe('admission: a pure decision per request', () => {
  it('admits an upgrade on / to the default network, and /net/<name> to that network', () => {
    assert.deepEqual(admitUpgrade(upgrade('/'), state()), { refuse: false, to: 'port', network: 'default', grant: undefined })
    assert.deepEqual(admitUpgrade(upgrade('/net/lab'), state()), { refuse: false, to: 'port', network: 'lab', grant: undefined })
    assert.deepEqual(admitUpgrade(upgrade('/', { 'sec-websocket-protocol': 'tapswitch.v1' }), state()), { refuse: false, to: 'port', network: 'default', grant: undefined })
  })

  it('refuses every upgrade while shutting down, before anything else is looked at', () => {
    assert.deepEqual(refusal(admitUpgrade(upgrade('/nowhere', { host: 'evil.example' }), state({ closing: true }))), [503, 'shutting_down'])
  })

  it('a draining replica refuses every port\'s upgrade with 503 (a balancer tries the next upstream), whatever the request; the console still comes in', () => {
    const draining = state({ draining: true }, { tokens: [{ id: 'alice', network: 'lab', sha256: sha256Hex(ALICE) }], adminToken: 'a'.repeat(32) })
    for (const r of [upgrade('/net/lab', { authorization: `Bearer ${ALICE}` }), upgrade('/net/lab'), upgrade('/', { origin: 'http://evil.example' }),
      upgrade('/net/lab', { 'sec-websocket-protocol': 'tapswitch.v1', authorization: `Bearer ${ALICE}` })]) {
      const d = admitUpgrade(r, draining)
      assert.deepEqual(refusal(d), [503, 'draining'], r.url)
      assert.ok(d.refuse && /draining: connect through the balancer/.test(d.message))
    }
    assert.deepEqual(admitUpgrade(upgrade(EVENTS_PATH), draining), { refuse: false, to: 'console' })
    assert.deepEqual(refusal(admitUpgrade(upgrade('/net/lab'), state({ draining: true, closing: true }))), [503, 'shutting_down'])
  })

  it('refuses a Host that does not name us (DNS rebinding), with the fix in the answer', () => {
    const d = admitUpgrade(upgrade('/', { host: 'evil.example' }), state())
    assert.deepEqual(refusal(d), [421, 'bad_host'])
    assert.ok(d.refuse && d.message === BAD_HOST)
    assert.equal(admitUpgrade(upgrade('/', { host: 'lab.example.org' }), state({}, { allowedHosts: ['lab.example.org'] })).refuse, false)
  })

  it('hands the console event stream to the console hub, even from a browser', () => {
    assert.deepEqual(admitUpgrade(upgrade(EVENTS_PATH, { origin: 'http://127.0.0.1:8080' }), state()), { refuse: false, to: 'console' })
  })

  it('a web page cannot join the LAN from the operator\'s browser (Origin refused unless allowed)', () => {
    assert.deepEqual(refusal(admitUpgrade(upgrade('/', { origin: 'https://evil.example' }), state())), [403, 'bad_origin'])
    assert.equal(admitUpgrade(upgrade('/', { origin: 'http://localhost:8000' }), state({}, { allowedOrigins: ['http://localhost:8000'] })).refuse, false)
  })

  it('refuses another subprotocol, without echoing a bearer token offered beside it', () => {
    const d = admitUpgrade(upgrade('/', { 'sec-websocket-protocol': 'tapswitch.console, bearer.c2VjcmV0' }), state())
    assert.deepEqual(refusal(d), [400, 'unsupported_subprotocol'])
    assert.ok(d.refuse && !d.message.includes('bearer.') && d.message.includes('tapswitch.console'))
  })

  it('refuses a path that names no network', () => {
    assert.deepEqual(refusal(admitUpgrade(upgrade('/net/a/b'), state())), [404, 'bad_path'])
    assert.deepEqual(refusal(admitUpgrade(upgrade('/net/%zz'), state())), [404, 'bad_path'])
  })

  it('with tokens: 401 without one or for an unknown one, 403 for another network, the grant when it fits', () => {
    const tokens = { tokens: [{ id: 'alice', sha256: sha256Hex(ALICE), network: 'lab' }] }
    assert.deepEqual(refusal(admitUpgrade(upgrade('/net/lab'), state({}, tokens))), [401, 'unauthorized'])
    assert.deepEqual(refusal(admitUpgrade(upgrade('/net/lab', { authorization: 'Bearer wrong-token-0123456789' }), state({}, tokens))), [401, 'unauthorized'])
    const other = admitUpgrade(upgrade('/', { authorization: `Bearer ${ALICE}` }), state({}, tokens))
    assert.deepEqual(refusal(other), [403, 'forbidden_network'])
    assert.ok(other.refuse && other.token === 'alice', 'the refusal names the token by its id')
    const ok = admitUpgrade(upgrade(`/net/lab?token=${ALICE}`), state({}, tokens))
    assert.ok(!ok.refuse && ok.to === 'port' && ok.grant?.id === 'alice')
  })

  it('refuses past limits.maxPorts (503) and past the address\'s share (429)', () => {
    const cfg = { limits: { maxPorts: 4, maxPortsPerAddress: 2 } }
    assert.deepEqual(refusal(admitUpgrade(upgrade('/'), state({ ports: 4 }, cfg))), [503, 'limit_ports'])
    assert.deepEqual(refusal(admitUpgrade(upgrade('/'), state({ portsFrom: (a) => a === '127.0.0.1' ? 2 : 0 }, cfg))), [429, 'limit_address'])
    assert.equal(admitUpgrade(upgrade('/'), state({ ports: 3, portsFrom: () => 1 }, cfg)).refuse, false)
  })

  it('refuses a network that may not be made, and an address that may make no more', () => {
    assert.deepEqual(refusal(admitUpgrade(upgrade('/net/x'), state({ networkRefusal: (n) => n === 'x' ? 'no network "x"' : undefined }))), [404, 'unknown_network'])
    assert.deepEqual(refusal(admitUpgrade(upgrade('/net/y'), state({ addressRefusal: () => 'this address has made its networks' }))), [429, 'limit_networks'])
  })

  it('routes plain requests: health, readiness, metrics, the API, the console, the rest', () => {
    const req = (url: string): RequestFacts => ({ method: 'GET', url, headers: { host: 'localhost' }, remote: '127.0.0.1' })
    assert.deepEqual(routeRequest(req('/healthz'), state()), { refuse: false, to: 'healthz' })
    assert.deepEqual(routeRequest(req('/readyz'), state()), { refuse: false, to: 'readyz', ready: true, draining: false })
    assert.deepEqual(routeRequest(req('/readyz'), state({ closing: true })), { refuse: false, to: 'readyz', ready: false, draining: false })
    assert.deepEqual(routeRequest(req('/readyz'), state({ draining: true })), { refuse: false, to: 'readyz', ready: false, draining: true })
    assert.deepEqual(routeRequest(req('/metrics'), state()), { refuse: false, to: 'metrics' })
    assert.deepEqual(routeRequest(req('/metrics'), state({ metricsHere: false })), { refuse: false, to: 'other' }, '--metrics-listen moves it')
    assert.deepEqual(routeRequest(req('/metrics'), state({ adminOpen: false })), { refuse: false, to: 'other' }, 'not open, and no admin token to ask for')
    assert.deepEqual(routeRequest(req('/api/v1/ports'), state()), { refuse: false, to: 'api' })
    assert.deepEqual(routeRequest(req('/ui/app.js'), state()), { refuse: false, to: 'console' })
    assert.deepEqual(routeRequest(req('/'), state()), { refuse: false, to: 'other' })
    assert.deepEqual(refusal(routeRequest({ ...req('/healthz'), headers: { host: 'evil.example' } }, state()) as ReturnType<typeof admitUpgrade>), [421, 'bad_host'])
  })

  it('the metrics listener serves /metrics alone, and refuses a foreign Host', () => {
    const req = (url: string, host = '127.0.0.1'): RequestFacts => ({ url, headers: { host }, remote: '10.0.0.9' })
    assert.deepEqual(routeMetricsRequest(req('/metrics'), state()), { refuse: false, to: 'metrics' })
    assert.deepEqual(routeMetricsRequest(req('/api/v1/ports'), state()), { refuse: false, to: 'not_found' })
    assert.equal(routeMetricsRequest(req('/metrics', 'evil.example'), state()).refuse, true)
  })
})
