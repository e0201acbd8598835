/**
 * scripts/install-deps.sh is the one list of system packages (README.md's
 * set-up and .ci/run call it). A test that asks for a tool the script does not
 * install would be skipped on a newcomer's machine, or fail in CI only: so the
 * tools the tests and the programs call are read from their sources here and
 * each must be in the script, with the package the test names.
 */
import { strict as assert } from 'node:assert'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

const ROOT = path.join(__dirname, '..', '..')
const SCRIPT = path.join(ROOT, 'scripts', 'install-deps.sh')

/** The script's TOOLS table: tool (a command or an absolute path) → Debian package. */
function scriptTools (): Map<string, string> {
  const text = fs.readFileSync(SCRIPT, 'utf8')
  const m = /^TOOLS='\n([\s\S]*?)^'$/m.exec(text)
  assert.ok(m !== null, 'install-deps.sh has no TOOLS=\'…\' table')
  const out = new Map<string, string>()
  for (const line of (m[1] as string).split('\n')) {
    const [tool, pkg] = line.trim().split(/\s+/)
    if (tool === undefined || tool === '') continue
    assert.ok(pkg !== undefined && /^[a-z0-9][a-z0-9.+-]+$/.test(pkg), `install-deps.sh: "${line}" names no package`)
    assert.ok(!out.has(tool), `install-deps.sh lists ${tool} twice`)
    out.set(tool, pkg)
  }
  return out
}

function filesUnder (dir: string, ext: RegExp): string[] {
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && ext.test(e.name))
    .map((e) => path.join(e.parentPath, e.name))
}

/** In every Debian (essential packages, or what runs this test): never installed by the script. */
const BASE = new Set(['sh', 'bash', 'sleep', 'id', 'env', 'cat', 'true', 'kill', 'node', 'npm'])

interface Need { tool: string, pkg?: string, where: string }

