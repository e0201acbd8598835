/**
 * Issue 16, acceptance: a network's gateway (libslirp in switchd's QEMU
 * child, running as nobody; DHCP from switchd itself since issue 21) gives
 * namespaces that run only busybox udhcpc an address, a default route and a
 * DNS server; NATs them to a service on the host's loopback that its
 * hostPorts lists (and refuses it on a network whose gateway has nat false);
 * publishes a namespace's server on 127.0.0.1; survives its child being
 * killed; keeps its leases across a switchd restart (issue 21); dies with
 * switchd.
 *
 * Root is used for the namespaces and the TAPs only. Nothing leaves loopback
 * or the test's namespaces: the only host services reached are the test's
 * own on 127.0.0.1, and no DNS query is ever sent.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import { Lab, run, type LabHost } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { requireTools, assertRunsAsNobody, requireCheckoutReadableBy, asUser, spawnLogged, waitForLine, NOBODY, type Logged } from '../helpers/proc'
import { waitFor, poll, freePort } from '../helpers/net'
import { TestClient } from '../helpers/client'
import { buildDhcpRequest, ipv4At, dhcpAt, dhcpType, dhcpClientMac, DHCPDISCOVER, DHCPOFFER, DHCP_SERVER_PORT, DHCP_CLIENT_PORT } from '../../src/common/dhcp'

const ROOT = path.join(__dirname, '..', '..')

/** Lettered from u on (hostOffset 20): namespaces and TAPs no other e2e file's lab uses. */
const OFFSET = 20
const SERVER_PORT_IN_NS = 8022

interface PortView { id: number, name: string, kind: string }


