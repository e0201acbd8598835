/**
 * Asking a fleet (fleet.ts merges what comes back): every replica at once,
 * each bounded in time (FLEET_TIMEOUT_MS for its whole answer, body
 * included: a replica that trickles bytes is cut off like one that is
 * silent) and in bytes (MAX_ANSWER_BYTES: one that sends without end costs
 * switchctl that much memory, no more). A replica that fails is an answer with
 * an error; the others' rows are not lost for it.
 */

import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import { CtlError, call, readBounded, type Ctx } from './http'
import { MAX_FLEET_FILE, parseFleetFile, replicaName, type Answer, type ReplicaUrl } from './fleet'
import type { StatusJson } from '../common/api-types'

/** How long one replica has for its whole answer. */
export const FLEET_TIMEOUT_MS = 10_000
/** The most bytes of one replica's answer read: far beyond the fdb of a full switch (maxEntries rows of ~150 bytes). */
export const MAX_ANSWER_BYTES = 64 * 1024 * 1024

export interface AskLimits { timeoutMs: number, maxBytes: number }

/** A fleet file's replicas (fleet.ts parseFleetFile), read only if it is a regular file under MAX_FLEET_FILE bytes. */
export function readFleetFile (file: string): ReplicaUrl[] {
  let fd: number
  try {
    fd = openSync(file, 'r')
  } catch (err) {
    throw new CtlError(`--fleet-file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (a file of one http://HOST:PORT a line)`, 2)
  }
  try {
    if (!fstatSync(fd).isFile()) throw new CtlError(`--fleet-file ${file}: not a regular file (a file of one http://HOST:PORT a line)`, 2)
    const buf = Buffer.alloc(MAX_FLEET_FILE + 1)
    let n = 0
    for (let got = 1; got > 0 && n < buf.length; n += got) got = readSync(fd, buf, n, buf.length - n, null)
    if (n > MAX_FLEET_FILE) throw new CtlError(`--fleet-file ${file}: over ${MAX_FLEET_FILE} bytes: a fleet file lists replicas' URLs, one a line`, 2)
    return parseFleetFile(buf.subarray(0, n).toString('utf8'), file)
  } finally {
    closeSync(fd)
  }
}

/** Every replica's answer to GET `path` (and its name, GET /api/v1/status), in the order given. */
export async function askAll (replicas: readonly ReplicaUrl[], token: string | undefined, path: string, limits: AskLimits = { timeoutMs: FLEET_TIMEOUT_MS, maxBytes: MAX_ANSWER_BYTES }): Promise<Answer[]> {
  return await Promise.all(replicas.map(async (r) => await askOne(r.url, token, path, limits)))
}

async function askOne (url: string, token: string | undefined, path: string, limits: AskLimits): Promise<Answer> {
  const signal = AbortSignal.timeout(limits.timeoutMs)
  const ctx: Ctx = { url, token, json: false, signal }
  const [status, list] = await Promise.allSettled([readJson(ctx, '/api/v1/status', limits.maxBytes), readJson(ctx, path, limits.maxBytes)])
  // A switchd without the status route (an older one) is named by its host:port.
  const replica = replicaName(status.status === 'fulfilled' ? (status.value as Partial<StatusJson> | null)?.replica : undefined, url)
  if (list.status === 'fulfilled') return { url, replica, rows: list.value }
  if (signal.aborted) return { url, replica, error: `no whole answer to GET ${path.split('?')[0] ?? ''} within ${limits.timeoutMs / 1000} s: is it overloaded, or does a firewall drop the connection?` }
  return { url, replica, error: (list.reason as Error).message }
}

/** GET `path` as JSON, reading at most `max` bytes of it. */
async function readJson (ctx: Ctx, path: string, max: number): Promise<unknown> {
  const res = await call(ctx, 'GET', path)
  const request = `GET ${path.split('?')[0] ?? ''}`
  const body = await readBounded(res, max)
  if (body === undefined) throw new CtlError(`answered ${request} with more than ${max} bytes; switchctl reads no more: is it switchd? (narrow a big list with --network)`)
  try {
    return JSON.parse(body.toString('utf8')) as unknown
  } catch (err) {
    throw new CtlError(`answered ${request} with JSON that does not parse (${(err as Error).message.slice(0, 100)}): is it switchd?`)
  }
}
