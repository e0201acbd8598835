/**
 * tap-agent's native link (native/ws_link*.cc) under ThreadSanitizer and
 * AddressSanitizer/UBSan: fuzz/ws_link_race.cc, built with the system
 * compiler, runs the link's thread against a hostile switch and a TAP while
 * another thread plays JS (sends, events, counters, terminate mid-burst).
 * A race, a use-after-free or undefined behaviour fails it with the report.
 */
import { strict as assert } from 'node:assert'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { CXX_FLAGS, gxx } from '../helpers/cxx'

const SOURCES = ['fuzz/ws_link_race.cc', 'native/ws_link.cc', 'native/ws_link_tap.cc', 'native/ws_frame.cc', 'native/ws_output.cc']

describe('native link under sanitizers (fuzz/ws_link_race.cc)', function () {
  this.timeout(540_000) // each test: its build (at most 240 s) and its run (at most 240 s) on a loaded machine
  for (const san of ['thread', 'address,undefined']) {
    it(`the link's thread and JS's calls race clean, every round ends with the end event (-fsanitize=${san})`, () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-wslink-'))
      try {
        const bin = path.join(dir, 'ws_link_race')
        gxx([...CXX_FLAGS, `-fsanitize=${san}`, '-fno-sanitize-recover=all', ...SOURCES, '-o', bin, '-lpthread'], 'fuzz/ws_link_race.cc')
        const run = spawnSync(bin, ['20'], { encoding: 'utf8', timeout: 240_000, env: { ...process.env, TSAN_OPTIONS: 'halt_on_error=1', ASAN_OPTIONS: 'detect_leaks=1' } })
        const out = `${run.stdout}${run.stderr}`
        assert.equal(run.status, 0, `exited ${String(run.status)} (signal ${String(run.signal)}):\n${out.slice(-4000)}`)
        assert.match(run.stdout, /^ok 20 rounds/m)
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    })
  }
})
