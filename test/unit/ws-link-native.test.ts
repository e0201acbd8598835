/**
 * tap-agent's native link through its C++ API, built with the system compiler
 * (the link's sources once, then each fuzz/ws_link_*_test.cc main):
 * - a coalescing wait longer than a second (the binding allows 200 µs;
 *   Link::Start takes any uint32) must be a valid ppoll(2) timespec and leave
 *   the link running (fuzz/ws_link_coalesce_test.cc);
 * - a UDP run the kernel refuses (EINVAL, no USO before Linux 6.2) is counted
 *   and noticed once, its frames go alone, and no run is tried again
 *   (fuzz/ws_link_runs_refused_test.cc);
 * - and every frame of a refused run reaches the TAP once, in order, written
 *   alone (fuzz/ws_link_runs_fallback_test.cc: the refusing TAP above cannot
 *   tell a frame written from one counted as an error and dropped).
 */
import { strict as assert } from 'node:assert'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { CXX_FLAGS, gxx } from '../helpers/cxx'

const LINK_SOURCES = ['native/ws_link.cc', 'native/ws_link_tap.cc', 'native/ws_frame.cc', 'native/ws_output.cc']
// _GLIBCXX_ASSERTIONS: an index past a vector's end (&v[v.size()]) aborts here, as in a hardened distribution's build.
const FLAGS = [...CXX_FLAGS, '-D_GLIBCXX_ASSERTIONS']

describe('native link through the C++ API (fuzz/ws_link_*_test.cc)', function () {
  this.timeout(300_000)
  let dir = ''
  let objects: string[] = []

  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-wslink-'))
    objects = LINK_SOURCES.map((src) => {
      const obj = path.join(dir, path.basename(src, '.cc') + '.o')
      gxx([...FLAGS, '-c', src, '-o', obj], src)
      return obj
    })
  })
  after(() => { if (dir !== '') fs.rmSync(dir, { recursive: true, force: true }) })

  /** Build `main` against the link's objects, run it, and expect its "ok". */
  function runMain (main: string): void {
    const bin = path.join(dir, path.basename(main, '.cc'))
    gxx([...FLAGS, main, ...objects, '-o', bin, '-lpthread'], main)
    const run = spawnSync(bin, [], { encoding: 'utf8', timeout: 30_000 })
    assert.equal(run.status, 0, `exited ${String(run.status)} (signal ${String(run.signal)}):\n${run.stdout}${run.stderr}`)
    assert.match(run.stdout, /^ok$/m)
  }

  it('attack: a wait of 2 s (Start(…, 2000000)) does not end the link with ppoll\'s EINVAL', () => {
    runMain('fuzz/ws_link_coalesce_test.cc')
  })

  it('a UDP run the kernel refuses (EINVAL) is counted and noticed once; its frames go alone, counted', () => {
    runMain('fuzz/ws_link_runs_refused_test.cc')
  })

  it('attack: a refused UDP run\'s frames each reach the TAP once, in order (not counted as errors and dropped, not written twice)', () => {
    runMain('fuzz/ws_link_runs_fallback_test.cc')
  })
})
