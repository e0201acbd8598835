/**
 * The ports table: one row per port, kept across ticks (its rate history,
 * its chart, its buttons), updated in place with what changed; rows of
 * ports that left are removed.
 */

import type { PortJson } from '../common/api-types'
import { conditionText, held, linkIsDown } from './condition'
import { $, el } from './dom'
import { si, count, bytes, bitRate } from './format'
import { HISTORY, axis, drawChart, newChart, niceCeiling, type Chart } from './chart'
import { act, confirmed, portPath } from './actions'
import { toggleEditor, closeEditor, editingPort } from './editor'

interface PortState {
  row: HTMLTableRowElement, cells: HTMLElement[], chart: Chart, rxHistory: number[], txHistory: number[], last: PortJson, lastTime: number, actionsKey: string
  /** The condition cell's two parts: what the condition is, and what it holds now. */
  cond: HTMLElement, held: HTMLElement
  /** The rate cells' two lines each: frames/s and bit/s. */
  rxF: HTMLElement, rxB: HTMLElement, txF: HTMLElement, txB: HTMLElement
}
const portRows = new Map<number, PortState>()

/** The actions this token may take on a port (the welcome's list, console.ts PORT_ACTIONS). */
let actions: string[] = []

export function setPortActions (acts: string[]): void { actions = acts }

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
      // The port as the last tick drew it, not as when the button was made.
      ? () => { toggleEditor(s.last, s.row) }
      : a === 'disconnect'
        ? () => {
            void confirmed(`Disconnect port ${p.name} (network ${p.network})?`,
              `switchd closes its connection and forgets its MACs; frames to them are flooded until they are learned again. ${disconnectNote(p.kind)}`,
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

/** The column header's time axis, drawn once. */
let chartAxis: SVGElement | undefined

/** One tick's ports: rows added, updated and removed; every chart on one scale. */
export function drawPorts (ports: PortJson[], time: number): void {
  const body = $('ports').querySelector('tbody') as HTMLElement
  const seen = new Set<number>()
  let peak = 0
  for (const p of ports) {
    seen.add(p.id)
    let s = portRows.get(p.id)
    if (s === undefined) { s = newRow(p, time); portRows.set(p.id, s); body.append(s.row) }
    peak = Math.max(peak, drawPort(s, p, time))
  }
  for (const [id, s] of portRows) {
    if (seen.has(id)) continue
    if (editingPort() === id) closeEditor()
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

/** One port's row from this tick and the one before; its peak rate of the last minute (frames/s). */
function drawPort (s: PortState, p: PortJson, time: number): number {
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
  let peak = 0
  for (const v of s.rxHistory) peak = Math.max(peak, v)
  for (const v of s.txHistory) peak = Math.max(peak, v)
  const c = s.cells
  const set = (e: HTMLElement | undefined, v: string): void => { if (e !== undefined && e.textContent !== v) e.textContent = v }
  // A VTEP's port shows the VTEP (it has no session: the remote is what tells two apart); any other kind as it is.
  set(c[0], p.name); set(c[1], p.network); set(c[2], p.kind === 'vxlan' || p.kind === 'geneve' ? `${p.kind} ${p.remote}` : p.kind); set(c[3], vlanMode(p))
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
  return peak
}

export function drawPortsNote (shown: number, total: number): void {
  $('ports-more').textContent = total > shown ? `Showing the first ${shown} of ${total} ports (switchctl ports lists them all).` : ''
}

/** What becomes of a port after a disconnect, by its kind (a kind a newer switchd has reads as the last line). */
function disconnectNote (kind: string): string {
  if (kind === 'tapswitch' || kind === 'trunk' || kind === 'mesh') return 'Its agent (or trunk, or mesh link) will dial again by itself.'
  if (kind === 'vxlan' || kind === 'geneve') return 'A VTEP has no connection to close: its port is disabled until you enable it.'
  return 'It comes back only if its client connects again.'
}
