/**
 * tap-agent's native link's coalescing wait through its C++ API
 * (fuzz/ws_link_coalesce_test.cc, built with the system compiler): a wait
 * longer than a second (the binding allows 1000 µs; Link::Start takes any
 * uint32) must be a valid ppoll(2) timespec and leave the link running.
 */
import { strict as assert } from 'node:assert'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

const ROOT = path.join(__dirname, '..', '..')
const SOURCES = ['fuzz/ws_link_coalesce_test.cc', 'native/ws_link.cc', 'native/ws_link_tap.cc', 'native/ws_frame.cc', 'native/ws_output.cc']

describe('native link coalescing through the C++ API (fuzz/ws_link_coalesce_test.cc)', function () {
  this.timeout(300_000)
  it('attack: a wait of 2 s (Start(…, 2000000)) does not end the link with ppoll\'s EINVAL', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-wslink-co-'))
    try {
      const bin = path.join(dir, 'ws_link_coalesce')
      const build = spawnSync('g++', ['-std=c++17', '-Wall', '-Wextra', '-Werror', '-O1', '-g', ...SOURCES, '-o', bin, '-lpthread'],
        { cwd: ROOT, encoding: 'utf8', timeout: 240_000 })
      assert.equal(build.status, 0, `fuzz/ws_link_coalesce_test.cc did not build (g++ from scripts/install-deps.sh):\n${build.stderr}`)
      const run = spawnSync(bin, [], { encoding: 'utf8', timeout: 30_000 })
      assert.equal(run.status, 0, `exited ${String(run.status)} (signal ${String(run.signal)}):\n${run.stdout}${run.stderr}`)
      assert.match(run.stdout, /^ok$/m)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
