/**
 * Issue 21, fair admission, the decisions alone (no sockets): per-address
 * shares with literal addresses, the throttle and the log budgets on an
 * injected clock, the console's admission with literal requests, grants
 * checked again at join, and one drop log per network.
 */
import assert from 'node:assert/strict'
import type * as http from 'node:http'
import { addressKey, LOOPBACK_KEY } from '../../src/common/address'
import { pendingRefusal, PendingConnections, PortShares, defaultPendingPerAddress } from '../../src/switch/control/admission'
import { AuthThrottle, checkAdminToken, FAILURE_BURST, FAILURE_REFILL_MS, MAX_ADDRESSES } from '../../src/switch/control/throttle'
import { ClientBudgets, CLIENT_BURST, CLIENT_WINDOW_MS } from '../../src/common/log'
import { ConsoleHub, MAX_CLIENTS, MAX_CLIENTS_PER_ADDRESS, type ConsoleRefusal, type ConsoleGrant, type ConsoleSocket } from '../../src/switch/control/console'
import { grantInForce, sha256Hex, consoleToken, CONSOLE_SUBPROTOCOL, BEARER_PREFIX, type TokenGrant } from '../../src/switch/control/auth'
import { buildConfig } from '../../src/switch/control/config'
import { Networks } from '../../src/switch/control/networks'
import { DropLog, DropSequence } from '../../src/switch/core/droplog'
import { R_RUNT, R_VLAN } from '../../src/switch/core/drops'
import type { SwitchdView } from '../../src/switch/control/view'

const ADMIN = 'unit-admin-token-0123456789'

/** A literal request as the console's admission reads it. */
function request (remoteAddress: string, headers: http.IncomingHttpHeaders): http.IncomingMessage {
  return { headers: { host: '127.0.0.1:8080', ...headers }, method: 'GET', url: '/api/v1/events', socket: { remoteAddress } } as unknown as http.IncomingMessage
}

function offering (token: string | undefined): http.IncomingHttpHeaders {
  const p = [CONSOLE_SUBPROTOCOL, ...(token === undefined ? [] : [BEARER_PREFIX + Buffer.from(token).toString('base64url')])]
  return { 'sec-websocket-protocol': p.join(', ') }
}

/** What the console hub reads of switchd. */
function view (raw: Record<string, unknown>, throttle = new AuthThrottle(() => 0)): SwitchdView {
  const config = buildConfig(raw, 'test')
  const networks = new Networks(config, () => 0)
  return { config, networks, adminToken: config.adminToken, adminOpen: false, authThrottle: throttle, captures: { size: 0 }, ports: () => [] } as unknown as SwitchdView
}

const isGrant = (x: ConsoleRefusal | ConsoleGrant): x is ConsoleGrant => !('status' in x)

