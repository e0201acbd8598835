/**
 * Issue 15 acceptance, between namespaces over real TAPs: a trace of a known
 * unicast names the egress port, of an unknown one the flood set, of a frame
 * in a VLAN the port lacks the drop reason; and a frame the switch really
 * dropped (tagged with a VLAN the port lacks) shows in switchctl drops.
 */

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import * as path from 'node:path'
import { promisify } from 'node:util'
import { Lab, type LabHost } from '../../src/lab/lab'
import type { TraceJson, DropsJson } from '../../src/common/api-types'
import { requireRoot } from '../helpers/root'
import { inject } from '../helpers/inject'

/** Poll `check` until it holds (bounded). */
async function waitFor (check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

const ROOT = path.join(__dirname, '..', '..')
const execFileP = promisify(execFile)

describe('e2e: frame trace and drop log', function () {
  this.timeout(60_000)
  const lab = new Lab({ hosts: 3 })
  let a: LabHost, b: LabHost, c: LabHost

  async function ctl (...args: string[]): Promise<string> {
    const { stdout } = await execFileP(process.execPath, [path.join(ROOT, 'bin', 'switchctl.js'), '--url', `http://127.0.0.1:${lab.port}`, ...args], { timeout: 10_000 })
    return stdout
  }

  before(async function () {
    requireRoot(this)
    await lab.start()
    ;[a, b, c] = lab.hosts as [LabHost, LabHost, LabHost]
    await lab.ping(a, b, 2)
  })
  after(async () => { await lab.stop() })

  it('names the egress port of a known unicast', async () => {
    const t = JSON.parse(await ctl('--json', 'trace', '--in', 'host-a', '--frame', `dst=${b.mac},src=${a.mac},type=ipv4`)) as TraceJson
    assert.equal(t.action, 'forward')
    assert.deepEqual(t.egress, [{ port: 'host-b', vlan: 1, tagging: 'untagged' }])
    assert.match(await ctl('trace', '--in', 'host-a', '--frame', `dst=${b.mac},src=${a.mac}`), /^action: forward to host-b \(untagged\)$/m)
  })

  it('names the flood set of an unknown unicast', async () => {
    const t = JSON.parse(await ctl('--json', 'trace', '--in', 'host-a', '--frame', `dst=02:99:00:00:00:01,src=${a.mac}`)) as TraceJson
    assert.equal(t.action, 'flood')
    assert.deepEqual(t.egress.map((e) => e.port).sort(), ['host-b', 'host-c'])
    assert.ok(c !== undefined)
  })

  it('gives the drop reason of a frame in a VLAN the port lacks, and the real drop shows in switchctl drops', async () => {
    const t = JSON.parse(await ctl('--json', 'trace', '--in', 'host-a', '--frame', `dst=${b.mac},src=${a.mac},vlan=10`)) as TraceJson
    assert.equal(t.action, 'drop')
    assert.equal(t.dropReason, 'vlan')
    const before = JSON.parse(await ctl('--json', 'drops')) as DropsJson
    // Tagged frames from inside a's namespace (a raw socket: this kernel may lack 802.1Q), VLAN 10, which host-a's port lacks.
    await inject({ ns: a.ns, iface: a.tap, count: 3, src: a.mac, vlan: 10 })
    await waitFor(async () => {
      const after = JSON.parse(await ctl('--json', 'drops', '--port', 'host-a', '--reason', 'vlan')) as DropsJson
      return after.drops.filter((d) => d.seq > before.last && d.vlan === 10 && d.src === a.mac).length === 3
    })
    assert.match(await ctl('drops', '--port', 'host-a'), new RegExp(`host-a\\s+${a.mac}\\s+ff:ff:ff:ff:ff:ff\\s+10\\s+vlan`))
  })
})
