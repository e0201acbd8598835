/**
 * switchd's I/O wiring: one HTTP server, WebSocket upgrades on it, one Port
 * per WebSocket. All switching decisions are in switch.ts; this file only
 * turns sockets into ports of the right network and back.
 *
 *  - The path picks the network: `/` is "default", `/net/<name>` is <name>.
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
import type { Switch } from './switch'
import { WsPort, RawPort, BatchPort } from './ws-port'
import { MODE_TRUNK, type PortPolicy } from './port'
import { Networks, networkFromPath } from './networks'
import { buildConfig, type SwitchdConfig, type ConfigOverrides } from './config'
import { handleApi } from './api'
import { CaptureHub } from './capture'
import { switchdRegistry } from './metrics'
import type { Registry } from 'prom-client'
import {
  SUBPROTOCOL_V1, PROTOCOL_VERSION, MAX_MESSAGE_SIZE, parseHello, type Welcome, type VlanRequest,
  CLOSE_GOING_AWAY, CLOSE_PROTOCOL_ERROR, CLOSE_HELLO_TIMEOUT, CLOSE_BAD_HELLO, CLOSE_POLICY
} from '../common/protocol'
import { logger } from '../common/log'

const log = logger('server')

export interface ServerOptions extends ConfigOverrides {
  /** The validated configuration; built from the overrides alone if absent. */
  config?: SwitchdConfig
  host?: string
  port?: number
  /** Egress bytes a port may have buffered before frames to it are dropped (= portBuffer). */
  highWaterMark?: number
  /** Seconds a tapswitch-mode client has to send its hello. */
  helloTimeout?: number
  /** Seconds shutdown waits for peers to acknowledge the close. */
  closeTimeout?: number
}

/** The VLAN mode a policy gives, as the welcome states it. */
function describeVlan (p: PortPolicy): VlanRequest {
  if (p.mode === MODE_TRUNK) {
    const tagged = p.vlans.filter((v) => v !== p.pvid)
    return p.pvid !== 0 ? { mode: 'trunk', vlans: tagged, native: p.pvid } : { mode: 'trunk', vlans: tagged }
  }
  return { mode: 'access', vlan: p.pvid }
}

export class SwitchServer {
  readonly networks: Networks
  readonly http: http.Server
  config: SwitchdConfig
  private readonly wss: WebSocketServer
  private readonly wsPorts = new Set<WsPort>()
  /** What each tapswitch-mode port asked for, so a reload can grant it again. */
  private readonly requests = new WeakMap<WsPort, VlanRequest | undefined>()
  /** tapswitch-mode sockets that have not said hello yet. */
  private readonly pending = new Set<WebSocket>()
  private nextPortId = 1
  private readonly helloTimeout: number
  private readonly closeTimeout: number
  private keepaliveTimer: NodeJS.Timeout | undefined
  private clockTimer: NodeJS.Timeout | undefined
  private closing: Promise<void> | undefined
  /** WebSocket connections that became ports. */
  accepted = 0
  /** Connections refused, by reason; every reason present from the start (metrics exist at 0). */
  readonly rejectedBy: Record<string, number> = {
    unsupported_subprotocol: 0, bad_path: 0, unknown_network: 0, shutting_down: 0,
    bad_hello: 0, hello_timeout: 0, data_before_hello: 0, vlan_refused: 0
  }

  /** Text messages received in raw mode (ignored). */
  textIgnored = 0
  readonly captures = new CaptureHub()
  readonly registry: Registry
  private metricsHttp: http.Server | undefined
  private listening = false

