/**
 * The docs' tables of metrics and flags are written by hand, so they are
 * checked against the code: a metric registered or a flag defined without its
 * row (or a row left behind after one is removed) fails here. The metric
 * names come from the prom-client registries switchd and tap-agent build
 * (names are registered when the registry is built; nothing is scraped), the
 * flags from the option specs each program parses its command line with.
 * Also: every relative link in README.md and docs/ reaches a file, and an
 * anchor in it, so moving a section cannot leave a link dangling.
 */
import { strict as assert } from 'node:assert'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { switchdRegistry } from '../../src/switch/control/metrics'
import type { SwitchdView } from '../../src/switch/control/view'
import { agentRegistry } from '../../src/agent/metrics'
import type { Agent } from '../../src/agent/agent'
import { SPECS as SWITCHD_SPECS } from '../../src/switch/main'
import { SPECS as AGENT_SPECS } from '../../src/agent/main'
import { OPTIONS as CTL_OPTIONS } from '../../src/ctl/main'

const ROOT = path.join(__dirname, '..', '..')
const read = (file: string): string => fs.readFileSync(path.join(ROOT, file), 'utf8')

/** The rows of the first table after the heading `heading` (exact text) in `md`, as cells. */
function tableAfter (md: string, heading: string): string[][] {
  const lines = md.split('\n')
  const at = lines.findIndex((l) => /^#+ /.test(l) && l.replace(/^#+ /, '') === heading)
  assert.ok(at >= 0, `no heading "${heading}"`)
  const rows: string[][] = []
  let i = at + 1
  while (i < lines.length && !(lines[i] ?? '').startsWith('|')) {
    assert.ok(!/^#+ /.test(lines[i] ?? ''), `no table under "${heading}"`)
    i++
  }
  for (; i < lines.length && (lines[i] ?? '').startsWith('|'); i++) {
    // `\|` inside a cell is a literal bar, not a column.
    const cells = (lines[i] as string).replace(/\\\|/g, '\u0000').split('|').slice(1, -1).map((c) => c.replace(/\u0000/g, '|').trim())
    rows.push(cells)
  }
  return rows.slice(2) // header and separator
}

/** The flags named in the first column of `rows`: `--name` and `-x`. */
function flagsIn (rows: string[][]): string[] {
  const out = new Set<string>()
  for (const r of rows) for (const m of (r[0] ?? '').matchAll(/`(--?[a-z][a-z0-9-]*)/g)) out.add(m[1] as string)
  return [...out].sort()
}

/** The flags a spec defines, as they are typed: `--name` (`-x` for a one-letter name) and each short form. */
function flagsOf (specs: Record<string, { type: string, short?: string }>): string[] {
  const out = new Set<string>()
  for (const [name, s] of Object.entries(specs)) {
    out.add(name.length === 1 ? `-${name}` : `--${name}`)
    if (s.short !== undefined) out.add(`-${s.short}`)
  }
  return [...out].sort()
}

/** Metric names in the first column of every table in `md` that start with `prefix`. */
function metricsIn (md: string, prefix: string): string[] {
  const out = new Set<string>()
  for (const line of md.split('\n')) {
    if (!line.startsWith('| `')) continue
    const first = line.split('|')[1] ?? ''
    for (const m of first.matchAll(/`([a-z_:][a-z0-9_:]*)`/g)) if ((m[1] as string).startsWith(prefix)) out.add(m[1] as string)
  }
  return [...out].sort()
}

/** prom-client's own process_* and nodejs_* series: the docs name them as a family. */
const ours = (names: string[], prefix: string): string[] => names.filter((n) => n.startsWith(prefix)).sort()

describe('docs: tables checked against the code', () => {
  const metricsMd = read('docs/METRICS.md')
  const configMd = read('docs/CONFIGURATION.md')

  it('docs/METRICS.md lists exactly the metrics switchd registers', () => {
    const reg = switchdRegistry({} as SwitchdView)
    const names = reg.getMetricsAsArray().map((m) => m.name)
    assert.deepEqual(metricsIn(metricsMd, 'switchd_'), ours(names, 'switchd_'))
    assert.ok(names.every((n) => n.startsWith('switchd_') || n.startsWith('process_') || n.startsWith('nodejs_')), 'every other series is prom-client\'s')
    assert.match(metricsMd, /`process_\*`, `nodejs_\*`/)
  })

  it('docs/METRICS.md lists exactly the metrics tap-agent registers', () => {
    const names = agentRegistry({} as Agent).getMetricsAsArray().map((m) => m.name)
    assert.deepEqual(metricsIn(metricsMd, 'tap_agent_'), ours(names, 'tap_agent_'))
  })

  it('docs/CONFIGURATION.md lists exactly the flags switchd defines', () => {
    assert.deepEqual(flagsIn(tableAfter(configMd, 'switchd options')), flagsOf(SWITCHD_SPECS))
  })

  it('docs/CONFIGURATION.md lists exactly the flags tap-agent defines', () => {
    assert.deepEqual(flagsIn(tableAfter(configMd, 'tap-agent options')), flagsOf(AGENT_SPECS))
  })

  it('docs/CONFIGURATION.md lists exactly the flags switchctl defines', () => {
    assert.deepEqual(flagsIn(tableAfter(configMd, 'switchctl options')), flagsOf(CTL_OPTIONS))
  })

  it('each flag row names the environment variable its spec reads', () => {
    for (const [heading, specs] of [['switchd options', SWITCHD_SPECS], ['tap-agent options', AGENT_SPECS]] as const) {
      const text = tableAfter(configMd, heading).map((r) => r.join('|')).join('\n')
      for (const [name, s] of Object.entries(specs as Record<string, { env?: string }>)) {
        if (s.env !== undefined) assert.ok(text.includes('`' + s.env + '`'), `${heading}: --${name}'s ${s.env}`)
      }
    }
  })
})

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes. */
function slug (heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-')
}

function anchorsOf (md: string): Set<string> {
  const out = new Set<string>()
  let fenced = false
  for (const line of md.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced
    if (!fenced && /^#+ /.test(line)) out.add(slug(line.replace(/^#+ /, '')))
  }
  return out
}

describe('docs: links', () => {
  it('every relative link in README.md and docs/ reaches its file and anchor', () => {
    const files = ['README.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]
    const broken: string[] = []
    for (const file of files) {
      const md = read(file).replace(/```[\s\S]*?```/g, '')
      for (const m of md.matchAll(/\]\(([^)\s]+)\)/g)) {
        const url = m[1] as string
        if (/^[a-z]+:/.test(url)) continue
        const [target, anchor] = url.split('#') as [string, string | undefined]
        const resolved = target === '' ? file : path.normalize(path.join(path.dirname(file), target))
        if (!fs.existsSync(path.join(ROOT, resolved))) { broken.push(`${file}: ${url} (no such file)`); continue }
        if (anchor !== undefined && anchor !== '' && resolved.endsWith('.md') && !anchorsOf(read(resolved)).has(anchor)) {
          broken.push(`${file}: ${url} (no such heading)`)
        }
      }
    }
    assert.deepEqual(broken, [])
  })
})
