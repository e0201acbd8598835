/**
 * One in-process switchd on 127.0.0.1:0 for each test of a `describe`, and
 * the clients the test opened, closed after it whatever happened: the set-up
 * most integration tests share (it was written out in each of them).
 *
 *   const sw = useSwitchd()                       // started before each test
 *   const sw = useSwitchd({ start: false })       // the test calls sw.start(options)
 *   const a = await sw.batched({ name: 'a' })     // closed after the test
 *   const r = await sw.handMade('hand')           // a client below ws, hello and welcome done
 *
 * Several switchd in one test (trunks, a fleet's replicas), useSwitches():
 *
 *   const net = useSwitches()
 *   const { server, url } = await net.start({ trunks: [...] })   // buildConfig's config, pingInterval 1
 *   net.add(server)                                              // one the test made: closed after it too
 *   const c = await net.station(url + '/net/lab', { name: 'a' })
 */

import assert from 'node:assert/strict'
import { SwitchServer, type ServerOptions } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { setLogSink } from '../../src/common/log'
import { SUBPROTOCOL_V1 } from '../../src/common/protocol'
import type { BatchPort } from '../../src/switch/io/ws-port'
import { TestClient } from './client'
import { RawWs, encodeFrame, OP_TEXT } from './rawws'
import { waitFor } from './net'

export interface FixtureOptions {
  /** Options for the switchd started before each test; false: the test starts it (`start()`). */
  start?: ServerOptions | false
}

export class SwitchdFixture {
  server: SwitchServer | undefined
  tcpPort = 0
  /** Closed after each test. */
  readonly clients: TestClient[] = []
  readonly raws: RawWs[] = []
  /** switchd's log lines of this test (nothing reaches the console). */
  readonly logs: string[] = []

  get switchd (): SwitchServer {
    assert.ok(this.server !== undefined, 'switchd not started: call start() first')
    return this.server
  }

  get url (): string { return `ws://127.0.0.1:${this.tcpPort}/` }

  async start (opts: ServerOptions = {}): Promise<SwitchServer> {
    this.server = new SwitchServer({ host: '127.0.0.1', port: 0, ...opts })
    this.tcpPort = (await this.server.listen()).port
    return this.server
  }

  /** A tapswitch client on network `path` (default "/"), closed after the test. */
  async batched (hello?: Record<string, unknown>, path = '/'): Promise<TestClient> {
    const c = await TestClient.batched(`ws://127.0.0.1:${this.tcpPort}${path}`, hello)
    this.clients.push(c)
    return c
  }

  async raw (): Promise<TestClient> {
    const c = await TestClient.raw(this.url)
    this.clients.push(c)
    return c
  }

  port (name: string): BatchPort | undefined {
    return this.switchd.ports().find((p) => p.name === name) as BatchPort | undefined
  }

  /** Whether port `name` is carried by the native fast path. */
  native (name: string): boolean { return this.port(name)?.fastPath != null }

  /** A client below ws: upgraded, hello sent, welcome read; with `native`, also carried natively. */
  async handMade (name: string, { native = true }: { native?: boolean } = {}): Promise<RawWs> {
    const r = await this.rawWs()
    r.write(helloFrame(name))
    await r.until(() => r.messages.some((m) => m.opcode === OP_TEXT && m.data.toString().includes('"welcome"')), 10_000)
    if (native) await waitFor(() => this.native(name), 10_000, `${name} carried natively`)
    return r
  }

  /** A client below ws, upgraded with the tapswitch.v1 subprotocol and nothing sent yet. */
  async rawWs (): Promise<RawWs> {
    const r = await RawWs.connect(this.tcpPort, { protocol: SUBPROTOCOL_V1 })
    this.raws.push(r)
    assert.equal(r.status, 101)
    return r
  }

  async stop (): Promise<void> {
    for (const c of this.clients.splice(0)) c.close()
    for (const r of this.raws.splice(0)) r.destroy()
    await this.server?.close()
    this.server = undefined
  }
}

/** A tapswitch.v1 hello as one WebSocket text frame, masked as a client sends it. */
export function helloFrame (name: string): Buffer {
  return encodeFrame(OP_TEXT, Buffer.from(JSON.stringify({ type: 'hello', version: 1, name })))
}

/** Registers beforeEach/afterEach in the calling `describe`: a fresh switchd for each test. */
export function useSwitchd (o: FixtureOptions = {}): SwitchdFixture {
  const start = o.start
  return useFixture(new SwitchdFixture(), start === false ? undefined : async (f) => { await f.start(start ?? {}) })
}

/**
 * Registers beforeEach/afterEach in the calling `describe` for a fixture
 * built on SwitchdFixture (useSwitchd's, vtep.ts's useVxlan, useSwitches):
 * before each test switchd's log lines go to `f.logs` (cleared) and `before`
 * runs; after it, `f.stop()`, the log sink restored, and for a failed test
 * the last `logTail` lines printed (0: none).
 */
export function useFixture<F extends { readonly logs: string[], stop: () => Promise<void> }> (f: F, before?: (f: F) => Promise<void>, logTail = 0): F {
  let restore: ((line: string) => void) | undefined
  beforeEach(async () => {
    f.logs.length = 0
    restore = setLogSink((l) => { f.logs.push(l) })
    if (before !== undefined) await before(f)
  })
  afterEach(async function () {
    await f.stop()
    if (restore !== undefined) setLogSink(restore)
    if (logTail > 0 && this.currentTest?.state === 'failed') process.stderr.write(f.logs.slice(-logTail).join('\n') + '\n')
  })
  return f
}

/** Several switchd, the stations the test opened and switchd's log lines: closed (cleared) after each test. */
export class Switches {
  readonly servers: SwitchServer[] = []
  readonly clients: TestClient[] = []
  /** switchd's log lines of this test (nothing reaches the console; the last are printed if it fails). */
  readonly logs: string[] = []

  /** A switchd on 127.0.0.1:0 with `config` (buildConfig's, pingInterval 1 unless it says), and its ws:// base URL. */
  async start (config: Record<string, unknown> = {}): Promise<{ server: SwitchServer, url: string }> {
    const server = this.add(new SwitchServer({ config: buildConfig({ pingInterval: 1, ...config }, 'test'), host: '127.0.0.1', port: 0 }))
    return { server, url: `ws://127.0.0.1:${(await server.listen()).port}` }
  }

  /** `server`, closed after the test (SwitchServer.close is idempotent: the test may close it first). */
  add (server: SwitchServer): SwitchServer {
    this.servers.push(server)
    return server
  }

  async station (url: string, hello: Record<string, unknown> = {}): Promise<TestClient> {
    const c = await TestClient.batched(url, hello)
    this.clients.push(c)
    return c
  }

  async stop (): Promise<void> {
    for (const c of this.clients.splice(0)) c.close()
    // The last added first: one that dials another stops before it, so nothing redials a stopped switch.
    await Promise.all(this.servers.splice(0).reverse().map(async (s) => { await s.close() }))
  }
}

/** Registers beforeEach/afterEach in the calling `describe`; a failed test prints switchd's last `logTail` lines. */
export function useSwitches ({ logTail = 60 }: { logTail?: number } = {}): Switches {
  return useFixture(new Switches(), undefined, logTail)
}
