/**
 * switchctl's view of the forwarding decision (docs/TRACE.md): `trace`, the
 * steps for one frame, and `drops`, the last frames switchd dropped and why
 * (`--follow` polls for new ones).
 */

import { table, print } from './table'
import { CtlError, call, getJson, opt, query, type Ctx, type Opts } from './http'
import type { TraceJson, DropsJson, DropJson } from '../common/api-types'

/** `switchctl trace --in PORT --frame SPEC [--network N]`. */
export async function trace (ctx: Ctx, o: Opts): Promise<void> {
  if (opt(o, 'in') === undefined || opt(o, 'frame') === undefined) throw new CtlError('trace: --in PORT and --frame SPEC are required', 2)
  const t = await (await call(ctx, 'POST', '/api/v1/trace', { network: opt(o, 'network'), in: opt(o, 'in'), frame: opt(o, 'frame') })).json() as TraceJson
  print(ctx, t, () => renderTrace(t))
}

function renderTrace (t: TraceJson): string {
  const f = t.frame
  const lines = [`trace: ${f.src} > ${f.dst}${f.vlan !== null ? ` vlan ${f.vlan}` : ''} type ${f.ethertype} (${f.length} bytes) into port ${t.ingress}, network ${t.network}`]
  for (const st of t.steps) lines.push(`  ${st.step.padEnd(10)} ${st.verdict.padEnd(7)} ${st.detail}`)
  if (t.action === 'drop') lines.push(`action: drop (${t.dropReason ?? '?'})`)
  else lines.push(`action: ${t.action} to ${t.egress.length === 0 ? 'no port' : t.egress.map((e) => `${e.port} (${e.tagging === 'tagged' ? `tagged ${e.vlan}` : 'untagged'})`).join(', ')}`)
  return lines.join('\n') + '\n'
}

/** `switchctl drops [--network N] [--port P] [--reason R] [--follow] [--interval S]`. */
export async function drops (ctx: Ctx, o: Opts): Promise<void> {
  const interval = Number(opt(o, 'interval') ?? 1)
  if (!Number.isFinite(interval) || interval < 0.1 || interval > 3600) throw new CtlError('drops: --interval expects seconds from 0.1 to 3600', 2)
  const filter = { network: opt(o, 'network'), port: opt(o, 'port'), reason: opt(o, 'reason') }
  let r = await getJson<DropsJson>(ctx, '/api/v1/drops' + query(filter))
  if (o.follow !== true) { print(ctx, r, () => renderDrops(r.drops)); return }
  // Follow by polling with a cursor: switchd keeps no state per follower, and a reader that stops reading costs it nothing.
  let since = r.last
  writeDrops(ctx, r.drops, true)
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, interval * 1000))
    r = await getJson<DropsJson>(ctx, '/api/v1/drops' + query({ ...filter, since: String(since) }))
    // switchd restarted: its sequence numbers began again.
    if (r.last < since) { since = 0; continue }
    if (r.lost > 0 && !ctx.json) process.stdout.write(`(${r.lost} drops not shown: switchd keeps the last ${r.size})\n`)
    writeDrops(ctx, r.drops, false)
    since = r.last
  }
}

const DROP_HEADERS = ['TIME', 'NETWORK', 'PORT', 'SRC', 'DST', 'VLAN', 'REASON']

function dropRow (d: DropJson): string[] {
  return [d.time, d.network, d.port, d.src ?? '-', d.dst ?? '-', d.vlan === null ? '-' : String(d.vlan), d.reason]
}

function renderDrops (drops: DropJson[]): string {
  return drops.length === 0 ? 'no drops recorded\n' : table(DROP_HEADERS, drops.map(dropRow))
}

/** --follow: JSON lines with --json, else rows (fixed widths, so columns line up across polls). */
function writeDrops (ctx: Ctx, drops: DropJson[], header: boolean): void {
  if (ctx.json) { for (const d of drops) process.stdout.write(JSON.stringify(d) + '\n'); return }
  const widths = [24, 12, 16, 17, 17, 5, 14]
  const line = (r: string[]): string => r.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd() + '\n'
  if (header) process.stdout.write(line(DROP_HEADERS))
  for (const d of drops) process.stdout.write(line(dropRow(d)))
}