  constructor (private readonly opts: ServerOptions = {}) {
    this.config = opts.config ?? buildConfig({}, '(defaults)', { ...opts, portBuffer: opts.highWaterMark ?? opts.portBuffer })
    this.networks = new Networks(this.config, nowMs)
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
    this.registry = switchdRegistry(this, { perPort: this.config.perPortMetrics, maxPortSeries: this.config.maxPortSeries })
    this.http = http.createServer((req, res) => { this.onRequest(req, res) })
    this.http.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => { this.onUpgrade(req, socket, head) })
  }

  /** The default network (the one `/` joins). */
  get switch (): Switch { return this.networks.get('default') as Switch }

  /** Connections refused, all reasons. */
  get rejected (): number {
    let n = 0
    for (const v of Object.values(this.rejectedBy)) n += v
    return n
  }

  /** The admin API's token, if one is configured. */
  get adminToken (): string | undefined { return this.config.adminToken }

  private refused (reason: string): void { this.rejectedBy[reason] = (this.rejectedBy[reason] ?? 0) + 1 }

  /** Listen; resolves with the bound address (port 0 picks a free one). */
  async listen (): Promise<AddressInfo> {
    const [host, port] = splitHostPort(this.config.listen)
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject)
      this.http.listen(this.opts.port ?? port, this.opts.host ?? host, () => {
        this.http.off('error', reject)
        resolve()
      })
    })
    if (this.config.metricsListen !== undefined) {
      const [mh, mp] = splitHostPort(this.config.metricsListen)
      this.metricsHttp = http.createServer((req, res) => {
        if (req.url === '/metrics') { this.serveMetrics(res); return }
        res.writeHead(404).end()
      })
      await new Promise<void>((resolve, reject) => {
        const m = this.metricsHttp as http.Server
        m.once('error', reject)
        m.listen(mp, mh, () => { m.off('error', reject); resolve() })
      })
    }
    this.listening = true
    this.keepaliveTimer = setInterval(() => { this.keepalive() }, this.config.pingInterval * 1000)
    // 100 ms: storm-control buckets refill smoothly; fdb expiry runs on the same tick.
    this.clockTimer = setInterval(() => { this.networks.tick(nowMs()) }, 100)
    const addr = this.address()
    log.info('listening', { address: addr.address, port: addr.port, networks: this.networks.all().map((n) => n.name).join(',') })
    return addr
  }

  address (): AddressInfo { return this.http.address() as AddressInfo }

  /** Where /metrics is served when --metrics-listen is set. */
  metricsAddress (): AddressInfo | undefined { return this.metricsHttp?.address() as AddressInfo | undefined }

  private serveMetrics (res: http.ServerResponse): void {
    this.registry.metrics().then(
      (text) => { res.writeHead(200, { 'content-type': this.registry.contentType }).end(text) },
      (err: Error) => { res.writeHead(500).end(err.message) }
    )
  }

  /** Connected ports (slow path: tools, tests). */
  ports (): WsPort[] { return [...this.wsPorts] }

  /** Apply a new, already validated configuration (SIGHUP). */
  reload (config: SwitchdConfig): void {
    this.config = config
    this.networks.reload(config, (p) => this.requests.get(p as WsPort))
  }

  /**
   * Stop accepting, close every port with 1001 "going away", wait up to
   * `closeTimeout` for the peers, then cut whatever is left. Idempotent.
   */
  close (): Promise<void> {
    this.closing ??= this.doClose()
    return this.closing
  }

  private async doClose (): Promise<void> {
    this.listening = false
    clearInterval(this.keepaliveTimer)
    clearInterval(this.clockTimer)
    this.captures.stopAll()
    this.metricsHttp?.close()
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
    if (req.url === '/readyz') {
      // Ready: listening with a loaded configuration, and not shutting down.
      const ready = this.listening && this.closing === undefined
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready\n')
      return
    }
    if (req.url === '/metrics' && this.metricsHttp === undefined) { this.serveMetrics(res); return }
    if (handleApi(req, res, this)) return
    res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' })
      .end('tapswitch: connect with a WebSocket client (raw frames, or subprotocol ' + SUBPROTOCOL_V1 + '); see docs/PROTOCOL.md\n')
  }

  private onUpgrade (req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', (err) => { log.limited('debug', 'socket_error', { error: err.message }) })
    const refuse = (status: number, reason: string, message: string): void => {
      this.refused(reason)
      log.limited('warn', 'connection_rejected', { remote: req.socket.remoteAddress, reason, path: req.url })
      reject(socket, status, message)
    }
    if (this.closing !== undefined) { refuse(503, 'shutting_down', 'switchd is shutting down'); return }
    const offered = req.headers['sec-websocket-protocol']
    if (offered !== undefined && !offered.split(',').map((p) => p.trim()).includes(SUBPROTOCOL_V1)) {
      refuse(400, 'unsupported_subprotocol', `unsupported subprotocol "${offered}": offer ${SUBPROTOCOL_V1}, or none for raw mode`)
      return
    }
    const name = networkFromPath(new URL(req.url ?? '/', 'http://x').pathname)
    if (name === undefined) { refuse(404, 'bad_path', 'connect to / (the default network) or /net/<name>'); return }
    const sw = this.networks.open(name)
    if (typeof sw === 'string') { refuse(404, 'unknown_network', sw); return }
    this.wss.handleUpgrade(req, socket, head, (ws) => { this.attach(ws, req, sw) })
  }

  private attach (ws: WebSocket, req: http.IncomingMessage, sw: Switch): void {
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`
    ws.on('error', (err) => { log.limited('info', 'port_error', { remote, error: err.message }) })
    if (ws.protocol === SUBPROTOCOL_V1) { this.awaitHello(ws, remote, sw); return }
    const port = new RawPort(this.nextPortId++, '', ws, remote, this.config.portBuffer, sw)
    port.name = this.uniqueName(undefined, 'raw', port.id)
    const policy = this.networks.policyFor(sw, port.name, undefined)
    if (typeof policy === 'string') { ws.close(CLOSE_POLICY, policy); return }
    this.join(port, policy)
  }

  private awaitHello (ws: WebSocket, remote: string, sw: Switch): void {
    this.pending.add(ws)
    const timer = setTimeout(() => {
      this.refused('hello_timeout')
      ws.close(CLOSE_HELLO_TIMEOUT, 'no hello within ' + String(this.helloTimeout) + ' s')
    }, this.helloTimeout * 1000)
    const onMessage = (data: RawData, isBinary: boolean): void => {
      clearTimeout(timer)
      this.pending.delete(ws)
      ws.off('message', onMessage)
      ws.off('close', onClose)
      if (isBinary) { this.refused('data_before_hello'); ws.close(CLOSE_PROTOCOL_ERROR, 'data before hello'); return }
      let hello
      try {
        hello = parseHello((data as Buffer).toString('utf8'))
      } catch (err) {
        this.refused('bad_hello')
        log.limited('warn', 'bad_hello', { remote, error: (err as Error).message })
        ws.close(CLOSE_BAD_HELLO, truncateReason((err as Error).message))
        return
      }
      const port = new BatchPort(this.nextPortId++, '', ws, remote, this.config.portBuffer, sw)
      port.name = this.uniqueName(hello.name, 'agent', port.id)
      const policy = this.networks.policyFor(sw, port.name, hello.vlan)
      if (typeof policy === 'string') {
        this.refused('vlan_refused')
        log.limited('warn', 'vlan_refused', { remote, port: port.name, network: sw.name, reason: policy })
        ws.close(CLOSE_POLICY, truncateReason(policy))
        this.networks.release(sw)
        return
      }
      this.requests.set(port, hello.vlan)
      const welcome: Welcome = {
        type: 'welcome',
        version: PROTOCOL_VERSION,
        port: port.id,
        name: port.name,
        maxFrameSize: sw.maxFrameSize,
        maxMessageSize: MAX_MESSAGE_SIZE,
        pingInterval: this.config.pingInterval,
        capabilities: [],
        network: sw.name,
        vlan: describeVlan(policy)
      }
      ws.send(JSON.stringify(welcome))
      this.join(port, policy, hello.mtu)
    }
    const onClose = (): void => { clearTimeout(timer); this.pending.delete(ws); this.networks.release(sw) }
    ws.on('message', onMessage)
    ws.on('close', onClose)
  }

  private join (port: WsPort, policy: PortPolicy, mtu?: number): void {
    const ws = port.ws
    const sw = port.network
    port.applyPolicy(policy)
    this.accepted++
    this.wsPorts.add(port)
    sw.addPort(port)
    log.info('port_up', { port: port.name, id: port.id, network: sw.name, kind: port.kind, vlan: JSON.stringify(describeVlan(policy)), remote: port.remote, mtu })
    if (mtu !== undefined && mtu + 18 > sw.maxFrameSize) {
      log.warn('mtu_exceeds_max_frame_size', { port: port.name, mtu, max_frame_size: sw.maxFrameSize })
    }
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
      const flushed = sw.removePort(port)
      this.networks.release(sw)
      log.info('port_down', {
        port: port.name, id: port.id, network: sw.name, code, reason: reason.toString(), fdb_flushed: flushed,
        rx_frames: port.rxFrames, tx_frames: port.txFrames, dropped_backpressure: port.dropBackpressure
      })
    })
  }

  private keepalive (): void {
    for (const port of this.wsPorts) {
      if (!port.alive) {
        log.info('port_dead', { port: port.name, id: port.id, silent_seconds: this.config.pingInterval })
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

/** Milliseconds on a monotonic clock: the switch's time. */
function nowMs (): number {
  return Math.floor(performance.now())
}

function splitHostPort (text: string): [string, number] {
  const i = text.lastIndexOf(':')
  return [text.slice(0, i).replace(/^\[|\]$/g, ''), Number(text.slice(i + 1))]
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
