/**
 * A gateway's leases on disk: `<stateDir>/leases/<network>.json`, so a
 * restarted child or switchd never gives a running station's address to
 * another (issue 21, finding 5). The table and its JSON are core/leases.ts's;
 * this file only takes the lock, reads, and writes.
 *
 *  - Atomic: each write goes to `<network>.json.tmp` in the same directory,
 *    is fsync'd, renamed over the file, and the directory fsync'd. A crash
 *    leaves the old file or the new one, never half of one.
 *  - Coalesced: at most one write in flight; changes made meanwhile go in
 *    the next. The DHCP server's ACK of a new or moved binding waits until a
 *    write holding it has landed (`landed`, onLanded); renewals and
 *    releases are written lazily (within LAZY_MS).
 *  - Refused whole: a file that does not parse or validate stops switchd's
 *    start with TSW_ERR_STATE naming the file and the fix; it is never
 *    loaded in part nor emptied silently.
 *  - Locked: `<network>.lock` holds the pid of the switchd using the file.
 *    A second switchd is refused, naming that pid; a lock whose process is
 *    gone is taken over.
 * The directories are created 0700, the files 0600: they say which station
 * has which address.
 */

import * as fs from 'node:fs'
import * as path from 'node:path'
import { LeaseFileInvalid, type LeaseTable } from '../core/leases'
import { TapswitchError, ERR_STATE } from '../../common/errors'
import { logger } from '../../common/log'

const log = logger('gateway')

/** ms a lazy change (a renewal) may wait for its write. */
export const LAZY_MS = 5000
/** A lease file larger than this is not one (4096 leases take about 0.5 MB). */
const MAX_FILE_BYTES = 16 << 20

/** Lock files this process holds: its own pid in one is not a stale lock. */
const held = new Set<string>()

export class LeaseFile {
  readonly path: string
  private readonly lockPath: string
  private readonly tmpPath: string
  /** The table's version the file on disk holds. */
  landed = 0
  /** Writes done and failed (a failure is retried on the next tick). */
  writes = 0
  errors = 0
  private writing: Promise<void> | undefined
  private lastWrite = 0
  private locked = false

  constructor (stateDir: string, private readonly network: string, private readonly table: LeaseTable, private readonly onLanded: (version: number) => void) {
    const dir = path.join(stateDir, 'leases')
    this.path = path.join(dir, `${network}.json`)
    this.lockPath = path.join(dir, `${network}.lock`)
    this.tmpPath = `${this.path}.tmp`
  }

