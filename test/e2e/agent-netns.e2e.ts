/**
 * Issue 22, items 2 and 5: tap-agent --netns NAME makes its TAP inside the
 * namespace and keeps configuring it there (the MTU the switch asks for
 * included), while the agent itself stays in its own namespace and reaches
 * switchd on 127.0.0.1; --netns naming no namespace, and --attach naming no
 * persistent TAP, fail at once with one line naming what exists.
 *
 * Before --netns the recipes started the agent and then moved the TAP with
 * `ip link set … netns`: that raced the agent ("Cannot find device"), and
 * the MTU from the switch's welcome, set by name in the agent's namespace,
 * failed with ENODEV (mtu_not_set), or went to a host interface that had
 * the TAP's name. Addresses are TEST-NET-1, only inside the test's
 * namespaces.
 */

import assert from 'node:assert/strict'
import * as path from 'node:path'
import { spawnSync } from 'node:child_process'
import { run, stopChild } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { spawnLogged, waitForLine, pingUntilAnswered, type Logged } from '../helpers/proc'

const ROOT = path.join(__dirname, '..', '..')
const AGENT = path.join(ROOT, 'bin', 'tap-agent.js')
const SWITCHD = path.join(ROOT, 'bin', 'switchd.js')

describe('e2e: tap-agent --netns and --attach by name', function () {
  this.timeout(60_000)
  const id = process.pid % 100000
  const nsA = `tswnn-a${id}`
  const nsB = `tswnn-b${id}`
  const tapA = `tswnnA${id}`
  const tapB = `tswnnB${id}`
  const persistent = `tswnnP${id}`
  const log: string[] = []
  let sw: Logged | undefined
  const agents: Logged[] = []
  let url = ''

  const linkIn = async (ns: string | undefined, dev: string): Promise<{ mtu: number, flags: string[], address: string } | undefined> => {
    try {
      const out = JSON.parse(await run('ip', [...(ns === undefined ? [] : ['-n', ns]), '-j', 'link', 'show', 'dev', dev])) as Array<{ mtu: number, flags: string[], address: string }>
      return out[0]
    } catch {
      return undefined
    }
  }

  /** Run tap-agent to its first failure: [exit code, stderr]. Bounded by spawnSync's timeout. */
  const agentFails = (args: string[]): [number | null, string] => {
    const r = spawnSync(process.execPath, [AGENT, '--url', 'ws://127.0.0.1:9/', ...args], { encoding: 'utf8', timeout: 20_000 })
    return [r.status, r.stderr.trim()]
  }

  const startAgent = async (who: string, args: string[]): Promise<Logged> => {
    const a = spawnLogged(who, process.execPath, [AGENT, '--url', url, '--reconnect-max', '1', ...args], (l) => { log.push(l) })
    agents.push(a)
    await waitForLine(a, who, (l) => l.includes('"event":"uplink_connected"'), 20_000)
    return a
  }

  before(async function () {
    requireRoot(this)
    for (const ns of [nsA, nsB]) await run('ip', ['netns', 'add', ns])
    // A host interface with the name the TAP in nsA will have: nothing the agent does may touch it.
    await run('ip', ['tuntap', 'add', 'dev', tapA, 'mode', 'tap'])
    // Jumbo frames: the agents follow the switch to MTU 9000 (9018 - 18), set after the welcome.
    sw = spawnLogged('switchd', process.execPath, [SWITCHD, '--listen', '127.0.0.1:0', '--max-frame-size', '9018'], (l) => { log.push(l) })
    const line = await waitForLine(sw, 'switchd', (l) => l.includes('"event":"listening"'))
    url = `ws://127.0.0.1:${/"port":(\d+)/.exec(line)?.[1] ?? '0'}/`
  })

  after(async () => {
    for (const a of agents) await stopChild(a.child)
    await stopChild(sw?.child)
    for (const ns of [nsA, nsB]) await run('ip', ['netns', 'del', ns]).catch(() => {})
    for (const dev of [tapA, persistent]) await run('ip', ['link', 'del', dev]).catch(() => {})
  })

  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(log.slice(-40).join('\n') + '\n')
  })

  it('makes the TAP inside the namespace, sets the MTU the switch asks for there, and carries frames', async () => {
    await startAgent('agent-a', ['--tap', tapA, '--netns', nsA, '--address', '192.0.2.1/24', '--name', 'a'])
    await startAgent('agent-b', ['--tap', tapB, '--netns', nsB, '--address', '192.0.2.2/24', '--name', 'b', '--mtu', '1400'])
    await waitForLine(agents[0] as Logged, 'agent-a', (l) => l.includes('"event":"mtu_set"'), 20_000)
    const a = await linkIn(nsA, tapA)
    assert.equal(a?.mtu, 9000, 'the MTU the switch asked for, set inside the namespace')
    assert.ok(a?.flags.includes('UP'), 'up')
    assert.equal((await linkIn(nsB, tapB))?.mtu, 1400, '--mtu, set inside the namespace')
    assert.match(await run('ip', ['-n', nsA, '-4', '-o', 'addr', 'show', 'dev', tapA]), /192\.0\.2\.1\/24/)
    assert.ok(!log.some((l) => l.includes('mtu_not_set')), 'no mtu_not_set')
    await run('ip', ['-n', nsA, 'link', 'set', 'lo', 'up'])
    assert.match(await pingUntilAnswered(nsA, '192.0.2.2', 3), / 3 received/)
  })

  it('attack: a host interface with the TAP\'s name is never touched, and the host gets no TAP', async () => {
    const host = await linkIn(undefined, tapA)
    assert.equal(host?.mtu, 1500, 'the host\'s dummy keeps its MTU')
    assert.ok(!(host?.flags ?? []).includes('UP'), 'the host\'s dummy stays down')
    assert.equal(await linkIn(undefined, tapB), undefined, 'no TAP in the host namespace')
  })

  it('--netns naming no namespace fails at once, naming it and how to create it', () => {
    const [code, err] = agentFails(['--tap', 'x0', '--netns', `${nsA}x`])
    assert.equal(code, 2)
    assert.equal(err.split('\n').length, 1, err)
    assert.match(err, new RegExp(`^tap-agent: --netns ${nsA}x: no network namespace ${nsA}x; create it with \`ip netns add ${nsA}x\` \\(did you mean ${nsA}\\?`))
  })

  it('--attach --tap with a typo fails at once naming the persistent TAPs (did you mean), and makes no TAP', async () => {
    await run('ip', ['tuntap', 'add', 'dev', persistent, 'mode', 'tap'])
    const typo = persistent.slice(0, -1) + 'X'
    const [code, err] = agentFails(['--attach', '--tap', typo])
    assert.equal(code, 1)
    assert.equal(err.split('\n').length, 1, err)
    assert.match(err, new RegExp(`--attach --tap ${typo}: no persistent TAP ${typo} \\(did you mean ${persistent}\\? persistent TAPs: .*${persistent}`))
    assert.match(err, /ip tuntap add dev .* mode tap/)
    assert.equal(await linkIn(undefined, typo), undefined, 'no TAP made of the typo')
  })

  it('--attach --netns takes a persistent TAP inside the namespace, and a typo there is named in that namespace', async () => {
    await run('ip', ['link', 'set', persistent, 'netns', nsB])
    const [code, err] = agentFails(['--attach', '--tap', persistent + 'Z', '--netns', nsB])
    assert.equal(code, 1)
    assert.match(err, new RegExp(`no persistent TAP ${persistent}Z in namespace ${nsB} \\(did you mean ${persistent}\\?`))
    assert.match(err, new RegExp(`ip netns exec ${nsB} ip tuntap add dev ${persistent}Z mode tap`))
    assert.equal(await linkIn(nsB, persistent + 'Z'), undefined, 'no TAP made of the typo')
    const p = await startAgent('agent-p', ['--attach', '--tap', persistent, '--netns', nsB, '--name', 'p'])
    assert.ok(p.lines.some((l) => l.includes('"event":"tap_opened"') && l.includes(`"netns":"${nsB}"`)))
    await stopChild(p.child)
    assert.notEqual(await linkIn(nsB, persistent), undefined, 'the persistent TAP stays when the agent exits')
    await run('ip', ['-n', nsB, 'link', 'del', persistent])
  })
})
