/**
 * A real QEMU 7.2 on tapswitch through `-netdev dgram` over Unix datagram
 * sockets, with no TAP and no privilege: tap-agent binds agent.sock (through
 * the native UnixDgram: Node's dgram has no AF_UNIX), QEMU binds qemu.sock,
 * and each sends to the other's path. QEMU's user-mode network (slirp) hangs
 * off the same QEMU hub, so the gateway 10.0.2.2 answers ARP and ping; a Lab
 * host (a namespace with a TAP on the same switch) pings it.
 *
 * Both tap-agent and QEMU run as nobody (uid 65534) through setpriv. The
 * address 10.0.2.15/24 exists only inside the lab host's namespace, and
 * slirp runs with restrict=on, so nothing leaves QEMU for the host's network.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { Lab, run, stopChild, type LabHost } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { waitFor } from '../helpers/net'
import { asUser, spawnLogged, waitForLine, assertRunsAsNobody, requireTools, requireCheckoutReadableBy, pingUntilAnswered, NOBODY, type Logged } from '../helpers/proc'

const ROOT = path.join(__dirname, '..', '..')
const GUEST = '10.0.2.15'
const SLIRP_GW = '10.0.2.2'

/** QEMU: no machine, no NIC; a Unix dgram netdev to tap-agent and slirp, joined by hub 0. */
function qemuArgs (qemuSock: string, agentSock: string): string[] {
  return ['-M', 'none', '-nodefaults', '-display', 'none',
    '-netdev', `dgram,id=d0,local.type=unix,local.path=${qemuSock},remote.type=unix,remote.path=${agentSock}`,
    '-netdev', 'user,id=u0,net=10.0.2.0/24,restrict=on,ipv6=off',
    '-netdev', 'hubport,id=hp0,hubid=0,netdev=d0',
    '-netdev', 'hubport,id=hp1,hubid=0,netdev=u0']
}

interface PortView { id: number, name: string, counters: { rxFrames: number, txFrames: number } }

