/**
 * The docs' command examples, run as pasted (test/e2e/docs-examples.e2e.ts).
 *
 * An example is a fenced block right after a marker line (docs/CONTRIBUTING.md has the syntax):
 *
 *   <!-- example: NAME [cwd=repo] [timeout=S] [session=S] [background ready="TEXT"] [retry] [check=exact|columns] [cols=A,B] [status=fail] -->
 *
 * A block whose lines start with `$ ` is a transcript: each `$ ` line is a command, the lines under it
 * its expected output (checked with `check=`); any other block is a script, each complete command a
 * step. Every step must exit 0 (`status=fail`: non-zero), as a user pasting it would see it succeed.
 *
 * Each example (or session: the blocks with the same `session` in one file, in order) runs as root in a
 * sandbox of its own: new network, mount and PID namespaces (`unshare`), so its traffic stays on its own
 * `lo` and in the namespaces it makes, `ip netns` names live on a private /run, /etc and /var/lib are
 * overlays (a write to /etc other than /etc/netns/NAME fails the example: pasted, it would change the
 * host), and when it ends or its time runs out the kernel stops every process it started (the sandbox's PID 1 is the one we started;
 * nothing is stopped by name). `switchd`, `tap-agent`, `switchctl` and `tapswitch-lab` are on PATH, as
 * `npm install -g .` puts them, and `sudo` runs its command as root (we are root already).
 * `tier=deploy` leaves an example to a test of its own (it writes /etc: test/deploy/starter.test.ts).
 */
import { spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

export const ROOT = path.join(__dirname, '..', '..')

export interface Example {
  name: string
  file: string
  /** 1-based line of the marker. */
  line: number
  lang: string
  body: string
  opts: Map<string, string>
}

/** The options a marker may carry; a value of '' is a flag. */
export const OPTIONS: Record<string, RegExp> = {
  cwd: /^(repo|tmp)$/,
  timeout: /^\d+$/,
  session: /^[\w-]+$/,
  background: /^$/,
  ready: /^.+$/,
  retry: /^$/,
  check: /^(exact|columns)$/,
  cols: /^[A-Z][A-Z ]*(,[A-Z][A-Z ]*)*$/,
  status: /^fail$/,
  /** Not run: the block is written to this file in the example's working folder (a configuration the next block uses). */
  file: /^[\w.-]+$/,
  /** Run by a test of that tier, not by test/e2e/docs-examples.e2e.ts (deploy: test/deploy/starter.test.ts). */
  tier: /^deploy$/
}

const MARKER = /^\s*<!--\s*example:\s*([\w-]+)(.*?)\s*-->\s*$/

/** The marked examples of one markdown text; throws on a marker that is malformed or has no block after it. */
export function examplesIn (md: string, file: string): Example[] {
  const lines = md.split('\n')
  const out: Example[] = []
  let inFence = false
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i] as string
    // A marker shown inside a block (docs/CONTRIBUTING.md) is text, not a marker.
    if (/^\s*```/.test(l)) { inFence = !inFence; continue }
    if (inFence || !l.includes('<!-- example')) continue
    const m = MARKER.exec(l)
    if (m === null) throw new Error(`${file}:${i + 1}: malformed example marker (expected <!-- example: NAME [key=value ...] -->)`)
    const opts = new Map<string, string>()
    for (const o of (m[2] as string).matchAll(/(\w+)(?:=("[^"]*"|\S+))?/g)) {
      const key = o[1] as string
      const value = (o[2] ?? '').replace(/^"(.*)"$/, '$1')
      const re = OPTIONS[key]
      if (re === undefined) throw new Error(`${file}:${i + 1}: unknown example option "${key}" (expected one of ${Object.keys(OPTIONS).join(', ')})`)
      if (!re.test(value)) throw new Error(`${file}:${i + 1}: example option ${key}=${value} does not match ${String(re)}`)
      opts.set(key, value)
    }
    if (opts.has('background') !== opts.has('ready')) throw new Error(`${file}:${i + 1}: "background" needs ready="TEXT" (the line that says it is up), and "ready" needs "background"`)
    // Indented in a list item: the fence's indent is taken off every line of the block.
    const fence = /^(\s*)(```+)\s*([\w-]*)\s*$/.exec(lines[i + 1] ?? '')
    if (fence === null) throw new Error(`${file}:${i + 1}: example marker "${m[1] as string}" is not followed by a fenced block on the next line`)
    const end = lines.findIndex((x, j) => j > i + 1 && x.trim() === fence[2])
    if (end < 0) throw new Error(`${file}:${i + 2}: example "${m[1] as string}": the fenced block never ends`)
    const indent = (fence[1] as string).length
    out.push({ name: m[1] as string, file, line: i + 1, lang: fence[3] as string, body: lines.slice(i + 2, end).map((x) => x.slice(Math.min(indent, x.length - x.trimStart().length))).join('\n'), opts })
    i = end
  }
  const names = out.map((e) => e.name)
  const dup = names.find((n, k) => names.indexOf(n) !== k)
  if (dup !== undefined) throw new Error(`${file}: two examples are named "${dup}"`)
  return out
}

