/**
 * The bounded fuzz run in `npm test`: scripts/fuzz.sh builds the libFuzzer
 * targets (fuzz/*.cc, clang with ASan and UBSan) of the native WebSocket
 * reader and of the batch walk, with the UDP runs in it that tap-agent's link
 * writes as one TAP write (native/udp_run.h: each run, cut by a model of the
 * kernel's segmentation, must give back its frames byte for byte), writes
 * their seed corpus from ws's own frames and from UDP runs, and runs each
 * for FUZZ_SECONDS (35 by default: under two minutes in all). Any crash,
 * failed check, leak or undefined behaviour fails here with the reproducer's
 * path (its directory is kept then). Never skipped: without clang or its
 * libFuzzer runtime it fails, naming the script that installs them.
 * `npm run fuzz -- 600` runs longer (docs/SECURITY.md).
 */
import { strict as assert } from 'node:assert'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

const ROOT = path.join(__dirname, '..', '..')
const SECONDS = Number(process.env.FUZZ_SECONDS ?? 35)

describe('fuzz: the native WebSocket reader and the batch walk (scripts/fuzz.sh, bounded)', function () {
  // Two bounded runs and a build: the limit only guards against a hang.
  this.timeout(2 * SECONDS * 1000 + 600_000)

  before(() => {
    const v = spawnSync('clang++', ['--version'], { encoding: 'utf8' })
    assert.ok(v.error === undefined && v.status === 0,
      'clang++ is missing: the fuzz run needs clang and its libFuzzer runtime: sudo scripts/install-deps.sh (Debian packages clang, libclang-rt-14-dev)')
  })

  it(`finds nothing in ${SECONDS} s per target, and says what it ran`, () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-fuzz-'))
    const r = spawnSync('bash', [path.join(ROOT, 'scripts', 'fuzz.sh'), String(SECONDS)],
      { cwd: ROOT, encoding: 'utf8', env: { ...process.env, FUZZ_OUT: out }, timeout: 2 * SECONDS * 1000 + 540_000 })
    const text = `${r.stdout}${r.stderr}`
    if (r.status === 3) assert.fail(`${text.trim()}\n(sudo scripts/install-deps.sh installs clang and libclang-rt-14-dev)`)
    assert.equal(r.status, 0, `the fuzz run found something (kept in ${out}):\n${text.slice(-4000)}`)
    // Both targets ran and executed inputs: a run that did nothing must not pass.
    for (const target of ['ws_reader', 'batch']) assert.match(text, new RegExp(`fuzz: ${target} for ${SECONDS} s`))
    const units = [...text.matchAll(/stat::number_of_executed_units: (\d+)/g)].map((m) => Number(m[1]))
    assert.equal(units.length, 2, text)
    for (const n of units) assert.ok(n > 100, `a target executed only ${n} inputs:\n${text}`)
    assert.match(text, /fuzz: no findings/)
    fs.rmSync(out, { recursive: true, force: true })
  })
})
