/**
 * What every endpoint of the admin API shares: the JSON answer, the JSON
 * body (at most MAX_BODY bytes), and the readers of its fields and query
 * parameters, each refusing a bad value with 400 and the form it expects.
 */

import type * as http from 'node:http'
import { RESPONSE_HEADERS } from '../exposure'
import { parseMac, macAt } from '../../../common/ethernet'

/** Most bytes of a request body (every body the API takes is a few fields). */
const MAX_BODY = 64 * 1024

/** A refusal with its HTTP status (handleApi answers `{error: message}`). */
export class HttpError extends Error {
  constructor (readonly status: number, message: string) { super(message) }
}

export function send (res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { ...RESPONSE_HEADERS, 'content-type': 'application/json' }).end(JSON.stringify(body, null, 2) + '\n')
}

/** The request's JSON object ({} for no body); 413 past MAX_BODY, 400 for anything but an object. */
export async function readJson (req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY) throw new HttpError(413, `body over ${MAX_BODY} bytes`)
    chunks.push(chunk)
  }
  if (size === 0) return {}
  let v: unknown
  try { v = JSON.parse(Buffer.concat(chunks).toString('utf8')) } catch { throw new HttpError(400, 'body is not JSON') }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HttpError(400, 'body must be a JSON object')
  return v as Record<string, unknown>
}

export function optString (v: unknown, key: string): string | undefined {
  if (v === undefined || v === null || v === '') return undefined
  if (typeof v !== 'string') throw new HttpError(400, `${key}: expected a string`)
  return v
}

export function optVlan (v: unknown, key = 'vlan'): number | undefined {
  if (v === undefined || v === null || v === '') return undefined
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1 || n > 4094) throw new HttpError(400, `${key}: expected a VLAN id 1..4094`)
  return n
}

export function optMac (v: unknown): number | undefined {
  const text = optString(v, 'mac')
  if (text === undefined) return undefined
  const b = parseMac(text)
  if (b === undefined) throw new HttpError(400, 'mac: expected 02:00:00:00:00:01')
  return macAt(b, 0)
}

export function optInt (v: string | null, key: string, min: number, max: number, def: number): number {
  if (v === null || v === '') return def
  const n = Number(v)
  if (!Number.isFinite(n) || n < min || n > max) throw new HttpError(400, `${key}: expected a number from ${min} to ${max}`)
  return n
}
