/**
 * Issue 21, findings 1 and 13, with a real QEMU child:
 *  - switchd (root) in a network namespace of its own with only `lo` (so the
 *    gateway's NAT cannot leave the machine), listening on 0.0.0.0, with
 *    192.0.2.1/32 on that `lo` standing for the host's interface address. A
 *    station (raw WebSocket frames, from inside the namespace) dials
 *    switchd's port through the gateway at 255.255.255.255 and at 192.0.2.1:
 *    on 14ad2cc it got switchd's answer; now nothing of switchd reaches it,
 *    and the refusal is counted. DNS forwarding still works under the
 *    child's Landlock rules (slirp reads the namespace's resolv.conf, naming
 *    a resolver at 127.0.0.53 that the test runs). A second network's "QEMU" is a probe run
 *    through the same launcher (as nobody): a world-readable configuration
 *    is closed to it.
 *  - switchd as nobody: its child (same user) cannot read switchd's
 *    configuration, its token file or /proc/<switchd>/environ (the admin
 *    token); switchd is non-dumpable; the real QEMU child's RLIMIT_NOFILE is
 *    what switchd set.
 * The probes are stand-ins for QEMU started by the real gateway code through
 * the real launcher, with the same Landlock rules (only the binary differs);
 * they report on stderr, which switchd logs when they exit (gateway_exited).
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import { run } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { requireTools, requireCheckoutReadableBy, asUser, spawnLogged, waitForLine, uidsOf, NOBODY, type Logged } from '../helpers/proc'
import { waitFor, freePort } from '../helpers/net'
import { childFdLimit } from '../../src/switch/io/gateway-sandbox'
import type { Attempt, StationArgs } from '../helpers/slirp-station'


const ROOT = path.join(__dirname, '..', '..')
const NS = 'tsw-gwself'
const PORT = 8080
const ADMIN = 'e2e-admin-token-not-for-the-child'
/** `ip netns exec` mounts this over /etc/resolv.conf for switchd and its child. */
const NS_RESOLV = `/etc/netns/${NS}/resolv.conf`

/**
 * A stand-in for QEMU: ready, then one line saying which files it could read
 * (and, with `dial`, what switchd's listener at 127.0.0.1:dial answered it:
 * its first bytes), then exit (switchd logs the line).
 */
function writeProbe (file: string, reads: Array<[string, string]>, dial?: number): void {
  const tries = reads.map(([name, p]) => `$(r "${p}" ${name})`).join('')
  const call = dial === undefined ? '' : `exec 5<>/dev/tcp/127.0.0.1/${dial}
printf 'GET /healthz HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&5 2>/dev/null
answer="switchd=[$(timeout 3 cat <&5 2>/dev/null | head -c 12 | tr -d '\\r\\n')];"
`
  fs.writeFileSync(file, `#!/bin/bash
trap '' PIPE
echo '{"QMP": {}}' >&4
r() { if cat "$1" >/dev/null 2>&1; then printf '%s=read;' "$2"; else printf '%s=denied;' "$2"; fi; }
${call}echo "probe: ${tries}\${answer:-}" >&2
exit 0
`, { mode: 0o755 })
}

