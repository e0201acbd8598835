/**
 * Issue 22, item 2: the gateway recipe of docs/GATEWAY.md ("Try it", the
 * block marked `<!-- example: gateway-netns -->`), run as written with three
 * changes: its namespace `lab1` gets a name of this test's, switchd and
 * tap-agent run inside a namespace of their own with only `lo` (so the
 * gateway's NAT reaches nothing beyond the machine), and the shell stops at
 * its clean-up line until the test has looked. It must leave the host's
 * /etc/resolv.conf as it was (content, inode and mtime), give the TAP inside
 * the namespace its address and the MTU asked for (TAP_AGENT_MTU, which
 * tap-agent reads), and remove everything it made.
 *
 * The recipe before: `tap-agent … &` then `ip link set lab1 netns lab1`
 * (a race: "Cannot find device"), and `udhcpc -i lab1` with Debian's default
 * script, which wrote the host's /etc/resolv.conf (same inode).
 */

import { examplesIn } from '../helpers/doc-examples'
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { spawn, type ChildProcess } from 'node:child_process'
import { run } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { requireTools } from '../helpers/proc'
import { onceWithin } from '../helpers/net'

const ROOT = path.join(__dirname, '..', '..')

/** The fenced block after `<!-- example: NAME -->` in a Markdown file. */
export function exampleBlock (file: string, name: string): string {
  const e = examplesIn(fs.readFileSync(file, 'utf8'), file).find((x) => x.name === name)
  assert.ok(e !== undefined, `${file} has <!-- example: ${name} … -->`)
  return e.body
}

