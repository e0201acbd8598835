/**
 * The link thread's wait rule alone (native/cpu_follow.h, fuzz/cpu_follow_test.cc,
 * built with the system compiler): a quiet link narrowed to the CPU its
 * uplink's packets come in on takes its whole mask back when it waited to run
 * there for more than a tenth of a tick, and stays when it did not. The wait
 * is read from a file in schedstat's format (CpuFollow::UseSchedstatForTest),
 * so neither the following nor a busy machine can make it pass or fail; the
 * uplink is a TCP connection on 127.0.0.1.
 */
import { strict as assert } from 'node:assert'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { CXX_FLAGS, gxx } from '../helpers/cxx'

describe('native link: a quiet link that waits to run where it followed takes its whole mask back (fuzz/cpu_follow_test.cc)', function () {
  this.timeout(300_000)
  it('a wait to run over a tenth of a tick widens it; no wait, it stays on the CPU it followed', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-cpufollow-'))
    try {
      const bin = path.join(dir, 'cpu_follow_test')
      gxx([...CXX_FLAGS, 'fuzz/cpu_follow_test.cc', '-o', bin, '-lpthread'], 'fuzz/cpu_follow_test.cc')
      const run = spawnSync(bin, [], { encoding: 'utf8', timeout: 30_000 })
      assert.equal(run.status, 0, `exited ${String(run.status)} (signal ${String(run.signal)}):\n${run.stdout}${run.stderr}`)
      assert.match(run.stdout, /^ok/m)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
