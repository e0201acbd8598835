/**
 * tapswitch with switchd serving both TAPs itself (`switchd --tap`): the
 * same two-host shape as the Lab and the bridge, with no tap-agent and no
 * WebSocket in the path. switchd creates the TAPs in the root namespace, and
 * each is moved into its host's namespace at once (switchd keeps its fd), so
 * no address or route is ever set in the root namespace.
 */

import * as path from 'node:path'
import { spawn, type ChildProcess } from 'node:child_process'
import { run, stopChild, waitForLine, emitLines } from '../lab/lab'
import type { BenchHost } from './lab-bridge'

const ROOT = path.join(__dirname, '..', '..')

export class LocalTapLab {
  readonly hosts: BenchHost[] = []
  switchd: ChildProcess | undefined
  private readonly created: string[] = []
  private readonly taps: string[] = []

  constructor (private readonly onLog?: (line: string) => void, tag = String(process.pid % 100000)) {
    for (const label of ['a', 'b']) {
      this.hosts.push({ label, ns: `tsl-${tag}-${label}`, ipv4: `192.0.2.${label === 'a' ? 1 : 2}` })
      this.taps.push(`tsl${tag}${label}`)
    }
  }

  /** The TAP (interface) name of host `i`, inside its namespace. */
  tap (i: number): string { return this.taps[i] as string }

  /** Start switchd with the TAPs, move them into the namespaces and address them; on failure removes what it made. */
  async start (): Promise<void> {
    try {
      for (const h of this.hosts) {
        await run('ip', ['netns', 'add', h.ns])
        this.created.push(h.ns)
        await run('ip', ['-n', h.ns, 'link', 'set', 'lo', 'up'])
      }
      const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'switchd.js'), '--listen', '127.0.0.1:0', '--tap', this.taps.join(',')],
        { stdio: ['ignore', 'pipe', 'pipe'] })
      emitLines(child, 'switchd-local', this.onLog)
      this.switchd = child
      await waitForLine(child, 'switchd-local', (l) => l.includes('"event":"listening"'), 10_000)
      for (let i = 0; i < this.hosts.length; i++) {
        const h = this.hosts[i] as BenchHost
        const tap = this.tap(i)
        await run('ip', ['link', 'set', tap, 'netns', h.ns])
        await run('ip', ['-n', h.ns, 'addr', 'add', `${h.ipv4}/24`, 'dev', tap])
        await run('ip', ['-n', h.ns, 'link', 'set', tap, 'up'])
      }
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  /** Stop switchd (its TAPs go with its fds) and delete our namespaces. Safe to repeat. */
  async stop (): Promise<void> {
    await stopChild(this.switchd)
    this.switchd = undefined
    while (this.created.length > 0) {
      const ns = this.created.pop() as string
      await run('ip', ['netns', 'del', ns]).catch(() => {})
    }
    // A TAP not yet moved is still in the root namespace: it went with switchd's fd, this is belt and braces.
    for (const t of this.taps) await run('ip', ['link', 'del', t]).catch(() => {})
  }
}
