/**
 * A network's gateway: DHCP, DNS, NAT and published ports from libslirp,
 * QEMU's user-mode network, in a QEMU child with no machine and no NIC
 * (`-M none`): a `-netdev user` and a `-netdev stream` on one hub, the
 * stream being a socketpair to switchd (fd 3). This is the set-up the issue
 * measured (a lease in 0.1 s), with no socket file for anyone else to reach.
 * It needs no root and no CAP_NET_ADMIN: slirp only opens ordinary sockets.
 *
 * The child:
 *  - runs through switchd's launcher (native/sandbox.cc; the arguments come
 *    from gateway-sandbox.ts), which execs QEMU in the same process once it
 *    has set: PR_SET_PDEATHSIG SIGKILL (the kernel kills the child when
 *    switchd dies, however it dies), no_new_privs, RLIMIT_NOFILE (part of
 *    the bound on what stations make slirp hold), when switchd is root
 *    `user` (nobody) with no groups and no capabilities, and a Landlock
 *    ruleset that lets it read only what QEMU needs: not switchd's
 *    configuration, token files, TLS key or /proc/<switchd>. QEMU's
 *    `-sandbox on` (seccomp) denies it spawning, privilege changes and
 *    obsolete syscalls: it parses the stations' packets, so it gets as
 *    little as it can live with. switchd's listeners refuse its connections
 *    (child-peers.ts);
 *  - is ready when its QMP monitor (a second socketpair, fd 4) greets us:
 *    QEMU sets up its netdevs (binding published ports) before its monitors;
 *  - gets an environment of PATH only: switchd's own (its admin token, say)
 *    is not the child's business;
 *  - is restarted when it exits, after 0.25 s, doubling to 30 s while it
 *    keeps dying young (up for less than 30 s), so a child that cannot start
 *    costs a start every 30 s, not a loop. Meanwhile frames to the gateway are
 *    dropped (counted as disconnected) and its port stays in the network.
 *  - is stopped (SIGTERM, then SIGKILL after 2 s) by its PID when switchd
 *    stops.
 *
 * The gateway's DHCP server is switchd's (core/dhcp-server.ts, wired by
 * gateway-port.ts); its leases live in the lease file (lease-file.ts),
 * read before the first child starts and written as they change, so
 * neither a child's restart nor switchd's forgets them. They are the
 * binding table of the network's guards (core/guard.ts).
 */

import { spawn, type ChildProcess } from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as dgram from 'node:dgram'
import * as path from 'node:path'
import type { Switch } from '../core/switch'
import { R_MALFORMED as DROP_MALFORMED } from '../core/reasons'
import { MODE_ACCESS, type PortPolicy } from '../core/port'
import { formatHostPorts, type GatewaySpec } from '../core/gateway-spec'
import type { Underlay } from '../core/gateway-filter'
import { GatewayPort, slirpMac } from './gateway-port'
import { hostAddresses } from './host-addresses'
import { LeaseFile } from './lease-file'
import { Deframer, PREFIX_U32 } from '../../common/framing'
import { childPaths, sandboxPlan, launcherPath, readSandboxHost, loadProcessBinding, type SandboxHost, type SandboxPlan } from './gateway-sandbox'
import { formatIpv4 } from '../../common/dhcp'
import { TapswitchError, ERR_CONFIG } from '../../common/errors'
import { logger } from '../../common/log'

const log = logger('gateway')

const FIRST_BACKOFF_MS = 250
const MAX_BACKOFF_MS = 30_000
/** A child up this long was not dying young: the next restart is quick again. */
const STABLE_MS = 30_000
const READY_TIMEOUT_MS = 10_000
const STOP_GRACE_MS = 2000
/** How often the resolver's file is looked at for a replacement (one stat). */
const RESOLVER_POLL_MS = 2000
/** Bytes of the child's stderr kept for messages (its last words). */
const STDERR_KEPT = 4096
/** ms between expiry runs of the lease table (and lazy lease-file writes). */
const LEASE_TICK_MS = 1000

