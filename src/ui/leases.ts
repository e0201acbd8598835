/**
 * The Leases tab: the DHCP leases of every network's gateway
 * (GET /api/v1/leases, what `switchctl leases` prints): MAC, address, port,
 * kind, state and expiry, read every POLL_MS while the tab is open.
 *
 * A station chooses its MAC and what it asks for: everything is put in the
 * page as text.
 */

import type { LeaseJson } from '../common/api-types'
import { el } from './dom'
import { clock, duration } from './format'

export const POLL_MS = 5000
/** Rows drawn at once (a pool is at most a few thousand addresses). */
export const LEASES_SHOWN = 1000

/** When a lease expires, against switchd's clock: "in 23 h 59 min (09:12:03)", "2 min ago". */
function expiry (l: LeaseJson, now: number): string {
  if (l.expires === null) return 'never (static)'
  const at = Date.parse(l.expires)
  if (!Number.isFinite(at)) return l.expires
  return at >= now ? `in ${duration((at - now) / 1000)} (${clock(at)})` : `${duration((now - at) / 1000)} ago`
}

export function drawLeases (body: HTMLElement, note: HTMLElement, leases: readonly LeaseJson[], now: number, filter: string): void {
  const q = filter.trim().toLowerCase()
  const match = q === '' ? leases : leases.filter((l) => l.mac.includes(q) || l.ip.includes(q) || (l.port ?? '').toLowerCase().includes(q) || l.network.toLowerCase().includes(q))
  const shown = match.slice(0, LEASES_SHOWN)
  body.replaceChildren(...shown.map((l) => el('tr', { 'data-mac': l.mac, class: `lease-${l.state}` },
    el('td', {}, l.network),
    el('td', {}, l.mac),
    el('td', {}, l.ip),
    el('td', l.port === null ? { title: 'not seen on a port yet (or since switchd restarted)' } : {}, l.port ?? '—'),
    el('td', {}, l.kind),
    el('td', { class: 'state' }, l.state),
    el('td', { class: 'expires', title: l.expires ?? '' }, expiry(l, now)))))
  note.textContent = leases.length === 0
    ? 'No leases: a network\'s gateway hands them out (docs/GATEWAY.md); no network has one, or no station asked yet.'
    : `${match.length} shown of ${leases.length}${match.length > shown.length ? `, first ${shown.length} drawn` : ''}.`
}
