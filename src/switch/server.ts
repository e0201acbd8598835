/**
 * switchd's I/O wiring: one HTTP(S) server, WebSocket upgrades on it, and the
 * endpoints beside them (/healthz, /readyz, /metrics, /api). All switching
 * decisions are in switch.ts; the life of a port is in ports.ts. This file
 * decides whether an upgrade may become a port at all:
 *
 *  - the subprotocol: none (raw mode) or `tapswitch.v1`, else HTTP 400;
 *  - the path names the network: `/` or `/net/<name>`, else 404;
 *  - the token, when tokens are configured: 401 missing or unknown, 403 for
 *    another network;
 *  - the limits: 503 when the switch is full, 429 per client address.
 *
 * Keepalive: every `pingInterval` seconds each port is pinged; a port that
 * sent nothing (no pong, no message) since the last round is terminated.
 */

import * as http from 'node:http'
import * as https from 'node:https'
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocketServer } from 'ws'
import type { Registry } from 'prom-client'
import type { Switch } from './switch'
import type { WsPort } from './ws-port'
import type { NetPort } from './net-port'
import type { PortPolicy } from './port'
import { QemuListener } from './qemu-listener'
import { TrunkLink } from './trunk'
import { Networks, networkFromPath } from './networks'
import { PortTable } from './ports'
import { buildConfig, type SwitchdConfig, type ConfigOverrides } from './config'
import { authenticate, isLoopback } from './auth'
import { handleApi } from './api'
import { CaptureHub } from './capture'
import { switchdRegistry } from './metrics'
import { SUBPROTOCOL_V1, MAX_MESSAGE_SIZE, CLOSE_GOING_AWAY, CLOSE_POLICY } from '../common/protocol'
import { TapswitchError, ERR_CONFIG } from '../common/errors'
import { requestUrl } from '../common/cli'
import { logger } from '../common/log'

const log = logger('server')

export interface ServerOptions extends ConfigOverrides {
  /** The validated configuration; built from the overrides alone if absent. */
  config?: SwitchdConfig
  host?: string
  port?: number
  /** Egress bytes a port may have buffered before frames to it are dropped (= portBuffer). */
  highWaterMark?: number
  /** Seconds a tapswitch-mode client has to send its hello (= limits.handshakeTimeout). */
  helloTimeout?: number
  /** Seconds shutdown waits for peers to acknowledge the close. */
  closeTimeout?: number
}

/** Every reason a connection can be refused: present from the start so its metric exists at 0. */
const REJECT_REASONS = ['unsupported_subprotocol', 'bad_path', 'unknown_network', 'shutting_down', 'unauthorized', 'forbidden_network',
  'limit_ports', 'limit_address', 'bad_hello', 'hello_timeout', 'data_before_hello', 'vlan_refused', 'trunk_refused'] as const