/** QEMU's arguments for `spec`: no machine, slirp and a stream on fd 3 on one hub, QMP on fd 4. */
export function qemuArgs (spec: GatewaySpec): string[] {
  const net = `${formatIpv4(spec.subnet)}/${spec.prefix}`
  const user = [`user,id=gw,ipv6=off,net=${net},host=${formatIpv4(spec.address)},dns=${formatIpv4(spec.dns)}`,
    `dhcpstart=${formatIpv4(spec.dhcpStart)}`, `restrict=${spec.nat === 'off' ? 'on' : 'off'}`,
    ...spec.publish.map((p) => `hostfwd=${p.proto}:${p.hostAddress}:${p.hostPort}-${formatIpv4(p.guest)}:${p.guestPort}`)]
  return ['-M', 'none', '-nodefaults', '-no-user-config', '-display', 'none',
    '-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
    '-netdev', 'stream,id=sw,server=off,addr.type=fd,addr.str=3',
    '-netdev', user.join(','),
    '-netdev', 'hubport,id=p0,hubid=0,netdev=sw',
    '-netdev', 'hubport,id=p1,hubid=0,netdev=gw',
    '-chardev', 'socket,id=qmp,fd=4', '-mon', 'chardev=qmp,mode=control']
}

/** The executable `cmd` (a path, or a name on PATH), or undefined. */
export function findExecutable (cmd: string): string | undefined {
  const dirs = cmd.includes('/') ? [''] : (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':')
  for (const d of dirs) {
    const file = d === '' ? cmd : path.join(d, cmd)
    try { fs.accessSync(file, fs.constants.X_OK); if (fs.statSync(file).isFile()) return file } catch {}
  }
  return undefined
}

/** uid and primary gid of `user` (a name in /etc/passwd, or a uid: then its gid is the same number). */
function lookupUser (user: string, key: string): [number, number] {
  if (/^\d+$/.test(user)) return [Number(user), Number(user)]
  let text = ''
  try { text = fs.readFileSync('/etc/passwd', 'utf8') } catch {}
  for (const line of text.split('\n')) {
    const f = line.split(':')
    if (f[0] === user && f.length >= 4) return [Number(f[2]), Number(f[3])]
  }
  throw new TapswitchError(ERR_CONFIG, `${key}.user: no user "${user}" in /etc/passwd: name an unprivileged user for the gateway's QEMU (default nobody)`)
}

export class Gateway {
  readonly port: GatewayPort
  child: ChildProcess | undefined
  /** Children started, and those that exited (or never became ready). */
  starts = 0
  exits = 0
  /** A child is running and ready. */
  up = false
  private joined = false
  private stopped = false
  private backoff = FIRST_BACKOFF_MS
  private restartTimer: NodeJS.Timeout | undefined
  private readonly key: string
  private command: [string, string[]] | undefined
  private lastSecond = 0
  /** The leases on disk; undefined until start() has read them. */
  leaseFile: LeaseFile | undefined
  private leaseTimer: NodeJS.Timeout | undefined
  /** How the child is confined (set by start()). */
  sandbox: SandboxPlan | undefined
  /** The uid the child's sockets carry: `user`'s when switchd is root, else switchd's own. */
  private childUid = -1
  private unwatch: () => void = () => {}

  /** `host` replaces what the addon says of this host (tests). */
  constructor (readonly spec: GatewaySpec, private readonly sw: Switch, private readonly policy: PortPolicy, id: number, highWaterMark: number,
    private readonly stateDir: string, private readonly host?: SandboxHost) {
    this.key = `networks.${spec.network}.gateway`
    this.port = new GatewayPort(id, spec, highWaterMark, sw)
    this.port.applyPolicy(policy)
  }

  /** Read the lease file (locking it), and keep it and the lease table up to date from now on. */
  private openLeases (): void {
    const server = this.port.server
    const file = new LeaseFile(this.stateDir, this.spec.network, server.leases, (v) => { this.port.landed(v) })
    const dropped = file.open(Date.now())
    this.leaseFile = file
    this.port.store = file
    for (const why of dropped) log.warn('lease_dropped', { network: this.spec.network, lease: why, file: file.path })
    log.info('leases_loaded', { network: this.spec.network, file: file.path, leases: server.leases.size, held: server.leases.held })
    this.leaseTimer = setInterval(() => {
      const now = Date.now()
      server.tick(now)
      file.tick(now)
    }, LEASE_TICK_MS)
    this.leaseTimer.unref()
  }

