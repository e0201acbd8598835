/**
 * switchd serving TAPs itself (`--tap`): two TAPs it creates are moved into
 * two namespaces, which then ping each other through it with no agent; the
 * switch idles without spinning; and without CAP_NET_ADMIN it refuses to
 * start, saying so.
 *
 * Network hygiene: the TAPs get addresses only inside this file's own
 * namespaces (192.0.2.0/24, TEST-NET-1), which after() always deletes.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { run } from '../../src/lab/lab'
import { spawnLogged, pingUntilAnswered, asUser, requireCheckoutReadableBy, exitWithin } from '../helpers/proc'
import { localTaps } from '../helpers/local-taps'

const ROOT = path.resolve(__dirname, '../..')
const SWITCHD = path.join(ROOT, 'bin/switchd.js')
const ID = process.pid % 100000

/** utime + stime of `pid`, in seconds. */
function cpuSeconds (pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / 100
}

describe('e2e: switchd serves local TAPs itself (--tap)', function () {
  this.timeout(60_000)
  const lab = localTaps('lt')
  const { nsA: NS_A, nsB: NS_B, log } = lab

  it('two namespaces ping each other through one switchd and no agent, and it idles without spinning', async () => {
    await lab.start()
    const summary = await pingUntilAnswered(NS_A, '192.0.2.2', 5)
    assert.match(summary, / 5 received/)
    const back = await pingUntilAnswered(NS_B, '192.0.2.1', 3)
    assert.match(back, / 3 received/)

    // Nothing flows now: over one second switchd must be asleep in epoll, not polling.
    const pid = lab.sw?.child.pid as number
    const before = cpuSeconds(pid)
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const used = cpuSeconds(pid) - before
    assert.ok(used < 0.2, `switchd used ${used.toFixed(2)} s of CPU in 1 s of idle`)
  })

  it('attack: without CAP_NET_ADMIN, --tap fails at start with a message naming the TAP and the capability', async function () {
    requireCheckoutReadableBy(this, ROOT)
    const [cmd, args] = asUser(process.execPath, [SWITCHD, '--listen', '127.0.0.1:0', '--tap', `tswltX${ID}`])
    const p = spawnLogged('switchd-nobody', cmd, args, (l) => { log.push(l) })
    assert.ok(await exitWithin(p.child, 15_000), 'switchd exits')
    assert.equal(p.child.exitCode, 2)
    const text = p.lines.join('\n')
    // EACCES where /dev/net/tun is root-only, EPERM (TUNSETIFF) where it is 0666: either way the fix is named.
    assert.match(text, new RegExp(`tap tswltX${ID}: open: (EPERM|EACCES)`))
    assert.match(text, /CAP_NET_ADMIN/)
    await assert.rejects(run('ip', ['link', 'show', `tswltX${ID}`]), 'no TAP was left behind')
  })

  it('attack: a --tap name that is no interface name is refused before anything opens', async () => {
    const p = spawnLogged('switchd-badname', process.execPath, [SWITCHD, '--listen', '127.0.0.1:0', '--tap', 'ok0,../x'], (l) => { log.push(l) })
    assert.ok(await exitWithin(p.child, 15_000), 'switchd exits')
    assert.equal(p.child.exitCode, 2)
    assert.match(p.lines.join('\n'), /taps\[1\]\.name/)
    await assert.rejects(run('ip', ['link', 'show', 'ok0']), 'the valid one was not opened either')
  })
})
