/**
 * Children of the e2e tests that are not part of a Lab (QEMU, vde_switch,
 * dpipe, an unprivileged tap-agent): spawned with their output split into
 * lines, waited on by line, stopped by PID, and their credentials read back
 * from /proc.
 */

import assert from 'node:assert/strict'
import { spawn, execFileSync, type ChildProcess, type SpawnOptions } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { emitLines, run } from '../../src/lab/lab'

/** The unprivileged user the endpoint tests run QEMU, VDE and tap-agent as (nobody/nogroup). */
export const NOBODY = 65534

/** `setpriv` arguments that run a command as `uid`/`gid` with no supplementary groups. */
export function asUser (cmd: string, args: string[], uid = NOBODY, gid = NOBODY): [string, string[]] {
  return ['setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', cmd, ...args]]
}

export interface Logged {
  child: ChildProcess
  /** Every line it wrote so far (stdout and stderr, unless stdout is taken). */
  lines: string[]
}

/** Spawn with stdout/stderr split into lines (pushed to `lines` and `sink`). `stdoutRaw` leaves stdout alone. */
export function spawnLogged (who: string, cmd: string, args: string[], sink: (line: string) => void, opts: SpawnOptions = {}): Logged {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts })
  const lines: string[] = []
  child.on('line', (line: string) => { lines.push(line) })
  emitLines(child, who, sink)
  child.on('exit', (code, signal) => { sink(`${who}: exited (${String(code ?? signal)})`) })
  return { child, lines }
}

/** Resolve once `lines` has a line `match` accepts (looking at earlier lines too); reject if the child exits first or after `ms`. */
export async function waitForLine (p: Logged, who: string, match: (line: string) => boolean, ms = 10_000): Promise<string> {
  const seen = p.lines.find(match)
  if (seen !== undefined) return seen
  return await new Promise((resolve, reject) => {
    const onLine = (line: string): void => { if (match(line)) { done(); resolve(line) } }
    const onExit = (code: number | null): void => { done(); reject(new Error(`${who} exited (${String(code)}) first:\n${p.lines.slice(-20).join('\n')}`)) }
    const timer = setTimeout(() => { done(); reject(new Error(`${who}: no such line within ${ms} ms:\n${p.lines.slice(-20).join('\n')}`)) }, ms)
    function done (): void { clearTimeout(timer); p.child.off('line', onLine); p.child.off('exit', onExit) }
    p.child.on('line', onLine)
    p.child.on('exit', onExit)
    if (p.child.exitCode !== null || p.child.signalCode !== null) onExit(p.child.exitCode)
  })
}

/**
 * Ping `target` from namespace `ns` until one answer comes back (ARP and
 * whatever is behind it warming up, within `warmMs`), then `count` pings that
 * must all come back; resolves with ping's summary.
 */
export async function pingUntilAnswered (ns: string, target: string, count = 3, warmMs = 15_000): Promise<string> {
  const deadline = Date.now() + warmMs
  for (;;) {
    try {
      await run('ip', ['netns', 'exec', ns, 'ping', '-4', '-c', '1', '-W', '1', '-n', '-q', target], 5000)
      break
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`no answer from ${target} within ${warmMs / 1000} s: ${(err as Error).message}`)
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  }
  return await run('ip', ['netns', 'exec', ns, 'ping', '-4', '-c', String(count), '-i', '0.2', '-W', '2', '-n', '-q', target], 15_000)
}

/** Real and effective uid of a running process, from /proc (throws if it is gone). */
export function uidsOf (pid: number): { real: number, effective: number, gid: number, groups: string } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const uid = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status)
  const gid = /^Gid:\s+(\d+)/m.exec(status)
  const groups = /^Groups:(.*)$/m.exec(status)
  if (uid === null || gid === null) throw new Error(`no Uid/Gid in /proc/${pid}/status`)
  return { real: Number(uid[1]), effective: Number(uid[2]), gid: Number(gid[1]), groups: (groups?.[1] ?? '').trim() }
}

/** Assert that `pid` runs as nobody: real and effective uid, gid, and no supplementary groups. */
export function assertRunsAsNobody (who: string, pid: number): void {
  const ids = uidsOf(pid)
  assert.equal(ids.real, NOBODY, `${who} real uid`)
  assert.equal(ids.effective, NOBODY, `${who} effective uid`)
  assert.equal(ids.gid, NOBODY, `${who} gid`)
  assert.equal(ids.groups, '', `${who} has no supplementary groups`)
}

/** Whether an executable named `cmd` is on PATH. */
export function onPath (cmd: string): boolean {
  return (process.env.PATH ?? '/usr/bin:/bin').split(':').some((dir) => {
    try { fs.accessSync(path.join(dir, cmd), fs.constants.X_OK); return true } catch { return false }
  })
}

/**
 * Skip when a tool is missing on a developer's machine; fail under CI=true
 * (CI must have it, or the test would silently never run).
 */
export function requireTools (ctx: Mocha.Context, tools: Array<{ cmd: string, pkg: string }>): void {
  const missing = tools.filter((t) => !onPath(t.cmd))
  if (missing.length === 0) return
  const what = missing.map((t) => `${t.cmd} (Debian package ${t.pkg})`).join(', ')
  if (process.env.CI === 'true') throw new Error(`this e2e test needs ${what}, and CI must run it`)
  ctx.skip()
}

/**
 * The unprivileged user must be able to run tapswitch from this checkout
 * (every directory above it traversable, dist/ readable): probe it by
 * loading tap-agent as that user. Skips locally, fails under CI=true.
 */
