/**
 * Which switchd switchctl talks to: --url, else SWITCHCTL_URL, else the one
 * demo lab that is up (`tapswitch-lab up` writes where its switchd listens
 * in /run/tapswitch-lab/<pid>.json), else http://127.0.0.1:8080. `source`
 * says which, for the message when switchd cannot be reached.
 */

import { labStateDir, readLabStates } from '../common/lab-state'

export const DEFAULT_URL = 'http://127.0.0.1:8080'

export interface Target {
  url: string
  /** Where the URL came from, as a message says it. */
  source: string
}

export class TargetError extends Error {}

export function findTarget (flag: string | undefined, env: NodeJS.ProcessEnv = process.env): Target {
  if (flag !== undefined) return { url: flag, source: '--url' }
  const fromEnv = env.SWITCHCTL_URL
  if (fromEnv !== undefined && fromEnv !== '') return { url: fromEnv, source: 'SWITCHCTL_URL' }
  const dir = labStateDir(env)
  const labs = readLabStates(dir)
  const up = labs.filter((l) => l.running && l.state.url !== '')
  if (up.length === 1) {
    const l = up[0] as (typeof up)[number]
    return { url: l.state.url, source: `the lab's state file ${l.file} (tapswitch-lab ${l.state.command}, pid ${l.state.lab.pid})` }
  }
  if (up.length > 1) {
    throw new TargetError(`${up.length} labs are up (${up.map((l) => `pid ${l.state.lab.pid} at ${l.state.url}`).join(', ')}): choose one with --url or SWITCHCTL_URL`)
  }
  const dead = labs.filter((l) => !l.running)
  const note = dead.length > 0 ? `; a lab that died left ${dead.map((l) => l.file).join(', ')}: sudo tapswitch-lab clean removes it` : ''
  return { url: DEFAULT_URL, source: `the default: no --url, no SWITCHCTL_URL, and no lab up in ${dir}${note}` }
}
