/**
 * Link conditions and failure drills (docs/CONDITIONS.md):
 *
 *   GET    /api/v1/conditions[?network=]                 those in force
 *   POST   /api/v1/ports/<name>/condition {direction?: in|out|both, delay?, jitter?, loss?, rate?, …}
 *   DELETE /api/v1/ports/<name>/condition[?direction=in|out|both]
 *   POST   /api/v1/ports/<name>/link {state: down|up, direction?: in|out|both, flap?: "2s/8s"}
 */

import type { ApiRequest } from './route'
import type { PortHandle } from '../view'
import { DIR_IN, DIR_OUT, portState } from '../../core/port'
import { readCondition, conditionJson } from '../../core/condition'
import { TapswitchError } from '../../../common/errors'
import { HttpError, send, readJson } from './http'
import { hasCondition, conditionView } from './views'
import { lookupPort, networksFor } from '../names'
import { logger } from '../../../common/log'

const log = logger('api')

/** Most seconds in a flap's period: a drill, not a schedule for the year. */
const MAX_FLAP_SECONDS = 86_400

/** The directions a request names: in, out, or both (the default). */
function directions (v: unknown): number[] {
  if (v === undefined || v === null || v === '' || v === 'both') return [DIR_IN, DIR_OUT]
  if (v === 'in') return [DIR_IN]
  if (v === 'out') return [DIR_OUT]
  throw new HttpError(400, 'direction: expected "in" (toward the switch), "out" (toward the endpoint) or "both"')
}

/** `flap`: "2s/8s" (down 2 s every 8 s) or {down, every} in seconds. */
function readFlap (v: unknown): { down: number, every: number } {
  let down: number; let every: number
  const sec = (x: string): number => { const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m)?\s*$/.exec(x); return m === null ? NaN : Number(m[1]) * (m[2] === 'ms' ? 0.001 : m[2] === 'm' ? 60 : 1) }
  if (typeof v === 'string' && v.includes('/')) {
    const [a, b] = v.split('/') as [string, string]
    down = sec(a); every = sec(b)
  } else if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    down = Number((v as Record<string, unknown>).down); every = Number((v as Record<string, unknown>).every)
  } else throw new HttpError(400, 'flap: expected "DOWN/EVERY" like "2s/8s", or {"down": 2, "every": 8} in seconds')
  if (!Number.isFinite(down) || !Number.isFinite(every) || down < 0.05 || every > MAX_FLAP_SECONDS || down >= every) {
    throw new HttpError(400, `flap: expected DOWN from 0.05 s, shorter than EVERY, and EVERY up to ${MAX_FLAP_SECONDS} s`)
  }
  return { down, every }
}

/** The port a request names, its body (POST) or query (DELETE), and the directions it names, in that order. */
async function target ({ req, server, q, params, method }: ApiRequest): Promise<{ p: PortHandle, b: Record<string, unknown>, dirs: number[] }> {
  const p = lookupPort(server, params.port as string, q.get('network'))
  const b = method === 'POST' ? await readJson(req) : Object.fromEntries(q)
  return { p, b, dirs: directions(b.direction) }
}

export function getConditions ({ res, server, q }: ApiRequest): void {
  const nets = networksFor(server, q.get('network'))
  send(res, 200, server.ports().filter((p) => nets.includes(p.network) && hasCondition(p)).map(conditionView))
}

export async function setCondition (r: ApiRequest): Promise<void> {
  const { p, b, dirs } = await target(r)
  const { direction: _d, ...rest } = b
  let params
  try { params = readCondition(rest, 'condition') } catch (err) {
    if (err instanceof TapswitchError) throw new HttpError(400, err.message)
    throw err
  }
  for (const d of dirs) r.server.setCondition(p, d, params)
  log.info('condition_set', { network: p.network.name, port: p.name, direction: String(b.direction ?? 'both'), condition: JSON.stringify(conditionJson(params)) })
  send(r.res, 200, conditionView(p))
}

export async function clearCondition (r: ApiRequest): Promise<void> {
  const { p, b, dirs } = await target(r)
  for (const d of dirs) r.server.setCondition(p, d, null)
  log.info('condition_cleared', { network: p.network.name, port: p.name, direction: String(b.direction ?? 'both') })
  send(r.res, 200, conditionView(p))
}

export async function setLink (r: ApiRequest): Promise<void> {
  const { p, b, dirs } = await target(r)
  const server = r.server
  const state = b.state
  if (state !== 'down' && state !== 'up') throw new HttpError(400, 'state: expected "down" or "up"')
  if (b.flap !== undefined && b.flap !== null) {
    if (state !== 'down' || dirs.length !== 2) throw new HttpError(400, 'flap: only with state "down" and both directions')
    const f = readFlap(b.flap)
    server.startFlap(p, f.down, f.every)
    log.info('link_flap', { network: p.network.name, port: p.name, down_seconds: f.down, every_seconds: f.every })
  } else {
    // Up ends a flap too; down by hand replaces one.
    server.stopFlap(p)
    server.setLinkDown(p, dirs.length === 2 ? 'both' : dirs[0] as number, state === 'down')
    log.info(state === 'down' ? 'link_down' : 'link_up', { network: p.network.name, port: p.name, direction: String(b.direction ?? 'both') })
  }
  send(r.res, 200, { ...conditionView(p), state: portState(p) })
}
