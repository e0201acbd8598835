/**
 * An operator's SIGHUP (`systemctl reload switchd`, a certificate renewal
 * hook) that comes while switchd still starts must not kill it: the
 * signal's default action did, before main() installed its handler after
 * listen(), and a gateway's start waits seconds for QEMU. The reload is
 * applied once switchd listens. The gateway here is a stand-in for QEMU that
 * greets (QMP) only when the test says so, so the SIGHUP always lands during
 * the start; asserted on switchd's exit and its log lines.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { spawnLogged, waitForLine, exitWithin, requireTools } from '../helpers/proc'
import { launcherPath } from '../../src/switch/io/gateway-sandbox'

const ROOT = path.join(__dirname, '..', '..')

describe('switchd: SIGHUP while it starts (integration)', function () {
  this.timeout(60_000)
  let dir: string

  before(function () {
    requireTools(this, [{ cmd: 'setpriv', pkg: 'util-linux' }])
    assert.notEqual(launcherPath(), undefined, 'the gateway\'s launcher is built (npm ci)')
  })
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-sighup-'))
    // The gateway's child runs as nobody: it must reach its binary and the go file.
    fs.chmodSync(dir, 0o755)
  })
  afterEach(() => { fs.rmSync(dir, { recursive: true, force: true }) })

  it('attack: a SIGHUP during start does not kill switchd; the reload is applied once it listens', async () => {
    const go = path.join(dir, 'go')
    const qemu = path.join(dir, 'fake-qemu')
    // Greets as QEMU's QMP does once the go file exists (at most 60 s), then idles until stopped.
    fs.writeFileSync(qemu, `#!/bin/sh\ni=0\nwhile [ ! -e ${go} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n` +
      'printf \'{"QMP": {"version": {}}}\\r\\n\' >&4\nexec sleep 600\n', { mode: 0o755 })
    const config = path.join(dir, 'switchd.json')
    fs.writeFileSync(config, JSON.stringify({ stateDir: path.join(dir, 'state'), networks: { lab: { gateway: { qemu } } } }))
    const p = spawnLogged('switchd', process.execPath, [path.join(ROOT, 'bin', 'switchd.js'), '--listen', '127.0.0.1:0', '--config', config, '--log-format', 'json'], () => {})
    try {
      // The gateway's leases are loaded just before its child starts: from here start waits for the greeting.
      await waitForLine(p, 'switchd', (l) => l.includes('"leases_loaded"'), 30_000)
      p.child.kill('SIGHUP')
      await waitForLine(p, 'switchd', (l) => l.includes('"reload_deferred"'), 30_000)
      fs.writeFileSync(go, '')
      const listening = await waitForLine(p, 'switchd', (l) => l.includes('"listening"'), 30_000)
      const reloaded = await waitForLine(p, 'switchd', (l) => l.includes('"config_reloaded"'), 30_000)
      assert.ok(p.lines.indexOf(reloaded) > p.lines.indexOf(listening), 'the reload applied after the start')
      // An answer from its event loop: it serves (and main() has gone on to install its SIGTERM handler).
      const port = (JSON.parse(listening.slice(listening.indexOf('{'))) as { port: number }).port
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(10_000) })
      await ready.arrayBuffer()
      assert.equal(ready.status, 200)
      assert.equal(p.child.exitCode, null, 'switchd still runs')
      p.child.kill('SIGTERM')
      assert.equal(await exitWithin(p.child, 30_000), true, 'switchd exited')
      assert.equal(p.child.exitCode, 0, `${String(p.child.signalCode)}\n${p.lines.join('\n')}`)
    } finally {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL')
    }
  })
})
