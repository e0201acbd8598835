/**
 * Issue 21, finding 13 (the child's part): a gateway's QEMU child is
 * confined by switchd's launcher (native/sandbox.cc): Landlock lets it read
 * only what QEMU needs, its RLIMIT_NOFILE is what switchd computed, and
 * where Landlock is missing the gateway still starts and says so (log, API,
 * switchctl). A stand-in for QEMU, run by the real gateway code through the
 * real launcher, tries the reads the child must not make and reports.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { childFdLimit, readSandboxHost, loadProcessBinding, type SandboxHost } from '../../src/switch/io/gateway-sandbox'
import { setLogSink } from '../../src/common/log'
import type { NetworkJson } from '../../src/common/api-types'
import { waitFor } from '../helpers/net'
import { requireTools } from '../helpers/proc'
import { switchctl } from '../helpers/ctl'

/** The child's `Max open files` soft and hard limits, from /proc. */
function nofileOf (pid: number): [number, number] {
  const m = /^Max open files\s+(\d+)\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'))
  assert.ok(m !== null)
  return [Number(m[1]), Number(m[2])]
}

describe('gateway sandbox: what the gateway\'s child may read and hold (integration)', function () {
  this.timeout(30_000)
  let server: SwitchServer | undefined
  let barrier: net.Server | undefined
  let dir: string
  const logs: string[] = []
  let restore: (line: string) => void

  before(function () { requireTools(this, [{ cmd: 'qemu-system-x86_64', pkg: 'qemu-system-x86' }, { cmd: 'bash', pkg: 'bash' }]) })

  beforeEach(() => {
    logs.length = 0
    restore = setLogSink((l) => { logs.push(l) })
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-gateway-sandbox-'))
    fs.chmodSync(dir, 0o755)
  })

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-30).join('\n') + '\n')
    await server?.close()
    server = undefined
    barrier?.close()
    barrier = undefined
    fs.rmSync(dir, { recursive: true, force: true })
    setLogSink(restore)
  })

  async function start (gateway: Record<string, unknown>, sandbox?: SandboxHost): Promise<SwitchServer> {
    server = new SwitchServer({ config: buildConfig({ networks: { lab: { gateway: { nat: false, ...gateway } } } }, 'test'), host: '127.0.0.1', port: 0, gatewaySandbox: sandbox })
    await server.listen()
    return server
  }

  it('attack: the child cannot read a world-readable configuration, /etc/passwd or switchd\'s environment; it can read /etc/hosts and /etc/resolv.conf', async () => {
    const secret = path.join(dir, 'switchd.json')
    fs.writeFileSync(secret, '{"adminToken": "not-for-the-child"}\n', { mode: 0o644 })
    let report = ''
    barrier = net.createServer((c) => { c.on('data', (d) => { report += d.toString() }) })
    await new Promise<void>((resolve) => barrier?.listen(0, '127.0.0.1', resolve))
    const probeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-probe-'))
    fs.chmodSync(probeDir, 0o755)
    const probe = path.join(probeDir, 'qemu-probe')
    fs.writeFileSync(probe, `#!/bin/bash
echo '{"QMP": {}}' >&4
r() { if cat "$1" >/dev/null 2>&1; then printf '%s=read;' "$2"; else printf '%s=denied;' "$2"; fi; }
out="$(r ${secret} config)$(r /etc/passwd passwd)$(r /proc/${process.pid}/environ environ)$(r /etc/hosts hosts)$(r /etc/resolv.conf resolv)"
exec 6<>/dev/tcp/127.0.0.1/${(barrier.address() as net.AddressInfo).port}
printf '%s\\n' "$out" >&6
exec sleep 1000
`, { mode: 0o755 })
    try {
      await start({ qemu: probe })
      await waitFor(() => report.includes('\n'), 10_000, 'the probe\'s report')
      assert.equal(report.trim(), 'config=denied;passwd=denied;environ=denied;hosts=read;resolv=read;', 'slirp reads resolv.conf for DNS forwarding')
      assert.ok(!logs.some((l) => l.includes('gateway_sandbox_weak')))
    } finally {
      fs.rmSync(probeDir, { recursive: true, force: true })
    }
  })

  it('a resolver file the child may read only as a file, replaced by a rename, restarts the child, which reads the new one', async () => {
    const resolv = path.join(dir, 'resolv.conf')
    fs.writeFileSync(resolv, 'nameserver 127.0.0.53\n', { mode: 0o644 })
    let report = ''
    barrier = net.createServer((c) => { c.on('data', (d) => { report += d.toString() }) })
    await new Promise<void>((resolve) => barrier?.listen(0, '127.0.0.1', resolve))
    const probeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-probe-'))
    fs.chmodSync(probeDir, 0o755)
    const probe = path.join(probeDir, 'qemu-probe')
    fs.writeFileSync(probe, `#!/bin/bash
echo '{"QMP": {}}' >&4
exec 6<>/dev/tcp/127.0.0.1/${(barrier.address() as net.AddressInfo).port}
printf '%s\\n' "$(cat ${resolv} 2>&1 | head -c 40)" >&6
exec sleep 1000
`, { mode: 0o755 })
    try {
      const s = await start({ qemu: probe }, { ...readSandboxHost(loadProcessBinding()), resolvConf: resolv })
      await waitFor(() => report.split('\n').length > 1, 10_000, 'the first child\'s report')
      assert.equal(report, 'nameserver 127.0.0.53\n')
      // A DHCP client's way: a new file renamed over the old one (a new inode).
      fs.writeFileSync(resolv + '.new', 'nameserver 127.0.0.54\n', { mode: 0o644 })
      fs.renameSync(resolv + '.new', resolv)
      await waitFor(() => report.split('\n').length > 2, 15_000, 'the second child\'s report')
      assert.equal(report, 'nameserver 127.0.0.53\nnameserver 127.0.0.54\n', 'the new child reads the new file')
      assert.equal(s.gatewayChildren[0]?.starts, 2)
      assert.ok(logs.some((l) => l.includes('"event":"gateway_resolver_changed"')))
    } finally {
      fs.rmSync(probeDir, { recursive: true, force: true })
    }
  })

  it('the real QEMU child runs with the fd limit switchd computed, no_new_privs and seccomp; the API says landlock', async () => {
    const s = await start({ publish: [] })
    const pid = s.gatewayChildren[0]?.child?.pid as number
    const want = childFdLimit({ publish: [] })
    assert.deepEqual(nofileOf(pid), [want, want])
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
    assert.match(status, /^NoNewPrivs:\s+1$/m)
    assert.match(status, /^Seccomp:\s+2$/m, 'QEMU\'s own -sandbox on')
    assert.match(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /^[^\0]*qemu-system-x86_64\0/, 'the launcher exec\'d QEMU in the same process')
    const nets = await (await fetch(`http://127.0.0.1:${s.address().port}/api/v1/networks`)).json() as NetworkJson[]
    const gw = nets.find((n) => n.name === 'lab')?.gateway
    assert.deepEqual([gw?.up, gw?.starts, gw?.sandbox, gw?.sandboxWhy, gw?.fdLimit], [true, 1, 'landlock', undefined, want])
  })

  it('without Landlock the gateway still starts, says so once naming the feature, and the API and switchctl show it; a lower hard limit lowers the child\'s', async () => {
    const host: SandboxHost = { landlockAbi: -38, root: process.getuid?.() === 0, nofileHard: 1000, canRaiseNofile: false, pid: process.pid }
    const s = await start({}, host)
    const pid = s.gatewayChildren[0]?.child?.pid as number
    assert.deepEqual(nofileOf(pid), [1000, 1000])
    assert.ok(logs.some((l) => l.includes('"event":"gateway_fd_limit_lowered"') && l.includes('"limit":1000')))
    const weak = (): string[] => logs.filter((l) => l.includes('"event":"gateway_sandbox_weak"'))
    assert.equal(weak().length, 1)
    assert.match(weak()[0] as string, /"feature":"Landlock"/)
    assert.match(weak()[0] as string, /5\.13/)
    // A restart does not say it again.
    process.kill(pid, 'SIGKILL')
    await waitFor(() => s.gatewayChildren[0]?.starts === 2 && s.gatewayChildren[0].up, 5000, 'restarted')
    assert.equal(weak().length, 1)
    const nets = await (await fetch(`http://127.0.0.1:${s.address().port}/api/v1/networks`)).json() as NetworkJson[]
    const g = nets.find((n) => n.name === 'lab')?.gateway
    assert.equal(g?.sandbox, 'weak')
    assert.match(g?.sandboxWhy ?? '', /Landlock/)
    const ctl = await switchctl(['--url', `http://127.0.0.1:${s.address().port}`, 'networks'])
    assert.equal(ctl.code, 0, ctl.stderr)
    assert.match(ctl.stdout.toString(), /^lab\s.*\sup weak\s+\d+\/\d+\s*$/m)
    assert.match(ctl.stdout.toString(), /^warning: the gateway of lab runs without Landlock: /m)
  })
})
