/**
 * Bounded adaptive busy polling (native/busy_poll.h): after traffic the
 * event loop polls instead of sleeping for the budget, then sleeps again, so
 * nothing spins while nothing flows. Measured as the CPU the process uses
 * (behaviour: spinning or asleep), not as speed.
 */

import assert from 'node:assert/strict'
import * as binding from '../../native'

function cpuSecondsOver (ms: number): Promise<number> {
  const before = process.cpuUsage()
  return new Promise((resolve) => setTimeout(() => {
    const d = process.cpuUsage(before)
    resolve((d.user + d.system) / 1e6)
  }, ms))
}

describe('busy polling (native addon)', function () {
  this.timeout(10_000)
  afterEach(() => { binding.setBusyPoll(0) })

  it('spins for the budget after a kick, then sleeps: no CPU once traffic stopped', async () => {
    binding.setBusyPoll(400_000) // 400 ms
    binding.busyPollKick()
    const spinning = await cpuSecondsOver(300)
    // Spinning means close to 0.3 s of CPU; a machine shared with other work may give us less, never near 0.
    assert.ok(spinning > 0.08, `spun ${spinning.toFixed(3)} s of CPU in 0.3 s`)
    await new Promise((resolve) => setTimeout(resolve, 200)) // the budget ends
    const idle = await cpuSecondsOver(500)
    assert.ok(idle < 0.05, `used ${idle.toFixed(3)} s of CPU in 0.5 s after the budget`)
  })

  it('is off by default and when set to 0: a kick costs nothing', async () => {
    binding.busyPollKick()
    assert.ok(await cpuSecondsOver(300) < 0.05)
    binding.setBusyPoll(400_000)
    binding.busyPollKick()
    binding.setBusyPoll(0) // stops at once, mid-budget
    assert.ok(await cpuSecondsOver(300) < 0.05)
  })

  it('attack: refuses budgets out of range or not numbers', () => {
    for (const v of [-1, 10e6 + 1, NaN, Infinity]) assert.throws(() => { binding.setBusyPoll(v) }, RangeError, String(v))
    assert.throws(() => { (binding.setBusyPoll as (x: unknown) => void)('100') }, TypeError)
  })

  it('does not keep the process alive', async () => {
    const { execFileSync } = await import('node:child_process')
    const native = require.resolve('../../native')
    // A process whose only work is a spinning budget of 10 s must still exit at once.
    const t0 = Date.now()
    execFileSync(process.execPath, ['-e', `const b = require(${JSON.stringify(native)}); b.setBusyPoll(10e6); b.busyPollKick()`], { timeout: 5000 })
    assert.ok(Date.now() - t0 < 4000)
  })
})
