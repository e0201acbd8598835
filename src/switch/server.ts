/**
 * switchd's I/O wiring: one HTTP server, WebSocket upgrades on it, one Port
 * per WebSocket. All switching decisions are in switch.ts; this file only
 * turns sockets into ports and back.
 *
 *  - No subprotocol offered: raw mode, a RawPort at once.
 *  - `tapswitch.v1` offered: the first message must be a text hello within
 *    `helloTimeout`; the answer is a text welcome and the port joins.
 *  - Any other subprotocol list: HTTP 400 naming what we speak.
 *
 * Keepalive: every `pingInterval` seconds each port is pinged; a port that
 * sent nothing (no pong, no message) since the last round is terminated, so a
 * dead peer goes within two intervals.
 */

import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type WebSocket, type RawData } from 'ws'
import { Switch, type SwitchOptions } from './switch'
import { WsPort, RawPort, BatchPort, DEFAULT_HIGH_WATER_MARK } from './ws-port'
import {
  SUBPROTOCOL_V1, PROTOCOL_VERSION, MAX_MESSAGE_SIZE, parseHello, type Welcome,
  CLOSE_GOING_AWAY, CLOSE_PROTOCOL_ERROR, CLOSE_HELLO_TIMEOUT, CLOSE_BAD_HELLO
} from '../common/protocol'
import { logger } from '../common/log'

const log = logger('server')

export interface ServerOptions extends SwitchOptions {
  host?: string
  port?: number
  /** Egress bytes a port may have buffered before frames to it are dropped. */
  highWaterMark?: number
  /** Seconds between keepalive pings. */
  pingInterval?: number
  /** Seconds a tapswitch-mode client has to send its hello. */
  helloTimeout?: number
  /** Seconds shutdown waits for peers to acknowledge the close. */
  closeTimeout?: number
}

export class SwitchServer {
  readonly switch: Switch
  readonly http: http.Server
  private readonly wss: WebSocketServer
  private readonly wsPorts = new Set<WsPort>()
  /** tapswitch-mode sockets that have not said hello yet. */
  private readonly pending = new Set<WebSocket>()
  private nextPortId = 1
  private readonly highWaterMark: number
  private readonly pingInterval: number
  private readonly helloTimeout: number
  private readonly closeTimeout: number
  private keepaliveTimer: NodeJS.Timeout | undefined
  private clockTimer: NodeJS.Timeout | undefined
  private closing: Promise<void> | undefined
  /** Connections refused before the upgrade (bad subprotocol list). */
  rejected = 0
  /** Text messages received in raw mode (ignored). */
  textIgnored = 0

