/**
 * A lab on one machine: N network namespaces, each with a TAP from its own
 * tap-agent, joined through a local switchd on 127.0.0.1. Used by the demo
 * (`npm run demo`), the e2e tests and the benchmarks, so namespace set-up and
 * clean-up exist once.
 *
 * The agents and switchd run in the root namespace and talk over loopback;
 * each agent makes its TAP inside its host's namespace (tap-agent --netns)
 * and the lab addresses it there. Addresses are the
 * documentation ranges 192.0.2.0/24 and 2001:db8::/32, and exist only inside
 * the namespaces: nothing gets a route in the root namespace.
 *
 * Everything is named after this process's pid, stopped by the PIDs we
 * started (never by name), and removed by stop(), which is safe to call after
 * any failure and more than once.
 */

import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { promisify } from 'node:util'

const execFileP = promisify(execFile)
const ROOT = path.join(__dirname, '..', '..')

export interface LabHost {
  /** a, b, c, ... */
  label: string
  ns: string
  tap: string
  mac: string
  ipv4: string
  ipv6: string
  /** Extra tap-agent flags for this host (e.g. --vlan 10). */
  agentArgs: string[]
  /** Leave the TAP without addresses (the test configures it, e.g. VLAN subinterfaces). */
  noAddress: boolean
  /** URL path on switchd (the network), default "/". */
  path: string
  agent?: ChildProcess
}

/** Per-host settings; anything left out gets the lab's defaults. */
export interface HostSpec {
  agentArgs?: string[]
  noAddress?: boolean
  path?: string
}

export interface LabOptions {
  /** How many hosts, or one spec per host. */
  hosts?: number | HostSpec[]
  /** switchd configuration (the JSON of --config), written to a temporary file. */
  config?: unknown
  /** Extra switchd flags. */
  switchdArgs?: string[]
  /** Extra tap-agent flags. */
  agentArgs?: string[]
  /**
   * Hosts are lettered and addressed from this index on (default 0: a, .1):
   * several labs in one process, joined by trunks, then have distinct hosts.
   */
  hostOffset?: number
  mtu?: number
  /** Receives every log line of switchd and the agents, prefixed by who said it. */
  onLog?: (line: string) => void
  /** Told of every process the lab starts, as it starts (tapswitch-lab records them in its state file). */
  onSpawn?: (who: string, child: ChildProcess, script: string) => void
}