  /**
   * Create the directory, take the lock and fill the table from the file
   * (none yet: empty). Returns the entries left out because the
   * configuration changed. Throws TSW_ERR_STATE naming the file and the fix.
   */
  open (now: number): string[] {
    const dir = path.dirname(this.path)
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
    } catch (err) {
      throw new TapswitchError(ERR_STATE, `${dir}: cannot create switchd's state directory: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (set stateDir or --state-dir to a directory switchd may write)`)
    }
    this.lock()
    try {
      fs.rmSync(this.tmpPath, { force: true }) // a write a crash cut short: the file itself is whole
      return this.read(now)
    } catch (err) {
      this.unlock()
      throw err
    }
  }

  /** Write now if the table has a change the file lacks (coalesced: one write at a time). */
  request (): void {
    if (this.writing === undefined && this.table.version > this.landed) this.write()
  }

  /** Each second: retry a failed write, and write lazy changes older than LAZY_MS. */
  tick (now: number): void {
    if (this.writing !== undefined) return
    if (this.table.version > this.landed || (this.table.lazy && now - this.lastWrite >= LAZY_MS)) this.write()
  }

  /** Write what is left and let the lock go (switchd stops). */
  async close (): Promise<void> {
    await this.settled()
    if (this.locked && (this.table.lazy || this.table.version > this.landed)) this.write()
    await this.settled()
    this.unlock()
  }

  /** Until no write is in flight (a write that lands may start the next one). */
  private async settled (): Promise<void> {
    while (this.writing !== undefined) await this.writing
  }

  private write (): void {
    const version = this.table.version
    const wasLazy = this.table.lazy
    this.table.lazy = false
    this.lastWrite = Date.now()
    const text = JSON.stringify(this.table.toJson(this.network)) + '\n'
    this.writing = writeAtomic(this.path, this.tmpPath, text).then(() => {
      this.writes++
      this.landed = Math.max(this.landed, version)
      this.writing = undefined
      this.onLanded(this.landed)
      // Changes made while this one was on its way.
      if (this.table.version > this.landed) this.write()
    }, (err: NodeJS.ErrnoException) => {
      this.errors++
      this.writing = undefined
      if (wasLazy) this.table.lazy = true
      log.limited('error', 'lease_file_error', {
        network: this.network, file: this.path, error: err.code ?? err.message,
        note: 'new leases are not ACKed until the file is written (retried each second); free space or fix the permissions of the state directory'
      })
    })
  }

  private read (now: number): string[] {
    let text: string
    try {
      const st = fs.statSync(this.path)
      if (st.size > MAX_FILE_BYTES) throw this.invalid(`${st.size} bytes, more than any lease file`)
      text = fs.readFileSync(this.path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      if (err instanceof TapswitchError) throw err
      throw new TapswitchError(ERR_STATE, `${this.path}: cannot read the lease file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
    let raw: unknown
    try { raw = JSON.parse(text) } catch (err) { throw this.invalid(`not JSON (${(err as Error).message})`) }
    try {
      return this.table.load(raw, this.network, now)
    } catch (err) {
      if (err instanceof LeaseFileInvalid) throw this.invalid(err.message)
      throw err
    }
  }

  private invalid (why: string): TapswitchError {
    return new TapswitchError(ERR_STATE, `${this.path}: not a whole lease file: ${why}. switchd will not guess which addresses its stations hold: ` +
      `restore the file from a backup, or move it away to start with no leases (stations then keep their addresses only until they renew)`)
  }

  private lock (): void {
    for (let attempt = 0; ; attempt++) {
      try {
        const fd = fs.openSync(this.lockPath, 'wx', 0o600)
        fs.writeSync(fd, `${process.pid}\n`)
        fs.closeSync(fd)
        held.add(this.lockPath)
        this.locked = true
        return
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code !== 'EEXIST' || attempt > 0) {
          throw new TapswitchError(ERR_STATE, `${this.lockPath}: cannot lock the lease file: ${code ?? (err as Error).message}`)
        }
      }
      let pid = 0
      try { pid = Number.parseInt(fs.readFileSync(this.lockPath, 'utf8'), 10) } catch {}
      if (held.has(this.lockPath) || (pid > 0 && pid !== process.pid && alive(pid))) {
        throw new TapswitchError(ERR_STATE, `${this.path}: in use by another switchd (pid ${pid}, lock ${this.lockPath}): two switchds must not share a lease file. ` +
          `Give this one its own state directory (--state-dir), or stop the other; if no switchd runs as pid ${pid}, remove ${this.lockPath}`)
      }
      fs.rmSync(this.lockPath, { force: true }) // its switchd is gone
    }
  }

  private unlock (): void {
    if (!this.locked) return
    this.locked = false
    held.delete(this.lockPath)
    try {
      if (Number.parseInt(fs.readFileSync(this.lockPath, 'utf8'), 10) === process.pid) fs.rmSync(this.lockPath, { force: true })
    } catch {}
  }
}

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM' }
}

/** Write `text` to `file` through `tmp`: write, fsync, rename, fsync the directory. */
async function writeAtomic (file: string, tmp: string, text: string): Promise<void> {
  const fh = await fs.promises.open(tmp, 'w', 0o600)
  try {
    await fh.writeFile(text)
    await fh.sync()
  } finally {
    await fh.close()
  }
  await fs.promises.rename(tmp, file)
  const dir = await fs.promises.open(path.dirname(file), 'r')
  try { await dir.sync() } finally { await dir.close() }
}
