/**
 * Setting a port's link conditions and running failure drills: the slow
 * path, on an operator's request or a configuration (condition.ts is the
 * per-frame logic, Switch.releaseHeld the release).
 *
 * A link down both ways is a pulled cable: BLOCK_LINK on the port (so the
 * one ingress check and canEgress() drop everything with no check of their
 * own), its MACs forgotten as the Linux bridge forgets them on carrier loss,
 * and the far end told (Port.linkChanged: a TAP's carrier follows). One
 * direction down is that direction's LinkCondition.down, a unidirectional
 * link failure; a condition is created for it if the port had none.
 */

import { BLOCK_LINK, DIR_IN, DIR_OUT, type Port } from './port'
import { LinkCondition, NO_IMPAIRMENT, impairs, type ConditionParams } from './condition'
import type { Switch } from './switch'

/** Take `port`'s link down or bring it up: both directions, or DIR_IN / DIR_OUT alone. */
export function setLinkDown (sw: Switch, port: Port, dir: number | 'both', down: boolean): void {
  sw.invalidate()
  if (dir === 'both') {
    const was = (port.blocked & BLOCK_LINK) !== 0
    if (down) { port.blocked |= BLOCK_LINK; sw.fdb.deletePort(port) } else port.blocked &= ~BLOCK_LINK
    if (was !== down) port.linkChanged(!down)
    // Up means up: it ends a one-way drill too.
    if (!down) { setDirectionDown(sw, port, DIR_IN, false); setDirectionDown(sw, port, DIR_OUT, false) }
    return
  }
  setDirectionDown(sw, port, dir, down)
}

function setDirectionDown (sw: Switch, port: Port, dir: number, down: boolean): void {
  let c = dir === DIR_IN ? port.condIn : port.condOut
  if (c === null) {
    if (!down) return
    c = new LinkCondition(NO_IMPAIRMENT, 0, sw.heldBudget, port.clientKey)
    if (dir === DIR_IN) port.condIn = c; else port.condOut = c
  }
  c.down = down
  if (!down && !impairs(c.params)) removeCondition(sw, port, dir)
}

/**
 * Set (params) or clear (null) the link condition of `port` in `dir`. What
 * a replaced condition held leaves now, in order, rather than being lost;
 * a one-way drill in force stays.
 */
export function setCondition (sw: Switch, port: Port, dir: number, params: ConditionParams | null): void {
  sw.invalidate()
  const old = dir === DIR_IN ? port.condIn : port.condOut
  const down = old !== null && old.down
  if (old !== null) { sw.releaseHeld(port, dir, Infinity); old.discard() }
  if (params === null && !down) { removeCondition(sw, port, dir); return }
  const p = params ?? NO_IMPAIRMENT
  const c = new LinkCondition(p, p.seed, sw.heldBudget, port.clientKey)
  c.down = down
  if (dir === DIR_IN) port.condIn = c; else port.condOut = c
}

/** Put the conditions its policy names (the configuration's `condition`) on a port: at join, and when a reload changes them. */
export function applyConfiguredCondition (sw: Switch, port: Port): void {
  const c = port.policy.condition
  setCondition(sw, port, DIR_IN, c?.in ?? null)
  setCondition(sw, port, DIR_OUT, c?.out ?? null)
}

function removeCondition (sw: Switch, port: Port, dir: number): void {
  const c = dir === DIR_IN ? port.condIn : port.condOut
  if (c === null) return
  sw.releaseHeld(port, dir, Infinity)
  c.discard()
  if (dir === DIR_IN) port.condIn = null; else port.condOut = null
}
