/**
 * Link conditions and drills (docs/CONDITIONS.md) as the console shows them,
 * and the editor's form as the API's JSON. Pure: no DOM, so the unit tests
 * run it in node (test/unit/console-condition.test.ts).
 */

import type { ConditionJson, PortConditionJson } from '../common/api-types'

/** 10000000 -> "10mbit", 512000 -> "512kbit", 1500000 -> "1.5mbit": exact, in units the API reads back. */
export function rateText (bits: number): string {
  for (const [unit, f] of [['gbit', 1e9], ['mbit', 1e6], ['kbit', 1e3]] as const) {
    const n = Math.round((bits / f) * 1000) / 1000
    if (bits >= f && n * f === bits) return `${n}${unit}`
  }
  return `${bits}bit`
}

/** 20 -> "20ms", 1500 -> "1.5s": for reading; the editor keeps ms, which read back exactly. */
export function msText (ms: number): string {
  return ms >= 1000 ? `${ms / 1000}s` : `${ms}ms`
}

/** One direction in a few words: "20ms ±5ms, 1% loss, 10mbit", "down", or "none" (a condition that impairs nothing). */
export function directionText (c: ConditionJson): string {
  if (c.down) return 'down'
  const parts: string[] = []
  if (c.delay !== undefined || c.jitter !== undefined) parts.push(`${msText(c.delay ?? 0)}${c.jitter !== undefined ? ` ±${msText(c.jitter)}` : ''}`)
  if (c.loss !== undefined) parts.push(`${c.loss}% loss`)
  if (c.burst !== undefined) parts.push(`burst loss ${c.burst.p}%/${c.burst.r}%`)
  if (c.duplicate !== undefined) parts.push(`${c.duplicate}% dup`)
  if (c.corrupt !== undefined) parts.push(`${c.corrupt}% corrupt`)
  if (c.reorder !== undefined) parts.push(`${c.reorder}% reorder`)
  if (c.rate !== undefined) parts.push(rateText(c.rate))
  return parts.length === 0 ? 'none' : parts.join(', ')
}

/**
 * A port's conditions on one line: "out: 20ms ±5ms, 1% loss, 10mbit", "both: 40ms"
 * when the two directions are the same, "in: down; flap 2s/8s"; '' for none.
 */
export function conditionText (c: PortConditionJson | undefined): string {
  if (c === undefined) return ''
  const parts: string[] = []
  const i = c.in === undefined ? undefined : directionText(c.in)
  const o = c.out === undefined ? undefined : directionText(c.out)
  if (i !== undefined && i === o) parts.push(`both: ${i}`)
  else {
    if (i !== undefined) parts.push(`in: ${i}`)
    if (o !== undefined) parts.push(`out: ${o}`)
  }
  if (c.flap !== undefined) parts.push(`flap ${c.flap.down}s/${c.flap.every}s`)
  return parts.join('; ')
}

/** Frames and bytes the port's conditions hold now (both directions). */
export function held (c: PortConditionJson | undefined): { frames: number, bytes: number } {
  const frames = (c?.in?.queuedFrames ?? 0) + (c?.out?.queuedFrames ?? 0)
  const bytes = (c?.in?.queuedBytes ?? 0) + (c?.out?.queuedBytes ?? 0)
  return { frames, bytes }
}

/** Whether "link up" would change anything: the link is down, one direction is, or a flap is scheduled. */
export function linkIsDown (state: string, c: PortConditionJson | undefined): boolean {
  // A disabled port hides 'down' in its state; a condition entry without a direction still means a drill.
  return state === 'down' || c?.in?.down === true || c?.out?.down === true || c?.flap !== undefined ||
    (state === 'disabled' && c !== undefined && c.in === undefined && c.out === undefined)
}

/** The fields of the page's condition editor. */
export interface ConditionForm { direction: string, delay: string, jitter: string, loss: string, rate: string }

/**
 * The POST body for a form: what the user typed, as typed ("20ms", "1%", "10mbit" or a bare number),
 * empty fields left out. switchd validates every value and answers 400 naming the key.
 */
export function conditionBody (f: ConditionForm): Record<string, string> {
  const body: Record<string, string> = { direction: f.direction }
  for (const k of ['delay', 'jitter', 'loss', 'rate'] as const) {
    const v = f[k].trim()
    if (v !== '') body[k] = v
  }
  return body
}

/** The form filled from what a port has (the first direction that has a condition), to edit it. */
export function formFrom (c: PortConditionJson | undefined): ConditionForm {
  const d = c?.out ?? c?.in
  const direction = c?.in !== undefined && c.out !== undefined && directionText(c.in) === directionText(c.out) ? 'both' : c?.out !== undefined ? 'out' : c?.in !== undefined ? 'in' : 'both'
  return {
    direction,
    delay: d?.delay !== undefined ? `${d.delay}ms` : '',
    jitter: d?.jitter !== undefined ? `${d.jitter}ms` : '',
    loss: d?.loss !== undefined ? `${d.loss}%` : '',
    rate: d?.rate !== undefined ? rateText(d.rate) : ''
  }
}
