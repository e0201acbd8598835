/**
 * Setting a port's link conditions and running failure drills: the slow
 * path, on an operator's request or a configuration (condition.ts is the
 * per-frame logic, edge.ts where it acts: the port's edge, which this
 * file gives a port while it has a condition in either direction).
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
import { ConditionEdge } from './edge'
import type { Network } from './network'

/** Take `port`'s link down or bring it up: both directions, or DIR_IN / DIR_OUT alone. */
export function setLinkDown (sw: Network, port: Port, dir: number | 'both', down: boolean): void {
  sw.invalidate()
  if (dir === 'both') {
    const was = (port.blocked & BLOCK_LINK) !== 0
    sw.setBlocked(port, BLOCK_LINK, down)
    if (down) sw.fdb.deletePort(port)
    if (was !== down) port.linkChanged(!down)
    // Up means up: it ends a one-way drill too.
    if (!down) { setDirectionDown(sw, port, DIR_IN, false); setDirectionDown(sw, port, DIR_OUT, false) }
    return
  }
  setDirectionDown(sw, port, dir, down)
}

function setDirectionDown (sw: Network, port: Port, dir: number, down: boolean): void {
  let c = dir === DIR_IN ? port.condIn : port.condOut
  if (c === null) {
    if (!down) return
    c = new LinkCondition(NO_IMPAIRMENT, 0, sw.heldBudget, port.clientKey)
    if (dir === DIR_IN) port.condIn = c; else port.condOut = c
    fitEdge(sw, port)
  }
  c.down = down
  if (!down && !impairs(c.params)) removeCondition(sw, port, dir)
}

/**
 * Set (params) or clear (null) the link condition of `port` in `dir`. What
 * a replaced condition held leaves now, in order, rather than being lost;
 * a one-way drill in force stays.
 */
export function setCondition (sw: Network, port: Port, dir: number, params: ConditionParams | null): void {
  sw.invalidate()
  const old = dir === DIR_IN ? port.condIn : port.condOut
  const down = old !== null && old.down
  if (old !== null) { release(port, dir); old.discard() }
  if (params === null && !down) { removeCondition(sw, port, dir); return }
  const p = params ?? NO_IMPAIRMENT
  const c = new LinkCondition(p, p.seed, sw.heldBudget, port.clientKey)
  c.down = down
  if (dir === DIR_IN) port.condIn = c; else port.condOut = c
  fitEdge(sw, port)
}

/** Put the conditions its policy names (the configuration's `condition`) on a port: at join, and when a reload changes them. */
export function applyConfiguredCondition (sw: Network, port: Port): void {
  const c = port.policy.condition
  setCondition(sw, port, DIR_IN, c?.in ?? null)
  setCondition(sw, port, DIR_OUT, c?.out ?? null)
}

function removeCondition (sw: Network, port: Port, dir: number): void {
  const c = dir === DIR_IN ? port.condIn : port.condOut
  if (c === null) return
  release(port, dir)
  c.discard()
  if (dir === DIR_IN) port.condIn = null; else port.condOut = null
  fitEdge(sw, port)
}

/** Everything held in `dir` leaves now, in order. */
function release (port: Port, dir: number): void {
  if (port.edge !== null) port.edge.release(dir, Infinity)
}

/** A port has an edge while it has a condition in either direction, and none otherwise. */
function fitEdge (sw: Network, port: Port): void {
  if (port.condIn === null && port.condOut === null) port.edge = null
  else if (port.edge === null) port.edge = new ConditionEdge(sw, port)
}

/** The port left: what its conditions hold goes with it. */
export function dropConditions (port: Port): void {
  if (port.condIn !== null) { port.condIn.discard(); port.condIn = null }
  if (port.condOut !== null) { port.condOut.discard(); port.condOut = null }
  port.edge = null
}

/** Queues idle for a second give their memory back (the switch's tick, once a second). */
export function trimConditions (port: Port): void {
  if (port.condIn !== null) port.condIn.trim()
  if (port.condOut !== null) port.condOut.trim()
}
