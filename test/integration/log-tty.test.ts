/**
 * switchd on a terminal writes text (coloured unless NO_COLOR), on a pipe
 * JSON, and --log-format overrides either. The terminal is a real pty, made
 * by util-linux `script`.
 */

import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import * as path from 'node:path'

const ROOT = path.join(__dirname, '..', '..')
/** A line of the text format: local time to the millisecond, then the level. */
const TEXT_LINE = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} /

interface Run { child: ChildProcess, out: string, pid: number | undefined }

/**
 * switchd with `args`, its stderr a terminal (`tty`) or a pipe. The shell
 * prints its PID and execs `timeout`, which runs switchd: the test stops it
 * by that PID, and `timeout` stops it anyway if the test cannot.
 */
function switchd (args: string[], tty: boolean, env: NodeJS.ProcessEnv = {}): Run {
  const node = `${process.execPath} -r tsx/cjs -e "require('./src/switch/main').main(process.argv.slice(1))" -- --listen 127.0.0.1:0 ${args.join(' ')}`
  const inner = `echo PID=$$; exec timeout 60 ${node}`
  const child = tty
    ? spawn('script', ['-qec', inner, '/dev/null'], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
    : spawn('sh', ['-c', inner], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const run: Run = { child, out: '', pid: undefined }
  const take = (d: Buffer): void => {
    run.out += d.toString('utf8').replace(/\r/g, '')
    const m = /PID=(\d+)/.exec(run.out)
    if (m !== null) run.pid = Number(m[1])
  }
  child.stdout?.on('data', take)
  child.stderr?.on('data', take)
  return run
}

/** Resolve with the first line `match` accepts; reject after `ms` or if the child exits first. */
async function lineOf (run: Run, match: RegExp, ms = 30_000): Promise<string> {
  const deadline = Date.now() + ms
  for (;;) {
    const line = run.out.split('\n').find((l) => match.test(l))
    if (line !== undefined) return line
    if (run.child.exitCode !== null || Date.now() > deadline) throw new Error(`no line ${String(match)}:\n${run.out}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

async function stop (run: Run): Promise<void> {
  if (run.pid !== undefined) { try { process.kill(run.pid, 'SIGTERM') } catch {} }
  if (run.child.exitCode === null && run.child.signalCode === null) {
    await new Promise<void>((resolve) => { const t = setTimeout(resolve, 10_000); run.child.once('exit', () => { clearTimeout(t); resolve() }) })
  }
  run.child.stdin?.end()
}

describe('log format on a terminal (integration)', () => {
  const runs: Run[] = []
  afterEach(async () => { for (const r of runs.splice(0)) await stop(r) })
  const start = (args: string[], tty: boolean, env: NodeJS.ProcessEnv = {}): Run => { const r = switchd(args, tty, env); runs.push(r); return r }

  it('writes coloured text to a terminal', async () => {
    const r = start([], true, { NO_COLOR: '' })
    const line = await lineOf(r, /listening/)
    assert.match(line, TEXT_LINE)
    assert.ok(line.includes('\x1b[36mINFO'), line)
    assert.match(line.replace(/\x1b\[[0-9;]*m/g, ''), /INFO {2}server: listening address=127\.0\.0\.1 port=\d+ /)
  })

  it('writes text without colour to a terminal when NO_COLOR is set', async () => {
    const r = start([], true, { NO_COLOR: '1' })
    const line = await lineOf(r, /listening/)
    assert.match(line, TEXT_LINE)
    assert.ok(!line.includes('\x1b'), line)
  })

  it('writes JSON to a terminal with --log-format json, and to a pipe by default', async () => {
    const onTty = start(['--log-format', 'json'], true)
    const piped = start([], false)
    for (const r of [onTty, piped]) {
      const line = await lineOf(r, /listening/)
      assert.equal((JSON.parse(line) as { event: string }).event, 'listening')
    }
  })

  it('writes text to a pipe with --log-format text (no colour: not a terminal)', async () => {
    const r = start(['--log-format', 'text'], false)
    const line = await lineOf(r, /listening/)
    assert.match(line, TEXT_LINE)
    assert.ok(!line.includes('\x1b'), line)
  })

  it('refuses a bad --log-format in one line, naming what it takes', async () => {
    const r = start(['--log-format', 'pretty'], false)
    await new Promise((resolve) => r.child.once('exit', resolve))
    assert.equal(r.out.replace(/PID=\d+\n/, ''), 'switchd: --log-format pretty: expected auto, text or json\n')
    assert.equal(r.child.exitCode, 2)
  })
})
