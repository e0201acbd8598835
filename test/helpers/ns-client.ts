/**
 * Clients of a switchd from source addresses of the test's choosing, inside
 * a network namespace the test made (the e2e tests of per-address shares:
 * every client on the host's loopback is one address, so two clients need a
 * namespace with addresses of their own).
 *
 * Run as a script inside the namespace (`ip netns exec NS node -r tsx/cjs
 * test/helpers/ns-client.ts`), it reads one JSON command a line on stdin and
 * answers each with one JSON line on stdout. `NsClient` spawns it, sends
 * commands one at a time and stops it by its PID.
 */

import { spawn, type ChildProcess } from 'node:child_process'
import * as http from 'node:http'
import * as net from 'node:net'
import * as path from 'node:path'
import { createInterface } from 'node:readline'
import WebSocket from 'ws'
import { SUBPROTOCOL_V1, MAX_MESSAGE_SIZE } from '../../src/common/protocol'
import { stopChild } from '../../src/lab/lab'

/** What the client can be asked to do; `from` is the source address. */
export type NsCommand =
  | { op: 'hold', from: string, host: string, port: number, n: number }
  | { op: 'held' }
  | { op: 'release' }
  | { op: 'http', from: string, url: string, method?: string, headers?: Record<string, string> }
  | { op: 'upgrade', from: string, url: string, protocols?: string[], headers?: Record<string, string> }
  | { op: 'port', from: string, url: string, hello: Record<string, unknown> }
  | { op: 'pause', id: number }
  | { op: 'close', id: number }

export interface NsAnswer { ok: boolean, error?: string, [k: string]: unknown }

const ROOT = path.join(__dirname, '..', '..')
const TIMEOUT_MS = 5000

/** Drives the script in namespace `ns`; every command is answered or fails within its timeout. */
export class NsClient {
  private readonly child: ChildProcess
  private readonly waiting: Array<(a: NsAnswer) => void> = []

  constructor (ns: string, onLog: (line: string) => void = () => {}) {
    this.child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-r', 'tsx/cjs', path.join(__dirname, 'ns-client.ts')], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] })
    createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (line) => { this.waiting.shift()?.(JSON.parse(line) as NsAnswer) })
    createInterface({ input: this.child.stderr as NodeJS.ReadableStream }).on('line', (line) => { onLog(`ns-client: ${line}`) })
  }

  async send (cmd: NsCommand, ms = 15_000): Promise<NsAnswer> {
    return await new Promise((resolve, reject) => {
      const t = setTimeout(() => { reject(new Error(`ns-client: no answer to ${JSON.stringify(cmd)} within ${ms} ms`)) }, ms)
      this.waiting.push((a) => { clearTimeout(t); resolve(a) })
      this.child.stdin?.write(JSON.stringify(cmd) + '\n')
    })
  }

  async stop (): Promise<void> { await stopChild(this.child) }
}

// ---------- the script ----------

const held: net.Socket[] = []
const sockets = new Map<number, WebSocket>()
let nextId = 1

function within<T> (p: Promise<T>, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { reject(new Error(`${what}: no answer within ${TIMEOUT_MS} ms`)) }, TIMEOUT_MS)
    p.then((v) => { clearTimeout(t); resolve(v) }, (e: Error) => { clearTimeout(t); reject(e) })
  })
}

/** Open a connection from `from` and write half a request: it holds a pending slot until switchd closes it. */
async function halfRequest (from: string, host: string, port: number): Promise<void> {
  const s = net.connect({ host, port, localAddress: from })
  s.on('error', () => {})
  s.resume()
  held.push(s)
  await within(new Promise<void>((resolve) => { s.once('connect', () => { resolve() }); s.once('close', () => { resolve() }) }), 'connect')
  if (!s.destroyed) s.write(`GET /api/v1/ports HTTP/1.1\r\nHost: ${host}\r\nX-Slow: `)
}

