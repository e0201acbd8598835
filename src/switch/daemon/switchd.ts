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
 *  - the Host (DNS rebinding) and, from a browser, the Origin: 421 and 403;
 *  - the limits: 503 when the switch is full, 429 per client address (an IPv6
 *    client's /64, all of loopback as one); connections not yet upgraded are
 *    shared per client address (limits.maxPendingPerAddress, control/admission.ts)
 *    within limits.maxPending, and must send their request within handshakeTimeout;
 *  - the network is created only once the upgrade has succeeded, so refused
 *    handshakes cannot use up maxNetworks.
 *
 * Keepalive: every `pingInterval` seconds each port is pinged; a port that
 * sent nothing (no pong, no message) since the last round is terminated.
 */

import { setCondition, setLinkDown } from '../core/link'
import type { ConditionParams } from '../core/condition'
import * as http from 'node:http'
import * as https from 'node:https'
import * as tls from 'node:tls'
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocketServer } from 'ws'
import type { Registry } from 'prom-client'
import type { Switch } from '../core/switch'
import { closeSocket, type WsPort } from '../io/ws-port'
import type { NetPort } from '../io/net-port'
import type { PortPolicy } from '../core/port'
import { QemuListener, QEMU_REJECT_REASONS } from '../io/qemu-listener'
import { TrunkLink } from '../io/trunk'
import { Gateway } from '../io/gateway'
import type { SandboxHost } from '../io/gateway-sandbox'
import { ChildPeerGuard, CHILD_REJECT_REASONS, type ChildRef } from '../io/child-peers'
import { TapPort, loadTapBinding, type TapBinding } from '../io/tap-port'
import { FastPath, type FastPathBinding } from '../io/fast-path'
import { Networks, networkFromPath } from '../control/networks'
import { PortTable } from './port-table'
import { buildConfig, type SwitchdConfig, type ConfigOverrides } from '../control/config'
import { authenticate, bearerToken, CONSOLE_SUBPROTOCOL, BEARER_PREFIX } from '../control/auth'
import type { PendingConnections } from '../control/admission'
import { ListenerGuard, requestTimeouts } from './listener-guard'
import { AuthThrottle, checkAdminToken } from '../control/throttle'
import { isLoopback, splitHostPort } from '../../common/address'
import { checkExposure, adminOpen, hostAllowed, originAllowed, RESPONSE_HEADERS } from '../control/exposure'
import { handleApi, refuseAdmin } from '../control/api'
import { CaptureHub } from '../control/capture'
import { ConsoleHub, handleConsole, consoleRedirect, EVENTS_PATH, MAX_CLIENT_MESSAGE } from '../control/console'
import { switchdRegistry } from '../control/metrics'
import type { SwitchdView, DaemonCounters, GatewayFacts, PortHandle } from '../control/view'
import { SUBPROTOCOL_V1, MAX_MESSAGE_SIZE, CLOSE_GOING_AWAY, CLOSE_POLICY } from '../../common/protocol'
import { TapswitchError, ERR_CONFIG } from '../../common/errors'
import { requestUrl } from '../../common/cli'
import { logger } from '../../common/log'
import { tlsClientHint } from '../../common/uplink-advice'

const log = logger('server')

export interface ServerOptions extends ConfigOverrides {
  /** The validated configuration; built from the overrides alone if absent. */
  config?: SwitchdConfig
  /** The native TAP binding for `taps` (tests pass a fake); loaded when the first TAP opens if absent. */
  tapBinding?: TapBinding
  host?: string
  port?: number
  /** Egress bytes a port may have buffered before frames to it are dropped (= portBuffer). */
  highWaterMark?: number
  /** Seconds a tapswitch-mode client has to send its hello (= limits.handshakeTimeout). */
  helloTimeout?: number
  /** Seconds shutdown waits for peers to acknowledge the close. */
  closeTimeout?: number
  /** The admin-token throttle (tests pass one with a stopped clock); a new one if absent. */
  authThrottle?: AuthThrottle
  /** What gateways assume of this host instead of asking the addon (tests: no Landlock, a low fd ceiling). */
  gatewaySandbox?: SandboxHost
}

