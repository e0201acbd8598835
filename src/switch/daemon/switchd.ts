/**
 * switchd, the daemon: the floor that wires the control plane to the
 * transports. It owns the one port registry (registry.ts), the HTTP
 * listeners (http.ts) and where their requests go (routes.ts, decided by
 * admit.ts), the configured endpoints (endpoints.ts), WebSocket sessions
 * (port-table.ts), reload (reload.ts), keepalive and the switch's clock.
 * The control plane sees it only through control/view.ts (SwitchdView).
 *
 * Keepalive: every `pingInterval` seconds each port is pinged; a port that
 * sent nothing (no pong, no message) since the last round is terminated.
 */

import { setCondition, setLinkDown } from '../core/link'
import type { ConditionParams } from '../core/condition'
import type * as http from 'node:http'
import * as https from 'node:https'
import type * as tls from 'node:tls'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import type { Registry } from 'prom-client'
import type { Switch } from '../core/switch'
import type { WsPort } from '../io/ws-port'
import type { NetPort } from '../io/net-port'
import { QEMU_REJECT_REASONS, type QemuListener } from '../io/qemu-listener'
import type { TrunkLink } from '../io/trunk'
import type { Gateway } from '../io/gateway'
import type { SandboxHost } from '../io/gateway-sandbox'
import { ChildPeerGuard, CHILD_REJECT_REASONS, type ChildRef } from '../io/child-peers'
import type { TapBinding } from '../io/tap-port'
import type { FastPath } from '../io/fast-path'
import { NativePorts } from './native-ports'
import { Networks } from '../control/networks'
import { buildConfig, type SwitchdConfig, type ConfigOverrides } from '../control/config'
import { CONSOLE_SUBPROTOCOL, type TokenGrant } from '../control/auth'
import type { PendingConnections } from '../control/admission'
import { AuthThrottle } from '../control/throttle'
import { isLoopback, splitHostPort } from '../../common/address'
import { checkExposure, adminOpen } from '../control/exposure'
import { CaptureHub } from '../control/capture'
import { ConsoleHub, MAX_CLIENT_MESSAGE } from '../control/console'
import { switchdRegistry } from '../control/metrics'
import type { SwitchdView, DaemonCounters, GatewayFacts, VxlanFacts, PortHandle } from '../control/view'
import { PortTable } from './port-table'
import { PortRegistry } from './registry'
import { ListenerGuard } from './listener-guard'
import { mainListener, metricsListener, bind, reject, wsServer } from './http'
import { startFleet, fleetState } from './fleet-host'
import type { Fleet } from '../io/fleet'
import { serveRequest, serveMetricsListener, serveUpgrade, type RouteContext } from './routes'
import { admissionOf, type AdmissionState } from './admit'
import { openEndpoints, type Endpoint } from './endpoints'
import { Drain, closeSockets } from './drain'
import { checkReload, regrant } from './reload'
import { gatewayFacts, vxlanFacts } from './facts'
import { SUBPROTOCOL_V1, MAX_MESSAGE_SIZE, CLOSE_GOING_AWAY, CLOSE_POLICY } from '../../common/protocol'
import { TapswitchError, ERR_CONFIG, ERR_CLOSED } from '../../common/errors'
import type { DrainJson } from '../../common/api-types'
import { logger } from '../../common/log'

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
  /** This replica's name (switchd --replica, SWITCHD_REPLICA); the host's name if absent. */ replica?: string
}

/** Every reason a connection can be refused: present from the start so its metric exists at 0. */
const REJECT_REASONS = ['unsupported_subprotocol', 'bad_path', 'unknown_network', 'shutting_down', 'unauthorized', 'forbidden_network',
  'bad_host', 'bad_origin', 'limit_pending', 'limit_ports', 'limit_address', 'bad_hello', 'hello_timeout', 'data_before_hello', 'vlan_refused', 'trunk_refused',
  'limit_pending_address', 'auth_throttled', 'limit_console', 'bad_handshake', 'limit_networks', 'draining', 'mesh_refused', 'fleet_unauthorized'] as const