describe('audit: fair admission (unit)', () => {
  describe('the client address', () => {
    it('attack: every loopback address is one client (a local process may bind any of 127/8)', () => {
      for (const a of ['127.0.0.1', '127.0.0.2', '127.255.255.254', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.9']) assert.equal(addressKey(a), LOOPBACK_KEY, a)
      assert.notEqual(addressKey('::2'), LOOPBACK_KEY)
      assert.notEqual(addressKey('128.0.0.1'), LOOPBACK_KEY)
      assert.equal(addressKey('::ffff:192.0.2.1'), '192.0.2.1')
    })
  })

  describe('finding 7: connections not yet upgraded', () => {
    const limits = { maxPending: 8, maxPendingPerAddress: 3 }

    it('refuses an address at its share, and anyone once the pool is full; the share first', () => {
      assert.equal(pendingRefusal(0, 0, limits), undefined)
      assert.equal(pendingRefusal(5, 2, limits), undefined)
      assert.equal(pendingRefusal(5, 3, limits), 'limit_pending_address')
      assert.equal(pendingRefusal(8, 0, limits), 'limit_pending')
      assert.equal(pendingRefusal(8, 3, limits), 'limit_pending_address', 'the metric names who filled it')
    })

    it('attack: one address holding its share does not refuse another address (IPv6 counted per /64)', () => {
      const p = new PendingConnections()
      const closes: Array<() => void> = []
      for (let i = 0; i < 3; i++) closes.push(p.opened(`2001:db8:1:2::${i + 1}`))
      assert.equal(p.refusal('2001:db8:1:2:ffff::9', limits), 'limit_pending_address', 'another address of the same /64')
      assert.equal(p.refusal('192.0.2.7', limits), undefined)
      assert.equal(p.refusal('2001:db8:1:3::1', limits), undefined, 'the next /64 is another client')
      // An upgraded connection is no longer pending: the address has room again.
      const upgraded = p.upgrade('2001:db8:1:2::1')
      assert.equal(p.from('2001:db8:1:2::5'), 2)
      assert.equal(p.refusal('2001:db8:1:2::5', limits), undefined)
      upgraded(); closes[0]?.()
      assert.equal(p.from('2001:db8:1:2::5'), 2)
      for (const c of closes.slice(1)) c()
      assert.equal(p.total, 0)
      assert.equal(p.addresses, 0, 'nothing is remembered of an address with nothing open')
    })

    it('still bounds the whole pool when many addresses come (the backstop)', () => {
      const p = new PendingConnections()
      for (let i = 0; i < 8; i++) p.opened(`192.0.2.${i}`)
      assert.equal(p.refusal('198.51.100.1', limits), 'limit_pending')
    })

    it('sizes the default share so one address never takes the pool', () => {
      assert.equal(defaultPendingPerAddress(1024), 64)
      assert.equal(defaultPendingPerAddress(16), 1)
      assert.equal(defaultPendingPerAddress(1), 1)
      for (const n of [2, 16, 17, 1024, 1_000_000]) assert.ok(defaultPendingPerAddress(n) < n, String(n))
    })
  })

  describe('finding 10: ports per address, parked ones included', () => {
    it('attack: parked ports still count for a new port; an upgrade (maybe their resume) is judged without them; a resume moves the port', () => {
      const s = new PortShares()
      const keys = [0, 1, 2].map(() => s.handshake('192.0.2.1'))
      for (const k of keys) { s.handshakeEnded(k); s.portAdded(k) }
      for (const k of keys) s.parkedAt(k)
      assert.equal(s.portsOf('192.0.2.1'), 3, 'parked ports count')
      assert.equal(s.upgradeCount('192.0.2.1'), 0, 'an upgrade may be a resume')
      // The resume of the first from another address: it leaves the old address and counts at the new one.
      const h = s.handshake('198.51.100.1')
      s.portRemoved(keys[0] as string, true)
      s.handshakeEnded(h)
      s.portAdded(h)
      assert.equal(s.portsOf('192.0.2.1'), 2)
      assert.equal(s.portsOf('198.51.100.1'), 1)
      assert.equal(s.upgradeCount('198.51.100.1'), 1)
      s.portRemoved(keys[1] as string, true); s.portRemoved(keys[2] as string, true); s.portRemoved(h, false)
      assert.equal(s.addresses, 0)
    })
  })

  describe('finding 9: grants checked again when the port is made', () => {
    const grant = (over: Partial<TokenGrant> = {}): TokenGrant => ({ id: 'a', digest: sha256Hex('alpha-token-0123456789'), network: undefined, name: undefined, policy: undefined, macs: undefined, rate: 0, trunk: false, rootGuard: false, ...over })

    it('attack: a revoked token, one moved to another network, and a missing one where tokens are now required are refused', () => {
      const now = grant({ name: 'pinned-now' })
      const tokens = new Map([[now.digest, now]])
      assert.deepEqual(grantInForce(tokens, grant({ name: 'pinned-then' }), 'default'), { ok: true, grant: now }, 'the grant in force, with its pin')
      assert.equal((grantInForce(new Map(), grant(), 'default') as { message: string }).message, 'token revoked')
      const moved = grant({ network: 'other' })
      assert.equal((grantInForce(new Map([[moved.digest, moved]]), grant(), 'default') as { reason: string }).reason, 'forbidden_network')
      assert.equal((grantInForce(tokens, undefined, 'default') as { message: string }).message, 'a token is now required')
      assert.deepEqual(grantInForce(new Map(), undefined, 'default'), { ok: true, grant: undefined })
    })
  })

  describe('finding 13a: the admin-token throttle', () => {
    it('attack: an address gets FAILURE_BURST wrong guesses, then one every FAILURE_REFILL_MS; others are not slowed', () => {
      let now = 0
      const t = new AuthThrottle(() => now)
      for (let i = 0; i < FAILURE_BURST; i++) {
        assert.deepEqual(checkAdminToken(t, '192.0.2.1', `guess-${i}`, ADMIN), { ok: false, status: 401, reason: 'unauthorized', message: 'wrong admin token', hadToken: true })
      }
      const over = checkAdminToken(t, '192.0.2.1', ADMIN, ADMIN)
      assert.equal(over.ok, false)
      assert.equal((over as { status: number }).status, 429, 'the right token too: a throttled guesser learns nothing')
      assert.equal((over as { retryAfter: number }).retryAfter, FAILURE_REFILL_MS / 1000)
      assert.deepEqual(checkAdminToken(t, '198.51.100.1', ADMIN, ADMIN), { ok: true }, 'another address')
      assert.deepEqual(checkAdminToken(t, '192.0.2.1', undefined, ADMIN).ok, false)
      now += FAILURE_REFILL_MS
      assert.deepEqual(checkAdminToken(t, '192.0.2.1', ADMIN, ADMIN), { ok: true }, 'one more try after the refill, and right tokens cost nothing')
      assert.equal(checkAdminToken(t, '192.0.2.1', 'wrong-again', ADMIN).ok, false)
      assert.equal((checkAdminToken(t, '192.0.2.1', ADMIN, ADMIN) as { status: number }).status, 429)
      now += FAILURE_REFILL_MS * FAILURE_BURST
      assert.equal(t.retryAfter('192.0.2.1'), 0)
      assert.equal(t.size, 0, 'a full bucket is forgotten')
    })

    it('attack: guesses from many addresses cost bounded memory (the oldest is forgotten)', () => {
      const t = new AuthThrottle(() => 0)
      for (let i = 0; i < MAX_ADDRESSES + 100; i++) t.failed(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`)
      assert.equal(t.size, MAX_ADDRESSES)
    })

    it('lets everyone in when no admin token is configured', () => {
      assert.deepEqual(checkAdminToken(new AuthThrottle(), '192.0.2.1', undefined, undefined), { ok: true })
    })
  })

  describe('finding 13b: log budgets per client address', () => {
    it('attack: one address that uses up its budget silences only itself, and is told how many it lost', () => {
      const b = new ClientBudgets()
      const reports: Array<[string, number]> = []
      const report = (c: string, n: number): void => { reports.push([c, n]) }
      let written = 0
      for (let i = 0; i < 1000; i++) if (b.take('192.0.2.1', 0, report)) written++
      assert.equal(written, CLIENT_BURST)
      assert.equal(b.take('198.51.100.1', 0, report), true, 'another address still logs')
      assert.deepEqual(reports, [])
      assert.equal(b.take('192.0.2.1', CLIENT_WINDOW_MS, report), true, 'a new window')
      assert.deepEqual(reports, [['192.0.2.1', 1000 - CLIENT_BURST]])
    })

    it('bounds every address together (many addresses), and the memory', () => {
      const b = new ClientBudgets(30, 100, CLIENT_WINDOW_MS, 50)
      const reports: Array<[string, number]> = []
      let written = 0
      for (let i = 0; i < 500; i++) if (b.take(`10.0.${i >> 8}.${i & 255}`, 0, (c, n) => { reports.push([c, n]) })) written++
      assert.equal(written, 100)
      assert.equal(b.size, 50)
      b.take('10.1.0.0', CLIENT_WINDOW_MS, (c, n) => { reports.push([c, n]) })
      assert.ok(reports.some(([c, n]) => c === '*' && n === 400), JSON.stringify(reports.slice(-3)))
    })
  })

  describe('finding 8: the console is authenticated before the upgrade', () => {
    it('takes the token from a bearer.<base64url> subprotocol, or Authorization; a malformed one never matches', () => {
      assert.equal(consoleToken(request('192.0.2.1', offering(ADMIN))), ADMIN)
      assert.equal(consoleToken(request('192.0.2.1', { authorization: `Bearer ${ADMIN}` })), ADMIN)
      assert.equal(consoleToken(request('192.0.2.1', offering(undefined))), undefined)
      assert.notEqual(consoleToken(request('192.0.2.1', { 'sec-websocket-protocol': `${CONSOLE_SUBPROTOCOL}, ${BEARER_PREFIX}a+b/c==` })), undefined)
      assert.equal(consoleToken(request('192.0.2.1', { 'sec-websocket-protocol': `${CONSOLE_SUBPROTOCOL}, ${BEARER_PREFIX}` })), ' ')
    })

    it('attack: without the token, or with a wrong one, no upgrade; with it, at most MAX_CLIENTS_PER_ADDRESS per address and MAX_CLIENTS in all', () => {
      const hub = new ConsoleHub(view({ adminToken: ADMIN }))
      assert.deepEqual(hub.admit(request('192.0.2.1', offering(undefined))), { status: 401, reason: 'unauthorized', message: 'admin token required (Authorization: Bearer …)', uncounted: true })
      assert.equal((hub.admit(request('192.0.2.1', offering('wrong-token-0123456789'))) as ConsoleRefusal).status, 401)
      assert.equal((hub.admit(request('192.0.2.1', { authorization: `Bearer ${ADMIN}` })) as ConsoleRefusal).status, 400, 'our subprotocol is needed')
      const sockets: Array<{ emit: (e: string) => void }> = []
      const attach = (address: string): ConsoleRefusal | ConsoleGrant => {
        const r = hub.admit(request(address, offering(ADMIN)))
        if (isGrant(r)) {
          const handlers: Record<string, () => void> = {}
          const sock = { bufferedAmount: 0, send () {}, close () {}, terminate () {}, on (e: string, fn: () => void) { handlers[e] = fn } }
          hub.attach(sock as unknown as ConsoleSocket, address, r)
          sockets.push({ emit: (e) => { handlers[e]?.() } })
        }
        return r
      }
      for (let i = 0; i < MAX_CLIENTS_PER_ADDRESS; i++) assert.ok(isGrant(attach('192.0.2.1')))
      assert.equal((attach('192.0.2.1') as ConsoleRefusal).status, 429)
      for (let a = 2; hub.size < MAX_CLIENTS; a++) assert.ok(isGrant(attach(`192.0.2.${a}`)))
      assert.equal((attach('198.51.100.1') as ConsoleRefusal).status, 503)
      sockets[0]?.emit('close')
      assert.ok(isGrant(attach('192.0.2.1')), 'a console that leaves frees its place')
      hub.stop()
    })
  })

  describe('dynamic networks per address (found on the way)', () => {
    it('attack: one address cannot hold every dynamic network slot: a sixteenth of maxNetworks each', () => {
      const nets = new Networks(buildConfig({ maxNetworks: 32 }, 'test'), () => 0)
      assert.equal(nets.networkShare, 2)
      const a = nets.open('a', '192.0.2.1'); const b = nets.open('b', '192.0.2.1')
      assert.ok(typeof a !== 'string' && typeof b !== 'string')
      assert.match(nets.addressRefusal('c', '192.0.2.1') ?? '', /holds 2 dynamic networks/)
      assert.equal(typeof nets.open('c', '192.0.2.1'), 'string')
      assert.equal(nets.addressRefusal('a', '192.0.2.1'), undefined, 'joining one that exists is no new slot')
      assert.equal(nets.addressRefusal('default', '192.0.2.1'), undefined, 'configured networks are no one\'s')
      assert.equal(typeof nets.open('c', '198.51.100.1'), 'object', 'another address')
      nets.release(a)
      assert.equal(typeof nets.open('d', '192.0.2.1'), 'object', 'a network that went frees its place')
    })
  })

  describe('finding 13d: one drop log per network', () => {
    it('attack: a flood of drops in one network leaves another network\'s drops in place; one sequence orders them all', () => {
      const seq = new DropSequence()
      const victim = new DropLog(8, seq)
      const noisy = new DropLog(8, seq)
      victim.add(1, 'victim', 'v', 1, 2, 0, R_RUNT)
      for (let i = 0; i < 1000; i++) noisy.add(2, 'noisy', 'n', 3, 4, 0, R_VLAN)
      assert.deepEqual(victim.read().records.map((r) => [r.seq, r.network]), [[1, 'victim']])
      assert.equal(victim.read().lost, 0)
      assert.deepEqual(noisy.read().records.map((r) => r.seq), [994, 995, 996, 997, 998, 999, 1000, 1001])
      assert.equal(noisy.read(0).lost, 992)
      assert.equal(noisy.seq, 1001)
      assert.deepEqual(noisy.read(999).records.map((r) => r.seq), [1000, 1001])
    })

    it('gives every network its own log of the same size', () => {
      const nets = new Networks(buildConfig({ networks: { a: {}, b: {} } }, 'test'), () => 0)
      const [a, b] = [nets.get('a'), nets.get('b')]
      assert.ok(a !== undefined && b !== undefined)
      assert.notEqual(a.dropLog, b.dropLog)
      assert.equal(a.dropLog.sequence, nets.dropSequence)
      assert.equal(a.dropLog.size, b.dropLog.size)
    })
  })
})
