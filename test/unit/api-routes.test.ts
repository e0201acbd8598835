/**
 * The admin API's route table (src/switch/control/api/routes.ts) and its
 * dispatcher: no request matches two routes (so the table's order cannot
 * matter), a `:port` segment is one segment, percent-decoded, a method and
 * path no route has is 404 as before the table, and docs/OPERATIONS.md's
 * table lists every route and no other. No sockets: handleApi is given a
 * request and a response of our own.
 */
import { strict as assert } from 'node:assert'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Readable } from 'node:stream'
import type * as http from 'node:http'
import { ROUTES } from '../../src/switch/control/api/routes'
import { RouteTable, type Route } from '../../src/switch/control/api/route'
import { handleApi } from '../../src/switch/control/api'
import { EVENTS_PATH } from '../../src/switch/control/console'
import { AuthThrottle } from '../../src/switch/control/throttle'
import type { SwitchdView, PortHandle } from '../../src/switch/control/view'
import type { ApiErrorJson } from '../../src/common/api-types'
import { setLogSink } from '../../src/common/log'

/** A request that `route` answers: its pattern with `vm1` for each `:name`. */
const sample = (r: Route): string => r.path.replace(/:[a-z]+/g, 'vm1')
const key = (method: string, p: string): string => `${method} ${p}`

interface Answer { status: number, headers: Record<string, unknown>, body: unknown }

/** handleApi's answer to one request, on a view with the ports `ports` (an open admin surface: loopback, no tokens). */
async function ask (method: string, url: string, opts: { body?: string, ports?: PortHandle[], server?: Partial<SwitchdView> } = {}): Promise<Answer> {
  const req = Readable.from(opts.body === undefined ? [] : [Buffer.from(opts.body)]) as unknown as http.IncomingMessage
  Object.assign(req, { method, url, headers: { host: '127.0.0.1', 'content-type': 'application/json' }, socket: { remoteAddress: '127.0.0.1' } })
  const server = {
    config: { api: true, allowedOrigins: [], allowedHosts: [] },
    adminToken: undefined,
    adminOpen: true,
    authThrottle: new AuthThrottle(),
    networks: { all: () => [], get: () => undefined },
    ports: () => opts.ports ?? [],
    gateways: () => [],
    refusedApi: () => {},
    ...opts.server
  } as unknown as SwitchdView
  return await new Promise<Answer>((resolve, reject) => {
    const headers: Record<string, unknown> = {}
    let status = 0
    const res = {
      headersSent: false,
      setHeader (k: string, v: unknown): void { headers[k] = v },
      writeHead (s: number, h: Record<string, unknown>): unknown { status = s; Object.assign(headers, h); res.headersSent = true; return res },
      end (text: string): void { resolve({ status, headers, body: JSON.parse(text) as unknown }) },
      destroy (): void { reject(new Error('destroyed')) },
      on (): unknown { return res }
    }
    assert.equal(handleApi(req, res as unknown as http.ServerResponse, server), true)
  })
}

