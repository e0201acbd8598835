/**
 * deploy/: the systemd units pass `systemd-analyze verify` (with our bins in
 * place of /usr/bin/…), and the example configuration is valid. Skipped
 * without systemd-analyze outside CI; CI has it and must run it.
 */

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { promisify } from 'node:util'

const execFileP = promisify(execFile)
const ROOT = path.join(__dirname, '..', '..')
const UNITS = path.join(ROOT, 'deploy', 'systemd')

async function have (cmd: string): Promise<boolean> {
  return await execFileP('sh', ['-c', `command -v ${cmd}`]).then(() => true, () => false)
}

describe('deploy: systemd units', function () {
  let dir: string

  before(async function () {
    if (!(await have('systemd-analyze'))) {
      if (process.env.CI === 'true') throw new Error('systemd-analyze is missing (Debian package systemd)')
      this.skip()
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-units-'))
  })
  after(() => { if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true }) })

  /** Copy a unit with its ExecStart pointed at this checkout's bin, as an installed package would have it. */
  function install (unit: string, as: string): string {
    const text = fs.readFileSync(path.join(UNITS, unit), 'utf8')
      .replace('/usr/bin/switchd', path.join(ROOT, 'bin', 'switchd.js'))
      .replace('/usr/bin/tap-agent', path.join(ROOT, 'bin', 'tap-agent.js'))
    const file = path.join(dir, as)
    fs.writeFileSync(file, text)
    return file
  }

  for (const [unit, as] of [['switchd.service', 'switchd.service'], ['switchd@.service', 'switchd@r1.service'], ['tap-agent@.service', 'tap-agent@lab0.service']] as const) {
    it(`${unit} passes systemd-analyze verify`, async () => {
      const file = install(unit, as)
      const r = await execFileP('systemd-analyze', ['verify', file]).then(
        (x) => ({ code: 0, out: x.stdout + x.stderr }),
        (e: { code?: number, stdout?: string, stderr?: string }) => ({ code: e.code ?? 1, out: (e.stdout ?? '') + (e.stderr ?? '') })
      )
      // Lines about other units of the host are not ours; every complaint about this unit is.
      const ours = r.out.split('\n').filter((l) => l.includes(as))
      assert.deepEqual(ours, [], r.out)
      assert.equal(r.code, 0, r.out)
    })
  }

  it('switchd.service with the --tap drop-in (switchd-tap.conf) passes systemd-analyze verify, and opens /dev/net/tun with CAP_NET_ADMIN alone', async () => {
    // systemd-analyze verify reads a unit file, not its drop-ins: verify the unit with the drop-in's lines appended,
    // which is what systemd makes of the two (a later [Service] section adds to the first).
    const dropIn = fs.readFileSync(path.join(UNITS, 'switchd-tap.conf'), 'utf8')
    const file = install('switchd.service', 'switchd.service')
    fs.appendFileSync(file, '\n' + dropIn)
    const r = await execFileP('systemd-analyze', ['verify', file]).then(
      (x) => ({ code: 0, out: x.stdout + x.stderr }),
      (e: { code?: number, stdout?: string, stderr?: string }) => ({ code: e.code ?? 1, out: (e.stdout ?? '') + (e.stderr ?? '') })
    )
    assert.deepEqual(r.out.split('\n').filter((l) => l.includes('switchd.service')), [], r.out)
    assert.equal(r.code, 0, r.out)
    // What --tap needs, and nothing more: the device (PrivateDevices=yes hides it), and one capability.
    const lines = dropIn.split('\n').filter((l) => !l.startsWith('#') && l.trim() !== '')
    assert.deepEqual(lines, ['[Service]', 'PrivateDevices=no', 'DevicePolicy=closed', 'DeviceAllow=/dev/net/tun rw', 'CapabilityBoundingSet=CAP_NET_ADMIN', 'AmbientCapabilities=CAP_NET_ADMIN'])
    assert.match(fs.readFileSync(path.join(ROOT, 'docs', 'LOCAL-TAPS.md'), 'utf8'), /deploy\/systemd\/switchd-tap\.conf \/etc\/systemd\/system\/switchd\.service\.d\/tap\.conf/)
  })

  it('runs the agent with only CAP_NET_ADMIN and switchd with none', () => {
    const agent = fs.readFileSync(path.join(UNITS, 'tap-agent@.service'), 'utf8')
    assert.match(agent, /^AmbientCapabilities=CAP_NET_ADMIN$/m)
    assert.match(agent, /^CapabilityBoundingSet=CAP_NET_ADMIN$/m)
    assert.match(agent, /^NoNewPrivileges=yes$/m)
    const sw = fs.readFileSync(path.join(UNITS, 'switchd.service'), 'utf8')
    assert.match(sw, /^CapabilityBoundingSet=$/m)
    assert.match(sw, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m)
    assert.match(sw, /^ExecStart=\/usr\/bin\/switchd --config \/etc\/tapswitch\/switchd\.json$/m)
  })
})