/** What the tests and the programs run, found the ways they ask for a tool. */
function toolsNeeded (): Need[] {
  const out: Need[] = []
  const files = [...filesUnder(path.join(ROOT, 'test'), /\.ts$/), ...filesUnder(path.join(ROOT, 'src'), /\.ts$/)]
  for (const file of files) {
    if (file === __filename) continue
    const text = fs.readFileSync(file, 'utf8')
    const where = path.relative(ROOT, file)
    // requireTools(this, [{ cmd: 'qemu-system-x86_64', pkg: 'qemu-system-x86' }, ...])
    for (const m of text.matchAll(/\{\s*cmd:\s*'([^']+)',\s*pkg:\s*'([^']+)'\s*\}/g)) out.push({ tool: m[1] as string, pkg: m[2], where })
    // sh -c 'command -v tcpdump', spawnSync('cc', ['--version']), spawnSync('promtool', ['--version'])
    for (const m of text.matchAll(/command -v \$?\{?([a-z0-9_.-]+)/g)) if (m[1] !== 'cmd') out.push({ tool: m[1] as string, where })
    for (const m of text.matchAll(/spawnSync\('([a-z0-9_.+-]+)', \['--version'\]/g)) out.push({ tool: m[1] as string, where })
    // run('ip', …), execFileSync('cc', …), spawn('tcpdump', …): a tool the code runs by name
    for (const m of text.matchAll(/\b(?:run|spawn|spawnSync|execFile|execFileSync|execFileP)\('([a-z][a-z0-9_.-]*)'/g)) out.push({ tool: m[1] as string, where })
    // ip netns exec NS ping …: the tool runs inside a namespace
    for (const m of text.matchAll(/'netns', 'exec', [^,]+, '([a-z/][a-z0-9_./-]*)'/g)) out.push({ tool: m[1] as string, where })
    // CHROMIUM_PATH ?? '/usr/bin/chromium'
    for (const m of text.matchAll(/\?\? '(\/usr\/bin\/[a-z0-9_.-]+)'/g)) out.push({ tool: m[1] as string, where })
  }
  return out.filter((n) => !BASE.has(n.tool))
}

describe('install-deps.sh: the one list of system packages', () => {
  const listed = scriptTools()

  it('installs every tool a test or a program asks for, from the package the test names', () => {
    const needs = toolsNeeded()
    // The collector must find the tools it is meant to find, or this test checks nothing.
    for (const t of ['qemu-system-x86_64', 'busybox', 'vde_switch', '/usr/bin/chromium', 'promtool', 'tcpdump', 'iperf3', 'setpriv', 'script', 'python3', 'openssl', 'cc', 'ip', 'ping', 'clang++', 'g++']) {
      assert.ok(needs.some((n) => n.tool === t), `the collector no longer finds ${t}: fix toolsNeeded()`)
    }
    const problems: string[] = []
    for (const n of needs) {
      const pkg = listed.get(n.tool)
      if (pkg === undefined) problems.push(`${n.where} needs ${n.tool}, which install-deps.sh does not install`)
      else if (n.pkg !== undefined && n.pkg !== pkg) problems.push(`${n.where} names package ${n.pkg} for ${n.tool}, install-deps.sh installs ${pkg}`)
    }
    assert.deepEqual([...new Set(problems)], [])
  })

  it('has the build\'s tools (node-gyp: python3, make, g++)', () => {
    for (const t of ['python3', 'make', 'g++']) assert.ok(listed.has(t), t)
  })

  it('has the fuzz run\'s tools (scripts/fuzz.sh: clang++ and the libFuzzer runtime clang only recommends)', () => {
    assert.equal(listed.get('clang++'), 'clang')
    const rt = [...listed].find(([tool]) => /\/libclang_rt\.fuzzer-x86_64\.a$/.test(tool))
    assert.ok(rt !== undefined, 'install-deps.sh does not install libFuzzer\'s runtime')
    assert.equal(rt[1], 'libclang-rt-14-dev')
    assert.match(fs.readFileSync(path.join(ROOT, 'scripts', 'fuzz.sh'), 'utf8'), /libclang-rt-14-dev/)
  })

  it('--check names each missing tool and its package, and installs nothing', () => {
    // A PATH with only bash, dirname and the script's own helpers: everything else is missing.
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-deps-'))
    try {
      for (const t of ['bash', 'ip', 'ping']) {
        const at = spawnSync('sh', ['-c', `command -v ${t}`], { encoding: 'utf8' }).stdout.trim()
        if (at !== '') fs.symlinkSync(at, path.join(bin, t))
      }
      const r = spawnSync(path.join(bin, 'bash'), [SCRIPT, '--check'], { encoding: 'utf8', env: { PATH: bin }, timeout: 10_000 })
      assert.equal(r.status, 1, r.stdout + r.stderr)
      const line = r.stdout.trim()
      assert.match(line, /^install-deps: missing /)
      assert.match(line, / tcpdump /)
      assert.match(line, /Debian packages: .*\bqemu-system-x86\b/)
      // Found on PATH: not listed as missing.
      assert.doesNotMatch(line.split('(')[0] as string, /\bip\b|\bping\b/)
      const bad = spawnSync(path.join(bin, 'bash'), [SCRIPT, '--chek'], { encoding: 'utf8', env: { PATH: bin }, timeout: 10_000 })
      assert.equal(bad.status, 2)
      assert.match(bad.stderr, /unknown option "--chek" \(expected --check or --help\)/)
    } finally {
      fs.rmSync(bin, { recursive: true, force: true })
    }
  })

  it('attack: installing prometheus for promtool leaves no Prometheus server listening on every address', function () {
    // The script makes /dev/net/tun if it is missing: run it only where that is a no-op.
    if (!fs.existsSync('/dev/net/tun')) this.skip()
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-deps-'))
    try {
      const calls = path.join(bin, 'calls')
      const at = spawnSync('sh', ['-c', 'command -v bash'], { encoding: 'utf8' }).stdout.trim()
      fs.symlinkSync(at, path.join(bin, 'bash'))
      // Root, an apt-get that installs nothing, a systemctl for which the package enabled its service: each records its call.
      const fake = (name: string, body: string): void => { fs.writeFileSync(path.join(bin, name), `#!${at}\necho "${name} $*" >> ${calls}\n${body}\n`, { mode: 0o755 }) }
      fake('id', 'echo 0')
      fake('apt-get', 'exit 0')
      fake('systemctl', 'exit 0')
      const r = spawnSync(path.join(bin, 'bash'), [SCRIPT], { encoding: 'utf8', env: { PATH: bin }, timeout: 10_000 })
      assert.equal(r.status, 0, r.stdout + r.stderr)
      const log = fs.readFileSync(calls, 'utf8')
      assert.match(log, /^apt-get install .*\bprometheus\b/m)
      assert.match(log, /^systemctl disable --now prometheus\.service$/m)
      assert.match(r.stdout, /stopped and disabled the prometheus service its package started/)
    } finally {
      fs.rmSync(bin, { recursive: true, force: true })
    }
  })

  it('is what .ci/run and the README call', () => {
    assert.match(fs.readFileSync(path.join(ROOT, '.ci', 'run'), 'utf8'), /^scripts\/install-deps\.sh$/m)
    assert.doesNotMatch(fs.readFileSync(path.join(ROOT, '.ci', 'run'), 'utf8'), /apt-get install/)
    assert.ok(fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8').includes('sudo scripts/install-deps.sh'), 'README.md does not run scripts/install-deps.sh')
  })
})
