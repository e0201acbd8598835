/**
 * The Prometheus text format (what switchd's /metrics answers) read into
 * samples, and the values of one metric's series picked by labels: the one
 * parser the fixtures share (vtep.ts reads one series, vxlan-fabric.ts sums
 * them). Pure: text in, numbers out.
 *
 *   metricValues(text, 'switchd_vxlan_packets_total', { direction: 'in' })   // every matching series' value
 *   metricSum(text, 'switchd_vxlan_dropped_total', { reason: 'truncated' })  // their sum, 0 if none
 *   metricValue(text, 'tap_agent_link_coalesce_waits_total', { tap: 'tsw0' }) // the first's, or it throws
 */

export interface Sample {
  name: string
  labels: Readonly<Record<string, string>>
  value: number
}

const NAME = /^[a-zA-Z_:][\w:]*/
/** One `name="value"` and what follows it up to the next pair or `}`; the value's escapes are \\, \" and \n. */
const LABEL = /\s*([a-zA-Z_]\w*)\s*=\s*"((?:[^"\\\n]|\\.)*)"\s*(,?)\s*/y

/** Every sample line of `text`; comments (# HELP, # TYPE) and blank lines are passed over, and a malformed line throws. */
export function parseMetrics (text: string): Sample[] {
  const out: Sample[] = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line !== '' && !line.startsWith('#')) out.push(parseSample(line))
  }
  return out
}

/** The values of the series of `name` whose labels include every pair of `labels` (and maybe others), in the text's order. */
export function metricValues (text: string, name: string, labels: Record<string, string> = {}): number[] {
  const want = Object.entries(labels)
  return parseMetrics(text).filter((s) => s.name === name && want.every(([k, v]) => s.labels[k] === v)).map((s) => s.value)
}

/** The value of the first series of `name` with these labels; throws naming it, with the text's start, where none matches. */
export function metricValue (text: string, name: string, labels: Record<string, string> = {}): number {
  const [v] = metricValues(text, name, labels)
  if (v === undefined) throw new Error(`no ${name}${JSON.stringify(labels)} in:\n${text.slice(0, 2000)}`)
  return v
}

/** The sum of metricValues: 0 where no series matches. */
export function metricSum (text: string, name: string, labels: Record<string, string> = {}): number {
  return metricValues(text, name, labels).reduce((a, b) => a + b, 0)
}

function parseSample (line: string): Sample {
  const bad = (): Error => new Error(`not a metrics sample line: ${JSON.stringify(line)}`)
  const name = NAME.exec(line)?.[0]
  if (name === undefined) throw bad()
  const labels: Record<string, string> = {}
  let i = name.length
  if (line[i] === '{') {
    i++
    while (line[i] !== '}') {
      LABEL.lastIndex = i
      const m = LABEL.exec(line)
      if (m === null) throw bad()
      labels[m[1] as string] = (m[2] as string).replace(/\\(.)/g, (_, c: string) => c === 'n' ? '\n' : c)
      i = LABEL.lastIndex
      if (m[3] === '' && line[i] !== '}') throw bad()
    }
    i++
  }
  // The value, then an optional timestamp.
  const rest = line.slice(i).trim().split(/\s+/)
  if (line[i] !== ' ' && line[i] !== '\t') throw bad()
  if (rest.length > 2) throw bad()
  const value = parseValue(rest[0] as string)
  if (value === undefined) throw bad()
  return { name, labels, value }
}

/** A float as Prometheus reads it (Go's ParseFloat): NaN and Inf in any case (prom-client writes `Nan`). */
function parseValue (s: string): number | undefined {
  const special = /^([+-]?)(inf|infinity|nan)$/i.exec(s)
  if (special !== null) return (special[2] as string).toLowerCase() === 'nan' ? NaN : special[1] === '-' ? -Infinity : Infinity
  const n = Number(s)
  return s === '' || Number.isNaN(n) ? undefined : n
}
