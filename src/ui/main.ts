/**
 * The web console (docs/CONSOLE.md): one page, no framework. Everything it
 * shows arrives over one WebSocket, /api/v1/events (a snapshot of counters
 * every second, the fdb every other second, log events as they happen); the
 * actions and the capture go to the admin API with the token as a Bearer
 * header. The token lives in sessionStorage and never in a URL.
 *
 * Everything from the switch (port names, log fields a client chose) is put
 * into the page as text (textContent, SVG text nodes), never as markup.
 */

import type { ConsoleMessage, FdbJson, LogEntryJson, NetworkJson, PortJson, CONSOLE_SUBPROTOCOL_NAME, BEARER_SUBPROTOCOL_PREFIX } from '../common/api-types'
import { conditionBody, conditionText, formFrom, held, linkIsDown } from './condition'
import { $, el } from './dom'
import { si, count, bytes, bitRate } from './format'
import { topology } from './topology'
import { auth, headers, post, setToken } from './api'
import { HISTORY, axis, drawChart, newChart, niceCeiling, type Chart } from './chart'
import { live, showPolled, redrawPolled } from './polled'
import { confirmAction, initConfirm } from './confirm'
import { fillCaptureChoices, startCapture, stopCapture, downloadCapture } from './capture'
import { markStale, markLive, STALE_AFTER_MS } from './stale'

/** The event stream's subprotocol, and the token offered beside it (a browser cannot set Authorization on a WebSocket). */
const SUBPROTOCOL: CONSOLE_SUBPROTOCOL_NAME = 'tapswitch.console'
const BEARER: BEARER_SUBPROTOCOL_PREFIX = 'bearer.'
/** Lines kept in the event log (info lines, and as many warnings and errors). */
const MAX_EVENTS = 500
/** FDB rows drawn at once (after the search). */
const FDB_SHOWN = 500

// ---------- authority ----------

