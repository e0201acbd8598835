/**
 * A real VDE switch cabled into tapswitch: `dpipe vde_plug SWITCH = tap-agent
 * --vde-stdio`. The VDE switch has a TAP of its own, moved into a namespace
 * of ours with 192.0.2.2/24; a Lab host (192.0.2.1/24, a TAP on switchd)
 * pings it across both switches.
 *
 * vde_switch runs as root: it creates its TAP (-t), which needs
 * CAP_NET_ADMIN, and here /dev/net/tun is not even openable by others, so
 * not even a persistent TAP owned by nobody would do. Its control socket and
 * directory are opened to others (-m 777 --dirmode 777) so the cable, dpipe
 * with vde_plug and tap-agent, runs as nobody (uid 65534).
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { Lab, run, stopChild, type LabHost } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { sleep, waitFor } from '../helpers/net'
import { asUser, spawnLogged, waitForLine, exitWithin, assertRunsAsNobody, requireTools, requireCheckoutReadableBy, type Logged } from '../helpers/proc'

const ROOT = path.join(__dirname, '..', '..')
const VDE_IP = '192.0.2.2'

interface PortView { id: number, name: string, counters: { rxFrames: number, txFrames: number } }

/** PIDs of the direct children of `pid` (dpipe's two commands). */
function childrenOf (pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter((s) => s !== '').map(Number)
  } catch {
    return []
  }
}

/** Whether `pid` still runs the command we started (not a reused PID). */
function stillOurs (pid: number, needle: string): boolean {
  try { return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle) } catch { return false }
}