/** Every reason a connection can be refused: present from the start so its metric exists at 0. */
const REJECT_REASONS = ['unsupported_subprotocol', 'bad_path', 'unknown_network', 'shutting_down', 'unauthorized', 'forbidden_network',
  'bad_host', 'bad_origin', 'limit_pending', 'limit_ports', 'limit_address', 'bad_hello', 'hello_timeout', 'data_before_hello', 'vlan_refused', 'trunk_refused',
  'limit_pending_address', 'auth_throttled', 'limit_console', 'bad_handshake', 'limit_networks'] as const

/** How often Node looks for requests past their timeout (so a lower timeout set by a reload holds within it). */
const CHECK_INTERVAL_MS = 1000

const BAD_HOST = 'unknown Host: use an IP address, localhost, or a name in allowedHosts (--allowed-hosts)'

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

export class SwitchServer implements SwitchdView {
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
  readonly rejectedBy: Record<string, number> = Object.fromEntries([...REJECT_REASONS, ...QEMU_REJECT_REASONS, ...CHILD_REJECT_REASONS].map((r) => [r, 0]))
  readonly captures = new CaptureHub()
  /** The web consoles watching (/ui, /api/v1/events). */
  readonly console: ConsoleHub
  /** Upgrades to the console's event stream: a WebSocket server of its own, for small text messages only; it answers with our subprotocol alone (never the token offered beside it). */
  private readonly consoleWss = new WebSocketServer({
    noServer: true, clientTracking: false, perMessageDeflate: false, maxPayload: MAX_CLIENT_MESSAGE,
    handleProtocols: (protocols) => protocols.has(CONSOLE_SUBPROTOCOL) ? CONSOLE_SUBPROTOCOL : false
  })
  /** Wrong admin tokens per client address: the API, /metrics and the console's upgrade share it. */
  readonly authThrottle: AuthThrottle
  /** Configuration reloads (SIGHUP), applied and rejected whole. */
  readonly reloads = { applied: 0, rejected: 0 }
  readonly registry: Registry
  private metricsHttp: http.Server | undefined
  private listening = false
  /** The address `listen` bound (for exposure checks on reload). */
  listenHost = '127.0.0.1'
  /** The main listener's admission before a request is read (listener-guard.ts). */
  private readonly guard: ListenerGuard
  /** The metrics listener's (--metrics-listen), with a pool of its own. */
  private metricsGuard: ListenerGuard | undefined
  private readonly qemu: QemuListener[] = []
  /** TAPs switchd serves itself (`taps`). */
  private readonly taps: TapPort[] = []
  /** Each network's native fast path for its TAPs (io/fast-path.ts), made with its first TAP. */
  private readonly fastPaths = new Map<Switch, FastPath>()
  readonly trunks: TrunkLink[] = []
  /** Network gateways (DHCP, DNS, NAT): a QEMU child each, behind a port named gateway. */
  readonly gatewayChildren: Gateway[] = []
  /** Every listener of ours refuses the gateway children's connections, whatever address they dialled. */
  readonly childPeers = new ChildPeerGuard(() => this.gatewayChildren.map((g) => g.childRef()).filter((c): c is ChildRef => c !== undefined), (r) => { this.refused(r) })