export class SwitchServer implements SwitchdView, RouteContext {
  readonly networks: Networks
  readonly http: http.Server
  config: SwitchdConfig
  /** Every port, whoever made it: keyed by network and name. */
  readonly portRegistry = new PortRegistry()
  readonly portTable: PortTable
  /** WebSocket ports: the largest legal message is a full batch (beyond it ws closes with 1009); pongs are ours to send (port-table.ts). */
  readonly portsWss = wsServer(SUBPROTOCOL_V1, MAX_MESSAGE_SIZE, false)
  /** The console's event stream: small text messages only. */
  readonly consoleWss = wsServer(CONSOLE_SUBPROTOCOL, MAX_CLIENT_MESSAGE, true)
  private readonly closeTimeout: number
  private keepaliveTimer: NodeJS.Timeout | undefined
  private clockTimer: NodeJS.Timeout | undefined
  private closing: Promise<void> | undefined
  /** Connections refused, by reason. */
  readonly rejectedBy: Record<string, number> = Object.fromEntries([...REJECT_REASONS, ...QEMU_REJECT_REASONS, ...CHILD_REJECT_REASONS].map((r) => [r, 0]))
  readonly captures = new CaptureHub()
  /** The web consoles watching (/ui, /api/v1/events). */
  readonly console: ConsoleHub
  /** Wrong admin tokens per client address: the API, /metrics and the console's upgrade share it. */
  readonly authThrottle: AuthThrottle
  /** Configuration reloads (SIGHUP), applied and rejected whole. */
  readonly reloads = { applied: 0, rejected: 0 }
  readonly registry: Registry
  private metricsHttp: http.Server | undefined
  private listening = false
  /** The address `listen` bound (for exposure checks on reload). */ listenHost = '127.0.0.1'
  /** The main listener's admission before a request is read (listener-guard.ts). */
  private readonly guard: ListenerGuard
  /** The metrics listener's (--metrics-listen), with a pool of its own. */
  private metricsGuard: ListenerGuard | undefined
  /** listen()'s work: close() waits for it (a trunk or fleet started after close() began would never stop). */
  private starting: Promise<AddressInfo> | undefined
  /** The configured endpoints (endpoints.ts), in the order they opened. */
  private readonly endpoints: Endpoint[] = []
  /** Each network's native fast path for its TAPs (io/fast-path.ts), made with its first TAP. */
  private readonly fastPaths = new Map<Switch, FastPath>()
  /** Which WebSocket ports those fast paths carry (native-ports.ts). */
  readonly nativePorts: NativePorts
  /** Every listener of ours refuses the gateway children's connections, whatever address they dialled. */
  readonly childPeers = new ChildPeerGuard(() => this.gatewayChildren.map((g) => g.childRef()).filter((c): c is ChildRef => c !== undefined), (r) => { this.refused(r) })
  /** What admission (admit.ts) reads of switchd, read when a request comes. */
  readonly admission: AdmissionState
  /** Handing this replica's ports to the others (drain.ts). */
  private readonly drainer: Drain
  /** This replica's name (--replica, else the host's): the `replica` label of every metric, GET /api/v1/status. */ get replica (): string { return this.opts.replica ?? this.config.replica }
  /** The fleet's membership loop and mesh links (--fleet; fleet-host.ts), once listening. */
  fleet: Fleet | undefined

  constructor (private readonly opts: ServerOptions = {}) {
    let config = opts.config ?? buildConfig({}, '(defaults)', { ...opts, portBuffer: opts.highWaterMark ?? opts.portBuffer })
    if (opts.helloTimeout !== undefined) config = { ...config, limits: { ...config.limits, handshakeTimeout: opts.helloTimeout } }
    this.config = config
    this.networks = new Networks(this.config, nowMs)
    this.nativePorts = new NativePorts(() => this.config.fastPath, this.fastPaths, this.opts.tapBinding)
    this.portTable = new PortTable(this.networks, () => this.config, (reason) => { this.refused(reason) }, this.portRegistry, this.nativePorts)
    this.closeTimeout = opts.closeTimeout ?? 2
    this.drainer = new Drain(this.portTable, this.closeTimeout)
    this.authThrottle = opts.authThrottle ?? new AuthThrottle()
    this.console = new ConsoleHub(this)
    this.admission = admissionOf(this)
    // A handshake ws itself finds malformed (bad key or version) is refused by us, with our headers, and counted.
    for (const w of [this.portsWss, this.consoleWss]) {
      w.on('wsClientError', (err: Error, socket: Duplex) => {
        this.refused('bad_handshake')
        reject(socket, err.message === 'Invalid HTTP method' ? 405 : 400, err.message)
      })
    }
    this.registry = switchdRegistry(this, { replica: this.replica, perPort: this.config.perPortMetrics, maxPortSeries: this.config.maxPortSeries })
    this.http = mainListener(this.config, (req, res) => { serveRequest(this, req, res) })
    this.guard = new ListenerGuard(this.http, 'listen', () => this.config.limits, this.childPeers, (r) => { this.refused(r) }, this.config.tls !== undefined)
    this.http.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => { serveUpgrade(this, req, socket, head) })
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

