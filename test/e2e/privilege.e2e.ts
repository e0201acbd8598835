/**
 * Least privilege and carrier: tap-agent --user drops to an unprivileged user
 * after opening its TAP and keeps carrying frames; --carrier takes the TAP's
 * link down while the uplink is.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import { Lab, run, type LabHost } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { waitFor } from '../helpers/net'

describe('e2e: an unprivileged agent whose carrier follows the uplink', function () {
  this.timeout(60_000)
  const lab = new Lab({ hosts: [{ agentArgs: ['--user', 'nobody', '--carrier'] }, {}] })
  let a: LabHost, b: LabHost

  before(async function () {
    requireRoot(this)
    await lab.start()
    ;[a, b] = lab.hosts as [LabHost, LabHost]
  })
  after(async () => { await lab.stop() })

  const uid = (pid: number): string => (/^Uid:\s+(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '').trim()
  const flags = async (h: LabHost): Promise<string[]> => {
    const out = JSON.parse(await run('ip', ['-n', h.ns, '-j', 'link', 'show', h.tap])) as Array<{ flags: string[] }>
    return out[0]?.flags ?? []
  }

  it('runs as nobody (real, effective, saved and fs uid) and still carries frames', async () => {
    assert.equal(uid(a.agent?.pid as number), '65534\t65534\t65534\t65534')
    assert.match(await lab.ping(a, b, 3), / 3 received/)
  })

  it('takes the TAP\'s carrier down while switchd is away, and up again when it is back', async () => {
    assert.ok((await flags(a)).includes('LOWER_UP'))
    await lab.stopSwitchd()
    let f: string[] = []
    await waitFor(() => { void flags(a).then((x) => { f = x }); return f.includes('NO-CARRIER') }, 8000, 'NO-CARRIER')
    await lab.startSwitchd()
    await waitFor(() => { void flags(a).then((x) => { f = x }); return f.includes('LOWER_UP') }, 10_000, 'carrier back')
    assert.match(await lab.ping(a, b, 2), / 2 received/)
  })
})