function httpRequest (from: string, url: string, method: string, headers: Record<string, string>): Promise<NsAnswer> {
  return within(new Promise((resolve) => {
    const req = http.request(url, { method, headers, localAddress: from, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => { resolve({ ok: true, status: res.statusCode, headers: res.headers, body }) })
    })
    // A connection switchd closed before answering (over a share): status 0.
    req.on('error', (err: Error & { code?: string }) => { resolve({ ok: true, status: 0, error: err.code ?? err.message }) })
    req.end()
  }), `${method} ${url}`)
}

/** An upgrade: 101 keeps the socket (answer `id`), anything else is its status. */
function upgrade (from: string, url: string, protocols: string[], headers: Record<string, string>): Promise<NsAnswer> {
  const ws = new WebSocket(url, protocols, { headers, localAddress: from, perMessageDeflate: false, maxPayload: MAX_MESSAGE_SIZE })
  return within(new Promise((resolve) => {
    // A connection switchd closed before answering (over a share): status 0.
    ws.on('error', (err: Error & { code?: string }) => { resolve({ ok: true, status: 0, error: err.code ?? err.message }) })
    ws.once('unexpected-response', (_req, res) => { resolve({ ok: true, status: res.statusCode, retryAfter: res.headers['retry-after'] }); res.resume(); ws.terminate() })
    ws.once('open', () => { const id = nextId++; sockets.set(id, ws); resolve({ ok: true, status: 101, id, protocol: ws.protocol }) })
  }), `upgrade ${url}`)
}

/** A tapswitch-mode port: hello, then the welcome (or the close that refused it). */
async function port (from: string, url: string, hello: Record<string, unknown>): Promise<NsAnswer> {
  const up = await upgrade(from, url, [SUBPROTOCOL_V1], {})
  if (up.status !== 101) return up
  const ws = sockets.get(up.id as number) as WebSocket
  ws.send(JSON.stringify({ type: 'hello', version: 1, ...hello }))
  return await within(new Promise((resolve) => {
    ws.once('message', (d: Buffer) => { resolve({ ok: true, status: 101, id: up.id, welcome: JSON.parse(d.toString()) }) })
    ws.once('close', (code: number, reason: Buffer) => { resolve({ ok: true, status: 101, closed: code, reason: reason.toString() }) })
  }), 'welcome')
}

async function handle (cmd: NsCommand): Promise<NsAnswer> {
  switch (cmd.op) {
    case 'hold':
      for (let i = 0; i < cmd.n; i++) await halfRequest(cmd.from, cmd.host, cmd.port)
      return { ok: true, opened: cmd.n }
    case 'held':
      return { ok: true, open: held.filter((s) => !s.destroyed && !s.closed).length }
    case 'release':
      for (const s of held.splice(0)) s.destroy()
      return { ok: true }
    case 'http':
      return await httpRequest(cmd.from, cmd.url, cmd.method ?? 'GET', cmd.headers ?? {})
    case 'upgrade':
      return await upgrade(cmd.from, cmd.url, cmd.protocols ?? [], cmd.headers ?? {})
    case 'port':
      return await port(cmd.from, cmd.url, cmd.hello)
    case 'pause': {
      // The link goes silent: nothing read, so no pong (switchd parks the port).
      const ws = sockets.get(cmd.id)
      ;(ws as unknown as { _socket?: net.Socket } | undefined)?._socket?.pause()
      return { ok: ws !== undefined }
    }
    case 'close':
      sockets.get(cmd.id)?.terminate()
      sockets.delete(cmd.id)
      return { ok: true }
  }
}

if (require.main === module) {
  const rl = createInterface({ input: process.stdin })
  // One command at a time, in order.
  let chain = Promise.resolve()
  rl.on('line', (line) => {
    chain = chain.then(async () => {
      let answer: NsAnswer
      try { answer = await handle(JSON.parse(line) as NsCommand) } catch (err) { answer = { ok: false, error: (err as Error).message } }
      process.stdout.write(JSON.stringify(answer) + '\n')
    })
  })
  rl.on('close', () => {
    for (const s of held) s.destroy()
    for (const ws of sockets.values()) ws.terminate()
  })
}