/** The report of the probe of `network`, from switchd's gateway_exited line. */
function probeReport (lines: string[], network: string): string | undefined {
  for (const l of lines) {
    if (!l.includes('"event":"gateway_exited"') || !l.includes(`"network":"${network}"`)) continue
    const m = /probe: ([^|"]*)/.exec(l)
    if (m !== null) return (m[1] as string).trim()
  }
  return undefined
}

describe('e2e: a station cannot reach switchd through the gateway, whatever address it dials', function () {
  this.timeout(90_000)
  let dir: string | undefined
  let probeDir: string | undefined
  let switchd: Logged | undefined
  const lines: string[] = []

  const inNs = async (code: string): Promise<string> => (await run('ip', ['netns', 'exec', NS, process.execPath, '-e', code], 15_000)).trim()
  const metrics = async (): Promise<string> => await inNs(`fetch('http://127.0.0.1:${PORT}/metrics',{headers:{authorization:'Bearer ${ADMIN}'}}).then((r)=>r.text()).then((t)=>console.log(t))`)
  const counter = (text: string, re: RegExp): number => { const m = re.exec(text); return m === null ? 0 : Number(m[1]) }
  const filteredTotal = (text: string): number => [...text.matchAll(/^switchd_gateway_filtered_frames_total\{network="default",[^}]*\} (\d+)$/gm)].reduce((a, m) => a + Number(m[1]), 0)

  before(async function () {
    requireRoot(this)
    requireTools(this, [{ cmd: 'qemu-system-x86_64', pkg: 'qemu-system-x86' }, { cmd: 'bash', pkg: 'bash' }])
    await run('ip', ['netns', 'del', NS]).catch(() => {})
    await run('ip', ['netns', 'add', NS])
    await run('ip', ['-n', NS, 'link', 'set', 'lo', 'up'])
    await run('ip', ['-n', NS, 'addr', 'add', '192.0.2.1/32', 'dev', 'lo'])
    fs.mkdirSync(path.dirname(NS_RESOLV), { recursive: true })
    fs.writeFileSync(NS_RESOLV, 'nameserver 127.0.0.53\n') // not slirp's fallback (127.0.0.1): an answer proves it read the file
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-gwself-'))
    probeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-gwself-probe-'))
    fs.chmodSync(dir, 0o755)
    fs.chmodSync(probeDir, 0o755)
    const config = path.join(dir, 'switchd.json')
    const probe = path.join(probeDir, 'qemu-probe')
    writeProbe(probe, [['config', config], ['passwd', '/etc/passwd'], ['hosts', '/etc/hosts']])
    // World-readable, as a careless operator leaves it: nobody (the child) may read it by its mode.
    fs.writeFileSync(config, JSON.stringify({
      // The station sets 10.0.2.15 by hand: a static lease binds it for the guards (on with a gateway).
      networks: { default: { gateway: { nat: true, hostPorts: ['tcp:9099'], staticLeases: [{ mac: '02:00:00:00:00:15', ip: '10.0.2.15' }] } }, probe: { gateway: { nat: false, qemu: probe } } }
    }), { mode: 0o644 })
    switchd = spawnLogged('switchd', 'ip', ['netns', 'exec', NS, process.execPath, path.join(ROOT, 'bin', 'switchd.js'), '--listen', `0.0.0.0:${PORT}`, '--allow-anonymous', '--config', config],
      (l) => { lines.push(l) }, { env: { ...process.env, SWITCHD_ADMIN_TOKEN: ADMIN } })
    await waitForLine(switchd, 'switchd', (l) => l.includes('"event":"listening"'), 20_000)
  })

  after(async () => {
    switchd?.child.kill('SIGKILL')
    await waitFor(() => switchd?.child.exitCode !== null || switchd.child.signalCode !== null, 5000).catch(() => {})
    await run('ip', ['netns', 'del', NS]).catch(() => {})
    fs.rmSync(path.dirname(NS_RESOLV), { recursive: true, force: true })
    for (const d of [dir, probeDir]) if (d !== undefined) fs.rmSync(d, { recursive: true, force: true })
  })

  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(lines.slice(-40).join('\n') + '\n')
  })

  it('attack: a SYN to switchd\'s port at 255.255.255.255 and at the host\'s own address gets nothing of switchd; the refusal is counted', async () => {
    const before = await metrics()
    const args: StationArgs = {
      url: `ws://127.0.0.1:${PORT}/`,
      targets: [{ ip: '255.255.255.255', port: PORT }, { ip: '192.0.2.1', port: PORT }],
      // The barrier: a host port the gateway lists, at the gateway's address (the host's own addresses are never let through).
      barrierPort: 9099,
      barrierIp: '10.0.2.2',
      request: 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n',
      ms: 3000,
      dns: { server: '127.0.0.53', query: 'a-dns-query' }
    }
    const out = await run('ip', ['netns', 'exec', NS, process.execPath, '-r', 'tsx/cjs', path.join(ROOT, 'test', 'helpers', 'slirp-station.ts'), JSON.stringify(args)], 60_000)
    const { attempts, dnsReply } = JSON.parse(out) as { attempts: Attempt[], dnsReply: string | undefined }
    const barrier = attempts.pop() as Attempt
    assert.equal(barrier.data.trim(), 'hello-from-the-namespace', 'a listed host port at the gateway\'s address works (NAT on): ' + out)
    for (const a of attempts) assert.doesNotMatch(a.data, /HTTP\//, `nothing of switchd at ${a.target}: ${JSON.stringify(a)}`)
    const after = await metrics()
    const refusedHere = counter(after, /^switchd_connections_rejected_total\{reason="gateway_child",replica="[^"]*"\} (\d+)$/m) - counter(before, /^switchd_connections_rejected_total\{reason="gateway_child",replica="[^"]*"\} (\d+)$/m)
    // A SYN answered came through slirp to switchd's listener, which reset it unread (and counted it);
    // one not answered never left the gateway port (a filter in front of slirp dropped and counted it).
    const answered = attempts.filter((a) => a.synAck)
    assert.ok(answered.every((a) => a.reset || a.fin), 'each connection that slirp made was closed at once')
    assert.equal(refusedHere, answered.length, 'each refused, counted as gateway_child')
    assert.ok(filteredTotal(after) - filteredTotal(before) >= attempts.length - answered.length, 'the others counted by the gateway port\'s filter')
    assert.ok(lines.some((l) => l.includes('"event":"connection_rejected"') && l.includes('"reason":"gateway_child"')) || answered.length === 0)
    assert.equal(dnsReply, 're:a-dns-query', 'DNS forwarded to the resolver the (Landlock-allowed) resolv.conf names')
  })

  it('attack: the gateway child (nobody) cannot read a world-readable configuration of a root switchd', async () => {
    await waitFor(() => probeReport(lines, 'probe') !== undefined, 10_000, 'the probe\'s report')
    assert.equal(probeReport(lines, 'probe'), 'config=denied;passwd=denied;hosts=read;')
  })
})