describe('e2e: a real VDE switch cabled in with dpipe vde_plug = tap-agent --vde-stdio', function () {
  this.timeout(60_000)
  const logs: string[] = []
  const log = (l: string): void => { logs.push(l) }
  const lab = new Lab({ hosts: 1, onLog: log })
  const tag = String(process.pid % 100000)
  const ns = `tsw-${tag}-vde`
  const tap = `tswvde${tag}`
  let host: LabHost
  let dir: string | undefined
  let nsCreated = false
  let vdeSwitch: Logged | undefined
  let cable: Logged | undefined
  /** dpipe's children: [vde_plug, tap-agent], with what identifies each. */
  let cableKids: Array<{ pid: number, needle: string }> = []

  const vde1 = async (): Promise<PortView | undefined> => (await lab.api<PortView[]>('/api/v1/ports')).find((p) => p.name === 'vde1')

  async function pingUntil (args: string[], what: string): Promise<void> {
    const deadline = Date.now() + 15_000
    for (;;) {
      try { await run('ip', [...args, '-c', '1', '-W', '1'], 5000); return } catch (err) {
        if (Date.now() > deadline) throw new Error(`${what}: no answer within 15 s: ${(err as Error).message}`)
        await sleep(200)
      }
    }
  }

  before(async function () {
    requireRoot(this)
    requireTools(this, [{ cmd: 'vde_switch', pkg: 'vde2' }, { cmd: 'vde_plug', pkg: 'vde2' }, { cmd: 'dpipe', pkg: 'vde2' }, { cmd: 'setpriv', pkg: 'util-linux' }])
    requireCheckoutReadableBy(this, ROOT)
    await lab.start()
    host = lab.hosts[0] as LabHost
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-vde-'))
    fs.chmodSync(dir, 0o777)
    const sw = path.join(dir, 'sw')

    // The VDE switch in the foreground; its console is on stdin, and EOF there stops it, so we hold the pipe.
    vdeSwitch = spawnLogged('vde_switch', 'vde_switch', ['-s', sw, '-t', tap, '-m', '777', '--dirmode', '777'], log, { stdio: ['pipe', 'pipe', 'pipe'] })
    const swChild = vdeSwitch.child
    await waitFor(() => fs.existsSync(path.join(sw, 'ctl')) || swChild.exitCode !== null, 10_000, 'vde_switch control socket')
    assert.equal(swChild.exitCode, null, `vde_switch exited:\n${vdeSwitch.lines.join('\n')}`)

    // Its TAP goes into a namespace of ours, addressed there only.
    await run('ip', ['netns', 'add', ns])
    nsCreated = true
    await run('ip', ['link', 'set', tap, 'netns', ns])
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
    await run('ip', ['-n', ns, 'addr', 'add', `${VDE_IP}/24`, 'dev', tap])
    await run('ip', ['-n', ns, 'link', 'set', tap, 'up'])

    // The cable, unprivileged: vde_plug's stdout feeds tap-agent's stdin and back.
    const [cmd, args] = asUser('dpipe', ['vde_plug', sw, '=', process.execPath, path.join(ROOT, 'bin', 'tap-agent.js'),
      '--url', lab.url, '--vde-stdio', '--name', 'vde1', '--reconnect-max', '1'])
    cable = spawnLogged('cable', cmd, args, log)
    await waitForLine(cable, 'dpipe', (l) => l.includes('"event":"uplink_connected"'), 10_000)
    const pid = cable.child.pid as number
    await waitFor(() => childrenOf(pid).length === 2, 5000, 'dpipe\'s two commands')
    cableKids = childrenOf(pid).map((p) => ({ pid: p, needle: stillOurs(p, 'vde_plug') ? 'vde_plug' : 'tap-agent' }))
  })

  after(async () => {
    // Unplugging the switch ends the cable by itself (vde_plug, then tap-agent, then dpipe exit); what is left gets SIGTERM by PID.
    if (vdeSwitch !== undefined && vdeSwitch.child.exitCode === null && vdeSwitch.child.signalCode === null) {
      vdeSwitch.child.stdin?.end()
      await exitWithin(vdeSwitch.child, 3000)
      await stopChild(vdeSwitch.child)
    }
    if (cable !== undefined) {
      await exitWithin(cable.child, 3000)
      for (const k of cableKids) if (stillOurs(k.pid, k.needle)) process.kill(k.pid, 'SIGTERM')
      await stopChild(cable.child)
    }
    await lab.stop()
    if (nsCreated) await run('ip', ['netns', 'del', ns]).catch(() => {})
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
  })

  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-60).join('\n') + '\n')
  })

  it('the cable (dpipe, vde_plug, tap-agent) runs as nobody', () => {
    const pid = cable?.child.pid as number
    assert.deepEqual(cableKids.map((k) => k.needle).sort(), ['tap-agent', 'vde_plug'])
    for (const [who, p] of [['dpipe', pid], ...cableKids.map((k) => [k.needle, k.pid] as const)] as const) {
      assertRunsAsNobody(who, p)
    }
  })

  it('ping: the lab host and the VDE side reach each other through both switches', async () => {
    await pingUntil(['netns', 'exec', host.ns, 'ping', '-4', '-n', '-q', VDE_IP], 'lab host -> VDE side')
    assert.match(await run('ip', ['netns', 'exec', host.ns, 'ping', '-4', '-c', '3', '-i', '0.2', '-W', '2', '-n', '-q', VDE_IP], 15_000), / 3 received/)
    assert.match(await run('ip', ['netns', 'exec', ns, 'ping', '-4', '-c', '3', '-i', '0.2', '-W', '2', '-n', '-q', host.ipv4], 15_000), / 3 received/)
    const port = await vde1()
    assert.ok(port !== undefined, 'switchd lists vde1')
    assert.ok(port.counters.rxFrames >= 6, `vde1 received the VDE side's frames (${port.counters.rxFrames})`)
    assert.ok(port.counters.txFrames >= 6, `vde1 sent frames into VDE (${port.counters.txFrames})`)
  })

  it('unplug: when vde_switch stops, the cable ends and the port leaves switchd', async () => {
    const sw = vdeSwitch as Logged
    const c = cable as Logged
    sw.child.stdin?.end() // vde_switch: "EOF on stdin, cleaning up and exiting"
    await waitFor(() => sw.child.exitCode !== null || sw.child.signalCode !== null, 10_000, 'vde_switch exit')
    await waitFor(() => c.child.exitCode !== null || c.child.signalCode !== null, 10_000, 'the cable (dpipe) exit')
    assert.ok(c.lines.some((l) => l.includes('"event":"vde_cable_unplugged"')), 'tap-agent saw stdin end')
    assert.ok(c.lines.some((l) => l.includes('"event":"shutdown"')), 'tap-agent shut down cleanly')
    for (const k of cableKids) assert.ok(!stillOurs(k.pid, k.needle), `${k.needle} exited`)
    const deadline = Date.now() + 5000
    while ((await vde1()) !== undefined && Date.now() < deadline) await sleep(100)
    assert.equal(await vde1(), undefined, 'vde1 is gone from switchd')
    await assert.rejects(run('ip', ['-n', ns, 'link', 'show', tap]), 'the VDE switch took its TAP with it')
  })
})
