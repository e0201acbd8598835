/**
 * The gateway model fuzz (test/helpers/gateway-fuzz) with NAT on, where "no
 * station reaches switchd" means what it says: libslirp really connects to
 * this host for the gateway's address, 255.255.255.255, 0.0.0.0, 127/8 and
 * the host's own addresses. So the whole run (switchd, its QEMU child, the
 * stations, two host services) happens inside a network namespace of its
 * own with only `lo`, where nothing its NAT does can leave the machine:
 *
 *   ip netns exec NS node -r tsx/cjs test/helpers/gateway-fuzz/run.ts '<options>'
 *
 * switchd listens on 0.0.0.0 there (its main and metrics listeners), a QEMU
 * listener on 127.0.0.1; 192.0.2.1 on `lo` stands for the host's interface
 * address; a service on 127.0.0.1 is listed in the gateway's hostPorts and
 * one is not. After every step: no SYN a station sends to switchd's ports,
 * at any address, or to the unlisted service is answered, switchd counts no
 * connection from the child, the unlisted service gets no connection and no
 * byte; and at the end the listed one is reached. The driver prints a JSON
 * report; MODEL_SEED and MODEL_STEPS work as for the integration test.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { run } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { requireTools, spawnLogged, type Logged } from '../helpers/proc'
import type { Report, RunOptions } from '../helpers/gateway-fuzz/run'

const ROOT = path.join(__dirname, '..', '..')
const NS = 'tsw-gwfz'
const HOST_IF = '192.0.2.1'
const LISTED = 7300
const UNLISTED = 7400
const SEED = process.env.MODEL_SEED !== undefined ? Number(process.env.MODEL_SEED) >>> 0 : (Date.now() ^ (process.pid << 12)) >>> 0
const STEPS = Number(process.env.MODEL_STEPS ?? 150)
const HANG_GUARD_MS = Number(process.env.MODEL_MS ?? 600_000)

describe('e2e: the gateway model fuzz with NAT on, switchd in a namespace of its own', function () {
  this.timeout(HANG_GUARD_MS + 120_000)
  const logs: string[] = []
  let dir: string
  let driver: Logged | undefined

  async function cleanup (): Promise<void> {
    await run('ip', ['netns', 'del', NS]).catch(() => '')
    fs.rmSync(`/etc/netns/${NS}`, { recursive: true, force: true })
  }

  before(async function () {
    requireRoot(this)
    requireTools(this, [{ cmd: 'qemu-system-x86_64', pkg: 'qemu-system-x86' }, { cmd: 'setpriv', pkg: 'util-linux' }])
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-gwfz-'))
    fs.chmodSync(dir, 0o755)
    await cleanup()
    await run('ip', ['netns', 'add', NS])
    await run('ip', ['-n', NS, 'link', 'set', 'lo', 'up'])
    await run('ip', ['-n', NS, 'addr', 'add', `${HOST_IF}/32`, 'dev', 'lo'])
    // slirp forwards DNS to the resolver in /etc/resolv.conf: inside `ip netns exec NS`, this file (nothing answers there).
    fs.mkdirSync(`/etc/netns/${NS}`, { recursive: true })
    fs.writeFileSync(`/etc/netns/${NS}/resolv.conf`, 'nameserver 127.0.0.1\n')
  })

  after(async () => {
    driver?.child.kill('SIGKILL')
    await cleanup()
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
  })

  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-40).join('\n') + '\n')
  })

  it('no station reaches switchd, nor a host service the gateway does not list, through a random run of stations, floods, links and drills', async () => {
    const opts: RunOptions = {
      seed: SEED, steps: STEPS, hangGuardMs: HANG_GUARD_MS, nat: 'on', listen: '0.0.0.0', stateDir: path.join(dir, 'state'),
      clientAddresses: ['127.0.0.1', '127.0.0.2', '127.0.0.3'], services: { listed: LISTED, unlisted: UNLISTED, client: HOST_IF }
    }
    const out: string[] = []
    driver = spawnLogged('fuzz', 'ip', ['netns', 'exec', NS, process.execPath, '-r', 'tsx/cjs', path.join(ROOT, 'test', 'helpers', 'gateway-fuzz', 'run.ts'), JSON.stringify(opts)],
      (l) => { logs.push(l) }, { cwd: ROOT })
    driver.child.stdout?.on('data', (d: Buffer) => { out.push(d.toString()) })
    const code = await new Promise<number | null>((resolve) => { driver?.child.once('exit', resolve) })
    const line = out.join('').split('\n').find((l) => l.startsWith('{"ok"'))
    assert.ok(line !== undefined, `the driver printed no report (exit ${String(code)}):\n${logs.slice(-20).join('\n')}`)
    const r = JSON.parse(line) as Report
    const tally = Object.entries(r.tally).map(([k, v]) => `${k} ${v}`).join(', ')
    if (!r.ok) assert.fail(r.failure)
    process.stdout.write(`      gateway model fuzz (nat on) seed ${r.seed}: ${r.steps} steps in ${r.ms} ms; ${r.offers} offers, ${r.acks} acks; ` +
      `listed service ${r.listed.connections} connections; ${tally}\n`)
    assert.equal(r.steps, STEPS)
    assert.deepEqual(r.unlisted, { connections: 0, bytes: 0 }, 'the unlisted host service was reached')
    assert.ok(r.listed.connections > 0, 'the listed host service was never reached')
    for (const what of ['dhcp ack seen', 'flood frames', 'arp spoofed', 'condition set', 'listed host port reached']) {
      assert.ok((r.tally[what] ?? 0) > 0, `the run never did "${what}" (seed ${r.seed}): ${tally}`)
    }
  })
})