  constructor (private readonly opts: ServerOptions = {}) {
    let config = opts.config ?? buildConfig({}, '(defaults)', { ...opts, portBuffer: opts.highWaterMark ?? opts.portBuffer })
    if (opts.helloTimeout !== undefined) config = { ...config, limits: { ...config.limits, handshakeTimeout: opts.helloTimeout } }
    this.config = config
    this.networks = new Networks(this.config, nowMs)
    this.portTable = new PortTable(this.networks, () => this.config, (reason) => { this.refused(reason) })
    this.closeTimeout = opts.closeTimeout ?? 2
    this.authThrottle = opts.authThrottle ?? new AuthThrottle()
    this.console = new ConsoleHub(this)
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
    // A handshake ws itself finds malformed (bad key or version) is refused by us, with our headers, and counted.
    for (const w of [this.wss, this.consoleWss]) {
      w.on('wsClientError', (err: Error, socket: Duplex) => {
        this.refused('bad_handshake')
        reject(socket, err.message === 'Invalid HTTP method' ? 405 : 400, err.message)
      })
    }
    this.registry = switchdRegistry(this, { perPort: this.config.perPortMetrics, maxPortSeries: this.config.maxPortSeries })
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => { this.onRequest(req, res) }
    // A request (or upgrade) must arrive whole within the handshake timeout: a
    // slow-headers client holds a socket and a parser, not a port (Slowloris).
    // The guard sets the timeouts again on every reload.
    const httpOpts = { ...requestTimeouts(config.limits.handshakeTimeout), connectionsCheckingInterval: CHECK_INTERVAL_MS }
    this.http = this.config.tls === undefined ? http.createServer(httpOpts, handler) : https.createServer({ ...tlsOptions(this.config), ...httpOpts }, handler)
    this.guard = new ListenerGuard(this.http, 'listen', () => this.config.limits, this.childPeers, (r) => { this.refused(r) }, this.config.tls !== undefined)
    // Node's own answer to a malformed or late request, with our headers.
    this.http.on('clientError', (err: Error & { code?: string }, socket: Duplex) => { clientError(err, socket) })
    this.http.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => { this.onUpgrade(req, socket, head) })
    if (this.config.tls !== undefined) {
      this.http.on('tlsClientError', (err: Error & { code?: string }, socket: { remoteAddress?: string }) => {
        log.client('warn', 'tls_handshake_failed', socket.remoteAddress, { remote: socket.remoteAddress, error: err.code ?? err.message, hint: tlsClientHint(err) })
      })
    }
  }

  /** Connections on the main listener not yet upgraded, per client address (limits.maxPending, maxPendingPerAddress). */
  get pendingConnections (): PendingConnections { return this.guard.pending }

  /** The same on the metrics listener (--metrics-listen), undefined without one. */
  get metricsPending (): PendingConnections | undefined { return this.metricsGuard?.pending }

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

  /** Count an admin API request refused before it was served (browser checks). */
  refusedApi (reason: 'bad_origin' | 'unauthorized' | 'auth_throttled'): void { this.refused(reason) }

  gateways (): GatewayFacts[] {
    return this.gatewayChildren.map((g) => {
      const p = g.port
      const c = p.server.counters
      return {
        network: g.spec.network, up: g.up, starts: g.starts, leases: p.leases, staticLeases: p.staticLeases,
        leaseTable: g.spec.dhcp ? p.server.leases : undefined, leasesHeld: p.server.leases.held, leaseFileErrors: g.leaseFile?.errors ?? 0,
        filteredChaddr: c.chaddr, filteredLimit: c.limit, filteredRate: c.rate, filteredPool: c.pool,
        filteredDhcp: p.filteredDhcp + c.notDhcp, filteredDns: p.filteredDns, filteredOutside: p.filteredOutside, filteredSelf: p.filteredSelf,
        filteredHost: p.filteredHost, filteredNotRoutable: p.filteredNotRoutable, filteredFragment: p.filteredFragment,
        filteredProtocol: p.filteredProtocol, filteredFlows: p.filteredFlows, filteredSource: p.filteredSource, filteredArpRate: p.filteredArpRate,
        flows: p.flows.flows, maxFlows: p.flows.maxFlows, flowsPerClient: p.flows.flowsPerClient, flowClients: p.flows.clients,
        sandbox: g.sandbox === undefined ? undefined : g.sandbox.landlock ? 'landlock' : 'weak', sandboxWhy: g.sandbox?.weak, fdLimit: g.sandbox?.nofile ?? 0
      }
    })
  }

  counters (): DaemonCounters {
    let trunkVlansRefused = 0
    for (const t of this.trunks) trunkVlansRefused += t.vlansRefused
    const pt = this.portTable
    return {
      accepted: pt.accepted,
      rejectedBy: this.rejectedBy,
      reloadsApplied: this.reloads.applied,
      reloadsRejected: this.reloads.rejected,
      closedNotReading: pt.closedNotReading,
      bpduGuardShutdowns: pt.bpduGuardShutdowns,
      repliesDropped: pt.repliesDropped,
      trunkVlansRefused
    }
  }

  // Handles come only from ports() above: each is one of our NetPorts, seen through the view.
  disablePort (handle: PortHandle): void { const p = handle as NetPort; p.network.disablePort(p) }
  enablePort (handle: PortHandle): void { const p = handle as NetPort; p.network.enablePort(p) }
  disconnectPort (handle: PortHandle, reason: string): void { (handle as NetPort).shutdown(CLOSE_POLICY, reason) }
  setCondition (handle: PortHandle, direction: number, params: ConditionParams | null): void { const p = handle as NetPort; setCondition(p.network, p, direction, params) }
  setLinkDown (handle: PortHandle, direction: number | 'both', down: boolean): void { const p = handle as NetPort; setLinkDown(p.network, p, direction, down) }
  startFlap (handle: PortHandle, down: number, every: number): void { (handle as NetPort).startFlap(down, every) }
  stopFlap (handle: PortHandle): void { (handle as NetPort).stopFlap() }

  /** Listen; resolves with the bound address (port 0 picks a free one). */
  async listen (): Promise<AddressInfo> {
    const [cfgHost, cfgPort] = splitHostPort(this.config.listen)
    const host = this.opts.host ?? cfgHost
    if (!isLoopback(host) && this.config.tokens.size === 0 && !this.config.allowAnonymous) {
      throw new TapswitchError(ERR_CONFIG, `refusing to listen on ${host} without tokens: anyone who reaches it would join the LAN. ` +
        'Configure tokens (README "Security"), listen on 127.0.0.1, or pass --allow-anonymous')
    }
    checkExposure(this.config, host)
    this.listenHost = host
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject)
      this.http.listen(this.opts.port ?? cfgPort, host, () => {
        this.http.off('error', reject)
        resolve()
      })
    })
    if (this.config.metricsListen !== undefined) {
      const [mh, mp] = splitHostPort(this.config.metricsListen)
      // The same admission as the main listener's, in a pool of its own: beyond loopback it is open to anyone who reaches it.
      this.metricsHttp = http.createServer({ ...requestTimeouts(this.config.limits.handshakeTimeout), connectionsCheckingInterval: CHECK_INTERVAL_MS }, (req, res) => {
        for (const [k, v] of Object.entries(RESPONSE_HEADERS)) res.setHeader(k, v)
        if (this.badHost(req)) { res.writeHead(421).end(); return }
        if (req.url === '/metrics') { this.serveMetrics(req, res); return }
        res.writeHead(404).end()
      })
      this.metricsHttp.on('clientError', (err: Error & { code?: string }, socket: Duplex) => { clientError(err, socket) })
      this.metricsGuard = new ListenerGuard(this.metricsHttp, 'metrics', () => this.config.limits, this.childPeers, (r) => { this.refused(r) }, false)
      await new Promise<void>((resolve, reject) => {
        const m = this.metricsHttp as http.Server
        m.once('error', reject)
        m.listen(mp, mh, () => { m.off('error', reject); resolve() })
      })
    }
    for (const q of this.config.qemu) {
      const sw = this.networks.open(q.network)
      if (typeof sw === 'string') throw new TapswitchError(ERR_CONFIG, `qemu ${q.name}: ${sw}`)
      // A QEMU listener's name comes from the configuration: trusted.
      const policy = this.networks.policyFor(sw, { name: q.name, nameTrusted: true }, undefined, undefined)
      const listener = new QemuListener({ name: q.name, address: q.address, socketMode: q.socketMode }, sw, policy as PortPolicy, this.portTable.allocateId(), this.config.portBuffer,
        (reason) => { this.refused(reason) }, (socket) => this.childPeers.refuse(socket, `qemu ${q.name}`))
      await listener.listen()
      this.qemu.push(listener)
    }
    for (const t of this.config.taps) {
      const sw = this.networks.open(t.network)
      if (typeof sw === 'string') throw new TapswitchError(ERR_CONFIG, `tap ${t.name}: ${sw}`)
      // A TAP's name comes from the configuration: trusted.
      const policy = this.networks.policyFor(sw, { name: t.name, nameTrusted: true }, undefined, undefined)
      const binding = this.opts.tapBinding ?? loadTapBinding()
      binding.setBusyPoll?.(this.config.busyPoll)
      const port = TapPort.open(binding, t, sw, policy as PortPolicy, this.portTable.allocateId(), this.config.portBuffer)
      this.taps.push(port)
      sw.addPort(port)
      port.start(this.fastPathOf(binding, sw))
      log.info('tap_up', { port: port.name, network: sw.name, offload: port.offload, fast_path: port.fastPath !== null })
    }
    if (this.config.busyPoll > 0 && this.config.taps.length === 0) {
      log.warn('busy_poll_unused', { busy_poll_us: this.config.busyPoll, fix: 'busy polling follows traffic from local TAPs (taps / --tap): there are none' })
    }
    await this.startGateways()
    for (const t of this.config.trunks) {
      const link = new TrunkLink(t, this.networks, () => this.portTable.allocateId(), this.config.portBuffer)
      this.trunks.push(link)
      link.start()
    }
    this.listening = true
    this.console.start()
    this.keepaliveTimer = setInterval(() => { this.portTable.keepalive(this.config.pingInterval) }, this.config.pingInterval * 1000)
    // 100 ms: storm-control buckets refill smoothly; fdb expiry runs once a second on the same tick.
    this.clockTimer = setInterval(() => {
      const now = nowMs()
      this.networks.tick(now)
      for (const g of this.gatewayChildren) g.tick(now)
    }, 100)
    const addr = this.address()
    log.info('listening', {
      address: addr.address, port: addr.port, tls: this.config.tls !== undefined, tokens: this.config.tokens.size,
      networks: this.networks.all().map((n) => n.name).join(',')
    })
    return addr
  }

  address (): AddressInfo { return this.http.address() as AddressInfo }

  /** The network's fast path, made on first use; undefined when it is off or the binding has none (a test's fake). */
  private fastPathOf (binding: TapBinding, sw: Switch): FastPath | undefined {
    if (!this.config.fastPath || binding.FastPath === undefined) return undefined
    let fp = this.fastPaths.get(sw)
    if (fp === undefined) {
      fp = new FastPath(binding as FastPathBinding, sw)
      this.fastPaths.set(sw, fp)
    }
    return fp
  }

  /** Start each configured gateway and wait until it serves; throws TSW_ERR_CONFIG naming the cause. */
  private async startGateways (): Promise<void> {
    // switchd's own TCP ports: the gateway's address is the host's loopback, and stations must not reach us through it.
    // The ports bound, not those configured: `tcp:127.0.0.1:0` is the port the system chose.
    const self = [this.address().port, this.metricsAddress()?.port ?? 0, ...this.qemu.map((q) => q.tcpPort)]
    for (const g of this.config.gateways) {
      const sw = this.networks.open(g.network)
      if (typeof sw === 'string') throw new TapswitchError(ERR_CONFIG, `networks.${g.network}.gateway: ${sw}`)
      const policy = this.networks.policyFor(sw, { name: g.name, nameTrusted: true }, undefined, undefined)
      const gateway = new Gateway(g, sw, policy as PortPolicy, this.portTable.allocateId(), this.config.portBuffer, this.config.stateDir, this.opts.gatewaySandbox)
      this.gatewayChildren.push(gateway)
      await gateway.start(self.filter((p) => p !== 0))
    }
  }

  /** Where /metrics is served when --metrics-listen is set. */
  metricsAddress (): AddressInfo | undefined { return this.metricsHttp?.address() as AddressInfo | undefined }

  /** Connected and parked ports, and QEMU ports that have joined (slow path: tools, tests). */
  ports (): NetPort[] {
    // What the native fast paths forwarded since the last tick shows at once in every view.
    for (const fp of this.fastPaths.values()) fp.sync()
    const qemu = this.qemu.map((q) => q.port).filter((p) => p.network.ports.includes(p))
    const trunks = this.trunks.flatMap((t) => t.port === undefined ? [] : [t.port])
    const gateways = this.gatewayChildren.map((g) => g.port).filter((p) => p.network.ports.includes(p))
    const taps = this.taps.filter((p) => p.network.ports.includes(p))
    return [...this.portTable.ports, ...qemu, ...taps, ...trunks, ...gateways]
  }

  /**
   * Apply a new configuration (SIGHUP), or refuse it whole. Two phases:
   * everything that can fail is done first (reading the TLS files and
   * building their secure context, keys only a restart can change), and only
   * then is anything applied. A refused configuration is logged
   * (config_rejected, naming the cause) and the running one stays: a
   * certificate renewal caught half-way (new cert, old key) must not take
   * switchd down. Returns whether it was applied.
   */
  reload (config: SwitchdConfig): boolean {
    let secure: tls.SecureContextOptions | undefined
    try {
      secure = this.checkReload(config)
    } catch (err) {
      this.reloads.rejected++
      log.error('config_rejected', { error: (err as Error).message, code: (err as { code?: string }).code })
      return false
    }
    this.reloads.applied++
    if (secure !== undefined && this.http instanceof https.Server) {
      this.http.setSecureContext(secure)
      log.info('tls_reloaded', { cert: config.tls?.cert })
    }
    const before = this.config
    this.config = config
    this.guard.apply()
    this.metricsGuard?.apply()
    // Ports are matched to tokens by the token itself (its digest), never by id or list position.
    const closing = new Set<NetPort>()
    for (const p of this.ports()) {
      const why = regrant(p, before, config)
      if (why === undefined) continue
      if (this.portTable.ports.has(p as WsPort)) this.portTable.evict(p as WsPort, CLOSE_POLICY, why)
      else p.shutdown(CLOSE_POLICY, why)
      closing.add(p)
    }
    this.networks.reload(config, (p) => this.portTable.requestOf(p as WsPort), (p) => {
      const digest = (p as NetPort).grantDigest
      return digest === undefined ? undefined : config.tokens.get(digest)
    }, closing)
    return true
  }

  /**
   * Phase one of reload(): throws TSW_ERR_CONFIG, naming the cause, if
   * `config` cannot be applied as a whole; returns the TLS options to install.
   */
  checkReload (config: SwitchdConfig): tls.SecureContextOptions | undefined {
    const now = this.config
    const restart: string[] = []
    if ((config.tls === undefined) !== (now.tls === undefined)) restart.push(config.tls === undefined ? 'tls (removed)' : 'tls (added)')
    else if ((config.tls?.clientCa === undefined) !== (now.tls?.clientCa === undefined)) restart.push('tls.clientCa')
    if (config.listen !== now.listen) restart.push('listen')
    if (config.metricsListen !== now.metricsListen) restart.push('metricsListen')
    if (JSON.stringify(config.qemu) !== JSON.stringify(now.qemu)) restart.push('qemu')
    if (JSON.stringify(config.taps) !== JSON.stringify(now.taps)) restart.push('taps')
    if (config.busyPoll !== now.busyPoll) restart.push('busyPoll')
    if (config.fastPath !== now.fastPath) restart.push('fastPath')
    if (JSON.stringify(config.trunks) !== JSON.stringify(now.trunks)) restart.push('trunks')
    if (JSON.stringify(config.gateways) !== JSON.stringify(now.gateways)) restart.push('networks.*.gateway')
    if (config.stateDir !== now.stateDir) restart.push('stateDir')
    if (config.bridgePriority !== now.bridgePriority) restart.push('bridgePriority')
    restart.push(...this.networks.restartNeeded(config))
    if (restart.length > 0) {
      throw new TapswitchError(ERR_CONFIG, `${restart.join(', ')} change only on restart: restart switchd to apply them, or put them back (nothing was applied)`)
    }
    // e.g. removing the admin token while client tokens remain would open the API.
    checkExposure(config, this.listenHost)
    if (config.tls === undefined) return undefined
    const opts = tlsOptions(config)
    const secure = { cert: opts.cert, key: opts.key, ...(opts.ca !== undefined ? { ca: opts.ca } : {}) }
    try {
      tls.createSecureContext(secure)
    } catch (err) {
      throw new TapswitchError(ERR_CONFIG, `TLS ${config.tls.cert} / ${config.tls.key}: ${(err as Error).message} (a certificate and its own key are needed; nothing was applied)`)
    }
    return secure
  }

  /** Whether the admin surface is open without a token here (loopback, no client tokens, no admin token). */
  get adminOpen (): boolean { return adminOpen(this.config, this.listenHost) }

  /** /metrics: behind the admin token whenever one is set (Prometheus sends it as a bearer token). */
  private serveMetrics (req: http.IncomingMessage, res: http.ServerResponse): void {
    const remote = req.socket.remoteAddress ?? '?'
    const verdict = checkAdminToken(this.authThrottle, remote, bearerToken(req), this.config.adminToken)
    if (!verdict.ok) { refuseAdmin(res, this, remote, '/metrics', verdict); return }
    for (const fp of this.fastPaths.values()) fp.sync()
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
    this.console.stop()
    this.metricsHttp?.close()
    for (const q of this.qemu) q.close()
    for (const t of this.taps) { t.close(); t.network.removePort(t) }
    for (const fp of this.fastPaths.values()) fp.close()
    this.fastPaths.clear()
    const gatewaysClosed = Promise.all(this.gatewayChildren.map(async (g) => { await g.close() }))
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
    await gatewaysClosed
    log.info('stopped', { ports: this.portTable.ports.size })
  }

  /** A DNS-rebinding page's requests carry its own name: refuse Hosts that do not name us. */
  private badHost (req: http.IncomingMessage): boolean {
    if (hostAllowed(req.headers.host, this.config.allowedHosts)) return false
    this.refused('bad_host')
    log.client('warn', 'connection_rejected', req.socket.remoteAddress, { remote: req.socket.remoteAddress, reason: 'bad_host', host: req.headers.host })
    return true
  }

  private onRequest (req: http.IncomingMessage, res: http.ServerResponse): void {
    for (const [k, v] of Object.entries(RESPONSE_HEADERS)) res.setHeader(k, v)
    if (this.badHost(req)) {
      res.writeHead(421, { 'content-type': 'text/plain' }).end(BAD_HOST + '\n')
      return
    }
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
    if (req.url === '/metrics' && this.metricsHttp === undefined && (this.config.adminToken !== undefined || this.adminOpen)) { this.serveMetrics(req, res); return }
    if (handleApi(req, res, this)) return
    if (handleConsole(req, res, this)) return
    const to = consoleRedirect(req)
    if (to !== undefined) { res.writeHead(302, { location: to, 'content-type': 'text/plain' }).end(`the web console is at ${to}\n`); return }
    res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' })
      .end('tapswitch: connect with a WebSocket client (raw frames, or subprotocol ' + SUBPROTOCOL_V1 + '); see docs/PROTOCOL.md\n')
  }

  /**
   * The web console's event stream: admitted by the console hub (API on,
   * Origin, subprotocol, the admin token through the throttle, room) before
   * the upgrade, so every socket it makes is an authenticated console.
   */
  private onConsoleUpgrade (req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const address = req.socket.remoteAddress ?? '?'
    const admitted = this.console.admit(req)
    if ('status' in admitted) {
      if (admitted.uncounted !== true) this.refused(admitted.reason)
      log.client('warn', 'console_refused', address, { remote: address, reason: admitted.reason, origin: req.headers.origin })
      const extra: Record<string, string> = admitted.retryAfter !== undefined ? { 'retry-after': String(admitted.retryAfter) } : {}
      if (admitted.status === 401) extra['www-authenticate'] = 'Bearer realm="switchd"'
      reject(socket, admitted.status, admitted.message, extra)
      return
    }
    this.consoleWss.handleUpgrade(req, socket, head, (ws) => {
      // Not a pending connection any more (limits.maxPending): count it as upgraded, like a port.
      ws.once('close', this.pendingConnections.upgrade(address))
      this.console.attach(ws, address, admitted)
    })
  }

  private onUpgrade (req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const address = req.socket.remoteAddress ?? '?'
    socket.on('error', (err) => { log.client('debug', 'socket_error', address, { remote: address, error: err.message }) })
    const refuse = (status: number, reason: string, message: string, token?: string): void => {
      this.refused(reason)
      // The path may carry ?token=: log the path only.
      // `why` is the answer the client got, the fix in words (cut: it may quote an Origin header).
      log.client('warn', 'connection_rejected', address, { remote: address, reason, path: (req.url ?? '').split('?')[0], token, why: message.slice(0, 200) })
      reject(socket, status, message)
    }
    if (this.closing !== undefined) { refuse(503, 'shutting_down', 'switchd is shutting down'); return }
    if (this.badHost(req)) { reject(socket, 421, BAD_HOST); return }
    if (requestUrl(req.url)?.pathname === EVENTS_PATH) { this.onConsoleUpgrade(req, socket, head); return }
    // Browsers always send Origin, other clients (tap-agent, ws) never do: a page
    // the operator visits must not join the LAN from inside their browser.
    if (!originAllowed(req.headers.origin, this.config.allowedOrigins)) {
      refuse(403, 'bad_origin', `origin ${req.headers.origin ?? ''} is not allowed: add it to allowedOrigins (--allowed-origins)`)
      return
    }
    const offered = req.headers['sec-websocket-protocol']
    if (offered !== undefined && !offered.split(',').map((p) => p.trim()).includes(SUBPROTOCOL_V1)) {
      // Never echo a console's bearer.<token> offered here by mistake: the answer may be logged or shown on the way back.
      const shown = offered.split(',').map((p) => p.trim()).filter((p) => !p.startsWith(BEARER_PREFIX)).join(', ')
      refuse(400, 'unsupported_subprotocol', `unsupported subprotocol "${shown}": offer ${SUBPROTOCOL_V1}, or none for raw mode`)
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
    const why = this.networks.refusal(name)
    if (why !== undefined) { refuse(404, 'unknown_network', why); return }
    const full = this.networks.addressRefusal(name, address)
    if (full !== undefined) { refuse(429, 'limit_networks', full); return }
    // Open the network only once the upgrade has succeeded: ws answers a bad
    // key or version itself and never calls back, and a network opened before
    // that would stay, empty, until restart (each one counts to maxNetworks).
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const sw = this.networks.open(name, address)
      ws.once('close', this.pendingConnections.upgrade(address))
      if (typeof sw === 'string') { this.refused('unknown_network'); closeSocket(ws, CLOSE_POLICY, 'unknown network'); return }
      this.portTable.attach(ws, req, sw, auth.grant)
    })
  }
}

