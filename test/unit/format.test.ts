/**
 * The C++ of native/ and fuzz/ is formatted as .clang-format says (clang-format from
 * Debian's package, which scripts/install-deps.sh installs): `npm test` fails
 * on a file clang-format would change, naming it and the command that fixes
 * it. No TypeScript here: that is the linter's.
 */
import { strict as assert } from 'node:assert'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'

const ROOT = path.join(__dirname, '..', '..')
const FIX = 'npm run format'

/** Every C++ source and header under native/ and fuzz/, relative to the repository. */
function nativeSources (): string[] {
  return ['native', 'fuzz'].flatMap((dir) => fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(cc|h)$/.test(e.name))
    .map((e) => path.relative(ROOT, path.join(e.parentPath, e.name))))
    .sort()
}

function clangFormat (args: string[], input?: string): { status: number | null, stderr: string } {
  const r = spawnSync('clang-format', args, { cwd: ROOT, encoding: 'utf8', input, timeout: 60_000 })
  if (r.error !== undefined) {
    throw new Error(`clang-format did not run (${(r.error as NodeJS.ErrnoException).code ?? r.error.message}): install it with sudo scripts/install-deps.sh (Debian package clang-format)`)
  }
  return { status: r.status, stderr: r.stderr }
}

describe('format: native/ and fuzz/ are clang-formatted', () => {
  before(() => {
    const v = spawnSync('clang-format', ['--version'], { encoding: 'utf8' })
    assert.ok(v.error === undefined && v.status === 0, 'clang-format is missing: sudo scripts/install-deps.sh installs it (Debian package clang-format)')
  })

  it('finds the sources it checks, and the style file', () => {
    const files = nativeSources()
    for (const f of ['native/tap.cc', 'native/fastpath.cc', 'native/records.h', 'fuzz/ws_reader_fuzz.cc']) assert.ok(files.includes(f), `no ${f}`)
    assert.ok(fs.existsSync(path.join(ROOT, '.clang-format')), 'no .clang-format at the repository root')
  })

  it('flags a file that is not formatted (the check can fail)', () => {
    const r = clangFormat(['--dry-run', '--Werror', '--assume-filename=native/example.cc'], 'int  f( int a ){return a;}\n')
    assert.notEqual(r.status, 0)
    assert.match(r.stderr, /clang-format-violations/)
  })

  it('every native/ and fuzz/ *.cc and *.h is as clang-format leaves it', () => {
    const files = nativeSources()
    const r = clangFormat(['--dry-run', '--Werror', ...files])
    if (r.status === 0) return
    const bad = [...new Set([...r.stderr.matchAll(/^((?:native|fuzz)\/[^:\s]+):\d+:\d+: (?:error|warning):/gm)].map((m) => m[1] as string))]
    assert.fail(`not formatted: ${bad.length > 0 ? bad.join(', ') : r.stderr.trim()}; run \`${FIX}\` (clang-format -i native/*.cc native/*.h fuzz/*.cc fuzz/*.h) and commit the result`)
  })
})