/** The markdown files whose examples run: README.md and docs/*.md. */
export function docFiles (): string[] {
  return ['README.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)]
}

/** The examples grouped as they run: one group per session, or per example without one. */
export function exampleGroups (): Array<{ title: string, examples: Example[] }> {
  const groups = new Map<string, Example[]>()
  for (const file of docFiles()) {
    for (const e of examplesIn(fs.readFileSync(path.join(ROOT, file), 'utf8'), file)) {
      const key = `${file}: ${e.opts.get('session') ?? e.name}`
      groups.set(key, [...(groups.get(key) ?? []), e])
    }
  }
  return [...groups].map(([title, examples]) => ({ title, examples }))
}

export interface Step {
  /** What the reader pastes (without the prompt). */
  command: string
  /** The transcript's lines under it; undefined in a script. */
  expected?: string[]
}

/** A transcript's commands and their expected output, or a script's complete commands (as bash -n sees them). */
export function stepsOf (e: Example): Step[] {
  const lines = e.body.split('\n')
  if (lines.some((l) => l.startsWith('$ '))) {
    const steps: Step[] = []
    for (let i = 0; i < lines.length; i++) {
      const l = lines[i] as string
      if (!l.startsWith('$ ')) {
        if (steps.length === 0 && l.trim() !== '') throw new Error(`${e.file}:${e.line}: transcript "${e.name}" has output before its first $ command`)
        steps[steps.length - 1]?.expected?.push(l)
        continue
      }
      let command = l.slice(2)
      while (command.endsWith('\\') && i + 1 < lines.length) command += '\n' + (lines[++i] as string).replace(/^> /, '')
      steps.push({ command, expected: [] })
    }
    return steps
  }
  const steps: Step[] = []
  let pending = ''
  let heredoc = '' // the word that ends a here-document the command opened (bash -n accepts it unended)
  for (const l of lines) {
    pending = pending === '' ? l : `${pending}\n${l}`
    if (heredoc !== '') { if (l === heredoc) heredoc = ''; else continue }
    if (pending.trim() === '' || pending.trim().startsWith('#')) { pending = ''; continue }
    const opened = /<<-?\s*(['"]?)(\w+)\1\s*$/.exec(l)
    if (opened !== null && !l.trimStart().startsWith('#')) { heredoc = opened[2] as string; continue }
    if (spawnSync('bash', ['-n', '-c', pending]).status === 0 && !pending.endsWith('\\')) { steps.push({ command: pending }); pending = '' }
  }
  if (pending.trim() !== '') throw new Error(`${e.file}:${e.line}: script "${e.name}" ends inside a command: ${pending}`)
  return steps
}

/**
 * The check of one step, run in the sandbox by node (so a retry can use it): exit 0 or a one-line reason.
 * argv: spec.json, the output file, the exit status.
 */
const CHECKER = String.raw`
const fs = require('fs')
const [specFile, outFile, status] = process.argv.slice(2)
const spec = JSON.parse(fs.readFileSync(specFile, 'utf8'))
const out = fs.readFileSync(outFile, 'utf8')
const fail = (why) => { process.stdout.write(why + '\n'); process.exit(1) }
if (spec.fail ? status === '0' : status !== '0') fail(spec.fail ? 'it succeeded; the docs show it failing' : 'it exited with status ' + status)
const norm = (text) => text.map((l) => l.trim().replace(/\s+/g, ' ')).filter((l, i, a) => l !== '' || a.slice(i).some((x) => x.trim() !== ''))
const trimEnd = (a) => { while (a.length > 0 && a[a.length - 1] === '') a.pop(); return a }
// A command the docs show no output for is checked by its status alone (a job it started may print later).
if ((spec.expected || []).every((l) => l.trim() === '')) { process.stdout.write('ok\n'); process.exit(0) }
const want = trimEnd(norm(spec.expected || []))
const got = trimEnd(norm(out.split('\n')))
if (spec.check === 'exact' && JSON.stringify(want) !== JSON.stringify(got)) fail('its output differs from the docs')
if (spec.check === 'columns') {
  const cells = (l) => l.trim().split(/\s{2,}/)
  const rawWant = (spec.expected || []).filter((l) => l.trim() !== '')
  const rawGot = out.split('\n').filter((l) => l.trim() !== '')
  if (JSON.stringify(cells(rawWant[0])) !== JSON.stringify(cells(rawGot[0] || ''))) fail('its columns are ' + JSON.stringify(cells(rawGot[0] || '')) + ', the docs show ' + JSON.stringify(cells(rawWant[0])))
  if (rawWant.length !== rawGot.length) fail('it printed ' + (rawGot.length - 1) + ' rows, the docs show ' + (rawWant.length - 1))
  const head = cells(rawWant[0])
  for (const col of spec.cols || []) {
    const k = head.indexOf(col)
    if (k < 0) fail('no column ' + col)
    const column = (rows) => rows.slice(1).map((r) => cells(r)[k]).sort()
    if (JSON.stringify(column(rawWant)) !== JSON.stringify(column(rawGot))) fail('its ' + col + ' column is ' + JSON.stringify(column(rawGot)) + ', the docs show ' + JSON.stringify(column(rawWant)))
  }
}
process.stdout.write('ok\n')
`

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`

export interface RunResult {
  /** Undefined when every step passed; else which step failed, why, and what it printed. */
  failure?: string
  log: string
}

/** Run a group of examples in one sandbox (see the header); resolves once it is over and its processes are gone. */
export async function runGroup (examples: Example[]): Promise<RunResult> {
  const first = examples[0] as Example
  const timeoutS = Math.max(...examples.map((e) => Number(e.opts.get('timeout') ?? 60)))
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-docs-'))
  const work = path.join(out, 'work')
  const bin = path.join(out, 'bin')
  fs.mkdirSync(work)
  fs.mkdirSync(bin)
  fs.chmodSync(out, 0o755)
  for (const [cmd, js] of [['switchd', 'switchd'], ['tap-agent', 'tap-agent'], ['switchctl', 'switchctl'], ['tapswitch-lab', 'tapswitch-lab']]) {
    fs.writeFileSync(path.join(bin, cmd as string), `#!/bin/sh\nexec ${q(process.execPath)} ${q(path.join(ROOT, 'bin', `${js as string}.js`))} "$@"\n`, { mode: 0o755 })
  }
  // We are root: sudo runs the command (VAR=value assignments included), keeping PATH as a root shell's would.
  fs.writeFileSync(path.join(bin, 'sudo'), '#!/bin/sh\nwhile [ "${1#-}" != "$1" ]; do shift; done\nexec env "$@"\n', { mode: 0o755 })
  fs.writeFileSync(path.join(out, 'check.js'), CHECKER)

  for (const d of ['etc-up', 'etc-work', 'var-up', 'var-work']) fs.mkdirSync(path.join(out, d))
  const lines: string[] = [
    // A private /run: `ip netns add` names live there and go with the sandbox.
    'mount -t tmpfs tmpfs /run',
    // /etc and /var/lib through overlays: what the example writes there lands in our folder, not on the host.
    // Writes to /etc are then looked at: only /etc/netns/NAME (a namespace's own resolv.conf) is the example's.
    `mount -t overlay overlay -o lowerdir=/etc,upperdir=${q(path.join(out, 'etc-up'))},workdir=${q(path.join(out, 'etc-work'))} /etc || exit 3`,
    `mount -t overlay overlay -o lowerdir=/var/lib,upperdir=${q(path.join(out, 'var-up'))},workdir=${q(path.join(out, 'var-work'))} /var/lib || exit 3`,
    'ip link set lo up',
    'deadline=$((SECONDS + ' + String(timeoutS) + '))',
    'step () {  # id retry: run a step in this shell (its jobs and exports stay), check it, retry while allowed',
    '  while :; do',
    `    . ${q(out)}/$1.sh > ${q(out)}/$1.out 2>&1 < /dev/null; st=$?`,
    `    node ${q(out)}/check.js ${q(out)}/$1.json ${q(out)}/$1.out $st > ${q(out)}/$1.verdict 2>&1 && return 0`,
    '    [ "$2" = 1 ] && [ $SECONDS -lt $deadline ] || return 1',
    '    sleep 0.5',
    '  done',
    '}'
  ]
  const steps: Array<{ id: string, e: Example, s: Step }> = []
  let n = 0
  for (const e of examples) {
    const cwd = e.opts.get('cwd') === 'repo' ? ROOT : work
    lines.push(`cd ${q(cwd)}`)
    const file = e.opts.get('file')
    if (file !== undefined) {
      fs.writeFileSync(path.join(cwd === ROOT ? work : cwd, file), e.body + '\n')
      continue
    }
    if (e.opts.has('background')) {
      const id = `s${n++}`
      fs.writeFileSync(path.join(out, `${id}.sh`), e.body + '\n')
      steps.push({ id, e, s: { command: e.body } })
      // Started as the reader starts it in a terminal of its own; the next block waits for the line that says it is up.
      lines.push(`( . ${q(out)}/${id}.sh ) > ${q(out)}/${id}.out 2>&1 < /dev/null & bg=$!`,
        `until grep -qF -- ${q(e.opts.get('ready') as string)} ${q(out)}/${id}.out; do`,
        `  if ! kill -0 $bg 2>/dev/null; then echo "it exited before printing the ready line" > ${q(out)}/${id}.verdict; exit 1; fi`,
        `  if [ $SECONDS -ge $deadline ]; then echo "no ready line within the example's timeout" > ${q(out)}/${id}.verdict; exit 1; fi`,
        '  sleep 0.2',
        'done',
        `echo ok > ${q(out)}/${id}.verdict`)
      continue
    }
    for (const s of stepsOf(e)) {
      const id = `s${n++}`
      fs.writeFileSync(path.join(out, `${id}.sh`), s.command + '\n')
      const cols = e.opts.get('cols')
      fs.writeFileSync(path.join(out, `${id}.json`), JSON.stringify({ expected: s.expected, check: s.expected === undefined ? undefined : e.opts.get('check'), cols: cols === undefined ? [] : cols.split(','), fail: e.opts.get('status') === 'fail' }))
      steps.push({ id, e, s })
      lines.push(`step ${id} ${e.opts.has('retry') ? 1 : 0} || exit 1`)
    }
  }
  lines.push('exit 0')
  fs.writeFileSync(path.join(out, 'main.sh'), lines.join('\n') + '\n')

  const child = spawn('unshare', ['--net', '--mount', '--pid', '--fork', '--kill-child', '--mount-proc', '--', 'bash', path.join(out, 'main.sh')], {
    cwd: work,
    env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`, HOME: work, CI: undefined },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let log = ''
  child.stdout.on('data', (d: Buffer) => { log += d.toString() })
  child.stderr.on('data', (d: Buffer) => { log += d.toString() })
  let timedOut = false
  // The sandbox's PID 1 dies with unshare (--kill-child), and every process of the example with it.
  const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL') }, (timeoutS + 15) * 1000)
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => { resolve(c) }))
  clearTimeout(timer)
  try {
    for (const { id, e, s } of steps) {
      const verdict = readOr(path.join(out, `${id}.verdict`)).trim()
      if (verdict === '') {
        const why = timedOut ? `did not finish within ${timeoutS} s` : 'did not run'
        return { failure: `${e.file}:${e.line} example "${e.name}": ${JSON.stringify(s.command.split('\n')[0])} ${why}\n${tail(readOr(path.join(out, `${id}.out`)))}\n${tail(log)}`, log }
      }
      if (verdict === 'ok') continue
      const expected = s.expected === undefined || s.expected.length === 0 ? '' : `\n--- the docs show:\n${s.expected.join('\n')}`
      return { failure: `${e.file}:${e.line} example "${e.name}": ${JSON.stringify(s.command)}: ${verdict}${expected}\n--- it printed:\n${tail(readOr(path.join(out, `${id}.out`)))}`, log }
    }
    if (code !== 0) return { failure: `${first.file}:${first.line} example "${first.name}": the sandbox exited with ${String(code)}${timedOut ? ' (timed out)' : ''}\n${tail(log)}`, log }
    const wrote = fs.readdirSync(path.join(out, 'etc-up'), { recursive: true }).map(String).filter((f) => f !== 'netns' && !f.startsWith('netns/'))
    if (wrote.length > 0) return { failure: `${first.file}:${first.line} example "${first.name}" wrote ${wrote.map((f) => `/etc/${f}`).join(', ')}: pasted, it changes the host's (the sandbox kept it off the host)`, log }
    return { log }
  } finally {
    if (process.env.KEEP_DOCS_EXAMPLES === undefined) fs.rmSync(out, { recursive: true, force: true })
  }
}

function readOr (file: string): string {
  try { return fs.readFileSync(file, 'utf8') } catch { return '' }
}

function tail (text: string, n = 40): string {
  return text.split('\n').slice(-n).join('\n')
}
