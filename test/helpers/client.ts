/** A WebSocket test client that collects what it receives. */

import WebSocket from 'ws'
import { onceWithin, waitFor } from './net'
import { SUBPROTOCOL_V1, MAX_MESSAGE_SIZE, decodeBatch, encodeBatch, parseWelcome, type Welcome } from '../../src/common/protocol'

/** How long the client waits for its upgrade, welcome or close: a guard against a hang, not a speed a loaded machine must reach. */
const GUARD_MS = 30_000

export class TestClient {
  readonly frames: Buffer[] = []
  readonly texts: string[] = []
  closeCode: number | undefined
  welcome: Welcome | undefined

  private constructor (readonly ws: WebSocket, readonly batched: boolean) {
    ws.on('error', () => {})
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        const text = data.toString()
        this.texts.push(text)
        if (batched && this.welcome === undefined) this.welcome = parseWelcome(text)
        return
      }
      if (batched) this.frames.push(...decodeBatch(data).map((f) => Buffer.from(f)))
      else this.frames.push(Buffer.from(data))
    })
    ws.on('close', (code) => { this.closeCode = code })
  }

  /** Raw mode: no subprotocol, one frame per message. */
  static async raw (url: string, opts: WebSocket.ClientOptions = {}): Promise<TestClient> {
    const c = new TestClient(new WebSocket(url, { perMessageDeflate: false, ...opts }), false)
    await onceWithin(c.ws, 'open', GUARD_MS)
    return c
  }

  /** tapswitch mode: connects, says hello, waits for the welcome. */
  static async batched (url: string, hello: Record<string, unknown> = {}): Promise<TestClient> {
    const c = new TestClient(new WebSocket(url, [SUBPROTOCOL_V1], { perMessageDeflate: false, maxPayload: MAX_MESSAGE_SIZE }), true)
    await onceWithin(c.ws, 'open', GUARD_MS)
    c.ws.send(JSON.stringify({ type: 'hello', version: 1, ...hello }))
    await waitFor(() => c.welcome !== undefined, GUARD_MS, 'welcome')
    return c
  }

  send (frames: Buffer[]): void {
    if (this.batched) this.ws.send(encodeBatch(frames))
    else for (const f of frames) this.ws.send(f)
  }

  async closed (ms = GUARD_MS): Promise<number> {
    await waitFor(() => this.closeCode !== undefined, ms, 'close')
    return this.closeCode as number
  }

  take (): Buffer[] { return this.frames.splice(0) }

  close (): void { this.ws.terminate() }
}

/** The HTTP status an upgrade gets (101 if it opens); the socket is closed either way. */
export async function upgradeStatus (url: string, opts: WebSocket.ClientOptions = {}, protocols: string[] = []): Promise<number> {
  const ws = new WebSocket(url, protocols, opts)
  ws.on('error', () => {})
  const r = await Promise.race([
    onceWithin<[unknown, { statusCode: number }]>(ws, 'unexpected-response').then(([, res]) => res.statusCode),
    onceWithin(ws, 'open').then(() => 101)
  ])
  ws.terminate()
  return r
}
