/**
 * switchctl's commands that change the fdb, a port or the replica: `flush`,
 * `static add|del`, `port disable|enable|disconnect`, `drain`, `undrain`.
 */

import { print } from './table'
import { CtlError, call, opt, query, type Ctx, type Opts } from './http'
import type { DrainJson } from '../common/api-types'

/** `switchctl flush [--network N] [--port P] [--mac M] [--vlan V]`: forget learned MACs. */
export async function flush (ctx: Ctx, o: Opts): Promise<void> {
  const body: Record<string, unknown> = { network: opt(o, 'network'), port: opt(o, 'port'), mac: opt(o, 'mac'), vlan: opt(o, 'vlan') }
  const r = await (await call(ctx, 'POST', '/api/v1/fdb/flush', body)).json() as { flushed: number }
  print(ctx, r, () => `flushed ${r.flushed} fdb entr${r.flushed === 1 ? 'y' : 'ies'}\n`)
}

/** `switchctl static add --mac M --port P …` and `static del --mac M …`. */
export async function staticEntry (ctx: Ctx, rest: string[], o: Opts): Promise<void> {
  const verb = rest[0]
  const s = (k: string): string | undefined => opt(o, k)
  if (s('mac') === undefined) throw new CtlError('static: --mac is required', 2)
  if (verb === 'add') {
    if (s('port') === undefined) throw new CtlError('static add: --port is required', 2)
    const body = { network: s('network'), vlan: s('vlan'), mac: s('mac'), port: s('port'), ...(o.detached === true ? { detached: true } : {}) }
    const r = await (await call(ctx, 'POST', '/api/v1/fdb/static', body)).json() as Record<string, unknown>
    print(ctx, r, () => `static ${String(r.mac)} vlan ${String(r.vlan)} -> ${String(r.port)} (network ${String(r.network)})` +
      (r.detached === true ? `: detached until a port named ${String(r.port)} connects (one whose name a token or the configuration gives, or a claimable profile covers)\n` : '\n'))
  } else if (verb === 'del') {
    const r = await (await call(ctx, 'DELETE', '/api/v1/fdb/static' + query({ network: s('network'), vlan: s('vlan'), mac: s('mac') }))).json()
    print(ctx, r, () => `removed static ${s('mac') ?? ''}\n`)
  } else {
    throw new CtlError('static: expected add or del', 2)
  }
}

/** `switchctl port disable|enable|disconnect NAME [--network N]`. */
export async function port (ctx: Ctx, rest: string[], o: Opts): Promise<void> {
  const [verb, name] = rest
  if (verb === undefined || !['disable', 'enable', 'disconnect'].includes(verb) || name === undefined) throw new CtlError('port: expected disable|enable|disconnect NAME', 2)
  const r = await (await call(ctx, 'POST', `/api/v1/ports/${encodeURIComponent(name)}/${verb}` + query({ network: opt(o, 'network') }))).json()
  print(ctx, r, () => `port ${name}: ${verb}d\n`.replace('disconnectd', 'disconnected'))
}

/** `switchctl drain` / `undrain`: this replica's ports to the others (answers once they are closed), or serve again. */
export async function drain (ctx: Ctx, on: boolean): Promise<void> {
  const r = await (await call(ctx, 'POST', '/api/v1/drain', { drain: on })).json() as DrainJson
  print(ctx, r, () => r.draining
    ? `draining: ${r.closed} port${r.closed === 1 ? '' : 's'} closed with 4006 (their agents reconnect through the balancer); /readyz answers 503 until switchctl undrain\n`
    : 'serving: /readyz ready, ports admitted\n')
}