/**
 * Re-apply a port's token on reload; returns why the port must close, if it
 * must. The token is found by its digest: one whose digest is gone is
 * revoked (so rotating a token's sha256 under the same id disconnects the old
 * holder). A token that stays may not move its port to another network or
 * name; its MACs, rate and id are re-applied here, its VLAN policy by
 * networks.reload. With tokens newly required, a port that has none goes.
 */
function regrant (p: NetPort, before: SwitchdConfig, config: SwitchdConfig): string | undefined {
  if (p.grantDigest === undefined) {
    return config.tokens.size > 0 && (p.kind === 'raw' || p.kind === 'tapswitch') ? 'a token is now required' : undefined
  }
  const g = config.tokens.get(p.grantDigest)
  if (g === undefined) return 'token revoked'
  if (g.network !== undefined && g.network !== p.network.name) return `token now for network "${g.network}"`
  if (g.name !== before.tokens.get(p.grantDigest)?.name) return 'token now gives another port name; reconnect'
  if (p.stp !== null && !g.trunk) return 'token may no longer connect a trunk'
  const macsChanged = [...(p.allowedMacs ?? [])].join() !== [...(g.macs ?? [])].join()
  p.grantId = g.id
  p.allowedMacs = g.macs ?? null
  if (p.rateBps !== g.rate) { p.rateBps = g.rate; p.rateTokens = Math.min(p.rateTokens, g.rate) }
  // MACs it may no longer use must not keep their fdb entries.
  if (macsChanged) p.network.fdb.deletePort(p)
  return undefined
}

/** Milliseconds on a monotonic clock: the switch's time. */
function nowMs (): number {
  return Math.floor(performance.now())
}

/**
 * Answer an upgrade request (or a request Node could not parse) with a plain
 * HTTP error, with RESPONSE_HEADERS and `extra`, and hang up: the socket is
 * destroyed once the answer is written, so a refused client holds nothing
 * (the server's sockets are half-open: ending ours alone would wait for the
 * client's).
 */
function reject (socket: Duplex, status: number, message: string, extra: Record<string, string> = {}): void {
  const body = message + '\n'
  const headers = { ...RESPONSE_HEADERS, ...extra, connection: 'close', 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(body)) }
  let head = `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\n`
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`
  socket.once('finish', () => { socket.destroy() })
  socket.end(head + '\r\n' + body)
}

/** Node's 'clientError' (a malformed request, headers too large or too late): answered as Node would, with our headers. */
function clientError (err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) { socket.destroy(); return }
  const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400
  reject(socket, status, status === 408 ? 'the request did not arrive within limits.handshakeTimeout' : 'malformed request')
}