describe('e2e: gateway (DHCP, DNS, NAT, published ports) without privilege', function () {
  this.timeout(60_000)
  const logs: string[] = []
  let dir: string
  let hostService: net.Server
  let hostPort = 0
  let publishPort = 0
  let lab: Lab
  let u: LabHost, v: LabHost, w: LabHost, x: LabHost
  let nsServer: ReturnType<typeof import('node:child_process').spawn> | undefined

  /** udhcpc in `h`'s namespace, once: lease, address, route, DNS applied by our script. */
  async function dhcp (h: LabHost): Promise<void> {
    await run('ip', ['netns', 'exec', h.ns, 'busybox', 'udhcpc', '-i', h.tap, '-f', '-q', '-n', '-t', '10', '-T', '1', '-s', path.join(dir, 'udhcpc.script')], 20_000)
  }

  /** Connect from `h`'s namespace to `host:port` and read what the server says; "ERR <code>" if it fails. */
  async function connectFrom (h: LabHost, host: string, port: number, timeoutMs = 4000): Promise<string> {
    const code = `const s=require('net').connect(${port},'${host}');let d='';s.setTimeout(${timeoutMs},()=>{console.log('ERR TIMEOUT');process.exit(0)});` +
      's.on(\'data\',(b)=>{d+=b});s.on(\'end\',()=>{console.log(d.trim());process.exit(0)});s.on(\'error\',(e)=>{console.log(\'ERR \'+e.code);process.exit(0)})'
    return (await run('ip', ['netns', 'exec', h.ns, process.execPath, '-e', code], 10_000)).trim()
  }

  const gatewayPid = (n: number): number => {
    const started = logs.filter((l) => l.includes('"event":"gateway_started"') && l.includes('"network":"default"'))
    const line = started[n - 1]
    assert.ok(line !== undefined, `gateway_started #${n} logged`)
    return (JSON.parse(line.slice(line.indexOf('{'))) as { pid: number }).pid
  }

  const addressOf = async (h: LabHost): Promise<string> => await run('ip', ['-n', h.ns, '-4', '-o', 'addr', 'show', 'dev', h.tap])

  before(async function () {
    requireRoot(this)
    requireTools(this, [{ cmd: 'qemu-system-x86_64', pkg: 'qemu-system-x86' }, { cmd: 'busybox', pkg: 'busybox' }, { cmd: 'setpriv', pkg: 'util-linux' }])
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-gateway-e2e-'))
    // Applies the lease inside the namespace; DNS goes to a file of ours, never to /etc/resolv.conf.
    fs.writeFileSync(path.join(dir, 'udhcpc.script'), `#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/\${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "\${router%% *}" dev "$interface"
    echo "$dns" > "${dir}/$interface.dns"
    ;;
esac
exit 0
`, { mode: 0o755 })
    hostService = net.createServer((s) => { s.on('error', () => {}); s.end('hello-from-host\n') })
    await new Promise<void>((resolve) => hostService.listen(0, '127.0.0.1', resolve))
    hostPort = (hostService.address() as net.AddressInfo).port
    publishPort = await freePort()
    lab = new Lab({
      hostOffset: OFFSET,
      // The leases go to this test's directory, never to switchd's real state directory.
      switchdArgs: ['--state-dir', path.join(dir, 'state')],
      hosts: [{ noAddress: true }, { noAddress: true }, { noAddress: true }, { noAddress: true, path: '/net/locked' }],
      onLog: (l) => { logs.push(l) },
      config: {
        networks: {
          default: {
            gateway: {
              // Since issue 21 a station reaches only the host ports listed here.
              hostPorts: [`tcp:${hostPort}`],
              staticLeases: [{ mac: '02:00:5e:00:00:17', ip: '10.0.2.60' }], // host w (the lab's MACs: 02:00:5e:00:00:<index+1>)
              publish: [{ proto: 'tcp', host: `127.0.0.1:${publishPort}`, guest: `10.0.2.15:${SERVER_PORT_IN_NS}` }]
            }
          },
          locked: { gateway: { subnet: '10.0.3.0/24', nat: false } }
        }
      }
    })
    await lab.start()
    ;[u, v, w, x] = lab.hosts as [LabHost, LabHost, LabHost, LabHost]
  })

  after(async () => {
    nsServer?.kill('SIGKILL')
    await lab?.stop()
    hostService?.close()
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
  })

  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-60).join('\n') + '\n')
  })

  it('the gateway is a port of kind gateway, and its QEMU runs as nobody', async () => {
    const ports = await lab.api<PortView[]>('/api/v1/ports')
    assert.deepEqual(ports.filter((p) => p.kind === 'gateway').map((p) => p.name), ['gateway', 'gateway'], 'one per network')
    assertRunsAsNobody('gateway QEMU', gatewayPid(1))
  })

  it('udhcpc in a namespace gets an address, a default route and a DNS server', async () => {
    await dhcp(u)
    assert.match(await addressOf(u), /inet 10\.0\.2\.15\/24/)
    assert.match(await run('ip', ['-n', u.ns, 'route', 'show', 'default']), /default via 10\.0\.2\.2 /)
    assert.equal(fs.readFileSync(path.join(dir, `${u.tap}.dns`), 'utf8').trim(), '10.0.2.3')
    await waitFor(() => logs.some((l) => l.includes('"event":"lease"') && l.includes('"ip":"10.0.2.15"')), 3000, 'the lease logged')
  })

  it('two namespaces get two different leases, and a static lease is honoured', async () => {
    await dhcp(v)
    await dhcp(w)
    assert.match(await addressOf(v), /inet 10\.0\.2\.16\/24/)
    assert.match(await addressOf(w), /inet 10\.0\.2\.60\/24/, 'the static address of its MAC')
    assert.match(await run('ip', ['-n', w.ns, 'route', 'show', 'default']), /default via 10\.0\.2\.2 /)
    // The static station is a station like the others: slirp learns it by ARP.
    assert.equal(await connectFrom(w, '10.0.2.2', hostPort), 'hello-from-host')
  })

  it('NAT: a TCP connection from a namespace reaches a service on the host\'s loopback through the gateway address', async () => {
    assert.equal(await connectFrom(u, '10.0.2.2', hostPort), 'hello-from-host')
  })

  it('restricted (nat false): the same service is not reached (dropped before slirp, counted host), while DHCP still works', async () => {
    await dhcp(x)
    assert.match(await addressOf(x), /inet 10\.0\.3\.15\/24/)
    assert.equal(await connectFrom(x, '10.0.3.2', hostPort, 1500), 'ERR TIMEOUT', 'no answer: the SYN never reached slirp')
    const metrics = await (await fetch(`http://127.0.0.1:${lab.port}/metrics`)).text()
    assert.match(metrics, /switchd_gateway_filtered_frames_total\{network="locked",reason="host",replica="[^"]*"\} [1-9]/)
  })

  it('attack: switchd\'s own port is not reachable through the gateway (dropped and counted)', async () => {
    assert.equal(await connectFrom(u, '10.0.2.2', lab.port, 1500), 'ERR TIMEOUT', 'no answer at all: the SYN never reached slirp')
    const metrics = await (await fetch(`http://127.0.0.1:${lab.port}/metrics`)).text()
    assert.match(metrics, /switchd_gateway_filtered_frames_total\{network="default",reason="switchd",replica="[^"]*"\} [1-9]/)
  })

  it('a published port: a client on the host\'s loopback reaches a server in the namespace', async () => {
    const { spawn } = await import('node:child_process')
    nsServer = spawn('ip', ['netns', 'exec', u.ns, process.execPath, '-e',
      `require('net').createServer((s)=>{s.end('hello-from-namespace\\n')}).listen(${SERVER_PORT_IN_NS},()=>{console.log('ready')})`], { stdio: ['ignore', 'pipe', 'inherit'] })
    await new Promise<void>((resolve, reject) => {
      nsServer?.stdout?.once('data', () => { resolve() })
      nsServer?.once('exit', (c) => { reject(new Error(`namespace server exited ${String(c)}`)) })
    })
    const got = await new Promise<string>((resolve, reject) => {
      const s = net.connect(publishPort, '127.0.0.1')
      let d = ''
      s.setTimeout(5000, () => { s.destroy(); reject(new Error('timeout')) })
      s.on('data', (b) => { d += b.toString() })
      s.on('end', () => { resolve(d.trim()) })
      s.on('error', reject)
    })
    assert.equal(got, 'hello-from-namespace')
    nsServer.kill('SIGKILL')
  })

  it('restart: the killed child is restarted after the shortest backoff, leases again, and the namespaces never notice', async () => {
    const before = await lab.api<PortView[]>('/api/v1/ports')
    const pid = gatewayPid(1)
    const killedAt = Date.now()
    process.kill(pid, 'SIGKILL')
    await waitFor(() => logs.filter((l) => l.includes('"event":"gateway_started"') && l.includes('"network":"default"')).length === 2, 5000, 'the gateway restarted')
    // Restarted at once (the first backoff), not after a wait a machine's speed could hide.
    assert.ok(logs.some((l) => l.includes('"event":"gateway_exited"') && l.includes('"restart_in_ms":250')), 'restarted after 250 ms')
    await run('ip', ['-n', v.ns, 'addr', 'flush', 'dev', v.tap])
    await dhcp(v)
    process.stdout.write(`      a lease again ${Date.now() - killedAt} ms after the kill\n`)
    assert.match(await addressOf(v), /inet 10\.0\.2\.1[5-9]\/24/)
    // Station to station traffic never went through the gateway's child.
    assert.match(await run('ip', ['netns', 'exec', u.ns, 'ping', '-c', '2', '-i', '0.2', '-W', '2', '-n', '-q', '10.0.2.60']), / 2 received/)
    const after = await lab.api<PortView[]>('/api/v1/ports')
    assert.deepEqual(after.map((p) => p.id).sort(), before.map((p) => p.id).sort(), 'the same ports throughout')
    assert.ok(!logs.some((l) => l.includes('"event":"port_down"')), 'no port went down')
  })

  it('attack: a station keeps its lease across a switchd restart (SIGKILL): the lease file holds it, no one else is given it', async () => {
    const leases = JSON.parse(fs.readFileSync(path.join(dir, 'state', 'leases', 'default.json'), 'utf8')) as { leases: Array<{ mac: string, ip: string, state: string }> }
    assert.ok(leases.leases.some((l) => l.mac === u.mac && l.ip === '10.0.2.15' && l.state === 'bound'), 'u\'s lease is on disk')
    const connected = (): number => logs.filter((l) => l.includes('"event":"uplink_connected"')).length
    const before = connected()
    const old = lab.switchd
    const gone = new Promise((resolve) => old?.once('exit', resolve))
    old?.kill('SIGKILL')
    await gone
    await lab.startSwitchd()
    await waitFor(() => connected() >= before + lab.hosts.length, 15_000, 'the agents back')
    // v asks first: it must not be given u's address.
    await run('ip', ['-n', v.ns, 'addr', 'flush', 'dev', v.tap])
    await dhcp(v)
    assert.doesNotMatch(await addressOf(v), /inet 10\.0\.2\.15\//)
    await dhcp(u)
    assert.match(await addressOf(u), /inet 10\.0\.2\.15\/24/, 'u keeps its address')
    assert.match(await run('ip', ['-n', u.ns, 'route', 'show', 'default']), /default via 10\.0\.2\.2 /)
    assert.equal(fs.readFileSync(path.join(dir, `${u.tap}.dns`), 'utf8').trim(), '10.0.2.3')
    assert.equal(await connectFrom(u, '10.0.2.2', hostPort), 'hello-from-host', 'NAT works after the restart')
    const rows = await lab.api<Array<{ network: string, ip: string, mac: string, state: string }>>('/api/v1/leases?network=default')
    assert.ok(rows.some((r) => r.mac === u.mac && r.ip === '10.0.2.15' && r.state === 'bound'))
  })

  it('no orphan: when switchd is killed, its gateway children die with it', async () => {
    // The running switchd's children: default's third (the first, its successor, the one after switchd's restart), locked's second.
    const locked = logs.filter((l) => l.includes('"event":"gateway_started"') && l.includes('"network":"locked"')).map((l) => (JSON.parse(l.slice(l.indexOf('{'))) as { pid: number }).pid)
    assert.equal(locked.length, 2)
    const pids = [gatewayPid(3), locked[1] as number]
    lab.switchd?.kill('SIGKILL')
    const alive = (pid: number): boolean => {
      try { return !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8')) } catch { return false }
    }
    await waitFor(() => !pids.some(alive), 3000, 'the QEMU children gone')
  })
})

describe('e2e: switchd itself as nobody serves a gateway', function () {
  this.timeout(60_000)
  const lines: string[] = []
  let dir: string | undefined
  let switchd: Logged | undefined
  let raw: TestClient | undefined

  const pidOf = (event: string): number => {
    const line = switchd?.lines.find((l) => l.includes(`"event":"${event}"`)) as string
    return (JSON.parse(line.slice(line.indexOf('{'))) as { pid: number }).pid
  }

  before(async function () {
    requireRoot(this)
    requireTools(this, [{ cmd: 'qemu-system-x86_64', pkg: 'qemu-system-x86' }, { cmd: 'setpriv', pkg: 'util-linux' }])
    requireCheckoutReadableBy(this, ROOT)
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-gateway-nobody-'))
    fs.chmodSync(dir, 0o755)
    const config = path.join(dir, 'switchd.json')
    const stateDir = path.join(dir, 'state')
    fs.mkdirSync(stateDir, { mode: 0o700 })
    fs.chownSync(stateDir, NOBODY, NOBODY)
    fs.writeFileSync(config, JSON.stringify({ stateDir, networks: { lab: { gateway: { nat: false } } } }), { mode: 0o644 })
    const [cmd, args] = asUser(process.execPath, [path.join(ROOT, 'bin', 'switchd.js'), '--listen', '127.0.0.1:0', '--config', config])
    switchd = spawnLogged('switchd', cmd, args, (l) => { lines.push(l) })
    const listening = await waitForLine(switchd, 'switchd', (l) => l.includes('"event":"listening"'), 15_000)
    const { port } = JSON.parse(listening.slice(listening.indexOf('{'))) as { port: number }
    raw = await TestClient.raw(`ws://127.0.0.1:${port}/net/lab`)
  })

  after(async () => {
    raw?.close()
    switchd?.child.kill('SIGKILL')
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
  })

  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(lines.slice(-30).join('\n') + '\n')
  })

  it('a raw-mode client gets an offer; switchd and its QEMU both run as nobody', async () => {
    const mac = 0x020000000031
    const offered = (): boolean => (raw as TestClient).frames.some((f) => {
      const l3 = ipv4At(f, 0, f.length)
      const b = l3 < 0 ? -1 : dhcpAt(f, l3, f.length, DHCP_SERVER_PORT, DHCP_CLIENT_PORT)
      return b >= 0 && dhcpClientMac(f, b) === mac && dhcpType(f, b, f.length) === DHCPOFFER
    })
    // A DHCP client's retransmissions, until the child is up: bounded in tries, not in the time each takes.
    for (let xid = 1; !offered(); xid++) {
      assert.ok(xid < 120, 'an offer within 120 tries')
      raw?.send([buildDhcpRequest(mac, DHCPDISCOVER, xid)])
      await poll(offered, 1000)
    }
    assertRunsAsNobody('switchd', switchd?.child.pid as number)
    assertRunsAsNobody('gateway QEMU', pidOf('gateway_started'))
  })

  it('no orphan: SIGKILL to the unprivileged switchd takes its QEMU with it', async () => {
    const pid = pidOf('gateway_started')
    switchd?.child.kill('SIGKILL')
    await waitFor(() => {
      try { return /^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8')) } catch { return true }
    }, 3000, 'the QEMU child gone')
  })
})