  /**
   * Check what can be checked (QEMU installed, published ports free, an
   * access port), start the child and wait until it is ready. Throws
   * TSW_ERR_CONFIG naming the cause and the fix; later deaths only restart.
   */
  async start (selfPorts: readonly number[], underlay: Underlay = { udpPorts: [], vteps: [] }): Promise<void> {
    const spec = this.spec
    if (this.policy.mode !== MODE_ACCESS) throw new TapswitchError(ERR_CONFIG, `${this.key}: the port profile for "${spec.name}" makes it a trunk; a gateway is an access port (give it "mode": "access")`)
    const qemu = findExecutable(spec.qemu)
    if (qemu === undefined) {
      throw new TapswitchError(ERR_CONFIG, `${this.key}: ${spec.qemu} not found: the gateway is QEMU's user-mode network (libslirp). ` +
        'Install the Debian package qemu-system-x86 (apt-get install qemu-system-x86), or set "qemu" to the binary\'s path')
    }
    const launcher = launcherPath()
    if (launcher === undefined) throw new TapswitchError(ERR_CONFIG, `${this.key}: build/Release/tapswitch-sandbox not found: run npm install in the tapswitch directory (it builds the launcher that confines the gateway's QEMU; needs make and g++)`)
    for (const [i, p] of spec.publish.entries()) await checkFree(p.proto, p.hostAddress, p.hostPort, `${this.key}.publish[${i}].host`)
    const host = this.host ?? readSandboxHost(loadProcessBinding())
    const ids = host.root ? lookupUser(spec.user, this.key) : undefined
    this.childUid = ids?.[0] ?? process.getuid?.() ?? -1
    const plan = sandboxPlan(spec, childPaths(qemu, undefined, host.resolvConf), host, ids, spec.maxFlows)
    this.sandbox = plan
    this.command = [launcher, [...plan.args, qemu, ...qemuArgs(spec)]]
    this.reportSandbox(plan)
    if (spec.dhcp) this.openLeases()
    // The guards look at the gateway's VLAN; its leases are their binding table, and trusted ports are held to no share of the pool.
    const guard = this.sw.guard
    if (guard !== null) {
      guard.vid = this.port.pvid
      if (spec.dhcp) guard.bindings = this.port.server.leases
      this.port.server.exempt = (p) => guard.trusts(p)
    }
    // switchd's own ports may never be listed: a station would administer the switch, or join another network.
    const self = [...new Set(selfPorts)]
    const selfUdp = underlay.udpPorts.filter((p) => p !== 0)
    for (const [i, h] of spec.hostPorts.entries()) {
      const own = (h.proto === 'tcp' ? self : selfUdp).find((p) => p >= h.from && p <= h.to)
      if (own !== undefined) {
        throw new TapswitchError(ERR_CONFIG, `${this.key}.hostPorts[${i}]: ${formatHostPorts(h)} includes ${own}, one of switchd's own ports ` +
          '(its listener, --metrics-listen, a QEMU listener or a VXLAN/GENEVE listener): the stations must never reach switchd. List other ports')
      }
    }
    this.port.selfPorts = self
    this.port.underlay = { udpPorts: selfUdp, vteps: underlay.vteps }
    // This host's addresses before the first frame; then once a second from tick().
    hostAddresses.refreshSync()
    if (spec.hostPorts.length > 0) {
      log.warn('gateway_reaches_host', {
        network: spec.network,
        address: formatIpv4(spec.address),
        ports: spec.hostPorts.map(formatHostPorts).join(','),
        note: 'every station reaches these ports of this host\'s loopback at the gateway\'s address (hostPorts)'
      })
    }
    await this.spawnChild()
  }

