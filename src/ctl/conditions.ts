/**
 * switchctl's link conditions and failure drills (docs/CONDITIONS.md):
 * `condition set|show|clear` and `link down|up`, and the few words a
 * condition is shown in.
 */

import { table, print } from './table'
import { CtlError, call, getJson, opt, query, type Ctx, type Opts } from './http'
import type { PortConditionJson, ConditionJson } from '../common/api-types'

/** One direction of a condition in a few words: "20ms±5 loss 1% 10mbit", "down", or "-". */
export function describe (c: ConditionJson | undefined): string {
  if (c === undefined) return '-'
  if (c.down) return 'down'
  const parts: string[] = []
  if (c.delay !== undefined || c.jitter !== undefined) parts.push(`${c.delay ?? 0}ms${c.jitter !== undefined ? `±${c.jitter}` : ''}`)
  if (c.loss !== undefined) parts.push(`loss ${c.loss}%`)
  if (c.burst !== undefined) parts.push(`burst ${c.burst.p}%/${c.burst.r}%`)
  if (c.duplicate !== undefined) parts.push(`dup ${c.duplicate}%`)
  if (c.corrupt !== undefined) parts.push(`corrupt ${c.corrupt}%`)
  if (c.reorder !== undefined) parts.push(`reorder ${c.reorder}%`)
  if (c.rate !== undefined) parts.push(c.rate >= 1e6 ? `${c.rate / 1e6}mbit` : `${c.rate / 1e3}kbit`)
  return parts.length === 0 ? '-' : parts.join(' ')
}

/** Both directions and a flap in one cell of `switchctl ports`. */
export function summary (c: PortConditionJson): string {
  const parts: string[] = []
  if (c.in !== undefined) parts.push(`in ${describe(c.in)}`)
  if (c.out !== undefined) parts.push(`out ${describe(c.out)}`)
  if (c.flap !== undefined) parts.push(`flap ${c.flap.down}s/${c.flap.every}s`)
  return parts.length === 0 ? '-' : parts.join('; ')
}

/** The flags of `condition set` and the API's keys for them. */
const CONDITION_KEYS = [['delay', 'delay'], ['jitter', 'jitter'], ['loss', 'loss'], ['duplicate', 'duplicate'], ['corrupt', 'corrupt'], ['reorder', 'reorder'],
  ['rate', 'rate'], ['backlog', 'backlog'], ['queue-frames', 'queueFrames'], ['queue-bytes', 'queueBytes']] as const

/** `condition set`'s request body: the flags as given (switchd checks them), --burst P,R split. */
function conditionBody (o: Opts): Record<string, unknown> {
  const body: Record<string, unknown> = { direction: opt(o, 'direction') }
  for (const [flag, key] of CONDITION_KEYS) {
    const v = opt(o, flag)
    if (v !== undefined) body[key] = v
  }
  if (o['jitter-reorders'] === true) body.jitterReorders = true
  const seed = opt(o, 'seed')
  if (seed !== undefined) body.seed = Number(seed)
  const burst = opt(o, 'burst')
  if (burst !== undefined) {
    const [p, r] = burst.split(',')
    body.burst = r === undefined ? { p } : { p, r }
  }
  return body
}

/** `switchctl condition set PORT …`, `condition show`, `condition clear PORT`. */
export async function condition (ctx: Ctx, rest: string[], o: Opts): Promise<void> {
  const [verb, name] = rest
  const network = opt(o, 'network')
  if (verb === 'show') {
    const rows = await getJson<PortConditionJson[]>(ctx, '/api/v1/conditions' + query({ network }))
    print(ctx, rows, () => table(['PORT', 'NETWORK', 'IN', 'OUT', 'DELAYED', 'QUEUED'],
      rows.map((r) => [r.port, r.network, describe(r.in), describe(r.out) + (r.flap !== undefined ? ` flap ${r.flap.down}s/${r.flap.every}s` : ''), r.framesDelayed,
        (r.in?.queuedFrames ?? 0) + (r.out?.queuedFrames ?? 0)])))
    return
  }
  if ((verb !== 'set' && verb !== 'clear') || name === undefined) throw new CtlError('condition: expected set PORT …, show, or clear PORT', 2)
  const path = `/api/v1/ports/${encodeURIComponent(name)}/condition`
  const res = verb === 'clear'
    ? await call(ctx, 'DELETE', path + query({ network, direction: opt(o, 'direction') }))
    : await call(ctx, 'POST', path + query({ network }), conditionBody(o))
  const r = await res.json() as PortConditionJson
  print(ctx, r, () => `port ${name}: in ${describe(r.in)}; out ${describe(r.out)}\n`)
}

/** `switchctl link down|up PORT [--direction D] [--flap DOWN/EVERY]`: a failure drill. */
export async function link (ctx: Ctx, rest: string[], o: Opts): Promise<void> {
  const [verb, name] = rest
  if ((verb !== 'down' && verb !== 'up') || name === undefined) throw new CtlError('link: expected down|up PORT [--direction in|out] [--flap DOWN/EVERY]', 2)
  const flap = opt(o, 'flap')
  const direction = opt(o, 'direction')
  const r = await (await call(ctx, 'POST', `/api/v1/ports/${encodeURIComponent(name)}/link` + query({ network: opt(o, 'network') }), { state: verb, direction, flap })).json() as PortConditionJson & { state: string }
  print(ctx, r, () => `port ${name}: link ${flap !== undefined ? `flapping (down ${flap})` : verb}${direction !== undefined ? ` (${direction})` : ''}, state ${r.state}\n`)
}
