/**
 * The demo lab's state file: what `tapswitch-lab up` (or `demo`) started and
 * made, one JSON file per lab in /run/tapswitch-lab/<pid>.json. switchctl
 * reads it to find a running lab's switchd; `tapswitch-lab clean` reads it to
 * remove what a lab that died left behind (its processes by PID, checked to
 * still be those processes, and its namespaces), never anything by name.
 *
 * The lab runs as root and serves its admin API on loopback without a token,
 * so the file holds no secret: it is 0644 in a 0755 directory, and switchctl
 * run as any user can read it. A reader trusts only files owned by root or
 * by itself, and only a loopback http:// URL in them (switchctl sends its
 * token to that URL); never through a symlink, and never more than 1 MiB.
 */

import * as fs from 'node:fs'
import * as path from 'node:path'

export const LAB_STATE_DIR = '/run/tapswitch-lab'
/** Where the state files are: $TAPSWITCH_LAB_STATE_DIR (the tests' own directories), else /run/tapswitch-lab. */
export function labStateDir (env: NodeJS.ProcessEnv = process.env): string {
  const d = env.TAPSWITCH_LAB_STATE_DIR
  return d === undefined || d === '' ? LAB_STATE_DIR : path.resolve(d)
}

/** A process the lab started, as it can be told from another with its PID later: its start time. */
export interface LabProcess {
  role: string
  pid: number
  /** /proc/<pid>/stat field 22 (clock ticks after boot): a PID reused by another process has another. */
  start: number
  /** The program it runs (bin/switchd.js): /proc/<pid>/cmdline must name it too. */
  script: string
}

export interface LabState {
  version: 1
  command: 'up' | 'demo'
  /** The lab itself (tapswitch-lab). */
  lab: LabProcess
  /** switchd's admin API, http://127.0.0.1:PORT/ (empty until it listens). */
  url: string
  startedAt: string
  processes: LabProcess[]
  /** The lab's namespaces: tsw-<tag>-<letter>, the only names clean deletes. */
  namespaces: string[]
}

/** The start time of `pid` (clock ticks after boot), or undefined if there is no such process (or it has exited). */
export function processStart (pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) is in parentheses and may hold spaces or ')': count from the last one.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // A zombie (Z) or dead (X) process has exited: only its parent's wait is missing.
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined
    const start = Number(fields[19])
    return Number.isFinite(start) ? start : undefined
  } catch {
    return undefined
  }
}

/** Whether `p` is still the process the lab recorded: same PID, same start time, and its command line names the same program. */
export function stillRunning (p: LabProcess): boolean {
  if (!Number.isInteger(p.pid) || p.pid <= 1 || processStart(p.pid) !== p.start) return false
  try {
    return fs.readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').split('\0').some((a) => a === p.script || a.endsWith(`/${path.basename(p.script)}`))
  } catch {
    return false
  }
}

/** Describe `pid` for a state file; undefined if it has already gone. */
export function describeProcess (role: string, pid: number, script: string): LabProcess | undefined {
  const start = processStart(pid)
  return start === undefined ? undefined : { role, pid, start, script }
}

export function labStateFile (dir: string, pid: number): string {
  return path.join(dir, `${pid}.json`)
}

/**
 * Write atomically (a temporary file, then rename), 0644, creating the
 * directory 0755. The lab runs as root: the directory must be its own and
 * writable by nobody else (else another user could put a symlink where the
 * temporary file goes, and have root write through it), and the temporary
 * file is created new (O_EXCL: never through a link left there).
 */
export function writeLabState (dir: string, state: LabState): string {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 })
  const st = fs.lstatSync(dir)
  const uid = process.getuid?.() ?? 0
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
    throw new Error(`${dir} is not a directory of this user's that only it can write (owner uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8)}): remove it, or set TAPSWITCH_LAB_STATE_DIR to one`)
  }
  const file = labStateFile(dir, state.lab.pid)
  const tmp = `${file}.tmp`
  fs.rmSync(tmp, { force: true })
  fs.writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o644, flag: 'wx' })
  fs.renameSync(tmp, file)
  return file
}

export interface FoundLabState { file: string, state: LabState, running: boolean }

/**
 * Every lab state file in `dir` a reader may trust (owned by root or by
 * `uid`, well-formed, a loopback http:// URL), with whether its lab still
 * runs. Files that fail these are skipped: they never choose a URL.
 */
export function readLabStates (dir: string, uid = process.getuid?.() ?? 0): FoundLabState[] {
  let names: string[]
  try { names = fs.readdirSync(dir) } catch { return [] }
  const found: FoundLabState[] = []
  for (const name of names.filter((n) => /^\d+\.json$/.test(n)).sort()) {
    const file = path.join(dir, name)
    try {
      const text = readTrusted(file, uid)
      if (text === undefined) continue
      const state = JSON.parse(text) as LabState
      if (!isLabState(state)) continue
      found.push({ file, state, running: stillRunning(state.lab) })
    } catch { /* unreadable or not JSON: not a lab's */ }
  }
  return found
}

/** Largest state file read: a lab's is under 2 KB. */
const MAX_STATE_FILE = 1 << 20

/**
 * The text of `file` if it is a regular file owned by root or `uid`, at most
 * MAX_STATE_FILE bytes; else undefined. The lab writes plain files, so a
 * symlink is not its (O_NOFOLLOW: a link to /proc/kmsg, root's and "empty",
 * would block `clean` forever); a FIFO does not block the open (O_NONBLOCK);
 * and the checks are of the file opened (fstat), not of a name that may be
 * swapped between a stat and the read.
 */
function readTrusted (file: string, uid: number): string | undefined {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK)
  try {
    const st = fs.fstatSync(fd)
    if (!st.isFile() || (st.uid !== 0 && st.uid !== uid) || st.size > MAX_STATE_FILE) return undefined
    // Read at most one byte past the limit, whatever the size said (a file may grow, or report 0 and hold more).
    const buf = Buffer.alloc(MAX_STATE_FILE + 1)
    let n = 0
    for (;;) {
      const r = fs.readSync(fd, buf, n, buf.length - n, null)
      if (r === 0) break
      n += r
      if (n > MAX_STATE_FILE) return undefined
    }
    return buf.subarray(0, n).toString('utf8')
  } finally {
    fs.closeSync(fd)
  }
}

function isLabState (s: unknown): s is LabState {
  const o = s as Partial<LabState> | null
  if (typeof o !== 'object' || o === null || o.version !== 1 || typeof o.url !== 'string') return false
  if (o.url !== '' && !isLoopbackHttp(o.url)) return false
  const isProc = (p: unknown): boolean => {
    const q = p as Partial<LabProcess> | null
    return typeof q === 'object' && q !== null && Number.isInteger(q.pid) && typeof q.start === 'number' && typeof q.script === 'string' && typeof q.role === 'string'
  }
  return isProc(o.lab) && Array.isArray(o.processes) && o.processes.every(isProc) &&
    Array.isArray(o.namespaces) && o.namespaces.every((n) => typeof n === 'string' && /^tsw-\d+-[a-z]$/.test(n))
}

/** http://127.x.y.z:PORT/ only: the lab's switchd listens there, and switchctl sends its token to it. */
export function isLoopbackHttp (url: string): boolean {
  try {
    const u = new URL(url)
    return u.protocol === 'http:' && /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(u.hostname) && u.username === '' && u.password === ''
  } catch {
    return false
  }
}