/** The token as a subprotocol: base64url of its UTF-8 bytes, no padding (a subprotocol must be an HTTP token). */
function bearerProtocol (t: string): string {
  let bin = ''
  for (const b of new TextEncoder().encode(t)) bin += String.fromCharCode(b)
  return BEARER + btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

function showLogin (message: string): void {
  $('main').hidden = true
  $('tabs').hidden = true
  $('logout').hidden = true
  $('login').hidden = false
  $('login-error').textContent = message
  setStatus('not logged in', false)
  $<HTMLInputElement>('token').focus()
}

function setStatus (text: string, live: boolean): void {
  const s = $('status')
  s.textContent = text
  s.classList.toggle('live', live)
}

// ---------- the event stream ----------

let ws: WebSocket | undefined
let retry = 1000
/** Closes a stream that brings no tick for STALE_AFTER_MS (restarted by each tick). */
let watchdog: ReturnType<typeof setTimeout> | undefined

function watch (sock: WebSocket): void {
  clearTimeout(watchdog)
  watchdog = setTimeout(() => {
    if (ws !== sock) return
    // Silent but open: the numbers are stale now, not when TCP gives up (reconnect marks them).
    ws = undefined
    sock.close()
    reconnect(`no update for ${STALE_AFTER_MS / 1000} s`)
  }, STALE_AFTER_MS)
}

function connect (): void {
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/v1/events'
  // The token is checked before the upgrade: a refused one never gets a socket.
  const sock = new WebSocket(url, auth.token === '' ? [SUBPROTOCOL] : [SUBPROTOCOL, bearerProtocol(auth.token)])
  ws = sock
  let opened = false
  sock.onopen = () => { opened = true; watch(sock) }
  sock.onmessage = (ev) => {
    const m = JSON.parse(String(ev.data)) as ConsoleMessage
    if (m.type === 'welcome') {
      retry = 1000
      onWelcome(m.log, m.actions)
    } else if (m.type === 'tick') { watch(sock); onTick(m) }
    else if (m.type === 'log') for (const e of m.entries) addEvent(e)
  }
  sock.onclose = (ev) => {
    if (ws !== sock) return
    ws = undefined
    clearTimeout(watchdog)
    // A refused upgrade: the browser does not say why (401, 429 and 503 look alike), so ask the API, which shares the check.
    if (!opened) { void refused(); return }
    if (ev.code === 1008) { forget(ev.reason); return }
    reconnect(closeWhy(ev.code))
  }
}

/** A closed stream's code in words (the code too, for a search). */
function closeWhy (code: number): string {
  if (code === 1001) return 'switchd is shutting down or restarting (1001)'
  if (code === 1006) return 'the connection to switchd was lost (1006)'
  return `the stream was closed (${code})`
}

function reconnect (why: string): void {
  // Whatever the page shows is from before now: say so until a tick comes.
  if (!$('main').hidden) markStale(why)
  setStatus(`${why}; retrying…`, false)
  setTimeout(connect, retry)
  retry = Math.min(retry * 2, 15000)
}

/** Drop the token and ask for one (an empty one is tried first, for a switchd that needs none). */
function forget (message: string): void {
  setToken('')
  markLive()
  showLogin(message)
}

type Verdict = 'ok' | 'refused' | 'throttled' | 'other'

/** What the API says of the token: the stream's upgrade makes the same check, but a browser does not say why an upgrade failed. */
async function askApi (): Promise<{ verdict: Verdict, wait: string }> {
  try {
    const r = await fetch('/api/v1/networks', { headers: headers(false), credentials: 'omit', cache: 'no-store' })
    await r.body?.cancel()
    const verdict: Verdict = r.ok ? 'ok' : r.status === 401 ? 'refused' : r.status === 429 ? 'throttled' : 'other'
    return { verdict, wait: r.headers.get('retry-after') ?? '' }
  } catch { return { verdict: 'other', wait: '' } }
}

/** Why the stream's upgrade was refused, as the API answers the same token. */
async function refused (): Promise<void> {
  const { verdict, wait } = await askApi()
  if (verdict === 'refused') forget(auth.token !== '' ? 'That token was refused.' : '')
  else if (verdict === 'throttled') showLogin(`Too many wrong tokens from this address: try again in ${wait} s.`)
  else reconnect('cannot open the event stream')
}

/** A token typed in: checked once through the API (one guess, not two), then the stream. */
async function logIn (): Promise<void> {
  const { verdict, wait } = await askApi()
  if (verdict === 'refused') forget('That token was refused.')
  else if (verdict === 'throttled') showLogin(`Too many wrong tokens from this address: try again in ${wait} s.`)
  else connect()
}

let actions: string[] = []

function onWelcome (log: LogEntryJson[], acts: string[]): void {
  actions = acts
  $('login').hidden = true
  $('main').hidden = false
  $('tabs').hidden = false
  $('logout').hidden = auth.token === ''
  setStatus('live', true)
  clearEvents()
  for (const e of log) addEvent(e)
}

// ---------- networks and ports ----------

interface PortState {
  row: HTMLTableRowElement, cells: HTMLElement[], chart: Chart, rxHistory: number[], txHistory: number[], last: PortJson, lastTime: number, actionsKey: string
  /** The condition cell's two parts: what the condition is, and what it holds now. */
  cond: HTMLElement, held: HTMLElement
  /** The rate cells' two lines each: frames/s and bit/s. */
  rxF: HTMLElement, rxB: HTMLElement, txF: HTMLElement, txB: HTMLElement
}
const portRows = new Map<number, PortState>()
let lastPorts: PortJson[] = []
let lastNetworks: NetworkJson[] = []
let fdbRows: FdbJson[] = []
let fdbTotal = 0

function onTick (m: Extract<ConsoleMessage, { type: 'tick' }>): void {
  markLive()
  if (!$('status').classList.contains('live')) setStatus('live', true)
  lastPorts = m.ports
  lastNetworks = m.networks
  live.ports = m.ports
  live.time = m.time
  drawNetworks(m.networks)
  drawPorts(m.ports, m.time)
  drawPortsNote(m.ports.length, m.portsTotal)
  if (m.fdb !== undefined) { fdbRows = m.fdb.rows; fdbTotal = m.fdb.total; drawFdb() }
  drawTopology()
  fillCaptureChoices(lastNetworks, lastPorts)
  // The port's counts and "ago" move with the ticks; the rows themselves with each read.
  redrawPolled()
}

function drawNetworks (nets: NetworkJson[]): void {
  const box = $('networks')
  box.replaceChildren(...nets.map((n) => {
    const dl = el('dl')
    const add = (k: string, v: string): void => { dl.append(el('dt', {}, k), el('dd', {}, v)) }
    add('ports', String(n.ports))
    add('fdb entries', `${n.fdb.entries ?? 0} / ${n.fdb.maxEntries ?? 0}`)
    const sum = (prefix: string): number => Object.keys(n.counters).filter((k) => k.startsWith(prefix)).reduce((a, k) => a + (n.counters[k] ?? 0), 0)
    add('forwarded', count(n.counters.forwarded ?? 0, 'frames'))
    add('flooded', count(sum('flooded'), 'frames'))
    add('dropped', count(sum('drop'), 'frames'))
    add('spanning-tree root', n.stp.root === n.stp.bridge ? 'this switch' : n.stp.root)
    return el('div', { class: 'card', 'data-network': n.name }, el('h3', {}, `network ${n.name}`), dl)
  }))
}

function vlanMode (p: PortJson): string {
  return p.mode === 'access' ? `access ${p.pvid}` : `trunk ${p.vlans.length > 8 ? `${p.vlans.length} VLANs` : p.vlans.join(',')}${p.pvid > 0 ? ` native ${p.pvid}` : ''}`
}

function totalDrops (p: PortJson): number {
  let n = 0
  for (const k of Object.keys(p.drops)) n += p.drops[k] ?? 0
  return n
}

function newRow (p: PortJson, time: number): PortState {
  const cells: HTMLElement[] = []
  const row = el('tr', { 'data-port': p.name }) as HTMLTableRowElement
  const classes = ['', '', '', '', 'state', 'condition', '', 'num rx', 'num tx', 'num drops', 'chart', 'actions']
  for (const c of classes) { const td = el('td', c === '' ? {} : { class: c }); cells.push(td); row.append(td) }
  const cond = el('span', { class: 'cond' })
  const heldText = el('span', { class: 'held muted' })
  cells[COL_CONDITION]?.append(cond, heldText)
  const line = (cls: string): HTMLElement => el('span', { class: cls })
  const rxF = line('rx-fps'); const rxB = line('rx-bps'); const txF = line('tx-fps'); const txB = line('tx-bps')
  cells[COL_RX]?.append(rxF, el('br'), rxB)
  cells[COL_TX]?.append(txF, el('br'), txB)
  const chart = newChart()
  cells[COL_CHART]?.append(chart.root)
  // A flat line from the start: the chart reads as "nothing yet", not as a dot.
  return { row, cells, chart, rxHistory: new Array<number>(HISTORY).fill(0), txHistory: new Array<number>(HISTORY).fill(0), last: p, lastTime: time, actionsKey: '', cond, held: heldText, rxF, rxB, txF, txB }
}

const COL_CONDITION = 5
const COL_RX = 7
const COL_TX = 8
const COL_DROPS = 9
const COL_CHART = 10
const COL_ACTIONS = 11

/**
 * How each action of PORT_ACTIONS (console.ts) is asked of the API: link up/down
 * are one endpoint with a state, 'condition' opens the editor; any other name
 * (an action a newer switchd offers) is POST /api/v1/ports/<name>/<action>.
 */
const LABELS: Record<string, string> = { 'link-down': 'link down', 'link-up': 'link up', condition: 'condition…' }
const BODIES: Record<string, [string, unknown]> = { 'link-down': ['link', { state: 'down' }], 'link-up': ['link', { state: 'up' }] }

/** A port's API path; its network goes with it in the query (names are unique in a network only: every gateway is `gateway`). */
function portPath (p: { name: string }): string { return `/api/v1/ports/${encodeURIComponent(p.name)}` }

function drawActions (s: PortState, p: PortJson): void {
  const down = linkIsDown(p.state, p.condition)
  const wanted = actions.filter((a) => (a !== 'disable' || p.state !== 'disabled') && (a !== 'enable' || p.state === 'disabled') &&
    (a !== 'link-down' || p.state !== 'down') && (a !== 'link-up' || down))
  const key = wanted.join()
  if (key === s.actionsKey) return
  s.actionsKey = key
  const buttons: HTMLElement[] = wanted.map((a) => {
    // Own keys only: an action named like an Object.prototype member is a plain action, not a lookup hit.
    const b = el('button', { type: 'button', 'data-action': a }, Object.hasOwn(LABELS, a) ? LABELS[a] as string : a)
    const [endpoint, body] = Object.hasOwn(BODIES, a) ? BODIES[a] as [string, unknown] : [a, {}]
    const path = `${portPath(p)}/${endpoint}?network=${encodeURIComponent(p.network)}`
    b.addEventListener('click', a === 'condition'
      ? () => { toggleEditor(p.id) }
      : a === 'disconnect'
        ? () => {
            void confirmed(`Disconnect port ${p.name} (network ${p.network})?`,
              `switchd closes its connection and forgets its MACs; frames to them are flooded until they are learned again. ${p.kind === 'tapswitch' || p.kind === 'trunk' ? 'Its agent (or trunk) will dial again by itself.' : 'It comes back only if its client connects again.'}`,
              'Disconnect', path, body, b)
          }
        : () => { void act(path, body, b) })
    return b
  })
  const flush = el('button', { type: 'button', 'data-action': 'flush' }, 'flush fdb')
  flush.addEventListener('click', () => {
    void confirmed(`Flush the fdb entries of port ${p.name} (network ${p.network})?`,
      `Its ${p.fdbEntries} learned MAC${p.fdbEntries === 1 ? '' : 's'} are forgotten (static entries stay); frames to them are flooded until they are learned again.`,
      'Flush', '/api/v1/fdb/flush', { network: p.network, port: p.name }, flush)
  })
  s.cells[COL_ACTIONS]?.replaceChildren(...buttons, flush)
}

// ---------- the condition editor ----------

/** The port whose condition is being edited, and the row that holds the editor under the port's row. */
let editing: { id: number, name: string, network: string, row: HTMLTableRowElement } | undefined

function toggleEditor (id: number): void {
  if (editing?.id === id) { closeEditor(); return }
  const s = portRows.get(id)
  if (s === undefined) return
  closeEditor()
  const p = s.last
  const form = $<HTMLFormElement>('cond-editor')
  const f = formFrom(p.condition)
  $<HTMLSelectElement>('cond-direction').value = f.direction
  $<HTMLInputElement>('cond-delay').value = f.delay
  $<HTMLInputElement>('cond-jitter').value = f.jitter
  $<HTMLInputElement>('cond-loss').value = f.loss
  $<HTMLInputElement>('cond-rate').value = f.rate
  $('cond-port').textContent = p.name
  $('cond-error').textContent = ''
  const td = el('td', { colspan: String(COL_ACTIONS + 1) }, form)
  const row = el('tr', { class: 'editor', 'data-editor': p.name }, td) as HTMLTableRowElement
  s.row.after(row)
  form.hidden = false
  editing = { id, name: p.name, network: p.network, row }
  $<HTMLInputElement>('cond-delay').focus()
}

function closeEditor (): void {
  if (editing === undefined) return
  const form = $<HTMLFormElement>('cond-editor')
  form.hidden = true
  // The form goes back where index.html has it, so the next row can take it.
  $('ports').after(form)
  editing.row.remove()
  editing = undefined
}

/** Set (POST) or clear (DELETE) the edited port's condition; the API's refusal is shown in the editor, as text. */
async function submitCondition (clear: boolean, button: HTMLElement): Promise<void> {
  const e = editing
  if (e === undefined) return
  const direction = $<HTMLSelectElement>('cond-direction').value
  const path = `${portPath(e)}/condition?network=${encodeURIComponent(e.network)}`
  const error = $('cond-error')
  error.textContent = ''
  button.setAttribute('disabled', '')
  try {
    if (clear) await post(`${path}&direction=${encodeURIComponent(direction)}`, undefined, 'DELETE')
    else {
      await post(path, conditionBody({
        direction,
        delay: $<HTMLInputElement>('cond-delay').value,
        jitter: $<HTMLInputElement>('cond-jitter').value,
        loss: $<HTMLInputElement>('cond-loss').value,
        rate: $<HTMLInputElement>('cond-rate').value
      }))
    }
    if (editing === e) closeEditor()
  } catch (err) {
    error.textContent = (err as Error).message
  } finally {
    button.removeAttribute('disabled')
  }
}

/** An action that cannot be taken back: only once the operator confirms it. */
async function confirmed (title: string, detail: string, label: string, path: string, body: unknown, button: HTMLElement): Promise<void> {
  if (await confirmAction(title, detail, label)) await act(path, body, button)
}

async function act (path: string, body: unknown, button: HTMLElement): Promise<void> {
  button.setAttribute('disabled', '')
  try {
    await post(path, body)
  } catch (err) {
    addEvent({ seq: 0, time: new Date().toISOString(), level: 'error', component: 'console', event: 'action_failed', fields: { path, error: (err as Error).message } })
  } finally {
    button.removeAttribute('disabled')
  }
}

/** The column header's time axis, drawn once. */
let chartAxis: SVGElement | undefined

function drawPorts (ports: PortJson[], time: number): void {
  const body = $('ports').querySelector('tbody') as HTMLElement
  const seen = new Set<number>()
  let peak = 0
  for (const p of ports) {
    seen.add(p.id)
    let s = portRows.get(p.id)
    if (s === undefined) { s = newRow(p, time); portRows.set(p.id, s); body.append(s.row) }
    const dt = (time - s.lastTime) / 1000
    const rate = (a: number, b: number): number => dt > 0 ? Math.max(0, (a - b) / dt) : 0
    const rxF = rate(p.counters.rxFrames, s.last.counters.rxFrames)
    const txF = rate(p.counters.txFrames, s.last.counters.txFrames)
    const rxB = rate(p.counters.rxBytes, s.last.counters.rxBytes)
    const txB = rate(p.counters.txBytes, s.last.counters.txBytes)
    if (dt > 0) {
      s.rxHistory.push(rxF); s.txHistory.push(txF)
      if (s.rxHistory.length > HISTORY) s.rxHistory.shift()
      if (s.txHistory.length > HISTORY) s.txHistory.shift()
    }
    for (const v of s.rxHistory) peak = Math.max(peak, v)
    for (const v of s.txHistory) peak = Math.max(peak, v)
    const c = s.cells
    const set = (e: HTMLElement | undefined, v: string): void => { if (e !== undefined && e.textContent !== v) e.textContent = v }
    set(c[0], p.name); set(c[1], p.network); set(c[2], p.kind); set(c[3], vlanMode(p))
    set(c[4], p.state + (p.blockedSeconds > 0 ? ` (${p.blockedSeconds} s)` : ''))
    if (c[4] !== undefined) c[4].className = `state state-${p.state}`
    s.row.classList.toggle('link-down', p.state === 'down')
    set(s.cond, conditionText(p.condition))
    const h = held(p.condition)
    // What the queues hold, where there are queues (a pulled cable alone has none).
    const queues = p.condition?.in !== undefined || p.condition?.out !== undefined
    set(s.held, queues ? ` · held ${h.frames}${h.bytes > 0 ? ` (${bytes(h.bytes)})` : ''}` : '')
    set(c[6], `${p.fdbEntries} / ${p.maxMacs}`)
    set(s.rxF, count(rxF, 'frames/s')); set(s.rxB, bitRate(rxB))
    set(s.txF, count(txF, 'frames/s')); set(s.txB, bitRate(txB))
    set(c[COL_DROPS], count(totalDrops(p), 'frames'))
    c[COL_DROPS]?.setAttribute('title', Object.keys(p.drops).filter((k) => (p.drops[k] ?? 0) > 0).map((k) => `${k}: ${p.drops[k] ?? 0}`).join('\n'))
    drawActions(s, p)
    s.last = p
    s.lastTime = time
  }
  for (const [id, s] of portRows) {
    if (seen.has(id)) continue
    if (editing?.id === id) closeEditor()
    s.row.remove()
    portRows.delete(id)
  }
  // One scale for every row, so rows compare: the busiest port's peak of the last minute, rounded up.
  const scale = niceCeiling(peak)
  for (const s of portRows.values()) drawChart(s.chart, s.rxHistory, s.txHistory, scale)
  if (chartAxis === undefined) { chartAxis = axis(); $('chart-axis').append(chartAxis) }
  const text = `frames/s, 0 to ${si(scale)} (one scale, all rows)`
  if ($('chart-scale').textContent !== text) $('chart-scale').textContent = text
  $('ports-empty').hidden = ports.length > 0
}

function drawPortsNote (shown: number, total: number): void {
  $('ports-more').textContent = total > shown ? `Showing the first ${shown} of ${total} ports (switchctl ports lists them all).` : ''
}

// ---------- fdb ----------

function drawFdb (): void {
  const q = $<HTMLInputElement>('fdb-search').value.trim().toLowerCase()
  const match = q === '' ? fdbRows : fdbRows.filter((r) => r.mac.includes(q) || r.port.toLowerCase().includes(q) || String(r.vlan) === q || r.network.toLowerCase().includes(q))
  const shown = match.slice(0, FDB_SHOWN)
  const body = $('fdb').querySelector('tbody') as HTMLElement
  body.replaceChildren(...shown.map((r) => el('tr', {}, el('td', {}, r.network), el('td', {}, String(r.vlan)), el('td', {}, r.mac), el('td', {}, r.port),
    el('td', { class: 'num' }, String(r.age)), el('td', {}, r.static ? 'static' : ''))))
  const more = fdbTotal > fdbRows.length ? ` (the first ${fdbRows.length} of ${fdbTotal} entries are searched)` : ''
  $('fdb-count').textContent = `${match.length} shown of ${fdbTotal}${match.length > shown.length ? `, first ${shown.length} drawn` : ''}${more}`
}

// ---------- topology ----------

function drawTopology (): void {
  if ($('tab-topology').hidden) return
  const box = $('topology')
  // Networks with ports; an empty network is only drawn when all are empty.
  const used = lastNetworks.filter((n) => n.ports > 0)
  box.replaceChildren(...(used.length > 0 ? used : lastNetworks).map((n) => topology(n, lastPorts.filter((p) => p.network === n.name))))
}

// ---------- events ----------

/**
 * The lines shown, oldest first: info lines and warnings (errors too) apart,
 * MAX_EVENTS each, so the info lines a client causes at will (connecting and
 * leaving) never push a security event off the page. Shown newest on top, in
 * the order they came.
 */
const infoLines: HTMLElement[] = []
const alertLines: HTMLElement[] = []

function addEvent (e: LogEntryJson): void {
  const list = $('events')
  const fields = Object.keys(e.fields).map((k) => `${k}=${String(e.fields[k])}`).join(' ')
  const li = el('li', { class: e.level }, `${e.time.slice(11, 19)} ${e.level} ${e.component} ${e.event} ${fields}`)
  list.prepend(li)
  const kept = e.level === 'info' ? infoLines : alertLines
  kept.push(li)
  if (kept.length > MAX_EVENTS) kept.shift()?.remove()
}

function clearEvents (): void {
  $('events').replaceChildren()
  infoLines.length = 0
  alertLines.length = 0
}

// ---------- wiring ----------

function showTab (name: string): void {
  for (const b of document.querySelectorAll<HTMLElement>('#tabs button')) b.classList.toggle('on', b.dataset.tab === name)
  for (const s of document.querySelectorAll<HTMLElement>('section.tab')) s.hidden = s.id !== `tab-${name}`
  if (name === 'topology') drawTopology()
  showPolled(name)
}

function init (): void {
  for (const b of document.querySelectorAll<HTMLElement>('#tabs button')) b.addEventListener('click', () => { showTab(b.dataset.tab ?? 'ports') })
  $('login').addEventListener('submit', (ev) => {
    ev.preventDefault()
    const input = $<HTMLInputElement>('token')
    setToken(input.value.trim())
    input.value = ''
    $('login-error').textContent = ''
    setStatus('connecting…', false)
    void logIn()
  })
  $('logout').addEventListener('click', () => {
    setToken('')
    markLive()
    showPolled('')
    const sock = ws
    ws = undefined
    sock?.close()
    stopCapture()
    closeEditor()
    showLogin('')
  })
  $('cond-editor').addEventListener('submit', (ev) => { ev.preventDefault(); void submitCondition(false, $('cond-set')) })
  $('cond-clear').addEventListener('click', () => { void submitCondition(true, $('cond-clear')) })
  $('cond-close').addEventListener('click', closeEditor)
  $('cond-editor').addEventListener('keydown', (ev) => { if (ev.key === 'Escape') closeEditor() })
  $('fdb-search').addEventListener('input', drawFdb)
  $('fdb-flush').addEventListener('click', (ev) => {
    const names = lastNetworks.map((n) => n.name).join(', ')
    void confirmed(`Flush the whole fdb (every network: ${names})?`,
      `Every learned entry (of ${fdbTotal} in all) is forgotten; static entries stay. Frames to those stations are flooded until they are learned again.`,
      'Flush all', '/api/v1/fdb/flush', {}, ev.currentTarget as HTMLElement)
  })
  $('drops-search').addEventListener('input', redrawPolled)
  $('leases-search').addEventListener('input', redrawPolled)
  initConfirm()
  $('cap-network').addEventListener('change', () => { fillCaptureChoices(lastNetworks, lastPorts) })
  $('cap-start').addEventListener('click', () => { void startCapture() })
  $('cap-stop').addEventListener('click', stopCapture)
  $('cap-download').addEventListener('click', downloadCapture)
  connect()
}

init()