/** Run a command; reject with its stderr on failure; never runs longer than `timeoutMs`. */
export async function run (cmd: string, args: string[], timeoutMs = 10_000): Promise<string> {
  try {
    const { stdout } = await execFileP(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 })
    return stdout
  } catch (err) {
    const e = err as Error & { stderr?: string }
    throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr ?? '').trim() || e.message}`)
  }
}

/** Stop a child we started: SIGTERM, then SIGKILL after `graceMs`. Resolves when it has exited. */
export async function stopChild (child: ChildProcess | undefined, graceMs = 3000): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const t = setTimeout(() => { child.kill('SIGKILL') }, graceMs)
  await exited
  clearTimeout(t)
}

export class Lab {
  readonly hosts: LabHost[] = []
  switchd: ChildProcess | undefined
  /** The port switchd listens on (kept across restarts). */
  port = 0
  /**
   * The whole PID (tsw4194303a is 11 of a TAP name's 15): names no other live
   * process's lab has. A PID cut short (pid % 100000) was shared by PIDs
   * 100000 apart, which pid_max 4194304 (systemd's default) has at once.
   */
  private readonly tag = String(process.pid)
  /** The namespaces this lab made (`ip netns add` succeeded): the only ones stop deletes. */
  private readonly made = new Set<string>()

  private configFile: string | undefined

  constructor (readonly opts: LabOptions = {}) {
    const specs: HostSpec[] = Array.isArray(opts.hosts) ? opts.hosts : Array.from({ length: opts.hosts ?? 3 }, () => ({}))
    const offset = opts.hostOffset ?? 0
    for (const [j, spec] of specs.entries()) {
      const i = j + offset
      const label = String.fromCharCode(97 + i)
      this.hosts.push({
        agentArgs: spec.agentArgs ?? [],
        noAddress: spec.noAddress ?? false,
        path: spec.path ?? '/',
        label,
        ns: `tsw-${this.tag}-${label}`,
        tap: `tsw${this.tag}${label}`,
        mac: `02:00:5e:00:00:${(i + 1).toString(16).padStart(2, '0')}`,
        ipv4: `192.0.2.${i + 1}`,
        ipv6: `2001:db8:7a9::${i + 1}`
      })
    }
  }

  get url (): string { return `ws://127.0.0.1:${this.port}/` }

  /** GET a switchd JSON endpoint, e.g. api('/api/v1/ports'). */
  async api<T = unknown> (p: string): Promise<T> {
    const res = await fetch(`http://127.0.0.1:${this.port}${p}`, { signal: AbortSignal.timeout(5000) })
    if (!res.ok) throw new Error(`GET ${p}: HTTP ${res.status}`)
    return await res.json() as T
  }

  /** Send switchd SIGHUP after rewriting its configuration file. */
  async reconfigure (config: unknown): Promise<void> {
    if (this.configFile === undefined || this.switchd === undefined) throw new Error('the lab was started without a config')
    fs.writeFileSync(this.configFile, JSON.stringify(config, null, 2))
    this.switchd.kill('SIGHUP')
    await waitForLine(this.switchd, 'switchd', (l) => l.includes('"config_reloaded"') || l.includes('"config_rejected"'), 5000)
  }

  /** Start switchd and every host; on failure cleans up and rethrows. */
  async start (): Promise<void> {
    try {
      await this.startSwitchd()
      for (const h of this.hosts) { await run('ip', ['netns', 'add', h.ns]); this.made.add(h.ns) }
      for (const h of this.hosts) await this.startHost(h)
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  /** Start switchd (again) on `this.port`, 0 the first time; resolves once it listens. */
  async startSwitchd (): Promise<void> {
    const args = ['--listen', `127.0.0.1:${this.port}`, '--ping-interval', '1', ...(this.opts.switchdArgs ?? [])]
    if (this.opts.config !== undefined) {
      this.configFile ??= path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-lab-')), 'switchd.json')
      fs.writeFileSync(this.configFile, JSON.stringify(this.opts.config, null, 2))
      args.push('--config', this.configFile)
    }
    const child = this.spawnNode('switchd', path.join(ROOT, 'bin', 'switchd.js'), args)
    this.switchd = child
    const line = await waitForLine(child, 'switchd', (l) => l.includes('"event":"listening"'), 10_000)
    this.port = (JSON.parse(line) as { port: number }).port
  }

  async stopSwitchd (): Promise<void> {
    await stopChild(this.switchd)
    this.switchd = undefined
  }

  private async startHost (h: LabHost): Promise<void> {
    const url = `ws://127.0.0.1:${this.port}${h.path}`
    // The agent makes the TAP inside the host's namespace (--netns) and keeps it configured there.
    const args = ['--url', url, '--tap', h.tap, '--netns', h.ns, '--mac', h.mac, '--name', `host-${h.label}`,
      '--mtu', String(this.opts.mtu ?? 1500), '--reconnect-max', '1', ...(this.opts.agentArgs ?? []), ...h.agentArgs]
    const agent = this.spawnNode(`agent-${h.label}`, path.join(ROOT, 'bin', 'tap-agent.js'), args)
    h.agent = agent
    await waitForLine(agent, `agent-${h.label}`, (l) => l.includes('"event":"uplink_connected"'), 10_000)
    const ip = ['-n', h.ns]
    await run('ip', [...ip, 'link', 'set', 'lo', 'up'])
    if (!h.noAddress) {
      await run('ip', [...ip, 'addr', 'add', `${h.ipv4}/24`, 'dev', h.tap])
      await run('ip', [...ip, '-6', 'addr', 'add', `${h.ipv6}/64`, 'dev', h.tap, 'nodad'])
    }
    await run('ip', [...ip, 'link', 'set', h.tap, 'up'])
  }

  /**
   * `ping` from one host to another (IPv4, or IPv6 with family 6); resolves with ping's output, rejects if it
   * fails. A reply is waited for 5 s: a ping is lost if it never comes back, not if a loaded machine is slow.
   */
  async ping (from: LabHost, to: LabHost, count = 3, family: 4 | 6 = 4, intervalS = 0.2): Promise<string> {
    const target = family === 4 ? to.ipv4 : to.ipv6
    return await run('ip', ['netns', 'exec', from.ns, 'ping', `-${family}`, '-c', String(count), '-i', String(intervalS), '-W', '5', '-n', '-q', target],
      (count * intervalS + 10) * 1000)
  }

  /** Frames the host's TAP handed to its namespace (what the switch sent it), from the kernel's counters. */
  async rxPackets (h: LabHost): Promise<number> {
    const out = JSON.parse(await run('ip', ['-n', h.ns, '-j', '-s', 'link', 'show', h.tap])) as Array<{ stats64: { rx: { packets: number } } }>
    return out[0]?.stats64.rx.packets ?? 0
  }

  /** Stop the agents and switchd (by PID) and delete the namespaces. Safe to repeat. */
  async stop (): Promise<void> {
    await Promise.all(this.hosts.map(async (h) => { await stopChild(h.agent); h.agent = undefined }))
    await this.stopSwitchd()
    // Only what this lab made: a name that existed already ("File exists" failed start) is another's.
    for (const h of this.hosts) {
      if (!this.made.delete(h.ns)) continue
      await run('ip', ['netns', 'del', h.ns]).catch(() => {})
    }
    if (this.configFile !== undefined) fs.rmSync(path.dirname(this.configFile), { recursive: true, force: true })
  }

  private spawnNode (who: string, script: string, args: string[]): ChildProcess {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    emitLines(child, who, this.opts.onLog)
    this.opts.onSpawn?.(who, child, script)
    return child
  }
}

/** Make `child` emit a 'line' event per line of its stdout and stderr (and pass each to `onLog`, prefixed). */
export function emitLines (child: ChildProcess, who: string, onLog?: (line: string) => void): void {
  for (const stream of [child.stdout, child.stderr]) {
    let buf = ''
    stream?.setEncoding('utf8')
    stream?.on('data', (chunk: string) => {
      buf += chunk
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        child.emit('line', line)
        if (onLog !== undefined) onLog(`${who}: ${line}`)
      }
    })
  }
}

/** Resolve with the first line `match` accepts (see emitLines); reject if the child exits first or after `ms`. */
export function waitForLine (child: ChildProcess, who: string, match: (line: string) => boolean, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const seen: string[] = []
    const onLine = (line: string): void => {
      seen.push(line)
      if (seen.length > 20) seen.shift()
      if (match(line)) { done(); resolve(line) }
    }
    const onExit = (code: number | null): void => { done(); reject(new Error(`${who} exited (${String(code)}) before it was ready:\n${seen.join('\n')}`)) }
    const timer = setTimeout(() => { done(); reject(new Error(`${who} not ready within ${ms} ms:\n${seen.join('\n')}`)) }, ms)
    function done (): void { clearTimeout(timer); child.off('line', onLine); child.off('exit', onExit) }
    child.on('line', onLine)
    child.on('exit', onExit)
  })
}
