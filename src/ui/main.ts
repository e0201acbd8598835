/**
 * The web console (docs/CONSOLE.md): one page, no framework. Everything it
 * shows arrives over one WebSocket, /api/v1/events (a snapshot of counters
 * every second, the fdb every other second, log events as they happen); the
 * actions and the capture go to the admin API with the token as a Bearer
 * header. The token lives in sessionStorage and never in a URL.
 *
 * Everything from the switch (port names, log fields a client chose) is put
 * into the page as text (textContent, SVG text nodes), never as markup.
 *
 * This file draws what each tick brings and wires the page; the stream and
 * the login are stream.ts, the ports table ports.ts, its condition editor
 * editor.ts, the event log events.ts, the tabs read from the API polled.ts.
 */

import type { ConsoleMessage, FdbJson, LogEntryJson, NetworkJson, PortJson } from '../common/api-types'
import { $, el } from './dom'
import { count } from './format'
import { topology } from './topology'
import { auth, setToken } from './api'
import { live, showPolled, redrawPolled } from './polled'
import { initConfirm } from './confirm'
import { fillCaptureChoices, startCapture, stopCapture, downloadCapture } from './capture'
import { markLive } from './stale'
import { startStream, hangUp, logIn, setStatus, showLogin } from './stream'
import { addEvent, clearEvents } from './events'
import { drawPorts, drawPortsNote, setPortActions } from './ports'
import { closeEditor, initEditor } from './editor'
import { confirmed } from './actions'

/** FDB rows drawn at once (after the search). */
const FDB_SHOWN = 500

let lastPorts: PortJson[] = []
let lastNetworks: NetworkJson[] = []
let fdbRows: FdbJson[] = []
let fdbTotal = 0

function onWelcome (log: LogEntryJson[], acts: string[]): void {
  setPortActions(acts)
  $('login').hidden = true
  $('main').hidden = false
  $('tabs').hidden = false
  $('logout').hidden = auth.token === ''
  setStatus('live', true)
  clearEvents()
  for (const e of log) addEvent(e)
}

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

// ---------- networks ----------

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
    hangUp()
    stopCapture()
    closeEditor()
    showLogin('')
  })
  initEditor()
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
  startStream({ welcome: onWelcome, tick: onTick, log: addEvent })
}

init()
