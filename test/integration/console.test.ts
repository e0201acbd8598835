/**
 * The web console's server side without a browser (test/browser drives the
 * page itself): /ui and its headers, the /api/v1/events stream, and who may
 * reach them.
 */
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import WebSocket from 'ws'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { MAX_CLIENTS_PER_ADDRESS, MAX_BUFFERED, TICK_PORTS, LOG_RING } from '../../src/switch/control/console'
import { CONSOLE_SUBPROTOCOL, BEARER_PREFIX } from '../../src/switch/control/auth'
import type { ConsoleMessage } from '../../src/common/api-types'
import { TestClient } from '../helpers/client'
import { onceWithin, waitFor } from '../helpers/net'
import { eth, MAC_A, MAC_B } from '../helpers/frames'
import { setLogSink, logger } from '../../src/common/log'
import { switchctl } from '../helpers/ctl'

const TOKEN = 'console-admin-token-0123456789'
const ROOT = path.join(__dirname, '..', '..')

/** The page must be built (npm run build does it; the test chain builds first). Build it here if a developer runs this file alone. */
function ensureBuilt (): void {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'ui', 'console.js'))) execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build-ui.js')])
}

/** A console on the event stream: collects what it gets and how it ended. */
class EventsClient {
  readonly messages: ConsoleMessage[] = []
  closeCode: number | undefined
  constructor (readonly ws: WebSocket) {
    ws.on('error', () => {})
    ws.on('message', (d: Buffer) => { this.messages.push(JSON.parse(d.toString()) as ConsoleMessage) })
    ws.on('close', (code) => { this.closeCode = code })
  }

  /** Open the stream as the page does: the token offered as a subprotocol beside ours. */
  static async open (url: string, token: string | undefined = TOKEN, origin?: string): Promise<EventsClient> {
    const c = new EventsClient(new WebSocket(url, protocols(token), { perMessageDeflate: false, ...(origin !== undefined ? { origin } : {}) }))
    await onceWithin(c.ws, 'open')
    return c
  }

  of<T extends ConsoleMessage['type']> (type: T): Array<Extract<ConsoleMessage, { type: T }>> {
    return this.messages.filter((m): m is Extract<ConsoleMessage, { type: T }> => m.type === type)
  }

  async closed (ms = 3000): Promise<number> {
    await waitFor(() => this.closeCode !== undefined, ms, 'close')
    return this.closeCode as number
  }
}

/** The subprotocols the page offers: ours, and the token (if any) as bearer.<base64url>. */
function protocols (token: string | undefined): string[] {
  return token === undefined ? [CONSOLE_SUBPROTOCOL] : [CONSOLE_SUBPROTOCOL, BEARER_PREFIX + Buffer.from(token).toString('base64url')]
}

/** The HTTP status an upgrade to `url` gets (101 if it opens), offering `offered` (the page's, with the admin token, by default). */
async function upgradeStatus (url: string, headers: Record<string, string>, offered: string[] = protocols(TOKEN)): Promise<number> {
  const ws = new WebSocket(url, offered, { headers, perMessageDeflate: false })
  ws.on('error', () => {})
  const r = await Promise.race([
    onceWithin<[unknown, { statusCode: number }]>(ws, 'unexpected-response').then(([, res]) => res.statusCode),
    onceWithin(ws, 'open').then(() => 101)
  ])
  ws.terminate()
  return r
}

