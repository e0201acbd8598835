/**
 * A real QEMU 7.2 on tapswitch through tap-agent's QEMU endpoint, with no
 * TAP and no privilege: tap-agent listens on a Unix socket, QEMU connects
 * with `-netdev stream,server=off`, and QEMU's user-mode network (slirp)
 * hangs off the same QEMU hub, so the gateway 10.0.2.2 answers ARP and ping.
 * A Lab host (a namespace with a TAP on the same switch) pings it.
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
import { asUser, spawnLogged, waitForLine, assertRunsAsNobody, requireTools, requireCheckoutReadableBy, pingUntilAnswered, NOBODY, type Logged } from '../helpers/proc'

const ROOT = path.join(__dirname, '..', '..')
const GUEST = '10.0.2.15'
const SLIRP_GW = '10.0.2.2'

/** QEMU: no machine, no NIC; a stream netdev to tap-agent and slirp, joined by hub 0. */
function qemuArgs (sock: string): string[] {
  return ['-M', 'none', '-nodefaults', '-display', 'none',
    '-netdev', `stream,id=s0,server=off,addr.type=unix,addr.path=${sock}`,
    '-netdev', 'user,id=u0,net=10.0.2.0/24,restrict=on,ipv6=off',
    '-netdev', 'hubport,id=hp0,hubid=0,netdev=s0',
    '-netdev', 'hubport,id=hp1,hubid=0,netdev=u0']
}

interface PortView { id: number, name: string, counters: { rxFrames: number, txFrames: number } }

describe('e2e: a real QEMU through the QEMU endpoint (unprivileged)', function () {
  this.timeout(60_000)
  const logs: string[] = []
  const log = (l: string): void => { logs.push(l) }
  const lab = new Lab({ hosts: [{ noAddress: true }], onLog: log })
  let host: LabHost
  let dir: string | undefined
  let sock: string
  let agent: Logged | undefined
  let qemu: Logged | undefined
  let qemuStarts = 0

  async function startQemu (): Promise<void> {
    qemuStarts++
    const [cmd, args] = asUser('qemu-system-x86_64', qemuArgs(sock))
    qemu = spawnLogged(`qemu#${qemuStarts}`, cmd, args, log)
    // tap-agent sees the connection: the n-th QEMU is the n-th attachment of the endpoint.
    await waitForLine(agent as Logged, 'tap-agent', (l) => l.includes('"event":"endpoint_attached"') && l.includes(`"attachment":${qemuStarts}`), 15_000)
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
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-qemu-'))
    fs.chmodSync(dir, 0o777) // nobody creates the socket here
    sock = path.join(dir, 'vm.sock')
    const [cmd, args] = asUser(process.execPath, [path.join(ROOT, 'bin', 'tap-agent.js'),
      '--url', lab.url, '--qemu-listen', `unix:${sock}`, '--name', 'vm1', '--reconnect-max', '1'])
    agent = spawnLogged('vm-agent', cmd, args, log)
    await waitForLine(agent, 'tap-agent', (l) => l.includes('"event":"qemu_listening"'))
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

  it('tap-agent and QEMU run as nobody', () => {
    for (const [who, p] of [['tap-agent', agent], ['qemu', qemu]] as const) {
      const pid = p?.child.pid
      assert.ok(pid !== undefined, `${who} started`)
      assertRunsAsNobody(who, pid)
    }
    assert.equal(fs.statSync(sock).uid, NOBODY, 'the socket belongs to nobody')
  })

  it('ping: the lab host reaches QEMU\'s slirp gateway through switchd', async () => {
    assert.match(await pingGateway(3), / 3 received/)
    const port = await vm1()
    assert.ok(port !== undefined, 'switchd lists vm1')
    assert.ok(port.counters.rxFrames > 0, `vm1 received frames from QEMU (${port.counters.rxFrames})`)
    assert.ok(port.counters.txFrames > 0, `vm1 sent frames to QEMU (${port.counters.txFrames})`)
  })

  it('restart: QEMU killed and started again gets the same port; ping works again', async () => {
    const before = await vm1()
    assert.ok(before !== undefined)
    await stopChild(qemu?.child)
    await waitForLine(agent as Logged, 'tap-agent', (l) => l.includes('"event":"endpoint_detached"'), 10_000)
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
})
