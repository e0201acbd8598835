/**
 * The tabs read from the admin API rather than the event stream (Drops,
 * Leases): read when their tab opens and every POLL_MS while it is open,
 * never while it is closed; drawn again with each tick (the ports' counts
 * and "ago" move).
 */

import type { DropsJson, LeaseJson, PortJson } from '../common/api-types'
import { $ } from './dom'
import { getJson } from './api'
import { drawDrops, POLL_MS as DROPS_POLL_MS } from './drops'
import { DropGroups } from './drop-groups'
import { drawLeases, POLL_MS as LEASES_POLL_MS } from './leases'

/** What the last tick said (main.ts sets it): the ports, and switchd's clock. */
export const live: { ports: PortJson[], time: number } = { ports: [], time: Date.now() }

const pollers = new Map<string, ReturnType<typeof setInterval>>()

/** Read `read` now and every `ms` while `on`; stop when the tab closes. */
function poll (name: string, on: boolean, ms: number, read: () => Promise<void>): void {
  const t = pollers.get(name)
  if (!on) { if (t !== undefined) { clearInterval(t); pollers.delete(name) } return }
  if (t !== undefined) return
  void read()
  pollers.set(name, setInterval(() => { void read() }, ms))
}

const dropGroups = new DropGroups()
let dropsReading = false

async function readDrops (): Promise<void> {
  if (dropsReading) return
  dropsReading = true
  const error = $('drops-error')
  try {
    // What came after the last record seen: the first read gets what the logs hold.
    dropGroups.add(await getJson(`/api/v1/drops?since=${dropGroups.since}`) as DropsJson)
    error.textContent = ''
  } catch (err) {
    error.textContent = `cannot read the drop log: ${(err as Error).message}`
  } finally { dropsReading = false }
  redrawDrops()
}

function redrawDrops (): void {
  drawDrops($('drops').querySelector('tbody') as HTMLElement, $('drops-note'), dropGroups, live.ports, live.time, $<HTMLInputElement>('drops-search').value)
}

let leases: LeaseJson[] = []

async function readLeases (): Promise<void> {
  const error = $('leases-error')
  try {
    leases = await getJson('/api/v1/leases') as LeaseJson[]
    error.textContent = ''
  } catch (err) {
    error.textContent = `cannot read the leases: ${(err as Error).message}`
  }
  redrawLeases()
}

function redrawLeases (): void {
  drawLeases($('leases').querySelector('tbody') as HTMLElement, $('leases-note'), leases, live.time, $<HTMLInputElement>('leases-search').value)
}

/** The tab `name` is shown (another, or none, is not): read its view now and on, and stop the others. */
export function showPolled (name: string): void {
  poll('drops', name === 'drops', DROPS_POLL_MS, readDrops)
  poll('leases', name === 'leases', LEASES_POLL_MS, readLeases)
}

/** Draw the open tab's view again (a tick came, or its search changed). */
export function redrawPolled (): void {
  if (!$('tab-drops').hidden) redrawDrops()
  if (!$('tab-leases').hidden) redrawLeases()
}