describe('e2e: a real QEMU through -netdev dgram over Unix sockets (unprivileged)', function () {
  this.timeout(60_000)
  const logs: string[] = []
  const log = (l: string): void => { logs.push(l) }
  const lab = new Lab({ hosts: [{ noAddress: true }], onLog: log })
  let host: LabHost
  let dir: string | undefined
  let qemuSock: string
  let agentSock: string
  let agent: Logged | undefined
  let qemu: Logged | undefined
  let qemuStarts = 0

  /** Whether a live socket is bound at `p` (/proc/net/unix lists bound sockets, not files left behind). */
  const bound = (p: string): boolean => fs.readFileSync('/proc/net/unix', 'utf8').split('\n').some((l) => l.endsWith(` ${p}`))

  /** Start QEMU; it is up once it has bound qemu.sock (unlinking the file a killed QEMU left). */
  async function startQemu (): Promise<void> {
    qemuStarts++
    const [cmd, args] = asUser('qemu-system-x86_64', qemuArgs(qemuSock, agentSock))
    const q = spawnLogged(`qemu#${qemuStarts}`, cmd, args, log)
    qemu = q
    await waitFor(() => q.child.exitCode !== null || bound(qemuSock), 15_000, 'QEMU to bind qemu.sock')
    assert.equal(q.child.exitCode, null, `QEMU exited:\n${q.lines.slice(-10).join('\n')}`)
  }

  /** Ping the slirp gateway from the lab host until one answer (ARP and the hub warm up), then `count` more that must all come back. */
  const pingGateway = async (count = 3): Promise<string> => await pingUntilAnswered(host.ns, SLIRP_GW, count)

  const vm1 = async (): Promise<PortView | undefined> => (await lab.api<PortView[]>('/api/v1/ports')).find((p) => p.name === 'vm1')

  before(async function () {
    requireRoot(this)
    requireTools(this, [{ cmd: 'qemu-system-x86_64', pkg: 'qemu-system-x86' }, { cmd: 'setpriv', pkg: 'util-linux' }])
    requireCheckoutReadableBy(this, ROOT)
    await lab.start()
    host = lab.hosts[0] as LabHost
    await run('ip', ['-n', host.ns, 'addr', 'add', `${GUEST}/24`, 'dev', host.tap])
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-qemu-dgram-'))
    fs.chmodSync(dir, 0o777) // nobody creates both sockets here
    qemuSock = path.join(dir, 'qemu.sock')
    agentSock = path.join(dir, 'agent.sock')
    const [cmd, args] = asUser(process.execPath, [path.join(ROOT, 'bin', 'tap-agent.js'),
      '--url', lab.url, '--qemu-dgram', `local=unix:${agentSock},remote=unix:${qemuSock}`, '--name', 'vm1', '--reconnect-max', '1'])
    agent = spawnLogged('vm-agent', cmd, args, log)
    await waitForLine(agent, 'tap-agent', (l) => l.includes('"event":"qemu_dgram"'))
    await waitForLine(agent, 'tap-agent', (l) => l.includes('"event":"uplink_connected"'))
    await startQemu()
  })

  after(async () => {
    await stopChild(qemu?.child)
    await stopChild(agent?.child)
    await lab.stop()
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
  })

  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-60).join('\n') + '\n')
  })

  it('tap-agent and QEMU run as nobody, each bound to its own socket', () => {
    for (const [who, p] of [['tap-agent', agent], ['qemu', qemu]] as const) {
      const pid = p?.child.pid
      assert.ok(pid !== undefined, `${who} started`)
      assertRunsAsNobody(who, pid)
    }
    for (const p of [agentSock, qemuSock]) {
      const st = fs.statSync(p)
      assert.ok(st.isSocket(), `${p} is a socket`)
      assert.equal(st.uid, NOBODY, `${p} belongs to nobody`)
    }
  })

  it('ping: the lab host reaches QEMU\'s slirp gateway through switchd', async () => {
    assert.match(await pingGateway(3), / 3 received/)
    const port = await vm1()
    assert.ok(port !== undefined, 'switchd lists vm1')
    assert.ok(port.counters.rxFrames > 0, `vm1 received frames from QEMU (${port.counters.rxFrames})`)
    assert.ok(port.counters.txFrames > 0, `vm1 sent frames to QEMU (${port.counters.txFrames})`)
  })

  it('restart: QEMU killed and started again (re-binding its path) is reached again on the same port', async () => {
    const before = await vm1()
    assert.ok(before !== undefined)
    await stopChild(qemu?.child)
    assert.equal(bound(qemuSock), false, 'QEMU is gone (its socket file may stay: our sends to it are counted drops)')
    await assert.rejects(run('ip', ['netns', 'exec', host.ns, 'ping', '-4', '-c', '1', '-W', '1', '-n', '-q', SLIRP_GW], 5000), 'no QEMU, no answer')
    assert.equal((await vm1())?.id, before.id, 'the port stays while QEMU is away')

    await startQemu()
    assert.match(await pingGateway(3), / 3 received/)
    const after = await vm1()
    assert.equal(after?.id, before.id, 'same port id: tap-agent did not restart or reconnect')
    assert.ok((after?.counters.rxFrames ?? 0) > before.counters.rxFrames, 'new frames from the new QEMU')
    assert.equal(agent?.child.exitCode, null, 'tap-agent kept running')
    assert.equal(agent?.lines.filter((l) => l.includes('"event":"uplink_connected"')).length, 1, 'one uplink connection throughout')
  })

  it('stopping tap-agent removes its socket file', async () => {
    await stopChild(agent?.child)
    assert.equal(agent?.child.exitCode, 0, 'clean exit on SIGTERM')
    assert.equal(fs.existsSync(agentSock), false)
    assert.equal(bound(agentSock), false)
  })
})
