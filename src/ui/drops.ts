/**
 * The Drops tab: switchd's drop log (GET /api/v1/drops, what `switchctl
 * drops` prints) folded into one row per network, port and reason: how many
 * of the log's records, the port's own count for that reason (its counters,
 * from the tick), when the last one was seen and what it was. The log keeps
 * the last 1,024 drops of each network; the page reads what came after the
 * last record it saw (`since`) every POLL_MS while the tab is open, and says
 * how many it missed (`lost`).
 *
 * Port names and MACs come from the stations' side: everything is put in the
 * page as text.
 */

import type { DropJson, PortJson } from '../common/api-types'
import { el } from './dom'
import { clock, duration, si } from './format'
import type { DropGroup, DropGroups } from './drop-groups'
import { explain, portCounters } from './reasons'

/** How often the open tab asks for new drops. */
export const POLL_MS = 2000
/** The port's own count of drops for `reason` (its counters), if it is still connected. */
function portCount (ports: readonly PortJson[], g: DropGroup): string {
  const p = ports.find((x) => x.network === g.network && x.name === g.port)
  if (p === undefined) return '—'
  let n = 0
  for (const k of portCounters(g.reason)) n += p.drops[k] ?? 0
  return si(n)
}

/** The frame of a drop in one line: source > destination, VLAN. */
function frameText (d: DropJson): string {
  return `${d.src ?? '?'} > ${d.dst ?? '?'}${d.vlan === null ? '' : `, VLAN ${d.vlan}`}`
}

/** Draw the table: `now` is switchd's clock (the last tick), so "ago" does not depend on this computer's clock. */
export function drawDrops (body: HTMLElement, note: HTMLElement, groups: DropGroups, ports: readonly PortJson[], now: number, filter: string): void {
  const q = filter.trim().toLowerCase()
  const rows = groups.rows().filter((g) => q === '' || g.port.toLowerCase().includes(q) || g.network.toLowerCase().includes(q) || g.reason.includes(q))
  body.replaceChildren(...rows.map((g) => el('tr', { 'data-reason': g.reason },
    el('td', {}, g.network),
    el('td', {}, g.port),
    el('td', { class: 'reason' }, el('code', {}, g.reason), el('br'), el('span', { class: 'muted' }, explain(g.reason))),
    el('td', { class: 'num count' }, si(g.count)),
    el('td', { class: 'num', title: 'the port\'s own count for this reason since it connected (— once it has left)' }, portCount(ports, g)),
    el('td', { class: 'seen', title: g.last.time }, `${clock(g.lastMs)} (${duration((now - g.lastMs) / 1000)} ago)`),
    el('td', { class: 'frame' }, frameText(g.last)))))
  const kept = groups.size > 0 ? ` (the log keeps the last ${groups.size} per network)` : ''
  const lost = groups.lost > 0 ? ` ${si(groups.lost)} drops came and went between two reads${kept}.` : ''
  note.textContent = groups.rows().length === 0
    ? `The drop log is empty: no frame was dropped${kept}.` + lost
    : `${si(groups.total)} drops read from the log, in ${rows.length} rows.${lost}`
}
