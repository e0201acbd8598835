/**
 * The ports' charts: frames/s received and sent over the last minute, one
 * small SVG per row. Every row is drawn on ONE scale (the busiest port's
 * peak, rounded up to 1, 2 or 5 × 10^n), so two rows compare at a glance;
 * the scale is written on each chart (its top line) and in the column's
 * header, with the time axis. A per-row scale made an idle port's noise look
 * like the busy port's flood.
 */

import { svg } from './dom'
import { si } from './format'

export { niceCeiling } from './format'

/** Samples kept per port: one a second. */
export const HISTORY = 60
/** The chart's size in px, and the plot area inside it (the labels sit right of it). */
const W = 150
const H = 34
const PLOT_W = 116
const TOP = 5
const BOTTOM = 30

export interface Chart { root: SVGElement, rx: SVGElement, tx: SVGElement, top: SVGElement }

function label (x: number, y: number, t: string, cls: string): SVGElement {
  const e = svg('text', { x, y, class: cls }); e.textContent = t; return e
}

/** One row's chart, empty. */
export function newChart (): Chart {
  const root = svg('svg', { class: 'spark', width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img' })
  root.append(svg('rect', { x: 0, y: TOP, width: PLOT_W, height: BOTTOM - TOP, class: 'plot' }))
  root.append(svg('line', { x1: 0, y1: TOP, x2: PLOT_W, y2: TOP, class: 'grid' }))
  root.append(svg('line', { x1: 0, y1: (TOP + BOTTOM) / 2, x2: PLOT_W, y2: (TOP + BOTTOM) / 2, class: 'grid mid' }))
  const rx = svg('polyline', { points: '', class: 'rx' })
  const tx = svg('polyline', { points: '', class: 'tx' })
  const top = label(PLOT_W + 3, TOP + 4, '1', 'tick top')
  root.append(rx, tx, top, label(PLOT_W + 3, BOTTOM + 1, '0', 'tick'))
  return { root, rx, tx, top }
}

/** The points of a history (newest last) on `scale`: x from 60 s ago (left) to now (right). */
function points (history: readonly number[], scale: number): string {
  const off = HISTORY - history.length
  return history.map((v, i) => {
    const x = ((off + i) / (HISTORY - 1)) * PLOT_W
    const y = BOTTOM - (Math.min(v, scale) / scale) * (BOTTOM - TOP)
    return `${x.toFixed(1)},${y.toFixed(1)}`
  }).join(' ')
}

/** Draw a row's rx and tx histories (frames/s) on the shared scale. */
export function drawChart (c: Chart, rx: readonly number[], tx: readonly number[], scale: number): void {
  c.rx.setAttribute('points', points(rx, scale))
  c.tx.setAttribute('points', points(tx, scale))
  const top = si(scale)
  if (c.top.textContent !== top) c.top.textContent = top
  c.root.dataset.scale = String(scale)
  const peak = (h: readonly number[]): string => si(Math.max(0, ...h))
  c.root.setAttribute('aria-label', `frames/s over 60 s on a scale of 0 to ${top}: rx peak ${peak(rx)}, tx peak ${peak(tx)}`)
}

/** The column header's axis under its text (main.ts writes the scale): the legend and the time ticks under the plot area. */
export function axis (): SVGElement {
  const root = svg('svg', { class: 'axis', width: W, height: 26, viewBox: `0 0 ${W} 26`, role: 'img', 'aria-label': 'time axis: 60 s ago to now; rx and tx lines' })
  const key = (x: number, cls: string, t: string): void => {
    root.append(svg('line', { x1: x, y1: 6, x2: x + 10, y2: 6, class: cls }))
    root.append(label(x + 13, 9, t, 'tick'))
  }
  key(0, 'rx', 'rx'); key(36, 'tx', 'tx')
  root.append(svg('line', { x1: 0, y1: 14, x2: PLOT_W, y2: 14, class: 'grid' }))
  for (const [x, t, anchor] of [[0, '−60 s', 'start'], [PLOT_W / 2, '−30 s', 'middle'], [PLOT_W, 'now', 'end']] as const) {
    root.append(svg('line', { x1: x, y1: 14, x2: x, y2: 17, class: 'grid' }))
    const e = label(x, 25, t, 'tick'); e.setAttribute('text-anchor', anchor); root.append(e)
  }
  return root
}