describe('admin API route table', () => {
  let restore: (line: string) => void
  before(() => { restore = setLogSink(() => {}) })
  after(() => { setLogSink(restore) })

  it('no request matches two routes, and each route answers its own', () => {
    const table = new RouteTable(ROUTES)
    for (const r of ROUTES) {
      const matching = ROUTES.filter((other) => new RouteTable([other]).find(r.method, sample(r)) !== undefined)
      assert.deepEqual(matching.map((m) => key(m.method, m.path)), [key(r.method, r.path)])
      assert.equal(table.find(r.method, sample(r))?.route, r)
    }
  })

  it('a :port segment is one whole segment, percent-decoded; the method and the path must match exactly', () => {
    const table = new RouteTable(ROUTES)
    assert.deepEqual(table.find('POST', '/api/v1/ports/web%201/disable')?.params, { port: 'web 1' })
    assert.deepEqual(table.find('POST', '/api/v1/ports/a%2Fb/link')?.params, { port: 'a/b' })
    for (const [method, p] of [['POST', '/api/v1/ports/a/b/disable'], ['POST', '/api/v1/ports//disable'], ['GET', '/api/v1/ports/vm1/disable'],
      ['DELETE', '/api/v1/ports/vm1/link'], ['GET', '/api/v1/networks/'], ['GET', '/api/v1/networksx'], ['PUT', '/api/v1/fdb/static']]) {
      assert.equal(table.find(method as string, p as string), undefined, `${method} ${p}`)
    }
  })

  it('a method and path no route has: 404 "no endpoint", as before the table', async () => {
    for (const [method, p] of [['GET', '/api/v1/nope'], ['DELETE', '/api/v1/ports/vm1/link'], ['GET', '/api/v1/ports/vm1/condition'], ['PUT', '/api/v1/networks']]) {
      const a = await ask(method as string, p as string)
      assert.equal(a.status, 404)
      assert.deepEqual(a.body, { error: `no endpoint ${method} ${p}` })
    }
  })

  it('a route with a port in its path looks the decoded name up: the port acted on, or 404 TSW_ERR_NOT_FOUND naming the ports', async () => {
    const web = { name: 'web 1', network: { name: 'default' } } as unknown as PortHandle
    const disabled: PortHandle[] = []
    const a = await ask('POST', '/api/v1/ports/web%201/disable', { ports: [web], server: { disablePort: (p: PortHandle) => { disabled.push(p) } } })
    assert.equal(a.status, 200)
    assert.deepEqual(a.body, { port: 'web 1', action: 'disable' })
    assert.deepEqual(disabled, [web])
    const b = await ask('POST', '/api/v1/ports/web%202/disable', { ports: [web] })
    assert.equal(b.status, 404)
    const err = b.body as ApiErrorJson
    assert.equal(err.code, 'TSW_ERR_NOT_FOUND')
    assert.deepEqual(err.known, ['web 1'])
    assert.equal(err.suggestion, 'web 1')
  })

  it('attack: a port name in the path that is not valid percent-encoding is a 400 naming the cause, not a 500 and an api_error log line', async () => {
    for (const bad of ['%E0', '%', 'web%2', '%C0%AF']) {
      const a = await ask('POST', `/api/v1/ports/${bad}/disable`, { ports: [] })
      assert.equal(a.status, 400, bad)
      assert.match((a.body as ApiErrorJson).error, /port in the path is not valid percent-encoding/)
    }
  })

  it('POST /api/v1/drain drains (the default) or serves again, answering what the daemon did; a bad body is a 400 that changes nothing', async () => {
    const calls: boolean[] = []
    const server = { draining: false, drain: async (on: boolean) => { calls.push(on); return { draining: on, closed: on ? 3 : 0 } } }
    const a = await ask('POST', '/api/v1/drain', { server })
    assert.equal(a.status, 200)
    assert.deepEqual(a.body, { draining: true, closed: 3 })
    assert.deepEqual((await ask('POST', '/api/v1/drain', { body: '{"drain": true}', server })).body, { draining: true, closed: 3 })
    assert.deepEqual((await ask('POST', '/api/v1/drain', { body: '{"drain": false}', server })).body, { draining: false, closed: 0 })
    assert.deepEqual(calls, [true, true, false])
    for (const body of ['{"drain": "yes"}', '{"drain": 1}', '{"drian": true}', '[true]']) {
      const b = await ask('POST', '/api/v1/drain', { body, server })
      assert.equal(b.status, 400, body)
    }
    assert.deepEqual(calls, [true, true, false], 'a refused body drains nothing')
    assert.equal((await ask('GET', '/api/v1/drain', { server })).status, 404)
  })

  it('a body over 64 KiB is refused with 413 before it is parsed', async () => {
    const a = await ask('POST', '/api/v1/fdb/flush', { body: JSON.stringify({ port: 'x'.repeat(70_000) }) })
    assert.equal(a.status, 413)
    assert.match((a.body as { error: string }).error, /body over 65536 bytes/)
  })

  it('docs/OPERATIONS.md lists every route, and no request that is not one', () => {
    const md = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'OPERATIONS.md'), 'utf8')
    const section = md.slice(md.indexOf('\n## Admin API\n'), md.indexOf('\n## ', md.indexOf('\n## Admin API\n') + 1))
    const documented = new Set<string>()
    for (const row of section.split('\n').filter((l) => l.startsWith('| `'))) {
      // The first cell's code spans: `METHOD /api/v1/...`, and the shorthand `/enable` for a sibling of the one before.
      const cell = row.replace(/\\\|/g, '').split('|')[1] as string
      let last: [string, string] | undefined
      for (const [, code] of cell.matchAll(/`([^`]+)`/g)) {
        const full = /^(GET|POST|DELETE) (\/api\/v1\/[^\s[?]*)/.exec(code as string)
        if (full !== null) last = [full[1] as string, (full[2] as string).replace(/NAME/g, ':port')]
        else if (/^\/[a-z]+$/.test(code as string) && last !== undefined) last = [last[0], path.posix.dirname(last[1]) + (code as string)]
        else continue
        if (last[1] !== EVENTS_PATH) documented.add(key(...last))
      }
    }
    assert.deepEqual([...documented].sort(), ROUTES.map((r) => key(r.method, r.path)).sort())
  })
})
