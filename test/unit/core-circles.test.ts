/**
 * Issue 23: the switching core (src/switch/core/) has no import circle, type-only imports included.
 * Shared types live in leaf modules (reasons.ts, stats.ts, network.ts, options.ts, stp-port.ts,
 * fdb-entry.ts, fdb-books.ts, held-budget.ts) instead of going round through switch.ts and port.ts.
 */
import { strict as assert } from 'node:assert'
import * as fs from 'node:fs'
import * as path from 'node:path'

const CORE = path.join(__dirname, '..', '..', 'src', 'switch', 'core')

/** Every relative import and export-from of a core module (type-only ones too), as core module names. */
function imports (mod: string): string[] {
  const text = fs.readFileSync(path.join(CORE, mod + '.ts'), 'utf8')
  const out: string[] = []
  const re = /^\s*(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\sfrom\s+)?['"](\.[^'"]+)['"]/gm
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const target = path.relative(CORE, path.join(CORE, path.dirname(mod), m[1] as string))
    if (!target.startsWith('..')) out.push(target)
  }
  return out
}

/** The circles (strongly connected components of more than one module, or a module importing itself). */
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

describe('switching core layout', () => {
  it('has no import circle in core/, type-only imports included (gateway-filter and gateway-flows, another item of issue 23, aside)', () => {
    const graph = new Map<string, string[]>()
    for (const f of fs.readdirSync(CORE)) if (f.endsWith('.ts')) graph.set(f.replace(/\.ts$/, ''), imports(f.replace(/\.ts$/, '')))
    const found = circles(graph).filter((c) => !c.every((m) => m.startsWith('gateway-')))
    assert.deepEqual(found, [], `circles: ${found.map((c) => c.join(' <-> ')).join('; ')}`)
  })

  it('finds a circle through a type-only import (the check can fail)', () => {
    assert.deepEqual(circles(new Map([['a', ['b']], ['b', ['a']], ['c', ['a']]])), [['a', 'b']])
  })
})
