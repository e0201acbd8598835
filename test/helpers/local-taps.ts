/**
 * Two namespaces joined by one `switchd --tap` (the e2e tests of switchd's own
 * TAPs): the namespaces are made before the suite and deleted after it, with
 * the TAPs, whatever happened; start() runs switchd, moves each TAP into its
 * namespace (switchd keeps the fd) and gives them 192.0.2.1 and .2
 * (TEST-NET-1, only ever inside these namespaces). Call it inside a describe().
 */

import * as path from 'node:path'
import { run, stopChild } from '../../src/lab/lab'
import { requireRoot } from './root'
import { spawnLogged, waitForLine, type Logged } from './proc'

const SWITCHD = path.resolve(__dirname, '../../bin/switchd.js')

export interface LocalTaps {
  readonly nsA: string
  readonly nsB: string
  readonly tapA: string
  readonly tapB: string
  /** switchd's and the children's log lines (printed when a test fails). */
  readonly log: string[]
  sw: Logged | undefined
  /** http://127.0.0.1:PORT of the running switchd. */
  api: string
  start: (extra?: string[]) => Promise<void>
  stop: () => Promise<void>
}

/** `tag`: a few letters that make this file's names its own (the pid is added). */
export function localTaps (tag: string): LocalTaps {
  const id = process.pid % 100000
  const t: LocalTaps = {
    nsA: `tsw${tag}-a${id}`,
    nsB: `tsw${tag}-b${id}`,
    tapA: `tsw${tag}A${id}`,
    tapB: `tsw${tag}B${id}`,
    log: [],
    sw: undefined,
    api: '',
    async start (extra: string[] = []) {
      t.sw = spawnLogged('switchd', process.execPath, [SWITCHD, '--listen', '127.0.0.1:0', '--tap', `${t.tapA},${t.tapB}`, ...extra], (l) => { t.log.push(l) })
      const line = await waitForLine(t.sw, 'switchd', (l) => l.includes('"event":"listening"'))
      const port = /"port":(\d+)/.exec(line)?.[1]
      if (port === undefined) throw new Error(`no port in ${line}`)
      t.api = `http://127.0.0.1:${port}`
      for (const [tap, ns, ip] of [[t.tapA, t.nsA, '192.0.2.1/24'], [t.tapB, t.nsB, '192.0.2.2/24']] as const) {
        // Moved after creation: switchd keeps its fd and never touches the link by name again.
        await run('ip', ['link', 'set', tap, 'netns', ns])
        await run('ip', ['-n', ns, 'addr', 'add', ip, 'dev', tap])
        await run('ip', ['-n', ns, 'link', 'set', tap, 'up'])
      }
    },
    async stop () {
      await stopChild(t.sw?.child)
      t.sw = undefined
    }
  }

  before(async function () {
    requireRoot(this)
    for (const ns of [t.nsA, t.nsB]) await run('ip', ['netns', 'add', ns])
  })
  after(async () => {
    await t.stop()
    for (const ns of [t.nsA, t.nsB]) await run('ip', ['netns', 'del', ns]).catch(() => {})
    for (const tap of [t.tapA, t.tapB]) await run('ip', ['link', 'del', tap]).catch(() => {})
  })
  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(t.log.slice(-40).join('\n') + '\n')
  })
  return t
}
