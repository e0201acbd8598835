/**
 * The console's event log: switchd's log lines as they come, newest on top.
 * Their fields are a client's text at times: put in as text, never markup.
 */

import type { LogEntryJson } from '../common/api-types'
import { $, el } from './dom'

/** Lines kept in the event log (info lines, and as many warnings and errors). */
const MAX_EVENTS = 500

/**
 * The lines shown, oldest first: info lines and warnings (errors too) apart,
 * MAX_EVENTS each, so the info lines a client causes at will (connecting and
 * leaving) never push a security event off the page. Shown newest on top, in
 * the order they came.
 */
const infoLines: HTMLElement[] = []
const alertLines: HTMLElement[] = []

export function addEvent (e: LogEntryJson): void {
  const list = $('events')
  const fields = Object.keys(e.fields).map((k) => `${k}=${String(e.fields[k])}`).join(' ')
  const li = el('li', { class: e.level }, `${e.time.slice(11, 19)} ${e.level} ${e.component} ${e.event} ${fields}`)
  list.prepend(li)
  const kept = e.level === 'info' ? infoLines : alertLines
  kept.push(li)
  if (kept.length > MAX_EVENTS) kept.shift()?.remove()
}

export function clearEvents (): void {
  $('events').replaceChildren()
  infoLines.length = 0
  alertLines.length = 0
}
