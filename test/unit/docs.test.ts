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
import { docFiles, exampleGroups, examplesIn, stepsOf } from '../helpers/doc-examples'

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

describe('docs: command examples', () => {
  it('every example marker is well formed and followed by a block that parses (test/e2e/docs-examples.e2e.ts runs them)', () => {
    const groups = exampleGroups()
    for (const g of groups) for (const e of g.examples) if (!e.opts.has('background') && !e.opts.has('file')) assert.ok(stepsOf(e).length > 0, `${e.file}:${e.line} example "${e.name}" has no command`)
    for (const want of ['README.md: demo', 'docs/TRUNKS.md: trunk-triangle', 'docs/DEPLOYMENT.md: deploy-quickstart']) {
      assert.ok(groups.some((g) => g.title === want), `no example ${want}`)
    }
    // A malformed marker fails here, not silently never runs.
    assert.throws(() => examplesIn('<!-- example: x timout=5 -->\n```sh\ntrue\n```\n', 't.md'), /unknown example option "timout"/)
    assert.throws(() => examplesIn('<!-- example: x -->\ntext\n', 't.md'), /not followed by a fenced block/)
    assert.deepEqual(examplesIn('```\n<!-- example: shown -->\n```\n', 't.md'), [], 'a marker shown inside a block is text')
  })

  it('docs/OPERATIONS.md has a row for every switchctl command', () => {
    const commands = [...read('src/ctl/main.ts').matchAll(/^\s*case '([a-z]+)': \{/gm)].map((m) => m[1] as string)
    assert.ok(commands.length >= 10, `only ${commands.length} commands found in src/ctl/main.ts: fix this test`)
    const rows = tableAfter(read('docs/OPERATIONS.md'), 'switchctl').map((r) => r[0] ?? '')
    const missing = commands.filter((c) => !rows.some((r) => new RegExp(`^\`switchctl ${c}\\b`).test(r)))
    assert.deepEqual(missing, [], 'switchctl commands without a row in docs/OPERATIONS.md')
  })

  it('a switchctl table in the docs has the columns switchctl prints', () => {
    // The headers each switchctl command prints: the first table([...]) or columns<T>([...]) literal after its case in src/ctl/main.ts.
    const src = read('src/ctl/main.ts')
    const headers = new Map<string, string[]>()
    for (const m of src.matchAll(/case '([a-z]+)': \{[\s\S]*?\b(?:table|columns<\w+>)\(\[([^\]]*)\]/g)) {
      if (!headers.has(m[1] as string)) headers.set(m[1] as string, [...(m[2] as string).matchAll(/'([^']*)'/g)].map((x) => x[1] as string))
    }
    assert.ok(headers.has('ports') && headers.has('fdb') && headers.has('networks'), 'src/ctl/main.ts no longer has table([...]) after its cases: fix this test')
    const wrong: string[] = []
    let seen = 0
    for (const file of docFiles()) {
      const lines = read(file).split('\n')
      lines.forEach((l, i) => {
        const m = /^\s*\$ switchctl((?:\s+--(?:url|token)\s+\S+|\s+--json)*)\s+([a-z]+)\b/.exec(l)
        const next = (lines[i + 1] ?? '').trim()
        if (m === null || !/^[A-Z]+(?:\s{1,2}[A-Z]+)*$/.test(next.split(/\s{2,}/).join('  ').replace(/\s{2,}/g, '  ')) || !/^[A-Z]/.test(next)) return
        const own = headers.get(m[2] as string)
        if (own === undefined) return
        // Several URLs (a fleet): the same columns after a REPLICA column.
        const want = /--url\s+\S*,/.test(m[1] as string) ? ['REPLICA', ...own] : own
        seen++
        const got = next.split(/\s{2,}/)
        if (JSON.stringify(got) !== JSON.stringify(want)) wrong.push(`${file}:${i + 2}: switchctl ${m[2] as string} prints ${want.join(' | ')}; the docs show ${got.join(' | ')}`)
      })
    }
    assert.ok(seen >= 5, `only ${seen} switchctl tables found in the docs`)
    assert.deepEqual(wrong, [])
  })
})
