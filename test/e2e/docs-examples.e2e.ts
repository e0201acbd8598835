/**
 * The command examples of README.md and docs/ run as pasted, and fail here when one stops working as
 * written. Which blocks run, and how, is marked in the markdown (`<!-- example: NAME … -->` before a
 * fenced block: docs/CONTRIBUTING.md); test/helpers/doc-examples.ts runs each in a sandbox of its own
 * (network, mount and PID namespaces), so nothing it starts outlives it and its traffic stays inside.
 */
import { strict as assert } from 'node:assert'
import { requireRoot } from '../helpers/root'
import { requireTools } from '../helpers/proc'
import { exampleGroups, runGroup } from '../helpers/doc-examples'

describe('docs: the marked examples work as written (e2e)', function () {
  before(function () {
    requireRoot(this)
    requireTools(this, [{ cmd: 'unshare', pkg: 'util-linux' }])
  })

  const groups = exampleGroups().filter((g) => g.examples.every((e) => !e.opts.has('tier')))
  it('finds the marked examples', () => {
    for (const want of ['README.md: demo']) assert.ok(groups.some((g) => g.title === want), `no example ${want}`)
  })

  for (const g of groups) {
    const timeout = Math.max(...g.examples.map((e) => Number(e.opts.get('timeout') ?? 60)))
    it(g.title, async function () {
      this.timeout((timeout + 30) * 1000)
      const r = await runGroup(g.examples)
      assert.equal(r.failure, undefined, r.failure)
    })
  }
})
