/**
 * The web console's views of issue 22 in chromium, against a live switchd:
 * charts on one labelled scale and values with units, the page marked stale
 * while its stream is down, the drops and leases views, confirmation before
 * disconnect and flush, and the redirect from `/`.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import type { Page } from 'playwright-core'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import type { FdbJson, LeaseJson } from '../../src/common/api-types'
import { buildDhcpRequest, parseIpv4, DHCPDISCOVER, DHCPREQUEST } from '../../src/common/dhcp'
import { TestClient } from '../helpers/client'
import { waitFor, MIN_WAIT_MS } from '../helpers/net'
import { eth, MAC_A, MAC_B, MAC_C } from '../helpers/frames'
import { requireTools } from '../helpers/proc'
import { setLogSink } from '../../src/common/log'
import { requireChromium, openBrowser, closeBrowser, login, until, SHOTS, type ConsolePage } from '../helpers/console-page'
import { R_BAD_SOURCE, R_RUNT } from '../../src/switch/core/reasons'

const TOKEN = 'browser-admin-token-22e0c4d1'

/** The page's getComputedStyle, as page functions see it (this file is compiled without the DOM's types; a page function cannot call ours). */
interface PageGlobals { getComputedStyle: (e: unknown) => { opacity: string, textDecorationLine: string } }