export function requireCheckoutReadableBy (ctx: Mocha.Context, root: string, uid = NOBODY): void {
  const main = path.join(root, 'dist', 'agent', 'main.js')
  const [cmd, args] = asUser(process.execPath, ['-e', `require(${JSON.stringify(main)})`], uid, uid)
  try {
    execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 })
  } catch (err) {
    const why = ((err as { stderr?: Buffer }).stderr?.toString() ?? (err as Error).message).split('\n').find((l) => l.includes('Error')) ?? (err as Error).message
    const msg = `uid ${uid} cannot load ${main} (${why.trim()}): the checkout must be readable by others (and built: npm run build)`
    if (process.env.CI === 'true') throw new Error(msg)
    ctx.skip()
  }
}

/** Resolve once `child` has exited, or after `ms` (whichever first), leaving no timer behind. */
export async function exitWithin (child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true
  return await new Promise<boolean>((resolve) => {
    const onExit = (): void => { clearTimeout(t); resolve(true) }
    const t = setTimeout(() => { child.off('exit', onExit); resolve(false) }, ms)
    child.once('exit', onExit)
  })
}

/**
 * Resolves once something in namespace `ns` listens on TCP `port` (`ss`): the
 * barrier between starting a server (iperf3 -s) and its client, where a sleep
 * would be too short on a loaded machine. `ms` guards against a hang.
 */
export async function tcpListening (ns: string, port: number, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    const out = await run('ip', ['netns', 'exec', ns, 'ss', '-Hltn', `sport = :${port}`]).catch(() => '')
    if (out.trim() !== '') return
    if (Date.now() > deadline) throw new Error(`nothing listens on TCP port ${port} in ${ns} within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** This process's threads whose name (`/proc/self/task/TID/comm`, what top -H shows) is `comm`, by TID. */
export function threadsNamed (comm: string): string[] {
  return fs.readdirSync('/proc/self/task').filter((t) => {
    try { return fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() === comm } catch { return false }
  })
}

/** Clock ticks a second in /proc/<pid>/stat (sysconf(_SC_CLK_TCK), 100 on Linux). */
const TICKS = 100

/** utime + stime of a process, or of one of its threads, in seconds. */
export function cpuSeconds (pid: number, tid?: number): number {
  const file = tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`
  const f = fs.readFileSync(file, 'utf8').split(') ')[1]?.split(' ') ?? []
  return (Number(f[11]) + Number(f[12])) / TICKS
}

/**
 * The CPU a process used over one second left idle (after 300 ms to settle),
 * whole and by each thread it had when the second began (`used` undefined for
 * one that ended in it): what the no-spinning-at-idle tests bound.
 */
export async function cpuInIdleSecond (pid: number): Promise<{ used: number, threads: Array<{ tid: number, used: number | undefined }> }> {
  await new Promise((resolve) => setTimeout(resolve, 300))
  const tids = fs.readdirSync(`/proc/${pid}/task`).map(Number)
  const before = cpuSeconds(pid)
  const each = tids.map((t) => cpuSeconds(pid, t))
  await new Promise((resolve) => setTimeout(resolve, 1000))
  const used = cpuSeconds(pid) - before
  return {
    used,
    threads: tids.map((tid, i) => ({ tid, used: fs.existsSync(`/proc/${pid}/task/${tid}`) ? cpuSeconds(pid, tid) - (each[i] as number) : undefined }))
  }
}

/** Resolve with the first stdout line of `child` matching `re` (reject on its exit first, or after `ms`). */
export async function lineOf (child: ChildProcess, re: RegExp, ms = 60_000): Promise<string> {
  let buf = ''
  return await new Promise((resolve, reject) => {
    const t = setTimeout(() => { reject(new Error(`no ${String(re)} within ${ms} ms; got: ${buf}`)) }, ms)
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      buf += d
      const line = buf.split('\n').find(l => re.test(l))
      if (line !== undefined) { clearTimeout(t); resolve(line) }
    })
    child.once('exit', code => { clearTimeout(t); reject(new Error(`exited ${String(code)} before ${String(re)}; got: ${buf}`)) })
  })
}

/**
 * `bytes` random bytes over one TCP connection from namespace `from` to `addr:port` in namespace `to`
 * (Node on both ends; each child pushed on `children` for the caller to kill): the sender's SHA-256 and
 * what the receiver counted and hashed.
 */
export async function tcpThrough (from: string, to: string, addr: string, port: number, bytes: number, children: ChildProcess[]): Promise<{ sent: { hash: string }, got: { n: number, hash: string } }> {
  const server = spawn('ip', ['netns', 'exec', to, process.execPath, '-e', `
    const net = require('net'), crypto = require('crypto'); const h = crypto.createHash('sha256'); let n = 0
    const s = net.createServer(c => { c.on('data', d => { h.update(d); n += d.length })
      c.on('end', () => { console.log(JSON.stringify({ n, hash: h.digest('hex') })); s.close() }) })
    s.listen(${port}, '${addr}', () => console.log('listening'))`], { stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(server)
  await lineOf(server, /listening/)
  const client = spawn('ip', ['netns', 'exec', from, process.execPath, '-e', `
    const net = require('net'), crypto = require('crypto'); const b = crypto.randomBytes(${bytes})
    console.log(JSON.stringify({ hash: crypto.createHash('sha256').update(b).digest('hex') }))
    const c = net.connect(${port}, '${addr}', () => { c.end(b) })
    c.on('error', e => { console.error(e.message); process.exit(1) })`], { stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(client)
  const sent = JSON.parse(await lineOf(client, /hash/)) as { hash: string }
  const got = JSON.parse(await lineOf(server, /"n"/, 100_000)) as { n: number, hash: string }
  return { sent, got }
}
