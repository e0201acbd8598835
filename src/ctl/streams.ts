/**
 * switchctl's streams: `capture` (a pcap to a file or a pipe) and `events`
 * (switchd's log as it happens, the web console's stream).
 */

import * as fs from 'node:fs'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import WebSocket from 'ws'
import { formatText, chooseLogColor } from '../common/log-format'
import { CtlError, call, reachError, notSwitchd, opt, query, type Ctx, type Opts } from './http'
import type { ConsoleMessage, LogEntryJson, CONSOLE_SUBPROTOCOL_NAME } from '../common/api-types'

/** The event stream's subprotocol (the type holds it to switchd's). */
const CONSOLE_SUBPROTOCOL: CONSOLE_SUBPROTOCOL_NAME = 'tapswitch.console'

/** `switchctl capture [--network N] [--port P] [--vlan V] [--count N] [--bytes N] [--duration S] [-w FILE]`. */
export async function capture (ctx: Ctx, o: Opts): Promise<void> {
  const s = (k: string): string | undefined => opt(o, k)
  const out = s('w')
  if (out === undefined && process.stdout.isTTY === true) throw new CtlError('capture writes binary pcap: use -w FILE, or pipe it (switchctl capture | tcpdump -nr -)', 2)
  const res = await call(ctx, 'GET', '/api/v1/capture' + query({ network: s('network'), port: s('port'), vlan: s('vlan'), count: s('count'), bytes: s('bytes'), duration: s('duration') }))
  if (res.body === null) throw new CtlError('capture: empty response')
  const dest = out === undefined || out === '-' ? process.stdout : fs.createWriteStream(out)
  await pipeline(Readable.fromWeb(res.body), dest)
}

/** `switchctl events [--count N]`: the recent events, then new ones until N or Ctrl-C. */
export async function events (ctx: Ctx, o: Opts): Promise<void> {
  const count = opt(o, 'count') === undefined ? Infinity : Number(opt(o, 'count'))
  if (!(count > 0)) throw new CtlError('events: --count expects a positive number', 2)
  await follow(ctx, count)
}

/**
 * One log entry as switchd writes it on a terminal (common/log-format.ts):
 * its fields can hold what clients sent (an Origin, a close reason), escaped
 * there so that they cannot drive this terminal.
 */
function logLine (e: LogEntryJson): string {
  const t = new Date(e.time)
  const tty = process.stdout.isTTY === true
  // Checked, not trusted: a server that is not switchd could send any shape.
  const level = (['debug', 'info', 'warn', 'error'] as const).find((l) => l === e.level) ?? 'info'
  const fields: Record<string, string | number | boolean | null> = {}
  for (const [k, v] of Object.entries(typeof e.fields === 'object' && e.fields !== null ? e.fields as Record<string, unknown> : {})) {
    fields[k] = v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : JSON.stringify(v)
  }
  return formatText(Number.isNaN(t.getTime()) ? new Date() : t, level, String(e.component), String(e.event), fields, chooseLogColor('text', tty, process.env)) + '\n'
}

/**
 * Follow /api/v1/events: the token goes in the upgrade's Authorization header
 * (never the URL); the page, which cannot set it, offers it as a subprotocol.
 */
async function follow (ctx: Ctx, count: number): Promise<void> {
  const url = new URL('/api/v1/events', ctx.url)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  const token = ctx.token === '' ? undefined : ctx.token
  const headers: Record<string, string> = token !== undefined ? { authorization: `Bearer ${token}` } : {}
  const ws = new WebSocket(url, [CONSOLE_SUBPROTOCOL], { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024, headers })
  let shown = 0
  const show = (e: LogEntryJson): void => {
    if (shown >= count) return
    process.stdout.write(ctx.json ? JSON.stringify(e) + '\n' : logLine(e))
    if (++shown >= count) ws.close(1000)
  }
  await new Promise<void>((resolve, reject) => {
    ws.on('unexpected-response', (_req, res) => {
      const status = res.statusCode ?? 0
      const retry = res.headers['retry-after']
      const foreign = notSwitchd(ctx.url, `GET ${url.pathname}`, status, { get: (h) => { const v = res.headers[h]; return v === undefined ? null : String(v) } })
      reject(foreign ?? new CtlError(status === 401
        ? `${token === undefined ? 'admin token required' : 'wrong admin token'} (set --token or SWITCHCTL_TOKEN)`
        : status === 429 && retry !== undefined ? `429 from ${url.pathname}: try again in ${String(retry)} s` : `${status} ${res.statusMessage ?? ''} from ${url.pathname}`))
      res.resume()
    })
    ws.on('error', (err: Error & { code?: string }) => { reject(reachError(ctx.url, err)) })
    ws.on('message', (data: Buffer) => {
      // switchd sends JSON; anything else (a server that is not switchd) ends the stream with one line, not a stack trace.
      let m: ConsoleMessage
      try { m = JSON.parse(data.toString()) as ConsoleMessage } catch {
        ws.terminate()
        reject(new CtlError(`${url.host} sent a message on ${url.pathname} that is not JSON: is it switchd? check --url or SWITCHCTL_URL`))
        return
      }
      if (m.type === 'welcome' && Array.isArray(m.log)) { for (const e of m.log) show(e) } else if (m.type === 'log' && Array.isArray(m.entries)) for (const e of m.entries) show(e)
    })
    ws.on('close', (code, reason) => {
      if (code === 1008) reject(new CtlError(`${reason.toString() || 'closed'} (set --token or SWITCHCTL_TOKEN)`))
      else if (code === 1000 || code === 1005 || shown >= count) resolve()
      else reject(new CtlError(`the event stream closed: ${code} ${reason.toString()}`))
    })
  })
}
