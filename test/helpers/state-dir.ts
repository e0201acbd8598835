/**
 * Loaded by .mocharc before any test: switchd's default state directory is
 * $STATE_DIRECTORY when set (control/config defaultStateDir), so pointing it
 * at a temporary directory here means no test, nor any switchd a test
 * spawns, ever writes leases to the real default (/var/lib/tapswitch as
 * root). A safety net only: each gateway test still gives its switchd a
 * stateDir of its own, so tests do not see each other's leases.
 */

import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

if (process.env.STATE_DIRECTORY === undefined) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-state-'))
  process.env.STATE_DIRECTORY = dir
  process.on('exit', () => { fs.rmSync(dir, { recursive: true, force: true }) })
}
