/** The drop log folded by (network, port, reason), for the Drops tab (drops.ts). No DOM here (unit-tested in Node). */

import type { DropJson, DropsJson } from '../common/api-types'

/** Rows kept: a network of many short-lived ports makes new names; the least recently seen go first. */
export const MAX_GROUPS = 1000

export interface DropGroup {
  network: string
  port: string
  reason: string
  /** Records of the log in this group, since the page started reading. */
  count: number
  /** The last one: when (switchd's clock, ms since the epoch) and what. */
  lastMs: number
  last: DropJson
}

/** The drop log folded by (network, port, reason); pure, so a unit test can drive it. */
export class DropGroups {
  private readonly groups = new Map<string, DropGroup>()
  /** The last record read: the next read asks for what came after it. */
  since = 0
  /** Records the page missed (pushed out of the log between two reads). */
  lost = 0
  /** The log's size per network, as switchd says. */
  size = 0

  add (answer: DropsJson): void {
    this.lost += answer.lost
    this.size = answer.size
    for (const d of answer.drops) {
      const key = JSON.stringify([d.network, d.port, d.reason])
      let g = this.groups.get(key)
      if (g === undefined) {
        g = { network: d.network, port: d.port, reason: d.reason, count: 0, lastMs: 0, last: d }
      } else this.groups.delete(key)
      g.count++
      g.last = d
      g.lastMs = Date.parse(d.time)
      // Re-inserted: the map's order is least recently seen first.
      this.groups.set(key, g)
      if (this.groups.size > MAX_GROUPS) this.groups.delete(this.groups.keys().next().value as string)
    }
    this.since = Math.max(this.since, answer.last)
  }

  /** The groups, most recently seen first. */
  rows (): DropGroup[] { return [...this.groups.values()].reverse() }

  get total (): number { let n = 0; for (const g of this.groups.values()) n += g.count; return n }
}
