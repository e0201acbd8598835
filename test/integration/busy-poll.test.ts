/**
 * Bounded adaptive busy polling (native/busy_poll.h): after traffic the
 * event loop polls instead of sleeping for the budget, then sleeps again, so
 * nothing spins while nothing flows.
 *
 * Asserted as the mechanism, not as a rate: whether the event loop was ever
 * asleep in epoll_wait. Node's event loop utilization (libuv's idle time) is
 * the share of the time the loop was NOT waiting in the kernel for events:
 * about 1 while it polls with a zero timeout, about 0 while it sleeps. Unlike
 * the CPU seconds the process gets (0.07 s in 0.3 s with eight busy loops
 * beside it on two cores), it does not depend on what else the machine runs.
 */

import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import * as binding from '../../native'

/**
 * The event loop's utilization over the next `ms`: ~1 spinning, ~0 asleep.
 * Asleep is judged as under a half, not near 0: on a loaded machine the
 * callbacks the runner still has (a previous test's sockets closing, GC) take
 * longer in wall time, and 10 % was seen with eight busy loops beside npm test.
 */
const ASLEEP = 0.5
function loopUtilizationOver (ms: number): Promise<number> {
  const before = performance.eventLoopUtilization()
  return new Promise((resolve) => setTimeout(() => {
    resolve(performance.eventLoopUtilization(before).utilization)
  }, ms))
}

describe('busy polling (native addon)', function () {
  afterEach(() => { binding.setBusyPoll(0) })

  it('spins for the budget after a kick, then sleeps: the loop never waits in epoll until the budget ends', async () => {
    binding.setBusyPoll(10e6) // 10 s: longer than the window below, however late its timer fires
    binding.busyPollKick()
    const spinning = await loopUtilizationOver(300)
    assert.ok(spinning > 0.9, `the loop was busy ${(spinning * 100).toFixed(0)} % of the budget`)
    binding.setBusyPoll(400_000) // 400 ms from the next kick
    binding.busyPollKick()
    await new Promise((resolve) => setTimeout(resolve, 600)) // the budget ends
    const idle = await loopUtilizationOver(500)
    assert.ok(idle < ASLEEP, `the loop was busy ${(idle * 100).toFixed(0)} % after the budget`)
  })

  it('is off by default and when set to 0: a kick costs nothing', async () => {
    binding.busyPollKick()
    const off = await loopUtilizationOver(300)
    assert.ok(off < ASLEEP, `busy ${(off * 100).toFixed(0)} % while off`)
    binding.setBusyPoll(400_000)
    binding.busyPollKick()
    binding.setBusyPoll(0) // stops at once, mid-budget
    const stopped = await loopUtilizationOver(300)
    assert.ok(stopped < ASLEEP, `busy ${(stopped * 100).toFixed(0)} % after setBusyPoll(0)`)
  })

  it('attack: refuses budgets out of range or not numbers', () => {
    for (const v of [-1, 10e6 + 1, NaN, Infinity]) assert.throws(() => { binding.setBusyPoll(v) }, RangeError, String(v))
    assert.throws(() => { (binding.setBusyPoll as (x: unknown) => void)('100') }, TypeError)
  })

  it('does not keep the process alive', async () => {
    const { execFileSync } = await import('node:child_process')
    const native = require.resolve('../../native')
    // A process whose only work is a spinning budget of 10 s must still exit when its script ends, not
    // when the budget does: it says how long that took (its own start-up, however slow, is not counted).
    const out = execFileSync(process.execPath, ['-e', `const b = require(${JSON.stringify(native)}); b.setBusyPoll(10e6); const t = performance.now(); b.busyPollKick(); process.on('exit', () => { process.stdout.write(String(performance.now() - t)) })`], { timeout: 60_000 })
    const ms = Number(out.toString())
    assert.ok(ms < 5000, `exited ${ms.toFixed(0)} ms after the kick, with a budget of 10,000 ms`)
  })
})