  /** Whether the admin surface is open without a token here (loopback, no client tokens, no admin token). */
  get adminOpen (): boolean { return adminOpen(this.config, this.listenHost) }

  /** Trunks we dial, gateways and QEMU listeners (endpoints.ts), in configuration order. */
  get trunks (): TrunkLink[] { return this.endpoints.flatMap((e) => e.kind === 'trunk' ? [e.link] : []) }
  get gatewayChildren (): Gateway[] { return this.endpoints.flatMap((e) => e.kind === 'gateway' ? [e.gateway] : []) }
  private get qemuListeners (): QemuListener[] { return this.endpoints.flatMap((e) => e.kind === 'qemu' ? [e.listener] : []) }

  refused (reason: string): void { this.rejectedBy[reason] = (this.rejectedBy[reason] ?? 0) + 1 }

  /** Count an admin API request refused before it was served (browser checks). */
  refusedApi (reason: 'bad_origin' | 'unauthorized' | 'auth_throttled'): void { this.refused(reason) }

  gateways (): GatewayFacts[] { return this.gatewayChildren.map(gatewayFacts) }
  vxlan (): VxlanFacts[] { return vxlanFacts(this.endpoints) }

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
      trunkVlansRefused,
      meshBpdusDropped: pt.meshBpdusDropped + [...this.fleet?.links.values() ?? []].reduce((n, l) => n + l.bpdusDropped, 0),
      fleetPeers: this.fleet?.peers ?? 0
    }
  }

  // Handles come only from ports() below: each is one of our NetPorts, seen through the view.
  disablePort (handle: PortHandle): void { const p = handle as NetPort; p.network.disablePort(p) }
  enablePort (handle: PortHandle): void { const p = handle as NetPort; p.network.enablePort(p) }
  disconnectPort (handle: PortHandle, reason: string): void { (handle as NetPort).shutdown(CLOSE_POLICY, reason) }
  setCondition (handle: PortHandle, direction: number, params: ConditionParams | null): void { const p = handle as NetPort; setCondition(p.network, p, direction, params) }
  setLinkDown (handle: PortHandle, direction: number | 'both', down: boolean): void { const p = handle as NetPort; setLinkDown(p.network, p, direction, down) }
  startFlap (handle: PortHandle, down: number, every: number): void { (handle as NetPort).startFlap(down, every) }
  stopFlap (handle: PortHandle): void { (handle as NetPort).stopFlap() }

  /** The ports named `name` (in `network` if given): the registry's key. */
  portsNamed (name: string, network?: Switch): PortHandle[] { this.syncFastPaths(); return this.portRegistry.find(name, network) }

  syncFastPaths (): void { for (const fp of this.fastPaths.values()) fp.sync() }

  openNetwork (name: string, address: string): Switch | string { return this.networks.open(name, address) }

  attach (ws: WebSocket, req: http.IncomingMessage, sw: Switch, grant: TokenGrant | undefined, fleet?: boolean): void {
    this.portTable.attach(ws, req, sw, grant, fleet)
  }

  fleetState (): ReturnType<typeof fleetState> { return fleetState(this) }

  /**
   * Bind, open the configured endpoints, start the fleet; resolves with the bound address (port 0 picks a free one).
   * A close() meanwhile waits for it, then closes all of it. Once close() was called it rejects (TSW_ERR_CLOSED):
   * a start then would be closed by nothing (a trunk dialling, the timers running, for ever).
   */
  listen (): Promise<AddressInfo> {
    if (this.closing !== undefined) return Promise.reject(new TapswitchError(ERR_CLOSED, 'switchd is closed: a SwitchServer listens once'))
    return (this.starting ??= this.start())
  }

  private async start (): Promise<AddressInfo> {
    const [cfgHost, cfgPort] = splitHostPort(this.config.listen)
    const host = this.opts.host ?? cfgHost
    if (!isLoopback(host) && this.config.tokens.size === 0 && !this.config.allowAnonymous) {
      throw new TapswitchError(ERR_CONFIG, `refusing to listen on ${host} without tokens: anyone who reaches it would join the LAN. ` +
        'Configure tokens (README "Security"), listen on 127.0.0.1, or pass --allow-anonymous')
    }
    checkExposure(this.config, host)
    this.listenHost = host
    await bind(this.http, this.opts.port ?? cfgPort, host)
    if (this.config.metricsListen !== undefined) {
      const [mh, mp] = splitHostPort(this.config.metricsListen)
      // The same admission as the main listener's, in a pool of its own: beyond loopback it is open to anyone who reaches it.
      this.metricsHttp = metricsListener(this.config, (req, res) => { serveMetricsListener(this, req, res) })
      this.metricsGuard = new ListenerGuard(this.metricsHttp, 'metrics', () => this.config.limits, this.childPeers, (r) => { this.refused(r) }, false)
      await bind(this.metricsHttp, mp, mh)
    }
    await openEndpoints({
      config: this.config, networks: this.networks, registry: this.portRegistry, childPeers: this.childPeers,
      tapBinding: this.opts.tapBinding, gatewaySandbox: this.opts.gatewaySandbox, fastPaths: this.fastPaths,
      allocateId: () => this.portTable.allocateId(), refused: (r) => { this.refused(r) },
      // switchd's own TCP ports: the gateway's address is the host's loopback, and stations must not reach us through it.
      selfPorts: () => [this.address().port, this.metricsAddress()?.port ?? 0, ...this.qemuListeners.map((q) => q.tcpPort)]
    }, this.endpoints)
    this.fleet = await startFleet(this, this.config.tls !== undefined)
    this.console.start()
    this.keepaliveTimer = setInterval(() => { this.portTable.keepalive(this.config.pingInterval) }, this.config.pingInterval * 1000)
    // 100 ms: storm-control buckets refill smoothly; fdb expiry runs once a second on the same tick.
    this.clockTimer = setInterval(() => {
      const now = nowMs()
      this.networks.tick(now)
      for (const e of this.endpoints) e.tick?.(now)
    }, 100)
    // Ready (/readyz) once all of it started: a start that failed is never taken for a serving switchd.
    this.listening = true
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

  /** Every port that has joined a network (slow path: tools, tests): the registry's list. */
  ports (): NetPort[] {
    // What the native fast paths forwarded since the last tick shows at once in every view.
    this.syncFastPaths()
    return this.portRegistry.list()
  }

  /**
   * Apply a new configuration (SIGHUP), or refuse it whole. Two phases:
   * everything that can fail is done first (reload.ts checkReload), and only
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

  /** Phase one of reload(): throws TSW_ERR_CONFIG, naming the cause, if `config` cannot be applied as a whole; returns the TLS options to install. */
  checkReload (config: SwitchdConfig): tls.SecureContextOptions | undefined {
    return checkReload(this.config, config, this.networks, this.listenHost)
  }

  /** Stop accepting, close every port with 1001 "going away", wait up to `closeTimeout` for the peers, then cut whatever is left. Idempotent. */
  close (): Promise<void> {
    this.closing ??= this.doClose()
    return this.closing
  }

  /** Drain (drain.ts: not ready, upgrades 503, every port closed with 4006), resolving once its ports are closed; or serve again. */
  async drain (on = true): Promise<DrainJson> { return on ? await this.drainer.start() : this.drainer.stop() }
  get draining (): boolean { return this.drainer.draining }

  get isClosing (): boolean { return this.closing !== undefined }
  get isListening (): boolean { return this.listening }
  get metricsHere (): boolean { return this.metricsHttp === undefined }

  private async doClose (): Promise<void> {
    // A start under way finishes first (its failure is listen()'s to report), so that all it opened is closed below.
    await this.starting?.catch(() => {})
    this.listening = false
    clearInterval(this.keepaliveTimer)
    clearInterval(this.clockTimer)
    this.captures.stopAll()
    this.console.stop()
    this.metricsHttp?.close()
    // Listeners and TAPs stop at once; gateways (a child to end) and trunks (a close to send) are waited for.
    const later: Promise<void>[] = []
    const trunks: Promise<void>[] = []
    for (const e of this.endpoints) {
      const done = e.close()
      if (done !== undefined) (e.kind === 'trunk' ? trunks : later).push(done)
    }
    if (this.fleet !== undefined) trunks.push(this.fleet.close())
    const closed = new Promise<void>((resolve) => this.http.close(() => { resolve() }))
    // After a drain (SIGTERM) only stragglers are left here: ports made while it ran.
    await closeSockets(this.portTable.sockets(), CLOSE_GOING_AWAY, 'switchd shutting down', this.closeTimeout, trunks)
    // After the ports' close handshakes: the threads carry some of those connections.
    for (const fp of this.fastPaths.values()) fp.close()
    this.fastPaths.clear()
    this.http.closeAllConnections()
    await closed
    await Promise.all(later)
    log.info('stopped', { ports: this.portTable.ports.size })
  }
}

/** Milliseconds on a monotonic clock: the switch's time. */
function nowMs (): number { return Math.floor(performance.now()) }