function tlsOptions (config: SwitchdConfig): https.ServerOptions {
  const tls = config.tls
  if (tls === undefined) return {}
  const read = (file: string, what: string): Buffer => {
    try { return readFileSync(file) } catch (err) {
      throw new TapswitchError(ERR_CONFIG, `TLS ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
  }
  const opts: https.ServerOptions = { cert: read(tls.cert, 'certificate'), key: read(tls.key, 'key') }
  if (tls.clientCa !== undefined) { opts.ca = read(tls.clientCa, 'client CA'); opts.requestCert = true; opts.rejectUnauthorized = true }
  return opts
}

export class SwitchServer {
  readonly networks: Networks
  readonly http: http.Server
  config: SwitchdConfig
  readonly portTable: PortTable
  private readonly wss: WebSocketServer
  private readonly closeTimeout: number
  private keepaliveTimer: NodeJS.Timeout | undefined
  private clockTimer: NodeJS.Timeout | undefined
  private closing: Promise<void> | undefined
  /** Connections refused, by reason. */
  readonly rejectedBy: Record<string, number> = Object.fromEntries(REJECT_REASONS.map((r) => [r, 0]))
  readonly captures = new CaptureHub()
  readonly registry: Registry
  private metricsHttp: http.Server | undefined
  private listening = false
  private readonly qemu: QemuListener[] = []
  readonly trunks: TrunkLink[] = []

  constructor (private readonly opts: ServerOptions = {}) {
    let config = opts.config ?? buildConfig({}, '(defaults)', { ...opts, portBuffer: opts.highWaterMark ?? opts.portBuffer })
    if (opts.helloTimeout !== undefined) config = { ...config, limits: { ...config.limits, handshakeTimeout: opts.helloTimeout } }
    this.config = config
    this.networks = new Networks(this.config, nowMs)
    this.portTable = new PortTable(this.networks, () => this.config, (reason) => { this.refused(reason) })
    this.closeTimeout = opts.closeTimeout ?? 2
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      // The largest legal message: a full batch. Beyond it ws closes the port with 1009.
      maxPayload: MAX_MESSAGE_SIZE,
      // Pongs are ours to send (ports.ts): only to a peer that reads what it is sent.
      autoPong: false,
      handleProtocols: (protocols) => protocols.has(SUBPROTOCOL_V1) ? SUBPROTOCOL_V1 : false
    })
    this.registry = switchdRegistry(this, { perPort: this.config.perPortMetrics, maxPortSeries: this.config.maxPortSeries })
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => { this.onRequest(req, res) }
    this.http = this.config.tls === undefined ? http.createServer(handler) : https.createServer(tlsOptions(this.config), handler)
    this.http.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => { this.onUpgrade(req, socket, head) })
    if (this.config.tls !== undefined) {
      this.http.on('tlsClientError', (err: Error & { code?: string }, socket: { remoteAddress?: string }) => {
        log.limited('warn', 'tls_handshake_failed', { remote: socket.remoteAddress, error: err.code ?? err.message })
      })
    }
  }

  /** The default network (the one `/` joins). */
  get switch (): Switch { return this.networks.get('default') as Switch }

  /** Connections refused, all reasons. */
  get rejected (): number {
    let n = 0
    for (const v of Object.values(this.rejectedBy)) n += v
    return n
  }

  get accepted (): number { return this.portTable.accepted }
  get textIgnored (): number { return this.portTable.textIgnored }

  /** The admin API's token, if one is configured. */
  get adminToken (): string | undefined { return this.config.adminToken }

  private refused (reason: string): void { this.rejectedBy[reason] = (this.rejectedBy[reason] ?? 0) + 1 }

  /** Listen; resolves with the bound address (port 0 picks a free one). */
  async listen (): Promise<AddressInfo> {
    const [cfgHost, cfgPort] = splitHostPort(this.config.listen)
    const host = this.opts.host ?? cfgHost
    if (!isLoopback(host) && this.config.tokens.size === 0 && !this.config.allowAnonymous) {
      throw new TapswitchError(ERR_CONFIG, `refusing to listen on ${host} without tokens: anyone who reaches it would join the LAN. ` +
        'Configure tokens (README "Security"), listen on 127.0.0.1, or pass --allow-anonymous')
    }
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject)
      this.http.listen(this.opts.port ?? cfgPort, host, () => {
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
    for (const q of this.config.qemu) {
      const sw = this.networks.open(q.network)
      if (typeof sw === 'string') throw new TapswitchError(ERR_CONFIG, `qemu ${q.name}: ${sw}`)
      const policy = this.networks.policyFor(sw, q.name, undefined)
      const listener = new QemuListener({ name: q.name, address: q.address }, sw, policy as PortPolicy, this.portTable.allocateId(), this.config.portBuffer)
      await listener.listen()
      this.qemu.push(listener)
    }
    for (const t of this.config.trunks) {
      const link = new TrunkLink(t, this.networks, () => this.portTable.allocateId(), this.config.portBuffer)
      this.trunks.push(link)
      link.start()
    }
    this.listening = true
    this.keepaliveTimer = setInterval(() => { this.portTable.keepalive(this.config.pingInterval) }, this.config.pingInterval * 1000)
    // 100 ms: storm-control buckets refill smoothly; fdb expiry runs once a second on the same tick.
    this.clockTimer = setInterval(() => { this.networks.tick(nowMs()) }, 100)
    const addr = this.address()
    log.info('listening', {
      address: addr.address, port: addr.port, tls: this.config.tls !== undefined, tokens: this.config.tokens.size,
      networks: this.networks.all().map((n) => n.name).join(',')
    })
    return addr
  }

  address (): AddressInfo { return this.http.address() as AddressInfo }

  /** Where /metrics is served when --metrics-listen is set. */
  metricsAddress (): AddressInfo | undefined { return this.metricsHttp?.address() as AddressInfo | undefined }

  /** Connected and parked ports, and QEMU ports that have joined (slow path: tools, tests). */
  ports (): NetPort[] {
    const qemu = this.qemu.map((q) => q.port).filter((p) => p.network.ports.includes(p))
    const trunks = this.trunks.flatMap((t) => t.port === undefined ? [] : [t.port])
    return [...this.portTable.ports, ...qemu, ...trunks]
  }

  /**
   * Apply a new, already validated configuration (SIGHUP): networks and
   * profiles (networks.ts), tokens (a port whose token is gone is closed),
   * and the TLS certificate (new connections use it; open ones keep theirs).
   */
  reload (config: SwitchdConfig): void {
    if (config.tls !== undefined && this.http instanceof https.Server) {
      this.http.setSecureContext(tlsOptions(config))
      log.info('tls_reloaded', { cert: config.tls.cert })
    }
    const qemuBefore = this.config.qemu
    const trunksBefore = this.config.trunks
    const bridgePriorityBefore = this.config.bridgePriority
    this.config = config
    const grants = new Map([...config.tokens.values()].map((g) => [g.id, g]))
    for (const p of this.ports()) {
      if (p.grantId !== undefined && !grants.has(p.grantId)) p.shutdown(CLOSE_POLICY, 'token revoked')
    }
    if (JSON.stringify(config.qemu) !== JSON.stringify(qemuBefore)) log.warn('restart_needed', { reason: 'qemu listeners change on restart' })
    if (JSON.stringify(config.trunks) !== JSON.stringify(trunksBefore)) log.warn('restart_needed', { reason: 'trunks change on restart' })
    if (config.bridgePriority !== bridgePriorityBefore) log.warn('restart_needed', { reason: 'bridgePriority changes on restart' })
    this.networks.reload(config, (p) => this.portTable.requestOf(p as WsPort), (p) => {
      const id = (p as NetPort).grantId
      return id === undefined ? undefined : grants.get(id)?.policy
    })
  }

  private serveMetrics (res: http.ServerResponse): void {
    this.registry.metrics().then(
      (text) => { res.writeHead(200, { 'content-type': this.registry.contentType }).end(text) },
      (err: Error) => { res.writeHead(500).end(err.message) }
    )
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
    for (const q of this.qemu) q.close()
    const trunksClosed = Promise.all(this.trunks.map(async (t) => { await t.close() }))
    const closed = new Promise<void>((resolve) => this.http.close(() => { resolve() }))
    const sockets = this.portTable.sockets()
    const gone = sockets.map((ws) => new Promise<void>((resolve) => {
      if (ws.readyState === ws.CLOSED) { resolve(); return }
      ws.once('close', () => { resolve() })
      ws.close(CLOSE_GOING_AWAY, 'switchd shutting down')
    }))
    const timer = new Promise<void>((resolve) => setTimeout(resolve, this.closeTimeout * 1000).unref())
    await Promise.race([Promise.all([...gone, trunksClosed]), timer])
    for (const ws of sockets) ws.terminate()
    this.http.closeAllConnections()
    await closed
    log.info('stopped', { ports: this.portTable.ports.size })
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
    const address = req.socket.remoteAddress ?? '?'
    const refuse = (status: number, reason: string, message: string, token?: string): void => {
      this.refused(reason)
      // The path may carry ?token=: log the path only.
      log.limited('warn', 'connection_rejected', { remote: address, reason, path: (req.url ?? '').split('?')[0], token })
      reject(socket, status, message)
    }
    if (this.closing !== undefined) { refuse(503, 'shutting_down', 'switchd is shutting down'); return }
    const offered = req.headers['sec-websocket-protocol']
    if (offered !== undefined && !offered.split(',').map((p) => p.trim()).includes(SUBPROTOCOL_V1)) {
      refuse(400, 'unsupported_subprotocol', `unsupported subprotocol "${offered}": offer ${SUBPROTOCOL_V1}, or none for raw mode`)
      return
    }
    const target = requestUrl(req.url)
    if (target === undefined) { refuse(400, 'bad_path', 'not a valid request target'); return }
    const name = networkFromPath(target.pathname)
    if (name === undefined) { refuse(404, 'bad_path', 'connect to / (the default network) or /net/<name>'); return }
    const auth = authenticate(this.config.tokens, req, name)
    if (!auth.ok) { refuse(auth.status, auth.reason, auth.message, auth.id); return }
    const limits = this.config.limits
    if (this.portTable.size >= limits.maxPorts) { refuse(503, 'limit_ports', `switchd has its maximum of ${limits.maxPorts} ports`); return }
    if (this.portTable.countFrom(address) >= limits.maxPortsPerAddress) {
      refuse(429, 'limit_address', `at most ${limits.maxPortsPerAddress} ports per client address`)
      return
    }
    const sw = this.networks.open(name)
    if (typeof sw === 'string') { refuse(404, 'unknown_network', sw); return }
    this.wss.handleUpgrade(req, socket, head, (ws) => { this.portTable.attach(ws, req, sw, auth.grant) })
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

/** Answer an upgrade request with a plain HTTP error and hang up. */
function reject (socket: Duplex, status: number, message: string): void {
  const body = message + '\n'
  socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
}
