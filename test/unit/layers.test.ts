/**
 * The folder layout is the architecture (docs/ARCHITECTURE.md): this test reads every import in src/
 * and fails on an arrow that points the wrong way or on an import cycle.
 */
import { strict as assert } from 'node:assert'
import * as fs from 'node:fs'
import * as path from 'node:path'

const SRC = path.join(__dirname, '..', '..', 'src')

/** Every .ts file under src/, as a path relative to src/ without the extension. */
function modules(dir = SRC): string[] {
  const out: string[] = []
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) out.push(...modules(p))
    else if (e.name.endsWith('.ts')) out.push(path.relative(SRC, p).replace(/\.ts$/, ''))
  }
  return out
}

/** A folder import (`./config`) is its index.ts, so cycles through it are seen. */
function resolveLocal(mod: string): string {
  return fs.existsSync(path.join(SRC, mod, 'index.ts')) ? path.join(mod, 'index') : mod
}

interface Edges { local: string[]; packages: string[]; typeOnly: string[] }

/**
 * Value imports in `local` and `packages`: `import type` is erased and cannot make a cycle or an
 * I/O dependency. Type imports in `typeOnly`: the control plane may not even name io/'s types
 * (it sees the daemon through control/view.ts).
 */
function importsOf(mod: string): Edges {
  const text = fs.readFileSync(path.join(SRC, mod + '.ts'), 'utf8')
  const local: string[] = []
  const packages: string[] = []
  const typeOnly: string[] = []
  const re = /^\s*(import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const spec = m[3]!
    const target = spec.startsWith('.') ? resolveLocal(path.relative(SRC, path.join(SRC, path.dirname(mod), spec))) : undefined
    if (m[2]) { if (target !== undefined) typeOnly.push(target); continue }
    if (target !== undefined) local.push(target)
    else packages.push(spec)
  }
  return { local, packages, typeOnly }
}

const ALL = modules()
const GRAPH = new Map(ALL.map(m => [m, importsOf(m)]))

function layerOf(mod: string): string {
  const parts = mod.split(path.sep)
  return parts[0] === 'switch' && parts.length > 2 ? `switch/${parts[1]}` : parts[0]!
}

/** Which layers each layer may import (its own layer always). */
const ALLOWED: Record<string, string[]> = {
  'common': [],
  'switch/core': ['common'],
  'switch/control': ['switch/core', 'common'],
  // Transports know sockets and framing, not configuration files: each declares the options it needs, the daemon passes them in.
  'switch/io': ['switch/core', 'common'],
  // The daemon's wiring: listeners, routes, admission, endpoints, reload, the one port registry.
  'switch/daemon': ['switch/core', 'switch/control', 'switch/io', 'common'],
  // switchd's main.ts: flags, signals, start and stop; it builds the daemon.
  'switch': ['switch/daemon', 'switch/control', 'switch/core', 'common'],
  'agent': ['common'],
  'ctl': ['common'],
  'lab': ['common'],
  'bench': ['common', 'lab'],
  // The web console runs in a browser: it may take only types from common (api-types), never its Node code.
  'ui': [],
}

/** Imports (value and type) from modules of layer `from` into any of `to`, as `a → b` lines. */
function typeArrows (from: string, to: readonly string[]): string[] {
  const wrong: string[] = []
  for (const [mod, { local, typeOnly }] of GRAPH) {
    if (layerOf(mod) !== from) continue
    for (const dep of [...local, ...typeOnly]) if (to.includes(layerOf(dep))) wrong.push(`${mod} → ${dep}`)
  }
  return wrong
}

/** The core decides where a frame goes; it may not open, read or write anything. */
const CORE_PACKAGES = new Set(['lru-cache', 'node:crypto', 'node:util'])

/** The circles of `graph` (Tarjan: strongly connected components of more than one module, or a module importing itself). */
function circles (graph: Map<string, string[]>): string[][] {
  let next = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const on = new Set<string>()
  const out: string[][] = []
  const visit = (v: string): void => {
    index.set(v, next); low.set(v, next); next++
    stack.push(v); on.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue
      if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v) as number, low.get(w) as number)) } else if (on.has(w)) low.set(v, Math.min(low.get(v) as number, index.get(w) as number))
    }
    if (low.get(v) !== index.get(v)) return
    const scc: string[] = []
    let w: string
    do { w = stack.pop() as string; on.delete(w); scc.push(w) } while (w !== v)
    if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc.sort())
  }
  for (const v of graph.keys()) if (!index.has(v)) visit(v)
  return out
}

describe('layers: the folder layout is the architecture', () => {
  it('finds the layers it checks', () => {
    for (const layer of Object.keys(ALLOWED)) assert.ok(ALL.some(m => layerOf(m) === layer), `no module in ${layer}`)
  })

  it('every import points down the layers (no switch → agent, no core → I/O)', () => {
    const wrong: string[] = []
    for (const [mod, { local }] of GRAPH) {
      const from = layerOf(mod)
      const allowed = ALLOWED[from]
      assert.ok(allowed, `${mod}: layer ${from} is not in the table`)
      for (const dep of local) {
        const to = layerOf(dep)
        if (to !== from && !allowed.includes(to)) wrong.push(`${mod} → ${dep}`)
      }
    }
    assert.deepEqual(wrong, [])
  })

  it('the control plane imports nothing from io/, not even a type (it sees the daemon through view.ts)', () => {
    assert.deepEqual(typeArrows('switch/control', ['switch/io', 'switch/daemon']), [])
  })

  it('io/ imports nothing from the control plane or the daemon, not even a type (a transport declares its options)', () => {
    assert.deepEqual(typeArrows('switch/io', ['switch/control', 'switch/daemon']), [])
  })

  it('no layer below the daemon names it, not even a type', () => {
    assert.deepEqual(typeArrows('switch/core', ['switch/daemon', 'switch/io', 'switch/control']), [])
  })

  it('the switching core imports no I/O package', () => {
    const wrong: string[] = []
    for (const [mod, { packages }] of GRAPH) {
      if (layerOf(mod) !== 'switch/core') continue
      for (const p of packages) if (!CORE_PACKAGES.has(p)) wrong.push(`${mod} → ${p}`)
    }
    assert.deepEqual(wrong, [])
  })

  it('every file under src/ is small (at most 400 lines; ESLint max-lines-per-function holds functions to 80)', () => {
    const long = ALL.map((m) => [m, fs.readFileSync(path.join(SRC, m + '.ts'), 'utf8').split('\n').length - 1] as const)
      .filter(([, n]) => n > 400).map(([m, n]) => `${m}: ${n} lines`)
    assert.deepEqual(long, [])
  })

  it('has no import circle, type-only imports included (a shared type goes in a leaf module)', () => {
    const graph = new Map([...GRAPH].map(([m, e]) => [m, [...e.local, ...e.typeOnly]]))
    const found = circles(graph).map((c) => c.join(' <-> '))
    assert.deepEqual(found, [])
  })

  it('finds a circle through a type-only import (the check can fail)', () => {
    assert.deepEqual(circles(new Map([['a', ['b']], ['b', ['a']], ['c', ['a']]])), [['a', 'b']])
    assert.deepEqual(circles(new Map([['a', ['a']]])), [['a']])
  })
})