describe('e2e: the gateway recipe of docs/GATEWAY.md touches nothing of the host', function () {
  this.timeout(120_000)
  const id = process.pid % 100000
  const ns = `tswgr${id}`
  const sw = `tswgr-sw${id}`
  const lines: string[] = []
  let shell: ChildProcess | undefined
  let resolvBefore: { text: string, ino: number, mtimeMs: number }

  const resolv = (): { text: string, ino: number, mtimeMs: number } => {
    const st = fs.statSync('/etc/resolv.conf')
    return { text: fs.readFileSync('/etc/resolv.conf', 'utf8'), ino: st.ino, mtimeMs: st.mtimeMs }
  }

  before(async function () {
    requireRoot(this)
    requireTools(this, [{ cmd: 'qemu-system-x86_64', pkg: 'qemu-system-x86' }, { cmd: 'busybox', pkg: 'busybox' }])
    resolvBefore = resolv()
    await run('ip', ['netns', 'add', sw])
    await run('ip', ['-n', sw, 'link', 'set', 'lo', 'up'])
  })

  after(async () => {
    if (shell !== undefined && shell.exitCode === null && shell.signalCode === null) {
      shell.stdin?.end('\n')
      await onceWithin(shell, 'exit', 30_000).catch(() => { shell?.kill('SIGKILL') })
    }
    // Whatever the recipe left if it failed half-way (its processes died with the switch namespace's).
    await run('ip', ['netns', 'del', ns]).catch(() => {})
    fs.rmSync(`/etc/netns/${ns}`, { recursive: true, force: true })
    await run('ip', ['netns', 'del', sw]).catch(() => {})
  })

  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(lines.slice(-60).join('\n') + '\n')
  })

  it('attack: scripts/udhcpc-netns.sh outside a named namespace refuses, and changes nothing (no address, no route)', async () => {
    // In an unnamed namespace of its own (unshare -n): if the script did run, it could change only that one.
    const r = await run('unshare', ['-n', 'sh', '-c',
      `ip link set lo up; interface=lo ip=198.51.100.7 mask=24 router=198.51.100.1 dns=198.51.100.53 sh ${path.join(ROOT, 'scripts', 'udhcpc-netns.sh')} bound; ` +
      'echo "exit=$?"; ip -4 -o addr show; ip route show'])
    assert.match(r, /exit=1/)
    assert.doesNotMatch(r, /198\.51\.100/, 'no address or route applied')
  })

  it('runs as written: a lease in the namespace, the MTU asked for, the host\'s resolv.conf untouched, and all removed after', async () => {
    let script = exampleBlock(path.join(ROOT, 'docs', 'GATEWAY.md'), 'gateway-netns')
    assert.doesNotMatch(script, /ip link set \S+ netns/, 'nothing moves the TAP by hand')
    assert.match(script, /--netns lab1/)
    script = script.replace(/\blab1\b/g, ns)
      .replace(/^node bin\//gm, `ip netns exec ${sw} ${process.execPath} bin/`)
      .replace(/^# clean up/m, 'echo "RECIPE-PAUSED $dir $agent_pid $switchd_pid"; read _\n$&')
    assert.match(script, /RECIPE-PAUSED/, 'the recipe has its clean-up line')
    shell = spawn('bash', ['-e', '-c', script], { cwd: ROOT, env: { ...process.env, TAP_AGENT_MTU: '1400' }, stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    const paused = new Promise<string>((resolve, reject) => {
      const onData = (b: Buffer): void => {
        out += b.toString()
        for (const l of b.toString().split('\n')) if (l !== '') lines.push(l)
        const m = /RECIPE-PAUSED (.*)\n/.exec(out)
        if (m !== null) resolve(m[1] as string)
      }
      shell?.stdout?.on('data', onData)
      shell?.stderr?.on('data', onData)
      shell?.on('exit', (code) => { reject(new Error(`the recipe exited (${String(code)}) before its clean-up:\n${out}`)) })
      setTimeout(() => { reject(new Error(`the recipe did not reach its clean-up in 90 s:\n${out}`)) }, 90_000)
    })
    const [dir, agentPid, switchdPid] = (await paused).split(' ')
    assert.match(out, /inet 10\.0\.2\.10\/24/, 'the static lease, applied inside the namespace')
    assert.match(out, /nameserver 10\.0\.2\.3/, 'DNS went to the namespace\'s own resolv.conf')
    assert.match(out, / 2 received/, 'the gateway answers')
    assert.deepEqual(resolv(), resolvBefore, 'the host\'s /etc/resolv.conf: same content, inode and mtime')
    assert.equal(fs.readFileSync(`/etc/netns/${ns}/resolv.conf`, 'utf8'), 'nameserver 10.0.2.3\n')
    const link = JSON.parse(await run('ip', ['-n', ns, '-j', 'link', 'show', 'dev', ns])) as Array<{ mtu: number }>
    assert.equal(link[0]?.mtu, 1400, 'the MTU asked for, set inside the namespace')
    assert.match(await run('ip', ['-n', ns, 'route', 'show', 'default']), /default via 10\.0\.2\.2 dev/)
    await assert.rejects(run('ip', ['link', 'show', 'dev', ns]), 'no interface of that name in the host namespace')
    // The agent may start before switchd listens: a refused first connection (a warning, then a retry) is the only one allowed.
    const agentLog = fs.readFileSync(path.join(dir as string, 'agent.log'), 'utf8').split('\n').filter((l) => !/"event":"uplink_error".*"error":"ECONNREFUSED"/.test(l))
    assert.doesNotMatch(agentLog.join('\n'), /mtu_not_set|"level":"(warn|error)"/)

    shell.stdin?.end('\n')
    const [code] = await onceWithin<[number | null]>(shell, 'exit', 30_000)
    assert.equal(code, 0, `the recipe's clean-up ran:\n${out}`)
    assert.ok(!fs.existsSync(`/run/netns/${ns}`), 'the namespace is gone')
    assert.ok(!fs.existsSync(`/etc/netns/${ns}`), '/etc/netns/NAME is gone')
    assert.ok(!fs.existsSync(dir as string), 'the temporary directory is gone')
    for (const pid of [agentPid, switchdPid]) assert.throws(() => process.kill(Number(pid), 0), /ESRCH/, `pid ${pid ?? ''} has exited`)
    assert.deepEqual(resolv(), resolvBefore, 'and still after the clean-up')
  })
})