describe('e2e: switchd as nobody keeps its secrets from its gateway child', function () {
  this.timeout(60_000)
  let dir: string | undefined
  let probeDir: string | undefined
  let switchd: Logged | undefined
  let port = 0
  const lines: string[] = []

  const pidOf = (network: string): number => {
    const line = lines.find((l) => l.includes('"event":"gateway_started"') && l.includes(`"network":"${network}"`)) as string
    return (JSON.parse(line.slice(line.indexOf('{'))) as { pid: number }).pid
  }

  before(async function () {
    requireRoot(this)
    requireTools(this, [{ cmd: 'qemu-system-x86_64', pkg: 'qemu-system-x86' }, { cmd: 'setpriv', pkg: 'util-linux' }, { cmd: 'bash', pkg: 'bash' }])
    requireCheckoutReadableBy(this, ROOT)
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-gw-secrets-'))
    probeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-gw-secrets-probe-'))
    fs.chmodSync(dir, 0o755)
    fs.chmodSync(probeDir, 0o755)
    const config = path.join(dir, 'switchd.json')
    const tokens = path.join(dir, 'tokens.json')
    const probe = path.join(probeDir, 'qemu-probe')
    port = await freePort()
    writeProbe(probe, [['config', config], ['tokens', tokens], ['environ', '/proc/$PPID/environ'], ['hosts', '/etc/hosts']], port)
    // switchd's own files, 0600 and its own: the child runs as the same user.
    fs.writeFileSync(tokens, JSON.stringify([{ id: 'a', token: 'client-token-not-for-the-child' }]), { mode: 0o600 })
    // Its state directory (the gateways' leases) is its own too.
    const stateDir = path.join(dir, 'state')
    fs.mkdirSync(stateDir, { mode: 0o700 })
    fs.chownSync(stateDir, NOBODY, NOBODY)
    fs.writeFileSync(config, JSON.stringify({ tokensFile: tokens, stateDir, networks: { lab: { gateway: { nat: false } }, probe: { gateway: { nat: false, qemu: probe } } } }), { mode: 0o600 })
    fs.chownSync(tokens, NOBODY, NOBODY)
    fs.chownSync(config, NOBODY, NOBODY)
    const [cmd, args] = asUser(process.execPath, [path.join(ROOT, 'bin', 'switchd.js'), '--listen', `127.0.0.1:${port}`, '--config', config])
    switchd = spawnLogged('switchd', cmd, args, (l) => { lines.push(l) }, { env: { PATH: process.env.PATH, SWITCHD_ADMIN_TOKEN: ADMIN } })
    await waitForLine(switchd, 'switchd', (l) => l.includes('"event":"listening"'), 20_000)
  })

  after(async () => {
    switchd?.child.kill('SIGKILL')
    for (const d of [dir, probeDir]) if (d !== undefined) fs.rmSync(d, { recursive: true, force: true })
  })

  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(lines.slice(-30).join('\n') + '\n')
  })

  it('attack: the child cannot read switchd\'s configuration, its token file or /proc/<switchd>/environ, nor talk to its listener', async () => {
    await waitFor(() => probeReport(lines, 'probe') !== undefined, 10_000, 'the probe\'s report')
    assert.equal(uidsOf(pidOf('lab')).real, NOBODY, 'the child runs as switchd\'s own user')
    assert.equal(probeReport(lines, 'probe'), 'config=denied;tokens=denied;environ=denied;hosts=read;switchd=[];', 'reset unread by an unprivileged switchd too')
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })).text()
    assert.match(metrics, /^switchd_connections_rejected_total\{reason="gateway_child",replica="[^"]*"\} [1-9]/m)
  })

  it('switchd is non-dumpable: another process of its user cannot read its environment either', () => {
    const pid = switchd?.child.pid as number
    assert.equal(uidsOf(pid).real, NOBODY)
    assert.equal(fs.statSync(`/proc/${pid}/environ`).uid, 0, 'a non-dumpable process\'s /proc files belong to root')
    const [cmd, args] = asUser('cat', [`/proc/${pid}/environ`])
    assert.throws(() => execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }), /Permission denied/)
    assert.ok(lines.some((l) => l.includes('"event":"nondumpable"')))
  })

  it('the real QEMU child runs with the RLIMIT_NOFILE switchd set for it', () => {
    const want = childFdLimit({ publish: [] })
    assert.match(fs.readFileSync(`/proc/${pidOf('lab')}/limits`, 'utf8'), new RegExp(`^Max open files\\s+${want}\\s+${want}\\s`, 'm'))
  })
})