  /** Say how the child is confined: loudly when Landlock is missing or the fd limit had to come down (once, not per restart). */
  private reportSandbox (plan: SandboxPlan): void {
    const network = this.spec.network
    if (plan.weak !== undefined) {
      log.warn('gateway_sandbox_weak', {
        network, feature: 'Landlock', why: plan.weak,
        effect: 'the gateway child can read every file its user can: switchd\'s configuration, token files and TLS key (and, without root, nothing but switchd\'s own non-dumpable flag guards its environment)'
      })
    }
    if (plan.nofile < plan.nofileWanted) {
      log.warn('gateway_fd_limit_lowered', {
        network, wanted: plan.nofileWanted, limit: plan.nofile,
        why: 'above switchd\'s own hard RLIMIT_NOFILE, which it may not raise: the gateway serves fewer flows at once (raise LimitNOFILE= or ulimit -Hn)'
      })
    }
    if (plan.watch !== undefined && this.spec.dnsForward) {
      // The child may read this file, not its directory: a new file (a rename over it) is not the child's until it restarts.
      const watched = plan.watch
      fs.watchFile(watched, { persistent: false, interval: RESOLVER_POLL_MS }, (now, before) => {
        if (now.ino === before.ino && now.dev === before.dev) return
        log.info('gateway_resolver_changed', { network, file: watched, note: 'restarting the gateway child so that it may read the new file' })
        this.child?.kill('SIGTERM')
      })
      this.unwatch = () => { fs.unwatchFile(watched) }
    }
  }

  /** The running child, for switchd's listeners to refuse (child-peers.ts). */
  childRef (): { pid: number, uid: number } | undefined {
    const pid = this.child?.pid
    return pid === undefined ? undefined : { pid, uid: this.childUid }
  }

