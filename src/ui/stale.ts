/**
 * The page while its event stream is down: every live value is dimmed and
 * struck as stale (console.css, body.stale), the actions wait, and a banner
 * says since when the numbers are old and that the page is reconnecting. The
 * first tick after reconnecting restores the page. A stream that stays open
 * but brings no tick for STALE_AFTER_MS (a switchd that hangs, a network
 * that drops packets without closing) counts as down too.
 */

import { $ } from './dom'
import { clock, duration } from './format'

/** No tick for this long (they come every second): the values are stale. */
export const STALE_AFTER_MS = 5000

let since: number | undefined
let why = ''
let timer: ReturnType<typeof setInterval> | undefined

function draw (): void {
  if (since === undefined) return
  const ago = duration((Date.now() - since) / 1000)
  $('stale-text').textContent = `Disconnected from switchd since ${clock(since)} (${ago} ago): ${why}. The values below are from then; reconnecting…`
}

/** The stream is down (or silent): mark the page, once, from the first moment. */
export function markStale (reason: string): void {
  why = reason
  if (since === undefined) {
    since = Date.now()
    document.body.classList.add('stale')
    $('stale').hidden = false
    timer = setInterval(draw, 1000)
  }
  draw()
}

/** A tick arrived: the values are live again. */
export function markLive (): void {
  if (since === undefined) return
  since = undefined
  clearInterval(timer)
  timer = undefined
  document.body.classList.remove('stale')
  $('stale').hidden = true
}

export function isStale (): boolean { return since !== undefined }