  constructor (private readonly opts: ServerOptions = {}) {
    this.switch = new Switch(opts, nowSeconds())
    this.highWaterMark = opts.highWaterMark ?? DEFAULT_HIGH_WATER_MARK
    this.pingInterval = opts.pingInterval ?? 3
    this.helloTimeout = opts.helloTimeout ?? 10
    this.closeTimeout = opts.closeTimeout ?? 2
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      // The largest legal message: a full batch. Beyond it ws closes the port with 1009.
      maxPayload: MAX_MESSAGE_SIZE,
      handleProtocols: (protocols) => protocols.has(SUBPROTOCOL_V1) ? SUBPROTOCOL_V1 : false
    })
    this.http = http.createServer((req, res) => { this.onRequest(req, res) })
    this.http.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => { this.onUpgrade(req, socket, head) })
  }

  /** Listen; resolves with the bound address (port 0 picks a free one). */
  async listen (): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject)
      this.http.listen(this.opts.port ?? 8080, this.opts.host ?? '127.0.0.1', () => {
        this.http.off('error', reject)
        resolve()
      })
    })
    this.keepaliveTimer = setInterval(() => { this.keepalive() }, this.pingInterval * 1000)
    this.clockTimer = setInterval(() => { this.switch.tick(nowSeconds()) }, 1000)
    const addr = this.address()
    log.info('listening', { address: addr.address, port: addr.port, max_frame_size: this.switch.maxFrameSize, ageing_time: this.switch.fdb.ageingTime })
    return addr
  }

  address (): AddressInfo { return this.http.address() as AddressInfo }

  /** Connected ports (slow path: tools, tests). */
  ports (): WsPort[] { return [...this.wsPorts] }

  /**
   * Stop accepting, close every port with 1001 "going away", wait up to
   * `closeTimeout` for the peers, then cut whatever is left. Idempotent.
   */
  close (): Promise<void> {
    this.closing ??= this.doClose()
    return this.closing
  }

  private async doClose (): Promise<void> {
    clearInterval(this.keepaliveTimer)
    clearInterval(this.clockTimer)
    const closed = new Promise<void>((resolve) => this.http.close(() => { resolve() }))
    const sockets = [...this.pending, ...[...this.wsPorts].map((p) => p.ws)]
    const gone = sockets.map((ws) => new Promise<void>((resolve) => {
      if (ws.readyState === ws.CLOSED) { resolve(); return }
      ws.once('close', () => { resolve() })
      ws.close(CLOSE_GOING_AWAY, 'switchd shutting down')
    }))
    const timer = new Promise<void>((resolve) => setTimeout(resolve, this.closeTimeout * 1000).unref())
    await Promise.race([Promise.all(gone), timer])
    for (const ws of sockets) ws.terminate()
    this.http.closeAllConnections()
    await closed
    log.info('stopped', { ports: this.wsPorts.size })
  }

  private onRequest (req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n')
      return
    }
    res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' })
      .end('tapswitch: connect with a WebSocket client (raw frames, or subprotocol ' + SUBPROTOCOL_V1 + '); see docs/PROTOCOL.md\n')
  }

  private onUpgrade (req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', (err) => { log.limited('debug', 'socket_error', { error: err.message }) })
    if (this.closing !== undefined) { reject(socket, 503, 'switchd is shutting down'); this.rejected++; return }
    const offered = req.headers['sec-websocket-protocol']
    if (offered !== undefined && !offered.split(',').map((p) => p.trim()).includes(SUBPROTOCOL_V1)) {
      this.rejected++
      log.limited('warn', 'connection_rejected', { remote: req.socket.remoteAddress, reason: 'unsupported_subprotocol', offered })
      reject(socket, 400, `unsupported subprotocol "${offered}": offer ${SUBPROTOCOL_V1}, or none for raw mode`)
      return
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => { this.attach(ws, req) })
  }

  private attach (ws: WebSocket, req: http.IncomingMessage): void {
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`
    ws.on('error', (err) => { log.limited('info', 'port_error', { remote, error: err.message }) })
    if (ws.protocol === SUBPROTOCOL_V1) this.awaitHello(ws, remote)
    else this.join(new RawPort(this.nextPortId++, '', ws, remote, this.highWaterMark))
  }

  private awaitHello (ws: WebSocket, remote: string): void {
    this.pending.add(ws)
    const timer = setTimeout(() => { ws.close(CLOSE_HELLO_TIMEOUT, 'no hello within ' + String(this.helloTimeout) + ' s') }, this.helloTimeout * 1000)
    const onMessage = (data: RawData, isBinary: boolean): void => {
      clearTimeout(timer)
      this.pending.delete(ws)
      ws.off('message', onMessage)
      ws.off('close', onClose)
      if (isBinary) { ws.close(CLOSE_PROTOCOL_ERROR, 'data before hello'); return }
      let hello
      try {
        hello = parseHello((data as Buffer).toString('utf8'))
      } catch (err) {
        log.limited('warn', 'bad_hello', { remote, error: (err as Error).message })
        ws.close(CLOSE_BAD_HELLO, truncateReason((err as Error).message))
        return
      }
      const port = new BatchPort(this.nextPortId++, hello.name ?? '', ws, remote, this.highWaterMark)
      const welcome: Welcome = {
        type: 'welcome',
        version: PROTOCOL_VERSION,
        port: port.id,
        name: this.uniqueName(hello.name, 'agent', port.id),
        maxFrameSize: this.switch.maxFrameSize,
        maxMessageSize: MAX_MESSAGE_SIZE,
        pingInterval: this.pingInterval,
        capabilities: []
      }
      port.name = welcome.name
      ws.send(JSON.stringify(welcome))
      this.join(port, hello.mtu)
    }
    const onClose = (): void => { clearTimeout(timer); this.pending.delete(ws) }
    ws.on('message', onMessage)
    ws.on('close', onClose)
  }

  private join (port: WsPort, mtu?: number): void {
    const ws = port.ws
    if (port.name === '') port.name = this.uniqueName(undefined, 'raw', port.id)
    this.wsPorts.add(port)
    this.switch.addPort(port)
    log.info('port_up', { port: port.name, id: port.id, mode: port.mode, remote: port.remote, mtu })
    if (mtu !== undefined && mtu + 18 > this.switch.maxFrameSize) {
      log.warn('mtu_exceeds_max_frame_size', { port: port.name, mtu, max_frame_size: this.switch.maxFrameSize })
    }
    const sw = this.switch
    if (port instanceof BatchPort) {
      ws.on('message', (data: RawData, isBinary: boolean) => {
        port.alive = true
        if (!isBinary) return // control messages after the welcome: none defined in v1, ignored
        if (!sw.receiveBatch(port, data as Buffer)) {
          log.limited('warn', 'malformed_batch', { port: port.name, id: port.id })
          ws.close(CLOSE_PROTOCOL_ERROR, 'malformed batch')
        }
      })
    } else {
      ws.on('message', (data: RawData, isBinary: boolean) => {
        port.alive = true
        // Raw clients never get text from us; jor1k's text keepalive is ignored here.
        if (!isBinary) { this.textIgnored++; return }
        sw.receiveFrame(port, data as Buffer)
      })
    }
    ws.on('pong', () => { port.alive = true })
    ws.on('close', (code: number, reason: Buffer) => {
      this.wsPorts.delete(port)
      const flushed = this.switch.removePort(port)
      log.info('port_down', {
        port: port.name, id: port.id, code, reason: reason.toString(), fdb_flushed: flushed,
        rx_frames: port.rxFrames, tx_frames: port.txFrames, dropped_backpressure: port.dropBackpressure
      })
    })
  }

  private keepalive (): void {
    for (const port of this.wsPorts) {
      if (!port.alive) {
        log.info('port_dead', { port: port.name, id: port.id, silent_seconds: this.pingInterval })
        port.ws.terminate()
        continue
      }
      port.alive = false
      port.ws.ping()
    }
  }

  /** The name asked for if no connected port has it, else `name-id`; unnamed ports get `fallback-id`. */
  private uniqueName (asked: string | undefined, fallback: string, id: number): string {
    if (asked === undefined) return `${fallback}-${id}`
    for (const p of this.wsPorts) if (p.name === asked) return `${asked}-${id}`
    return asked
  }
}

/** Seconds on a monotonic clock: the switch's coarse time. */
function nowSeconds (): number {
  return Math.floor(performance.now() / 1000)
}

/** Close reasons must fit in 123 bytes. */
function truncateReason (text: string): string {
  return Buffer.byteLength(text) <= 123 ? text : Buffer.from(text).subarray(0, 120).toString('utf8') + '...'
}

/** Answer an upgrade request with a plain HTTP error and hang up. */
function reject (socket: Duplex, status: number, message: string): void {
  const body = message + '\n'
  socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
}
