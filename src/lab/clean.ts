/**
 * `tapswitch-lab clean`: remove what labs that died left behind (killed with
 * SIGKILL, a crash, a machine that lost power mid-run leaves only the file),
 * from their state files (common/lab-state.ts). Processes are stopped by
 * the PIDs recorded, and only while they are still the processes recorded
 * (start time and program): a PID reused since is left alone. Namespaces
 * are the ones recorded, but never one a running lab lists, nor one named
 * for the lab's PID while another process has that PID (its own lab may
 * have made it). A lab that still runs is left to stop itself.
 */

import * as fs from 'node:fs'
import { readLabStates, stillRunning, processStart, type LabProcess, type FoundLabState } from '../common/lab-state'
import { run } from './lab'

export interface CleanResult {
  /** What was done, one line each. */
  done: string[]
  /** Labs left alone because they still run. */
  running: FoundLabState[]
  /** What could not be removed, one line each. */
  failed: string[]
}

/** Stop `p` if it is still the recorded process: SIGTERM, then SIGKILL after `graceMs`; resolves once it is gone. */
export async function stopRecorded (p: LabProcess, graceMs = 3000): Promise<boolean> {
  if (!stillRunning(p)) return false
  const gone = async (ms: number): Promise<boolean> => {
    const deadline = Date.now() + ms
    while (stillRunning(p)) {
      if (Date.now() > deadline) return false
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    return true
  }
  try { process.kill(p.pid, 'SIGTERM') } catch { return !stillRunning(p) }
  if (await gone(graceMs)) return true
  try { process.kill(p.pid, 'SIGKILL') } catch { /* gone meanwhile */ }
  return await gone(10_000)
}

/** Clean every dead lab whose state file is in `dir`. */
export async function cleanLabs (dir: string): Promise<CleanResult> {
  const result: CleanResult = { done: [], running: [], failed: [] }
  const labs = readLabStates(dir, 0)
  // A namespace a running lab lists is its own, whatever a dead lab's file says.
  const inUse = new Map<string, number>()
  for (const f of labs) if (f.running) for (const ns of f.state.namespaces) inUse.set(ns, f.state.lab.pid)
  for (const found of labs) {
    if (found.running) { result.running.push(found); continue }
    const { state, file } = found
    // The agents first: each takes its TAP with it; then switchd.
    const procs = [...state.processes.filter((p) => p.role !== 'switchd'), ...state.processes.filter((p) => p.role === 'switchd')]
    const failedBefore = result.failed.length
    for (const p of procs) {
      if (!stillRunning(p)) continue
      if (await stopRecorded(p)) result.done.push(`stopped ${p.role} (pid ${p.pid})`)
      else result.failed.push(`${p.role} (pid ${p.pid}) did not stop`)
    }
    // The lab's PID is another process's now: tsw-<that PID>-x may be that process's lab (the tag is the PID).
    const reused = processStart(state.lab.pid) !== undefined
    for (const ns of state.namespaces) {
      if (!fs.existsSync(`/run/netns/${ns}`)) continue
      const owner = inUse.get(ns)
      if (owner !== undefined) { result.done.push(`left namespace ${ns}: the running lab of pid ${owner} has it`); continue }
      if (reused && ns.startsWith(`tsw-${state.lab.pid}-`)) {
        result.failed.push(`namespace ${ns} left: pid ${state.lab.pid} is another process now, which may have made it; if it is the dead lab's, sudo ip netns del ${ns}`)
        continue
      }
      try {
        await run('ip', ['netns', 'del', ns])
        result.done.push(`removed namespace ${ns}`)
      } catch (err) {
        result.failed.push(`namespace ${ns}: ${(err as Error).message}`)
      }
    }
    // Kept while something is left, so that clean can be run again.
    if (result.failed.length > failedBefore) continue
    fs.rmSync(file, { force: true })
    result.done.push(`removed ${file} (the lab of pid ${state.lab.pid}, ${state.command} since ${state.startedAt})`)
  }
  return result
}