describe('web console views in chromium (browser)', function () {
  // A guard against a hang: chromium is slow to start and to render on a loaded machine.
  this.timeout(180_000)
  let server: SwitchServer
  let port: number
  let base: string
  let clients: TestClient[]
  let browser: ConsolePage
  let page: Page
  let restore: (line: string) => void
  let dir: string

  before(function () { requireChromium(this) })
  after(closeBrowser)

  async function start (config: Record<string, unknown> = {}, at = 0): Promise<void> {
    server = new SwitchServer({ config: buildConfig({ adminToken: TOKEN, stateDir: path.join(dir, 'state'), profiles: [{ match: '*', claimable: true }], ...config }, 'test'), host: '127.0.0.1', port: at })
    port = (await server.listen()).port
    base = `http://127.0.0.1:${port}`
  }

  beforeEach(async () => {
    restore = setLogSink(() => {})
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-views-'))
    clients = []
    browser = await openBrowser()
    page = browser.page
  })

  afterEach(async function () {
    const violations = browser.violations
    await browser?.close()
    for (const c of clients) c.close()
    await server?.close()
    fs.rmSync(dir, { recursive: true, force: true })
    setLogSink(restore)
    if (this.currentTest?.state === 'passed') assert.deepEqual(violations, [], 'the page ran without CSP violations or errors')
  })

  async function connect (...names: string[]): Promise<void> {
    for (const name of names) clients.push(await TestClient.batched(`ws://127.0.0.1:${port}/`, { name }))
  }

  async function api<T> (p: string): Promise<T> {
    const r = await fetch(base + p, { headers: { authorization: `Bearer ${TOKEN}` } })
    assert.equal(r.status, 200, p)
    return await r.json() as T
  }

  /** The lowest point (smallest y) of a row's rx line: the chart's baseline is y = 30, its top (the scale) y = 5. */
  async function peakY (name: string): Promise<number> {
    const points = await page.locator(`#ports tr[data-port="${name}"] svg.spark polyline.rx`).getAttribute('points') ?? ''
    return Math.min(...points.split(' ').map((p) => Number(p.split(',')[1])))
  }

  it('draws every row\'s chart on one labelled scale, and writes rates and counts with their units', async () => {
    await start()
    await connect('alice', 'bob')
    await login(page, base, TOKEN, 'bob')
    const [alice, bob] = clients as [TestClient, TestClient]
    // alice sends about twenty times what bob sends.
    const timer = setInterval(() => { alice.send(Array.from({ length: 20 }, () => eth(MAC_B, MAC_A))); bob.send([eth(MAC_A, MAC_B)]) }, 20)
    try {
      const fps = page.locator('#ports tr[data-port="alice"] .rx-fps')
      await until(async () => /^\d[\d.]* k? ?frames\/s$/.test(await fps.textContent() ?? '') && await peakY('alice') < 21 && await peakY('bob') < 30, 15000, 'both rows charting traffic')
      const scales = await page.locator('#ports svg.spark').evaluateAll((svgs) => svgs.map((s) => s.getAttribute('data-scale')))
      assert.equal(new Set(scales).size, 1, `one scale for every row: ${scales.join(', ')}`)
      const scale = Number(scales[0])
      assert.ok(scale >= 100, `the scale (${scale}) holds alice's rate`)
      // The scale is written on each chart (its top line) and in the header, with the time axis.
      const top = await page.locator('#ports tr[data-port="bob"] svg.spark text.top').textContent()
      assert.equal(top, await page.locator('#ports tr[data-port="alice"] svg.spark text.top').textContent())
      assert.equal(await page.locator('#chart-scale').textContent(), `frames/s, 0 to ${top ?? ''} (one scale, all rows)`)
      assert.match(await page.locator('#chart-axis').textContent() ?? '', /rx.*tx.*−60 s.*−30 s.*now/)
      // On one scale, the quieter port's line stays lower.
      assert.ok(await peakY('bob') > await peakY('alice'), 'bob\'s line lower than alice\'s')
      assert.match(await page.locator('#ports tr[data-port="alice"] .rx-bps').textContent() ?? '', /^\d[\d.]* [kMG]?bit\/s$/)
      assert.match(await page.locator('#ports tr[data-port="alice"] td.drops').textContent() ?? '', /^\d+ frames$/)
      assert.match(await page.locator('#networks .card[data-network="default"]').textContent() ?? '', /forwarded[\d.]+ k? ?frames/)
      // For the picture: a few seconds of traffic on the charts (counted in samples, not in time).
      const samples = async (): Promise<number> => ((await page.locator('#ports tr[data-port="alice"] svg.spark polyline.rx').getAttribute('points')) ?? '').split(' ').filter((p) => Number(p.split(',')[1]) < 29).length
      await until(async () => await samples() >= 6, 20000, 'six samples of traffic')
      await page.screenshot({ path: path.join(SHOTS, 'console-rates.png') })
    } finally {
      clearInterval(timer)
    }
  })

  it('marks every live value stale while the stream is down, with a banner saying since when, and restores it on reconnect', async () => {
    await start()
    await connect('alice')
    await login(page, base, TOKEN, 'alice')
    assert.equal(await page.locator('#stale').isVisible(), false)
    const cell = page.locator('#ports tr[data-port="alice"] td.rx')
    const opacity = async (): Promise<number> => Number(await cell.evaluate((e) => (globalThis as unknown as PageGlobals).getComputedStyle(e).opacity))
    assert.equal(await opacity(), 1)
    // switchd goes away (a restart): the page keeps its last numbers, marked.
    await server.close()
    const banner = page.locator('#stale')
    await banner.waitFor({ state: 'visible', timeout: MIN_WAIT_MS })
    assert.match(await banner.textContent() ?? '', /^Stale Disconnected from switchd since \d\d:\d\d:\d\d \(\d+ s ago\): .*reconnecting…$/)
    assert.match(await page.locator('body').getAttribute('class') ?? '', /\bstale\b/)
    assert.ok(await opacity() < 1, 'the rates are dimmed')
    assert.equal(await cell.evaluate((e) => (globalThis as unknown as PageGlobals).getComputedStyle(e).textDecorationLine), 'line-through', 'and struck')
    assert.equal(await page.locator('#ports tr[data-port="alice"] td.rx .rx-fps').textContent(), '0 frames/s', 'the last values stay, to read')
    await page.screenshot({ path: path.join(SHOTS, 'console-stale.png') })
    // switchd is back on the same address: the page reconnects by itself and the marks go.
    await start({}, port)
    await connect('alice')
    await banner.waitFor({ state: 'hidden', timeout: 30_000 })
    await page.locator('#status', { hasText: /^live$/ }).waitFor({ timeout: MIN_WAIT_MS })
    assert.doesNotMatch(await page.locator('body').getAttribute('class') ?? '', /\bstale\b/)
    assert.equal(await opacity(), 1)
  })

  it('marks the page stale when the stream stays open but brings no update, and reconnects', async () => {
    await start()
    await connect('alice')
    // The stream through a relay the test can silence (a switchd that hangs, a network that loses packets without closing).
    let relays = 0
    let silenced = 0
    await page.routeWebSocket('**/api/v1/events', (ws) => {
      const id = ++relays
      const upstream = ws.connectToServer()
      upstream.onMessage((m) => { if (id !== silenced) ws.send(m) })
    })
    // The page's clock runs as the real one, and is moved on at once by the 5 s of silence the page waits for.
    await page.clock.install()
    await login(page, base, TOKEN, 'alice')
    // (The page first tries without a token, as for a switchd that needs none: the last stream is the live one.)
    silenced = relays
    await page.clock.fastForward(5000)
    const banner = page.locator('#stale')
    await banner.waitFor({ state: 'visible', timeout: 15_000 })
    assert.match(await banner.textContent() ?? '', /no update for 5 s/)
    // The page gave that stream up and opened another, which brings updates: the marks go.
    await banner.waitFor({ state: 'hidden', timeout: 30_000 })
    assert.ok(relays > silenced, 'a new stream')
    await page.locator('#status', { hasText: /^live$/ }).waitFor({ timeout: MIN_WAIT_MS })
  })

  it('shows the drop log by port and reason, each reason explained, with the port\'s own count, and follows it', async () => {
    await start()
    await connect('alice', 'bob')
    await login(page, base, TOKEN, 'bob')
    const [alice, bob] = clients as [TestClient, TestClient]
    // Three runts from alice, two frames from a broadcast source from bob, then one good frame each as a barrier.
    alice.send([Buffer.alloc(10), Buffer.alloc(12), Buffer.alloc(13)])
    bob.send([eth(MAC_A, 'ffffffffffff'), eth(MAC_A, 'ffffffffffff')])
    await waitFor(() => server.ports().some((p) => p.name === 'bob' && p.drops[R_BAD_SOURCE] === 2) && server.ports().some((p) => p.name === 'alice' && p.drops[R_RUNT] === 3), 5000, 'the drops counted')
    await page.click('#tabs button[data-tab="drops"]')
    const runt = page.locator('#drops tr[data-reason="runt"]')
    await runt.waitFor({ timeout: MIN_WAIT_MS })
    const cells = async (row: typeof runt): Promise<string[]> => await row.locator('td').allTextContents()
    // The port's own count comes with the next tick.
    await runt.locator('td', { hasText: /^3$/ }).nth(1).waitFor({ timeout: MIN_WAIT_MS })
    const r = await cells(runt)
    assert.deepEqual([r[0], r[1], r[3], r[4]], ['default', 'alice', '3', '3'])
    assert.match(r[2] as string, /^runt.*shorter than an Ethernet header/)
    assert.match(r[5] as string, /^\d\d:\d\d:\d\d \(\d+ s ago\)$/)
    const b = await cells(page.locator('#drops tr[data-reason="bad_source"]'))
    assert.deepEqual([b[1], b[3]], ['bob', '2'])
    assert.match(b[2] as string, /group \(multicast\/broadcast\)/)
    assert.equal(b[6], 'ff:ff:ff:ff:ff:ff > 02:00:00:00:00:01')
    // New drops come in while the tab is open (read after the last one seen, not counted twice).
    alice.send([Buffer.alloc(5), Buffer.alloc(6)])
    await page.locator('#drops tr[data-reason="runt"] td.count', { hasText: /^5$/ }).waitFor({ timeout: MIN_WAIT_MS })
    assert.match(await page.locator('#drops-note').textContent() ?? '', /^7 drops read from the log, in 2 rows\.$/)
    await page.fill('#drops-search', 'bob')
    await until(async () => await page.locator('#drops tbody tr').count() === 1, 5000, 'one row found')
    await page.fill('#drops-search', '')
    await page.screenshot({ path: path.join(SHOTS, 'console-drops.png') })
  })

  it('attack: names and MACs a station chose are shown as text in the drops and leases views', async () => {
    await start()
    await connect('alice')
    await login(page, base, TOKEN, 'alice')
    // Port names are checked by switchd and MACs are formatted by it; a proxy, or a future field, might not be: the page must not care.
    const hostile = '<img src=x id=pwned3 onerror=alert(1)>'
    await page.route('**/api/v1/drops?*', (route) => route.fulfill({
      status: 200,
      contentType: 'application/json',
      body: JSON.stringify({ last: 1, lost: 0, size: 1024, drops: [{ seq: 1, time: new Date().toISOString(), network: hostile, port: hostile, src: hostile, dst: hostile, vlan: null, reason: hostile }] })
    }))
    await page.route('**/api/v1/leases', (route) => route.fulfill({
      status: 200,
      contentType: 'application/json',
      body: JSON.stringify([{ network: hostile, mac: hostile, ip: hostile, kind: 'dynamic', state: 'bound', expires: hostile, port: hostile }])
    }))
    await page.click('#tabs button[data-tab="drops"]')
    await page.locator('#drops tbody tr').waitFor({ timeout: MIN_WAIT_MS })
    assert.match(await page.locator('#drops tbody').textContent() ?? '', /<img src=x id=pwned3/)
    await page.click('#tabs button[data-tab="leases"]')
    await page.locator('#leases tbody tr').waitFor({ timeout: MIN_WAIT_MS })
    assert.match(await page.locator('#leases tbody').textContent() ?? '', /<img src=x id=pwned3/)
    assert.equal(await page.locator('#pwned3').count(), 0)
  })

  it('shows the gateway\'s leases: MAC, address, port, kind, state and expiry', async function () {
    requireTools(this, [{ cmd: 'qemu-system-x86_64', pkg: 'qemu-system-x86' }, { cmd: 'setpriv', pkg: 'util-linux' }])
    // No NAT (QEMU restrict=on): nothing of this test can leave the machine.
    await start({ networks: { lab: { gateway: { nat: false, dhcpStart: '10.0.2.100', poolSize: 16, staticLeases: [{ mac: '02:00:00:00:00:33', ip: '10.0.2.50' }] } } } })
    await connect('alice')
    const station = await TestClient.batched(`ws://127.0.0.1:${port}/net/lab`, { name: 'vm1' })
    clients.push(station)
    const mac = 0x020000000021
    const leases = async (): Promise<LeaseJson[]> => await api<LeaseJson[]>('/api/v1/leases')
    station.send([buildDhcpRequest(mac, DHCPDISCOVER, 0x2201)])
    await until(async () => (await leases()).some((l) => l.mac === '02:00:00:00:00:21' && l.state === 'offered'), 15000, 'an offer')
    const offered = (await leases()).find((l) => l.mac === '02:00:00:00:00:21') as LeaseJson
    station.send([buildDhcpRequest(mac, DHCPREQUEST, 0x2201, parseIpv4(offered.ip), parseIpv4('10.0.2.2'))])
    await until(async () => (await leases()).some((l) => l.mac === '02:00:00:00:00:21' && l.state === 'bound'), 15000, 'the lease bound')
    await login(page, base, TOKEN, 'vm1')
    await page.click('#tabs button[data-tab="leases"]')
    const row = page.locator('#leases tr[data-mac="02:00:00:00:00:21"]')
    await row.locator('td.state', { hasText: 'bound' }).waitFor({ timeout: MIN_WAIT_MS })
    const r = await row.locator('td').allTextContents()
    assert.deepEqual(r.slice(0, 6), ['lab', '02:00:00:00:00:21', offered.ip, 'vm1', 'dynamic', 'bound'])
    assert.match(r[6] as string, /^in \d+ (h|min)\b.*\(\d\d:\d\d:\d\d\)$/)
    const s = await page.locator('#leases tr[data-mac="02:00:00:00:00:33"] td').allTextContents()
    assert.deepEqual(s, ['lab', '02:00:00:00:00:33', '10.0.2.50', '—', 'static', 'bound', 'never (static)'])
    assert.match(await page.locator('#leases-note').textContent() ?? '', /^2 shown of 2\.$/)
    await page.screenshot({ path: path.join(SHOTS, 'console-leases.png') })
  })

  it('asks before disconnect, flush and flush all, naming the port and network; only Confirm acts', async () => {
    await start()
    await connect('alice', 'bob', 'carol')
    await login(page, base, TOKEN, 'carol')
    clients[2]?.send([eth(MAC_A, MAC_C)])
    clients[0]?.send([eth(MAC_C, MAC_A)])
    const fdb = async (): Promise<FdbJson[]> => await api<FdbJson[]>('/api/v1/fdb')
    await until(async () => (await fdb()).length === 2, 5000, 'two MACs learned')
    const dialog = page.locator('dialog#confirm')
    const portsNamed = (name: string): number => server.ports().filter((p) => p.name === name).length

    // Disconnect: Cancel leaves bob connected; Confirm disconnects him.
    await page.click('#ports tr[data-port="bob"] button[data-action="disconnect"]')
    await dialog.waitFor({ state: 'visible' })
    assert.match(await dialog.textContent() ?? '', /Disconnect port bob \(network default\)\?.*forgets its MACs/s)
    await page.screenshot({ path: path.join(SHOTS, 'console-confirm.png') })
    await page.click('#confirm-cancel')
    await dialog.waitFor({ state: 'hidden' })
    // Escape cancels too.
    await page.click('#ports tr[data-port="bob"] button[data-action="disconnect"]')
    await dialog.waitFor({ state: 'visible' })
    await page.keyboard.press('Escape')
    await dialog.waitFor({ state: 'hidden' })
    // A barrier: an action through the page after the cancels (carol's flush, cancelled, then alice's, confirmed) has reached switchd.
    await page.click('#ports tr[data-port="carol"] button[data-action="flush"]')
    await dialog.waitFor({ state: 'visible' })
    assert.match(await dialog.textContent() ?? '', /Flush the fdb entries of port carol \(network default\)\?/)
    await page.click('#confirm-cancel')
    await page.click('#ports tr[data-port="alice"] button[data-action="flush"]')
    await page.click('#confirm-ok')
    await until(async () => (await fdb()).length === 1, 5000, 'alice\'s entry flushed')
    assert.deepEqual((await fdb()).map((r) => r.port), ['carol'], 'carol\'s entry stays: her flush was cancelled')
    assert.equal(portsNamed('bob'), 1, 'bob stays: his disconnect was cancelled')
    await page.click('#ports tr[data-port="bob"] button[data-action="disconnect"]')
    await page.click('#confirm-ok')
    await waitFor(() => portsNamed('bob') === 0, 5000, 'bob disconnected')
    await page.locator('#ports tr[data-port="bob"]').waitFor({ state: 'detached', timeout: MIN_WAIT_MS })

    // Flush all, from the FDB tab.
    await page.click('#tabs button[data-tab="fdb"]')
    await page.click('#fdb-flush')
    await dialog.waitFor({ state: 'visible' })
    assert.match(await dialog.textContent() ?? '', /Flush the whole fdb \(every network: default\)\?/)
    await page.click('#confirm-cancel')
    clients[0]?.send([eth(MAC_C, MAC_A)])
    await until(async () => (await fdb()).length === 2, 5000, 'alice learned again')
    await page.click('#fdb-flush')
    await page.click('#confirm-ok')
    await until(async () => (await fdb()).length === 0, 5000, 'the fdb flushed')
  })

  it('sends / to the console\'s page', async () => {
    await start()
    await page.goto(base + '/')
    await page.locator('#login').waitFor({ state: 'visible' })
    assert.equal(new URL(page.url()).pathname, '/ui')
    await page.goto(base + '/Console')
    assert.equal(new URL(page.url()).pathname, '/ui')
  })
})
