/**
 * Issue 22, item 3: switchctl finds the lab by itself. `tapswitch-lab up`
 * listens on a port of the kernel's choosing; it writes where in its state
 * file, and switchctl with no --url and no SWITCHCTL_URL reads it. When the
 * address it used fails, switchctl says where the address came from.
 */

import { freePort } from '../helpers/net'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { setLogSink } from '../../src/common/log'
import { describeProcess, writeLabState, type LabState } from '../../src/common/lab-state'
import { switchctl } from '../helpers/ctl'


describe('switchctl finds the lab (integration)', () => {
  let server: SwitchServer
  let dir: string
  let restore: (line: string) => void
  let url: string

  /** A lab state as `tapswitch-lab up` writes it, this test process standing for the lab (it is running). */
  const labState = (u: string, running = true): LabState => {
    const lab = describeProcess('tapswitch-lab', process.pid, path.basename(process.argv[1] ?? ''))
    assert.ok(lab !== undefined)
    return { version: 1, command: 'up', lab: running ? lab : { ...lab, start: lab.start + 1 }, url: u, startedAt: new Date().toISOString(), processes: [], namespaces: ['tsw-1-a'] }
  }

  beforeEach(async () => {
    restore = setLogSink(() => {})
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-labtarget-'))
    // As the lab's: loopback, no token (the admin API is open there).
    server = new SwitchServer({ config: buildConfig({}, 'test'), host: '127.0.0.1', port: 0 })
    url = `http://127.0.0.1:${(await server.listen()).port}/`
  })
  afterEach(async () => {
    await server.close()
    setLogSink(restore)
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it('with no --url and no SWITCHCTL_URL, switchctl uses the running lab\'s switchd', async () => {
    writeLabState(dir, labState(url))
    const r = await switchctl(['networks'], { TAPSWITCH_LAB_STATE_DIR: dir })
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout.toString(), /^NETWORK\s+PORTS/)
  })

  it('a lab whose switchd is gone: the failure names the state file it came from', async () => {
    const gone = `http://127.0.0.1:${await freePort()}/`
    writeLabState(dir, labState(gone))
    const r = await switchctl(['ports'], { TAPSWITCH_LAB_STATE_DIR: dir })
    assert.equal(r.code, 1)
    assert.ok(r.stderr.includes(`switchctl: ${gone} is from the lab's state file ${path.join(dir, `${process.pid}.json`)} (tapswitch-lab up, pid ${process.pid})`), r.stderr)
  })

  it('SWITCHCTL_URL still wins over the lab', async () => {
    writeLabState(dir, labState(`http://127.0.0.1:${await freePort()}/`))
    const r = await switchctl(['networks'], { TAPSWITCH_LAB_STATE_DIR: dir, SWITCHCTL_URL: url })
    assert.equal(r.code, 0, r.stderr)
  })
})
