/**
 * Issue 22, items 3 and 8: the lab's state file, as switchctl and
 * `tapswitch-lab clean` read it (src/common/lab-state.ts, src/ctl/target.ts),
 * and the names tap-agent must find (src/agent/netns.ts).
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import { describeProcess, readLabStates, stillRunning, writeLabState, processStart, isLoopbackHttp, type LabState } from '../../src/common/lab-state'
import { findTarget, DEFAULT_URL, TargetError } from '../../src/ctl/target'
import { existing, netnsPath, noSuchTap } from '../../src/agent/netns'
import { nearest } from '../../src/common/suggest'

/** This test process, as the lab would record itself. */
function me (): LabState['lab'] {
  const p = describeProcess('tapswitch-lab', process.pid, path.basename(process.argv[1] ?? ''))
  assert.ok(p !== undefined)
  return p
}

function state (over: Partial<LabState> = {}): LabState {
  return { version: 1, command: 'up', lab: me(), url: 'http://127.0.0.1:41234/', startedAt: new Date().toISOString(), processes: [], namespaces: ['tsw-123-a', 'tsw-123-b'], ...over }
}

describe('lab state file and switchctl\'s target', () => {
  let dir: string
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-labstate-')) })
  afterEach(() => { fs.rmSync(dir, { recursive: true, force: true }) })
  const env = (more: Record<string, string> = {}): NodeJS.ProcessEnv => ({ TAPSWITCH_LAB_STATE_DIR: dir, ...more })

  it('--url, then SWITCHCTL_URL, then the lab that is up, then the default; each says where it came from', () => {
    assert.deepEqual(findTarget(undefined, env()), { url: DEFAULT_URL, source: `the default: no --url, no SWITCHCTL_URL, and no lab up in ${dir}` })
    const file = writeLabState(dir, state())
    assert.equal(file, path.join(dir, `${process.pid}.json`))
    assert.equal(fs.statSync(file).mode & 0o777, 0o644, 'no secret in it: switchctl as any user reads it')
    const t = findTarget(undefined, env())
    assert.equal(t.url, 'http://127.0.0.1:41234/')
    assert.match(t.source, new RegExp(`the lab's state file ${file} \\(tapswitch-lab up, pid ${process.pid}\\)`))
    assert.deepEqual(findTarget(undefined, env({ SWITCHCTL_URL: 'http://127.0.0.1:9/' })), { url: 'http://127.0.0.1:9/', source: 'SWITCHCTL_URL' })
    assert.deepEqual(findTarget('http://127.0.0.1:8/', env({ SWITCHCTL_URL: 'http://127.0.0.1:9/' })), { url: 'http://127.0.0.1:8/', source: '--url' })
    assert.equal(findTarget(undefined, env({ SWITCHCTL_URL: '' })).url, 'http://127.0.0.1:41234/', 'an empty SWITCHCTL_URL is no URL')
  })

  it('a lab that died is not used, and the default says clean removes what it left', () => {
    const dead = { ...me(), start: me().start + 1 }
    assert.equal(stillRunning(dead), false, 'same PID, another start time: another process')
    writeLabState(dir, state({ lab: dead }))
    const t = findTarget(undefined, env())
    assert.equal(t.url, DEFAULT_URL)
    assert.match(t.source, /a lab that died left .*\.json: sudo tapswitch-lab clean removes it/)
  })

  it('two labs up: an error naming both, no guess', () => {
    writeLabState(dir, state())
    fs.writeFileSync(path.join(dir, '1.json'), JSON.stringify(state({ url: 'http://127.0.0.1:5555/' })))
    assert.throws(() => findTarget(undefined, env()), (err: Error) => err instanceof TargetError && /2 labs are up \(.*127\.0\.0\.1:5555.*127\.0\.0\.1:41234.*\): choose one with --url or SWITCHCTL_URL/.test(err.message))
  })

  it('attack: a state file never sends switchctl (and its token) beyond loopback', () => {
    writeLabState(dir, state({ url: 'http://198.51.100.7:8080/' }))
    assert.equal(findTarget(undefined, env()).url, DEFAULT_URL)
    for (const bad of ['https://127.0.0.1/', 'http://localhost.evil.example/', 'http://u:p@127.0.0.1/', 'http://[::1]:80/', 'file:///etc/passwd']) assert.equal(isLoopbackHttp(bad), false, bad)
    assert.equal(isLoopbackHttp('http://127.0.0.1:41234/'), true)
  })

  it('attack: a state file owned by someone else (not root, not me) is not read', () => {
    const file = writeLabState(dir, state())
    if (process.getuid?.() === 0) fs.chownSync(file, 65534, 65534)
    const owner = fs.statSync(file).uid
    assert.notEqual(owner, 0)
    assert.equal(readLabStates(dir, owner).length, 1, 'its owner reads it')
    assert.equal(readLabStates(dir, owner + 1).length, 0, 'another user does not')
  })

  it('attack: clean deletes only namespaces named as the lab names them, so a state file cannot name another', () => {
    for (const ns of [['eth0'], ['../../etc'], ['tsw-1-a', 'host-ns']]) {
      fs.writeFileSync(path.join(dir, '7.json'), JSON.stringify(state({ namespaces: ns })))
      assert.equal(readLabStates(dir).length, 0, ns.join(','))
    }
    fs.writeFileSync(path.join(dir, '7.json'), JSON.stringify(state()))
    assert.equal(readLabStates(dir).length, 1)
  })

  it('attack: a planted symlink, FIFO, huge or malformed file chooses nothing and blocks nothing', () => {
    // A valid state file elsewhere (the tests' own, owned by me), linked in: the lab writes plain files, never links.
    const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-labstate-other-'))
    try {
      const real = writeLabState(elsewhere, state())
      fs.symlinkSync(real, path.join(dir, '11.json'))
      assert.equal(readLabStates(dir).length, 0, 'a symlink is not followed')
      assert.equal(findTarget(undefined, env()).url, DEFAULT_URL)
      // None of these may block or be read: a FIFO nobody writes, 2 MiB of JSON, not JSON.
      execFileSync('mkfifo', [path.join(dir, '12.json')])
      fs.writeFileSync(path.join(dir, '13.json'), JSON.stringify({ ...state(), pad: 'x'.repeat(2 << 20) }))
      fs.writeFileSync(path.join(dir, '14.json'), '{"version": 1, "url": ')
      assert.equal(readLabStates(dir).length, 0)
      fs.copyFileSync(real, path.join(dir, '15.json'))
      assert.deepEqual(readLabStates(dir).map((f) => path.basename(f.file)), ['15.json'], 'a plain file beside them is read')
    } finally {
      fs.rmSync(elsewhere, { recursive: true, force: true })
    }
  })

  it('attack: the lab writes its state only into a directory nobody else can write, never through a link', () => {
    const victim = path.join(dir, 'victim')
    fs.writeFileSync(victim, 'precious\n')
    const labs = path.join(dir, 'labs')
    fs.mkdirSync(labs, { mode: 0o755 })
    // A link left where the temporary file goes: replaced, not written through.
    fs.symlinkSync(victim, path.join(labs, `${process.pid}.json.tmp`))
    const file = writeLabState(labs, state())
    assert.equal(fs.readFileSync(victim, 'utf8'), 'precious\n')
    assert.equal(fs.lstatSync(file).isFile(), true)
    // A directory others may write: refused, with what to do.
    fs.chmodSync(labs, 0o777)
    assert.throws(() => writeLabState(labs, state()), /is not a directory of this user's that only it can write \(owner uid \d+, mode 777\): remove it, or set TAPSWITCH_LAB_STATE_DIR/)
  })

  it('processStart reads this process\'s start time, and none for a PID that does not exist', () => {
    const start = processStart(process.pid)
    assert.ok(start !== undefined && start > 0)
    assert.equal(processStart(2 ** 22 + 1), undefined, 'no such process')
  })
})

describe('tap-agent names that must exist', () => {
  it('nearest (as --netns and --attach use it): a typo\'s nearest name, none when nothing is near', () => {
    assert.equal(nearest('lab2', ['lab1', 'other']), 'lab1')
    assert.equal(nearest('tap0', ['eth0-long', 'br0']), undefined)
    assert.equal(existing('x', [], 'persistent TAPs'), ' (there are no persistent TAPs)')
    assert.equal(existing('tap1', ['tap0', 'vm1'], 'persistent TAPs'), ' (did you mean tap0? persistent TAPs: tap0, vm1)')
  })

  it('--netns: a bad or missing namespace is one line naming it and how to create it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-netns-'))
    try {
      fs.writeFileSync(path.join(dir, 'lab1'), '')
      assert.equal(netnsPath('lab1', dir), path.join(dir, 'lab1'))
      assert.throws(() => netnsPath('lab2', dir), { code: 'TSW_ERR_CONFIG', message: '--netns lab2: no network namespace lab2; create it with `ip netns add lab2` (did you mean lab1? namespaces: lab1)' })
      for (const bad of ['', '..', 'a/b']) assert.throws(() => netnsPath(bad, dir), /not a namespace name/)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('--attach with a name that has no persistent TAP says so, what exists and how to make one', () => {
    assert.equal(noSuchTap('tpa0', 'lab1', ['tap0']),
      '--attach --tap tpa0: no persistent TAP tpa0 in namespace lab1 (did you mean tap0? persistent TAPs: tap0); make one with `ip netns exec lab1 ip tuntap add dev tpa0 mode tap`, or leave out --attach to have tap-agent create it')
  })
})