describe('web console: server side (integration)', function () {
  let server: SwitchServer
  let base: string
  let wsBase: string
  let host: string
  let opened: Array<{ close: () => void }>
  let restore: (line: string) => void

  before(ensureBuilt)

  async function start (config: Record<string, unknown> = { adminToken: TOKEN }): Promise<void> {
    server = new SwitchServer({ config: buildConfig(config, 'test'), host: '127.0.0.1', port: 0 })
    const port = (await server.listen()).port
    host = `127.0.0.1:${port}`
    base = `http://${host}`
    wsBase = `ws://${host}`
  }

  beforeEach(() => { restore = setLogSink(() => {}); opened = [] })
  afterEach(async () => {
    for (const c of opened) c.close()
    await server?.close()
    setLogSink(restore)
  })

  async function events (token: string | undefined = TOKEN, origin?: string): Promise<EventsClient> {
    const c = await EventsClient.open(wsBase + '/api/v1/events', token, origin)
    opened.push({ close: () => { c.ws.terminate() } })
    return c
  }

  describe('/ui', () => {
    it('serves the page, its script and style with a strict CSP and no framing', async () => {
      await start()
      for (const p of ['/ui', '/ui/', '/ui/console.js', '/ui/console.css', '/ui/icon.svg']) {
        const r = await fetch(base + p)
        assert.equal(r.status, 200, p)
        const csp = r.headers.get('content-security-policy') ?? ''
        assert.match(csp, /default-src 'none'/, p)
        assert.match(csp, /script-src 'self'(;|$)/, p)
        assert.match(csp, /frame-ancestors 'none'/, p)
        assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/, p)
        assert.equal(r.headers.get('x-frame-options'), 'DENY', p)
        assert.equal(r.headers.get('x-content-type-options'), 'nosniff', p)
        await r.arrayBuffer()
      }
    })

    it('loads nothing from elsewhere: every src and href of the page is our own path', async () => {
      await start()
      const html = await (await fetch(base + '/ui')).text()
      const refs = [...html.matchAll(/\b(?:src|href)="([^"]*)"/g)].map((m) => m[1] as string)
      assert.ok(refs.length >= 3)
      for (const r of refs) assert.match(r, /^\/ui\//)
      assert.doesNotMatch(html, /<script>|\son[a-z]+="/i, 'no inline script or handler (the CSP would block it)')
    })

    it('sends the first view (page, script, style, icon) in under 200 KB', async () => {
      await start()
      let total = 0
      for (const p of ['/ui', '/ui/console.js', '/ui/console.css', '/ui/icon.svg']) {
        const r = await fetch(base + p, { headers: { 'accept-encoding': 'gzip' } })
        total += Number(r.headers.get('content-length'))
        await r.arrayBuffer()
      }
      assert.ok(total > 0 && total < 200 * 1024, `${total} bytes`)
    })

    it('sends a person who types /, /console or /UI to /ui (302); a network\'s WebSocket path still answers 426', async () => {
      await start()
      for (const p of ['/', '/console', '/console/', '/UI', '/Ui/', '/CONSOLE', '/?token=secret']) {
        for (const method of ['GET', 'HEAD']) {
          const r = await fetch(base + p, { method, redirect: 'manual' })
          assert.equal(r.status, 302, `${method} ${p}`)
          // Only the canonical path: a query (a token meant for the WebSocket path) never follows into the Location.
          assert.equal(r.headers.get('location'), '/ui', `${method} ${p}`)
          assert.equal(r.headers.get('x-content-type-options'), 'nosniff', p)
          await r.arrayBuffer()
        }
      }
      // Followed, the redirect ends on the page.
      const page = await fetch(base + '/console')
      assert.equal(page.status, 200)
      assert.match(await page.text(), /<title>tapswitch console<\/title>/)
      for (const p of ['/net/lab', '/net/default', '/uix', '/consoles']) {
        const r = await fetch(base + p, { redirect: 'manual' })
        assert.equal(r.status, 426, p)
        assert.match(await r.text(), /connect with a WebSocket client/, p)
      }
      // A POST to / is not a person following a link: 426 as before.
      assert.equal((await fetch(base + '/', { method: 'POST', body: '{}', redirect: 'manual' })).status, 426)
      // And / stays the default network's WebSocket path: an upgrade there still becomes a port.
      const c = await TestClient.batched(wsBase + '/', { name: 'after-redirects' })
      opened.push(c)
      await waitFor(() => server.ports().some((p) => p.name === 'after-redirects'), 5000, 'the port on /')
    })

    it('answers 404 when the admin API is off', async () => {
      await start({ api: false })
      assert.equal((await fetch(base + '/ui')).status, 404)
    })
  })

  describe('/api/v1/events', () => {
    it('sends the log, then counters every second, to an upgrade that carries the token', async () => {
      await start()
      const port = await TestClient.raw(wsBase + '/')
      opened.push(port)
      const c = await events()
      assert.equal(c.ws.protocol, CONSOLE_SUBPROTOCOL, 'answered with our subprotocol alone, never the token')
      await waitFor(() => c.of('tick').length >= 2, 4000, 'two ticks')
      const welcome = c.of('welcome')[0]
      assert.ok(welcome !== undefined)
      assert.ok(welcome.log.some((e) => e.event === 'port_up'), 'the port_up of the port that joined before')
      assert.deepEqual(welcome.actions, ['disable', 'enable', 'disconnect', 'link-down', 'link-up', 'condition'])
      const tick = c.of('tick').at(-1)
      assert.equal(tick?.ports.length, 1)
      assert.equal(tick?.portsTotal, 1)
      assert.equal(tick?.networks[0]?.name, 'default')
      assert.ok(c.of('tick').some((t) => t.fdb !== undefined), 'an fdb snapshot')
    })

    it('takes the token as Authorization: Bearer too (clients that can set headers), and none where the API needs none', async () => {
      await start()
      assert.equal(await upgradeStatus(wsBase + '/api/v1/events', { authorization: `Bearer ${TOKEN}` }, [CONSOLE_SUBPROTOCOL]), 101)
      await server.close()
      await start({})
      assert.equal(await upgradeStatus(wsBase + '/api/v1/events', {}, [CONSOLE_SUBPROTOCOL]), 101, 'loopback, no tokens: the API is open, so is the stream')
    })

    it('streams log events as they happen, and counters that move with traffic', async () => {
      await start()
      const c = await events()
      await waitFor(() => c.of('welcome').length === 1, 3000, 'welcome')
      const a = await TestClient.raw(wsBase + '/'); opened.push(a)
      const b = await TestClient.raw(wsBase + '/'); opened.push(b)
      await waitFor(() => c.of('log').some((m) => m.entries.some((e) => e.event === 'port_up')), 3000, 'port_up in the stream')
      a.send([eth(MAC_B, MAC_A)])
      await waitFor(() => c.of('tick').some((t) => t.ports.some((p) => p.counters.rxFrames === 1)), 4000, 'the frame counted')
      await waitFor(() => c.of('tick').some((t) => t.fdb?.rows.some((r) => r.mac === '02:00:00:00:00:01') === true), 4000, 'the MAC in the fdb')
    })

    it('attack: a reload that changes the admin token ends the sessions of the old one', async () => {
      await start()
      const c = await events()
      await waitFor(() => c.of('welcome').length === 1, 3000, 'welcome')
      assert.equal(server.reload(buildConfig({ adminToken: TOKEN + '-rotated' }, 'test')), true)
      assert.equal(await c.closed(3000), 1008)
    })

    it('attack: an upgrade without the token, or with a wrong one, is refused with 401: no socket is ever made for it', async () => {
      await start()
      assert.equal(await upgradeStatus(wsBase + '/api/v1/events', {}, protocols(undefined)), 401)
      assert.equal(await upgradeStatus(wsBase + '/api/v1/events', {}, protocols('guess-guess-guess-guess')), 401)
      assert.equal(await upgradeStatus(wsBase + '/api/v1/events', {}, [CONSOLE_SUBPROTOCOL, BEARER_PREFIX + '!!not-base64url']), 401)
      assert.equal(await upgradeStatus(wsBase + '/api/v1/events', {}, []), 400, 'no subprotocol: not a console')
      assert.equal(server.console.size, 0)
      assert.equal(server.rejectedBy.unauthorized, 2, 'a wrong token counts; asking without one does not')
      assert.equal(server.rejectedBy.unsupported_subprotocol, 1)
    })

    it('attack: a token in the URL is not accepted (only the upgrade\'s subprotocol or header counts)', async () => {
      await start()
      assert.equal(await upgradeStatus(`${wsBase}/api/v1/events?token=${TOKEN}`, {}, protocols(undefined)), 401)
      assert.equal(server.console.size, 0)
    })

    it('attack: four silent sockets without the token cannot lock the admin out (20 of 20 logins get in)', async () => {
      await start()
      // On 14ad2cc each of these held one of 4 "logging in" slots for 5 s and the admin got 503.
      const silent: WebSocket[] = []
      for (let i = 0; i < 8; i++) {
        const ws = new WebSocket(wsBase + '/api/v1/events', [CONSOLE_SUBPROTOCOL], { perMessageDeflate: false })
        ws.on('error', () => {})
        silent.push(ws)
        opened.push({ close: () => { ws.terminate() } })
        await Promise.race([onceWithin(ws, 'open').then(() => 'open'), onceWithin(ws, 'unexpected-response').then(() => 'refused')])
      }
      assert.equal(server.console.size, 0, 'none of them got a socket')
      for (let i = 0; i < 20; i++) {
        const c = await events()
        await waitFor(() => c.of('welcome').length === 1, 3000, `login ${i}`)
        c.ws.terminate()
        await waitFor(() => server.console.size === 0, 3000, 'the slot freed')
      }
    })

    it('attack: a cross-site page cannot open the stream; our own page can', async () => {
      await start()
      assert.equal(await upgradeStatus(wsBase + '/api/v1/events', { origin: 'http://evil.example' }), 403)
      assert.equal(await upgradeStatus(wsBase + '/api/v1/events', { origin: 'https://' + host }), 403, 'another scheme is another origin')
      assert.equal(await upgradeStatus(wsBase + '/api/v1/events', { origin: base }), 101)
      assert.ok((server.rejectedBy.bad_origin ?? 0) >= 2)
    })

    it('attack: a DNS-rebinding page (its own name in Host and Origin) is refused', async () => {
      await start()
      assert.equal(await upgradeStatus(wsBase + '/api/v1/events', { host: 'evil.example', origin: 'http://evil.example' }), 421)
      await server.close()
      // allowedHosts "*" turns the Host check off: the page's own origin must then not pass as ours.
      await start({ adminToken: TOKEN, allowedHosts: ['*'] })
      const port = host.split(':')[1] as string
      assert.equal(await upgradeStatus(wsBase + '/api/v1/events', { host: `evil.example:${port}`, origin: `http://evil.example:${port}` }), 403)
      const r = await fetch(base + '/api/v1/fdb/flush', { method: 'POST', headers: { host: `evil.example:${port}`, origin: `http://evil.example:${port}`, authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: '{}' })
      assert.equal(r.status, 403)
    })

    it('attack: a message over 4 KiB closes the stream (1009)', async () => {
      await start()
      const c = await events()
      c.ws.send('x'.repeat(8192))
      assert.equal(await c.closed(), 1009)
    })

    it(`attack: at most ${MAX_CLIENTS_PER_ADDRESS} consoles from one address (429 beyond), and the slot is freed when one leaves`, async () => {
      await start()
      const held: EventsClient[] = []
      for (let i = 0; i < MAX_CLIENTS_PER_ADDRESS; i++) held.push(await events())
      assert.equal(await upgradeStatus(wsBase + '/api/v1/events', {}), 429)
      assert.equal(server.rejectedBy.limit_console, 1)
      held[0]?.ws.terminate()
      await waitFor(() => server.console.size === MAX_CLIENTS_PER_ADDRESS - 1, 3000, 'the slot freed')
      assert.equal(await upgradeStatus(wsBase + '/api/v1/events', {}), 101)
    })

    it('attack: a console whose session ends and that never answers the close is cut within a second', async () => {
      await start()
      const c = await events()
      await waitFor(() => c.of('welcome').length === 1, 3000, 'welcome')
      // Stop reading: the close frame is never answered.
      ;(c.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
      server.reload(buildConfig({ adminToken: TOKEN + '-rotated' }, 'test'))
      await waitFor(() => server.console.size === 0, 4000, 'the slot freed')
    })

    it('attack: info lines a client causes at will cannot push a warning out of the log a console is shown, and the log stays in order', async () => {
      await start()
      const flood = logger('test-flood')
      flood.warn('security_event', { n: 1 })
      for (let i = 0; i < LOG_RING * 3; i++) flood.info('noise', { i })
      flood.error('another_event', { n: 2 })
      const c = await events()
      await waitFor(() => c.of('welcome').length === 1, 3000, 'welcome')
      const log = c.of('welcome')[0]?.log ?? []
      assert.ok(log.some((e) => e.event === 'security_event'), 'the warning survived the info lines')
      assert.ok(log.some((e) => e.event === 'another_event'))
      assert.equal(log.filter((e) => e.event === 'noise').length, LOG_RING, 'info lines keep their own ring')
      const seqs = log.map((e) => e.seq)
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'in the order they were logged')
    })

    it(`sends at most ${TICK_PORTS} ports a second, and how many there are`, async () => {
      await start()
      const port = await TestClient.raw(wsBase + '/'); opened.push(port)
      const real = server.ports()[0]
      assert.ok(real !== undefined)
      // As if 10,000 ports were connected (limits.maxPorts' default): the snapshot must not grow with them.
      server.ports = () => new Array(10_000).fill(real)
      const c = await events()
      await waitFor(() => c.of('tick').length >= 1, 3000, 'a tick')
      const tick = c.of('tick')[0]
      assert.equal(tick?.ports.length, TICK_PORTS)
      assert.equal(tick?.portsTotal, 10_000)
    })

    it('attack: a console that stops reading is closed with 4004, not buffered for', async () => {
      await start()
      const sent: string[] = []
      class FakeSocket extends EventEmitter {
        bufferedAmount = 0
        closeCode = 0
        send (text: string): void { sent.push(text) }
        close (code: number): void { this.closeCode = code; this.emit('close') }
        terminate (): void { this.emit('close') }
      }
      const fake = new FakeSocket()
      server.console.attach(fake, 'test', { token: TOKEN })
      assert.equal(JSON.parse(sent[0] as string).type, 'welcome')
      fake.bufferedAmount = MAX_BUFFERED + 1
      await waitFor(() => fake.closeCode !== 0, 3000, 'the slow console closed')
      assert.equal(fake.closeCode, 4004)
      assert.equal(server.console.size, 0)
    })
  })

  describe('switchctl events', () => {
    it('prints the recent events, then follows, with the token in the upgrade (Authorization)', async () => {
      await start()
      const port = await TestClient.raw(wsBase + '/'); opened.push(port)
      const r = await switchctl(['--url', base, '--token', TOKEN, '--json', 'events', '--count', '2'])
      assert.equal(r.code, 0, r.stderr)
      const got = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as { event: string })
      assert.deepEqual(got.map((e) => e.event), ['listening', 'port_up'])
      const text = await switchctl(['--url', base, '--token', TOKEN, 'events', '--count', '2'])
      assert.match(text.stdout.toString(), /INFO {2}ports: port_up .*port=raw-1/)
    })

    it('says what to do without the token', async () => {
      await start()
      const r = await switchctl(['--url', base, 'events', '--count', '1'])
      assert.equal(r.code, 1)
      assert.match(r.stderr, /admin token required \(set --token or SWITCHCTL_TOKEN\)/)
    })
  })

  describe('the API from the console page', () => {
    it('accepts a state change from our own origin with the token, and refuses it from another origin', async () => {
      await start()
      const post = async (origin: string, auth = true): Promise<number> => (await fetch(base + '/api/v1/fdb/flush', {
        method: 'POST', body: '{}', headers: { origin, 'content-type': 'application/json', ...(auth ? { authorization: `Bearer ${TOKEN}` } : {}) }
      })).status
      assert.equal(await post(base), 200)
      assert.equal(await post(base, false), 401, 'same origin still needs the token')
      assert.equal(await post('http://evil.example'), 403)
      assert.equal(await post('http://127.0.0.1:1'), 403, 'another port is another origin')
    })
  })
})
