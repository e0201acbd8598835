/**
 * "Did you mean …?" for names a person types: a network, a port, a flag.
 * A name that does not exist fails with what exists and, for a near miss,
 * the nearest one (as git and npm answer a mistyped command). No dependency:
 * the distance is twenty lines, and the lists it runs on are short
 * (the ports of a switchd, a program's flags).
 */

/** Longest part of a name compared: names are at most 64 characters (protocol.ts NAME_PATTERN). */
const MAX_COMPARED = 64

/**
 * Edit distance between `a` and `b` (optimal string alignment: insert,
 * delete, substitute, or swap two neighbours, each 1), case-insensitive.
 * Names longer than 64 characters are compared on their first 64: enough to
 * tell near misses apart, and the cost stays bounded whatever a client sends.
 */
export function editDistance (a: string, b: string): number {
  const s = a.slice(0, MAX_COMPARED).toLowerCase(); const t = b.slice(0, MAX_COMPARED).toLowerCase()
  // Three rows of the table (the one before last, for swaps; the last; the current), reused: no array per row.
  let before = new Uint8Array(t.length + 1)
  let last = new Uint8Array(t.length + 1)
  let row = new Uint8Array(t.length + 1)
  for (let j = 0; j <= t.length; j++) last[j] = j
  for (let i = 1; i <= s.length; i++) {
    row[0] = i
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1
      let d = Math.min((last[j] as number) + 1, (row[j - 1] as number) + 1, (last[j - 1] as number) + cost)
      if (i > 1 && j > 1 && s[i - 1] === t[j - 2] && s[i - 2] === t[j - 1]) d = Math.min(d, (before[j - 2] as number) + 1)
      row[j] = d
    }
    const spare = before; before = last; last = row; row = spare
  }
  return last[t.length] as number
}

/**
 * Cells of the distance table one `nearest` fills at most (a few
 * milliseconds): a 404 is answered on switchd's event loop, which forwards
 * frames too, and a switchd may have 10,000 ports. Beyond it, no suggestion
 * (the list still says what exists).
 */
export const NEAREST_BUDGET = 1_000_000

/**
 * The candidate nearest `name` if it is a near miss: at most a third of its
 * letters wrong (at least one), and no other candidate as near; else undefined
 * (also when comparing them all would cost more than NEAREST_BUDGET).
 */
export function nearest (name: string, candidates: Iterable<string>): string | undefined {
  const max = Math.max(1, Math.floor(name.length / 3))
  let best: string | undefined
  let bestDistance = Infinity
  let tie = false
  let cells = 0
  for (const c of new Set(candidates)) {
    // Lengths further apart than `max` are further apart than `max` edits: skip the table.
    if (c === name || Math.abs(c.length - name.length) > max) continue
    cells += Math.min(name.length, MAX_COMPARED) * Math.min(c.length, MAX_COMPARED)
    if (cells > NEAREST_BUDGET) return undefined
    const d = editDistance(name, c)
    if (d < bestDistance) { best = c; bestDistance = d; tie = false } else if (d === bestDistance) tie = true
  }
  return best !== undefined && bestDistance <= max && !tie ? best : undefined
}

/** Compares as a person reads names (web2 before web10); one collator, not one per comparison as localeCompare with options makes. */
const COLLATOR = new Intl.Collator('en', { numeric: true })

/** `names` sorted as a person reads them (web2 before web10). */
export function sortNames (names: Iterable<string>): string[] {
  return [...new Set(names)].sort(COLLATOR.compare)
}

/** `names` for a message, sorted, at most `max` of them: "a, b, c" or "a, b, … (12 more)". Already sorted (sortNames) if `sorted`. */
export function listNames (names: Iterable<string>, max = 12, sorted = false): string {
  const all = sorted ? [...names] : sortNames(names)
  if (all.length <= max) return all.join(', ')
  return `${all.slice(0, max).join(', ')}, … (${all.length - max} more)`
}
