/**
 * Issue 22, items 3 and 8: `tapswitch-lab up` as a newcomer runs it. It
 * says where switchd is (the export line, and a state file switchctl reads),
 * cleans up when its terminal closes (SIGHUP to its process group, as the
 * kernel sends it) as on Ctrl-C, and `tapswitch-lab clean` removes what a
 * lab killed with SIGKILL left: its switchd, agents and namespaces, by the
 * PIDs it recorded, and nothing else (a PID reused by another process is
 * left alone). Before: SIGHUP left switchd, the agents and the namespaces,
 * and no command removed them.
 *
 * Each lab here has a state directory of this test's own; everything is
 * stopped by PID, also when a test fails.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { run, Lab } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { onceWithin, waitFor } from '../helpers/net'
import { processStart, readLabStates, type LabState } from '../../src/common/lab-state'

const ROOT = path.join(__dirname, '..', '..')
const LAB = path.join(ROOT, 'bin', 'tapswitch-lab.js')
const CTL = path.join(ROOT, 'bin', 'switchctl.js')

interface Up { child: ChildProcess, out: string[], state: LabState, file: string }

describe('e2e: tapswitch-lab up, SIGHUP, and clean', function () {
  this.timeout(120_000)
  let dir: string
  const started: ChildProcess[] = []
  const recorded: LabState[] = []

  const env = (): NodeJS.ProcessEnv => ({ ...process.env, TAPSWITCH_LAB_STATE_DIR: dir, SWITCHCTL_URL: '' })
  const alive = (pid: number, start: number): boolean => processStart(pid) === start
  const nsExists = (ns: string): boolean => fs.existsSync(`/run/netns/${ns}`)

  /** Start `tapswitch-lab up --hosts 2` in a process group of its own (as a terminal's job is); resolve once it is up. */
  async function up (): Promise<Up> {
    const child = spawn(process.execPath, [LAB, 'up', '--hosts', '2'], { env: env(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    started.push(child)
    const out: string[] = []
    child.stdout?.on('data', (b: Buffer) => { out.push(b.toString()) })
    child.stderr?.on('data', (b: Buffer) => { out.push(b.toString()) })
    await waitFor(() => out.join('').includes('the lab is up') || child.exitCode !== null, 60_000, 'the lab up')
    assert.ok(out.join('').includes('the lab is up'), out.join(''))
    const found = readLabStates(dir).find((f) => f.state.lab.pid === child.pid)
    assert.ok(found !== undefined, 'a state file for this lab')
    recorded.push(found.state)
    return { child, out, state: found.state, file: found.file }
  }

  before(function () {
    requireRoot(this)
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-labcli-'))
  })

  after(async () => {
    for (const c of started) if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) { try { process.kill(-c.pid, 'SIGKILL') } catch {} }
    // Whatever a failed test left: the recorded processes (if still those), then the namespaces.
    for (const s of recorded) {
      for (const p of s.processes) if (alive(p.pid, p.start)) { try { process.kill(p.pid, 'SIGKILL') } catch {} }
      for (const ns of s.namespaces) await run('ip', ['netns', 'del', ns]).catch(() => {})
    }
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
  })

  it('up prints the export line and writes a state file switchctl reads; SIGHUP to its process group removes everything', async () => {
    const u = await up()
    const text = u.out.join('')
    assert.match(text, new RegExp(`export SWITCHCTL_URL=${u.state.url.replace(/\./g, '\\.')}\\n`))
    assert.match(u.state.url, /^http:\/\/127\.0\.0\.1:\d+\/$/)
    assert.equal(fs.statSync(u.file).mode & 0o777, 0o644)
    assert.deepEqual(u.state.processes.map((p) => p.role).sort(), ['agent-a', 'agent-b', 'switchd'])
    for (const ns of u.state.namespaces) assert.ok(nsExists(ns), ns)

    const ctl = spawnSync(process.execPath, [CTL, 'ports'], { env: env(), encoding: 'utf8', timeout: 60_000 })
    assert.equal(ctl.status, 0, ctl.stderr)
    assert.match(ctl.stdout, /host-a .*\n.*host-b|host-b .*\n.*host-a/, 'switchctl with no --url found the lab')

    process.kill(-(u.child.pid as number), 'SIGHUP')
    const [code, signal] = await onceWithin<[number | null, string | null]>(u.child, 'exit', 60_000)
    assert.equal(signal, null, 'it handled SIGHUP (did not die of it)')
    assert.equal(code, 129)
    assert.match(u.out.join(''), /cleaned up/)
    for (const p of u.state.processes) assert.equal(alive(p.pid, p.start), false, `${p.role} stopped`)
    for (const ns of u.state.namespaces) assert.equal(nsExists(ns), false, `${ns} removed`)
    assert.equal(fs.existsSync(u.file), false, 'the state file removed')
  })

  it('a lab killed with SIGKILL leaves switchd, agents and namespaces; tapswitch-lab clean removes them all, by PID', async () => {
    const u = await up()
    process.kill(u.child.pid as number, 'SIGKILL')
    await onceWithin(u.child, 'exit', 30_000)
    // The agents outlive it (switchd too, until it next writes its log to the dead lab's pipe).
    for (const p of u.state.processes.filter((q) => q.role !== 'switchd')) assert.ok(alive(p.pid, p.start), `${p.role} outlived the lab`)
    for (const ns of u.state.namespaces) assert.ok(nsExists(ns))

    const r = spawnSync(process.execPath, [LAB, 'clean'], { env: env(), encoding: 'utf8', timeout: 60_000 })
    assert.equal(r.status, 0, r.stderr)
    // Each process clean finds is stopped by PID; any of them (an agent too) may have died meanwhile of writing its log to
    // the dead lab's pipe (seen in CI: agent-b). So: every "stopped" line names a recorded process by its PID, at least
    // one is stopped by clean, and below, none is left alive.
    const stopped = [...r.stdout.matchAll(/stopped (\S+) \(pid (\d+)\)/g)]
    assert.ok(stopped.length > 0, r.stdout)
    for (const m of stopped) assert.ok(u.state.processes.some((p) => p.role === m[1] && p.pid === Number(m[2])), `clean stopped ${m[0]}, not a process of the lab`)
    for (const ns of u.state.namespaces) assert.match(r.stdout, new RegExp(`removed namespace ${ns}`))
    for (const p of u.state.processes) assert.equal(alive(p.pid, p.start), false, `${p.role} stopped`)
    for (const ns of u.state.namespaces) assert.equal(nsExists(ns), false, `${ns} removed`)
    assert.equal(fs.existsSync(u.file), false)
    const again = spawnSync(process.execPath, [LAB, 'clean'], { env: env(), encoding: 'utf8', timeout: 60_000 })
    assert.equal(again.status, 0)
    assert.match(again.stdout, /nothing to clean/)
  })

  it('attack: clean never stops a process whose PID the lab recorded but which is another process now, nor a lab still running', async () => {
    // A process of ours, recorded with another start time: the PID reused after the lab's agent exited.
    const other = spawn('sleep', ['300'], { stdio: 'ignore' })
    started.push(other)
    const start = processStart(other.pid as number) as number
    const u = await up()
    const fake: LabState = { ...u.state, lab: { ...u.state.lab, pid: 999_999, start: 1 }, processes: [{ role: 'agent-a', pid: other.pid as number, start: start + 1, script: 'sleep' }], namespaces: [] }
    fs.writeFileSync(path.join(dir, '999999.json'), JSON.stringify(fake))
    // attack: a dead lab's file that lists the running lab's namespaces (two PIDs 100000 apart once shared a tag).
    fs.writeFileSync(path.join(dir, '999998.json'), JSON.stringify({ ...fake, lab: { ...fake.lab, pid: 999_998 }, processes: [], namespaces: u.state.namespaces }))
    const r = spawnSync(process.execPath, [LAB, 'clean'], { env: env(), encoding: 'utf8', timeout: 60_000 })
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, new RegExp(`left namespace ${u.state.namespaces[0] ?? ''}: the running lab of pid ${u.child.pid as number} has it`))
    assert.ok(alive(other.pid as number, start), 'the other process is left alone')
    assert.doesNotMatch(r.stdout, /stopped/)
    assert.match(r.stdout, new RegExp(`left alone: the lab of pid ${u.child.pid as number} is running`))
    for (const ns of u.state.namespaces) assert.ok(nsExists(ns), 'the running lab keeps its namespaces')
    assert.equal(fs.existsSync(path.join(dir, '999999.json')), false, 'the dead lab\'s file is removed')
    assert.equal(fs.existsSync(path.join(dir, '999998.json')), false)
    other.kill('SIGKILL')
    process.kill(-(u.child.pid as number), 'SIGINT')
    assert.equal((await onceWithin<[number | null]>(u.child, 'exit', 60_000))[0], 130)
    for (const ns of u.state.namespaces) assert.equal(nsExists(ns), false)
  })

  it('attack: a lab whose namespace name exists already fails to start and deletes nothing it did not make', async () => {
    // Another's namespace with this lab's name (another lab's, or a PID 100000 apart when the tag was pid % 100000).
    const ns = `tsw-${process.pid}-a`
    await run('ip', ['netns', 'add', ns])
    try {
      const lab = new Lab({ hosts: 1 })
      await assert.rejects(lab.start(), /File exists|exists/)
      assert.ok(nsExists(ns), 'the namespace the lab did not make is still there')
    } finally {
      await run('ip', ['netns', 'del', ns]).catch(() => {})
    }
  })

  it('attack: clean leaves a namespace named for a dead lab\'s PID while another process has that PID', async () => {
    // The dead lab's PID is reused by a process whose own lab (tag: its PID) made tsw-<PID>-a.
    const other = spawn('sleep', ['300'], { stdio: 'ignore' })
    started.push(other)
    const pid = other.pid as number
    const ns = `tsw-${pid}-a`
    await run('ip', ['netns', 'add', ns])
    try {
      const dead: LabState = { version: 1, command: 'up', lab: { role: 'tapswitch-lab', pid, start: 1, script: 'tapswitch-lab.js' }, url: '', startedAt: new Date().toISOString(), processes: [], namespaces: [ns] }
      const file = path.join(dir, `${pid}.json`)
      fs.writeFileSync(file, JSON.stringify(dead))
      const r = spawnSync(process.execPath, [LAB, 'clean'], { env: env(), encoding: 'utf8', timeout: 60_000 })
      assert.equal(r.status, 1, r.stdout + r.stderr)
      assert.match(r.stderr, new RegExp(`namespace ${ns} left: pid ${pid} is another process now, which may have made it; if it is the dead lab's, sudo ip netns del ${ns}`))
      assert.ok(nsExists(ns), 'left alone')
      assert.ok(fs.existsSync(file), 'the file stays while something is left')
      fs.rmSync(file)
    } finally {
      other.kill('SIGKILL')
      await run('ip', ['netns', 'del', ns]).catch(() => {})
    }
  })
})
