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
import { run, stopChild } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { spawnLogged, waitForLine, pingUntilAnswered, asUser, requireCheckoutReadableBy, exitWithin, type Logged } from '../helpers/proc'

const ROOT = path.resolve(__dirname, '../..')
const SWITCHD = path.join(ROOT, 'bin/switchd.js')
const ID = process.pid % 100000
const NS_A = `tswlt-a${ID}`
const NS_B = `tswlt-b${ID}`
const TAP_A = `tswltA${ID}`
const TAP_B = `tswltB${ID}`

/** utime + stime of `pid`, in seconds. */
function cpuSeconds (pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / 100
}

describe('e2e: switchd serves local TAPs itself (--tap)', function () {
  this.timeout(60_000)
  let sw: Logged | undefined
  const log: string[] = []

  before(async function () {
    requireRoot(this)
    for (const ns of [NS_A, NS_B]) await run('ip', ['netns', 'add', ns])
  })

  after(async () => {
    await stopChild(sw?.child)
    for (const ns of [NS_A, NS_B]) await run('ip', ['netns', 'del', ns]).catch(() => {})
    for (const t of [TAP_A, TAP_B]) await run('ip', ['link', 'del', t]).catch(() => {})
  })

  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(log.slice(-40).join('\n') + '\n')
  })

  it('two namespaces ping each other through one switchd and no agent, and it idles without spinning', async () => {
    sw = spawnLogged('switchd', process.execPath, [SWITCHD, '--listen', '127.0.0.1:0', '--tap', `${TAP_A},${TAP_B}`], (l) => { log.push(l) })
    await waitForLine(sw, 'switchd', (l) => l.includes('"event":"listening"'))
    for (const [tap, ns, ip] of [[TAP_A, NS_A, '192.0.2.1/24'], [TAP_B, NS_B, '192.0.2.2/24']] as const) {
      // Moved after creation: switchd keeps its fd and never touches the link by name again.
      await run('ip', ['link', 'set', tap, 'netns', ns])
      await run('ip', ['-n', ns, 'addr', 'add', ip, 'dev', tap])
      await run('ip', ['-n', ns, 'link', 'set', tap, 'up'])
    }
    const summary = await pingUntilAnswered(NS_A, '192.0.2.2', 5)
    assert.match(summary, / 5 received/)
    const back = await pingUntilAnswered(NS_B, '192.0.2.1', 3)
    assert.match(back, / 3 received/)

    // Nothing flows now: over one second switchd must be asleep in epoll, not polling.
    const pid = sw.child.pid as number
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
