import * as net from 'node:net'
import * as http from 'node:http'
import { once, type EventEmitter } from 'node:events'

/**
 * Every wait in the tests guards against a hang; none is a speed the machine
 * must reach (`npm test` passes with eight busy loops beside it). So a wait
 * given less than this waits this long before it gives up: a test that
 * passes never waits longer for it, and one on a loaded machine is not failed
 * for being slow. A retry loop that means a short wait (a DHCP client
 * retransmitting) uses poll().
 */
export const MIN_WAIT_MS = 30_000

/** `once(emitter, event)` that rejects after `ms` (at least MIN_WAIT_MS: tests never hang). */
export async function onceWithin<T extends unknown[] = unknown[]> (emitter: EventEmitter, event: string, ms = MIN_WAIT_MS): Promise<T> {
  const guard = Math.max(ms, MIN_WAIT_MS)
  const ac = new AbortController()
  const t = setTimeout(() => { ac.abort(new Error(`no '${event}' within ${guard} ms`)) }, guard)
  try {
    return await once(emitter, event, { signal: ac.signal }) as T
  } finally {
    clearTimeout(t)
  }
}

/** Poll `check` every 20 ms until it returns true; reject after `ms` (at least MIN_WAIT_MS). */
export async function waitFor (check: () => boolean, ms = MIN_WAIT_MS, what = 'condition'): Promise<void> {
  const guard = Math.max(ms, MIN_WAIT_MS)
  const deadline = Date.now() + guard
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${guard} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** Like waitFor, for an asynchronous check (an API call, a command): polled every 100 ms; `ms` is a guard against a hang, at least MIN_WAIT_MS. */
export async function until (check: () => Promise<boolean>, ms = MIN_WAIT_MS, what = 'condition'): Promise<void> {
  const guard = Math.max(ms, MIN_WAIT_MS)
  const deadline = Date.now() + guard
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${guard} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** Poll `check` every 20 ms for at most `ms`, exactly: whether it came true (for retry loops, which wait again). */
export async function poll (check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return true
}

export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** A loopback TCP port nothing listens on now: bound, noted, closed (for a listener a test starts next, or a refused connection). */
export async function freePort (): Promise<number> {
  const srv = net.createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const { port } = srv.address() as net.AddressInfo
  await new Promise<void>((resolve) => srv.close(() => { resolve() }))
  return port
}

export interface HttpAnswer { status: number, headers: http.IncomingHttpHeaders, body: string }

/** One HTTP request to 127.0.0.1:`port` with exactly these headers (no agent, so no connection reuse); a guard of 5 s against a hang. */
export function httpRequest (port: number, method: string, path: string, headers: http.OutgoingHttpHeaders = {}, body?: string): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false, timeout: 5000 }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { text += d })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }) })
    })
    req.on('timeout', () => { req.destroy(new Error(`${method} ${path}: no answer within 5 s`)) })
    req.on('error', reject)
    req.end(body)
  })
}