  /** Start one child; resolves once it is ready, rejects (and the child is gone) if it is not. */
  private async spawnChild (): Promise<void> {
    const [cmd, args] = this.command as [string, string[]]
    this.starts++
    const child = spawn(cmd, args, {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'],
      cwd: '/',
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }
    })
    this.child = child
    let stderr = ''
    const startedAt = Date.now()
    child.stderr?.on('data', (d: Buffer) => { stderr = (stderr + d.toString('utf8')).slice(-STDERR_KEPT) })
    const stream = child.stdio[3] as net.Socket
    const qmp = child.stdio[4] as net.Socket
    stream.on('error', () => {})
    qmp.on('error', () => {})
    const lastWords = (): string => stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.includes('with no nics')).slice(-3).join(' | ')
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { fail(new Error(`not ready within ${READY_TIMEOUT_MS / 1000} s`)); child.kill('SIGKILL') }, READY_TIMEOUT_MS)
      let greeted = ''
      const onQmp = (d: Buffer): void => {
        greeted = (greeted + d.toString('utf8')).slice(-4096)
        if (greeted.includes('"QMP"')) { clearTimeout(timer); qmp.off('data', onQmp); qmp.resume(); resolve() }
      }
      const fail = (err: Error): void => { clearTimeout(timer); qmp.off('data', onQmp); reject(err) }
      qmp.on('data', onQmp)
      child.once('error', fail)
      child.once('exit', (code, signal) => { fail(new Error(`exited (${String(code ?? signal)}) before it was ready: ${lastWords() || 'no message'}`)) })
    })
    child.once('exit', (code, signal) => {
      this.exits++
      if (this.child === child) this.child = undefined
      const wasUp = this.up && this.port.socket === stream
      if (wasUp) { this.up = false; this.port.detach() }
      if (Date.now() - startedAt >= STABLE_MS) this.backoff = FIRST_BACKOFF_MS
      const delay = this.stopped ? undefined : this.backoff
      log.write(this.stopped ? 'info' : 'warn', 'gateway_exited', { network: this.spec.network, pid: child.pid, code, signal, stderr: lastWords(), restart_in_ms: delay })
      if (delay === undefined || !this.joined) return
      this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS)
      this.restartTimer = setTimeout(() => {
        this.restartTimer = undefined
        if (!this.stopped) this.spawnChild().catch(() => {}) // its exit schedules the next try
      }, delay)
    })
    try {
      await ready
    } catch (err) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      throw new TapswitchError(ERR_CONFIG, `${this.key}: QEMU ${(err as Error).message}`)
    }
    if (this.stopped) { child.kill('SIGTERM'); return }
    this.attach(stream, child)
    this.up = true
    if (!this.joined) {
      this.sw.addPort(this.port)
      // slirp's MAC is the gateway's, pinned as a static entry: a station that sends from it is
      // dropped (as for any static MAC) and cannot take the stations' traffic to their router.
      this.sw.addStatic({ vid: this.port.pvid, mac: slirpMac(this.spec.address), port: this.spec.name })
      this.joined = true
    }
    log.info('gateway_started', {
      network: this.spec.network, pid: child.pid, start: this.starts, address: formatIpv4(this.spec.address), dhcp: this.spec.dhcp,
      static_leases: this.spec.staticLeases.length, dns: this.spec.dnsForward, nat: this.spec.nat, published: this.spec.publish.length
    })
  }

  private attach (stream: net.Socket, child: ChildProcess): void {
    const port = this.port
    port.socket = stream
    // QEMU lives on without its stream (an operator's disconnect, a framing error): a child that lost it is restarted.
    stream.once('close', () => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
    const deframer = new Deframer(PREFIX_U32, (batch) => {
      port.track(batch)
      if (!this.sw.receiveBatch(port, batch)) stream.destroy()
    })
    stream.on('data', (chunk: Buffer) => {
      if (!deframer.push(chunk)) {
        port.addDrops(DROP_MALFORMED, 1)
        log.warn('gateway_framing_error', { network: this.spec.network, reason: 'a frame length over the maximum' })
        stream.destroy() // and so the child, which broke its framing, is restarted
      }
    })
  }

  /** The switch's clock (every 100 ms): once a second, expire the gateway's flows and re-read this host's addresses. */
  tick (nowMs: number): void {
    const second = Math.floor(nowMs / 1000)
    if (second === this.lastSecond) return
    this.lastSecond = second
    this.port.expire(nowMs)
    hostAddresses.refresh(nowMs)
  }

  /** Stop for good: no restart, the child ended by its PID, the port out of its network. */
  async close (): Promise<void> {
    this.stopped = true
    this.unwatch()
    clearTimeout(this.restartTimer)
    const child = this.child
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise<void>((resolve) => child.once('exit', () => { resolve() }))
      child.kill('SIGTERM')
      const t = setTimeout(() => { child.kill('SIGKILL') }, STOP_GRACE_MS)
      await gone
      clearTimeout(t)
    }
    this.port.detach()
    this.up = false
    clearInterval(this.leaseTimer)
    await this.leaseFile?.close()
    if (this.joined) {
      this.sw.removeStatic(this.port.pvid, slirpMac(this.spec.address))
      this.sw.removePort(this.port)
      this.joined = false
    }
  }
}

/** Throw TSW_ERR_CONFIG naming `key` if proto `host:port` cannot be bound now (in use, not ours to take). */
async function checkFree (proto: 'tcp' | 'udp', host: string, port: number, key: string): Promise<void> {
  const fail = (err: NodeJS.ErrnoException): TapswitchError => new TapswitchError(ERR_CONFIG,
    `${key}: cannot publish ${proto} ${host}:${port}: ${err.code ?? err.message}` +
    (err.code === 'EADDRINUSE' ? ' (something listens there already: pick another port, or stop it)' : err.code === 'EACCES' ? ' (ports below 1024 need privilege the gateway does not have: pick 1024 or above)' : ''))
  if (proto === 'tcp') {
    const s = net.createServer()
    await new Promise<void>((resolve, reject) => {
      s.once('error', (err) => { reject(fail(err)) })
      s.listen({ host, port, exclusive: true }, () => { s.close(() => { resolve() }) })
    })
    return
  }
  const s = dgram.createSocket('udp4')
  await new Promise<void>((resolve, reject) => {
    s.once('error', (err) => { s.close(); reject(fail(err)) })
    s.bind({ address: host, port, exclusive: true }, () => { s.close(() => { resolve() }) })
  })
}
