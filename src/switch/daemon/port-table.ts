/**
 * The daemon's side of a WebSocket port's life: admission of its handshake
 * (the grant in force, the per-address share, the VLANs and trunk right),
 * its name, its place in the registry, parking and resume. The transport's
 * side (message handlers, replies, BPDU guard, keepalive) is io/ws-session.ts.
 *
 * A tapswitch-mode port whose link drops is parked for `resumeGrace`
 * seconds: it stays in its Switch, so its fdb entries stay valid and nothing
 * floods, and frames to it are dropped (counted). An agent that comes back
 * within the grace and presents the welcome's resume token gets the same
 * port: same id, name, VLANs and MACs.
 *
 * "The link dropped" means keepalive found the port silent. A peer that
 * closes its connection (a close frame, or its kernel's FIN/RST when the
 * agent process dies) is gone at once, with its MACs: a killed agent must not
 * leave a ghost port. If the agent reconnects before switchd noticed the drop,
 * its resume takes the port over and the old socket is cut.
 *
 * A port counts against its client address (limits.maxPortsPerAddress) for
 * as long as it exists, parked included: from the upgrade (the handshake
 * holds the place it will take) until it is removed. A resume from another
 * address moves it there (the resuming connection was admitted under that
 * address's share). The grant checked at the upgrade is checked again against
 * the configuration in force when the port is made (a hello may come after a
 * reload that revoked the token).
 */

import type * as http from 'node:http'
import { randomBytes } from 'node:crypto'
import type { WebSocket, RawData } from 'ws'
import type { Switch } from '../core/switch'
import { R_DISCONNECTED, R_BACKPRESSURE } from '../core/reasons'
import { WsPort, RawPort, BatchPort, closeSocket } from '../io/ws-port'
import type { PortPolicy } from '../core/port'
import type { Networks } from '../control/networks'
import { isReservedName, type SwitchdConfig } from '../control/config'
import { grantInForce, type TokenGrant } from '../control/auth'
import { PortShares } from '../control/admission'
import { clientAddressOf } from '../control/client-address'
import { PortRegistry, type OwnedPorts } from './registry'
import type { NativePorts } from './native-ports'
import { meshVerdict, meshPolicy, meshPort, MESH_PREFIX } from './mesh-admit'
import { answerPings, wireSession, keepaliveRound, describeVlan, setOffload, welcomeOf, sendWelcome, type SessionCounters } from '../io/ws-session'
import {
  SUBPROTOCOL_V1, CAP_TRUNK, CAP_OFFLOAD, parseHello, type Hello, type VlanRequest,
  CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR, CLOSE_HELLO_TIMEOUT, CLOSE_BAD_HELLO, CLOSE_POLICY, CLOSE_DRAINING, DRAINING_REASON
} from '../../common/protocol'
import { logger } from '../../common/log'

const log = logger('ports')

/** A handshake's count for its address (limits.maxPortsPerAddress), until it becomes a port or its socket closes. */
interface Slot {
  readonly key: string
  /** The client's address, as the socket gave it. */
  readonly address: string
  ended: boolean
}

export class PortTable implements SessionCounters {
  /** Connected and parked ports: the sessions' share of the daemon's one registry. */
  readonly ports: OwnedPorts<WsPort>
  /** tapswitch-mode sockets that have not said hello yet. */
  readonly pending = new Set<WebSocket>()
  accepted = 0
  resumed = 0
  // What the sessions count (io/ws-session.ts SessionCounters says what each is).
  textIgnored = 0
  pongsSent = 0
  repliesDropped = 0
  closedNotReading = 0
  controlIgnored = 0
  bpduGuardShutdowns = 0
  meshBpdusDropped = 0
  private nextPortId = 1
  private readonly requests = new WeakMap<WsPort, VlanRequest | undefined>()
  private readonly resumable = new Map<string, BatchPort>()
  private readonly parkTimers = new WeakMap<WsPort, NodeJS.Timeout>()
  /** Ports (parked ones too) and handshakes per client address (limits.maxPortsPerAddress). */
  private readonly shares = new PortShares()
  /** The address key each port counts under (moved by a resume). */
  private readonly portKeys = new WeakMap<WsPort, string>()
  private lastKeepalive = 0
  /** Shutting down or draining: no port parks, and no new one is made. */
  closing = false

  constructor (
    private readonly networks: Networks,
    private readonly config: () => SwitchdConfig,
    private readonly refused: (reason: string) => void,
    registry = new PortRegistry(),
    private readonly native?: NativePorts // welcomed ports to the networks' native fast paths (none: all stay on ws)
  ) {
    this.ports = registry.owned<WsPort>('session')
  }

  /**
   * Handshakes and connected ports from `address`'s key: what an upgrade is
   * judged by (limits.maxPortsPerAddress). Parked ports are left out here (the
   * upgrade may be their resume) but counted when a port is made (fits()).
   */
  countFrom (address: string): number { return this.shares.upgradeCount(address) }

  /** Ports from `address`'s key, parked ones included. */
  portsFrom (address: string): number { return this.shares.portsOf(address) }

  /** A port id no other port has (QEMU listeners take theirs from here too). */
  allocateId (): number { return this.nextPortId++ }

  /** Everything holding a slot (for limits.maxPorts). */
  get size (): number { return this.ports.size + this.pending.size }

  /** What the port asked for in its hello (a reload grants it again). */
  requestOf (p: WsPort): VlanRequest | undefined { return this.requests.get(p) }

  /** A WebSocket was upgraded on `sw`'s path with `grant` (undefined without authentication), or with the fleet credential. */
  attach (ws: WebSocket, req: http.IncomingMessage, sw: Switch, grant: TokenGrant | undefined, fleet = false): void {
    const address = clientAddressOf(req, this.config()) // a trusted proxy's X-Forwarded-For, else the peer: every share below
    const remote = `${address}:${req.socket.remotePort ?? 0}`
    // Admitted just before a drain or shutdown began (the upgrade was under way): no port here, go to another replica.
    if (this.closing) { closeSocket(ws, CLOSE_DRAINING, DRAINING_REASON); this.networks.release(sw); return }
    // The handshake counts for its address until it becomes a port (join, resume) or its socket closes.
    const slot: Slot = { key: this.shares.handshake(address), address, ended: false }
    ws.once('close', () => { this.endHandshake(slot) })
    ws.on('error', (err) => { log.client('info', 'port_error', address, { remote, error: err.message }) })
    answerPings(ws, this.config().portBuffer, this)
    if (ws.protocol === SUBPROTOCOL_V1) { this.awaitHello(ws, slot, remote, sw, grant, fleet); return }
    const now = this.inForce(ws, slot, remote, sw, grant)
    if (now === false || !this.fits(ws, slot, remote, sw)) return
    const port = new RawPort(this.nextPortId++, '', ws, remote, this.config().portBuffer, sw)
    // A raw client cannot name itself: its name is the token's pin or one switchd makes up, trusted either way.
    port.name = now?.name ?? this.uniqueName(undefined, 'raw', port.id)
    this.join(port, slot, this.networks.policyFor(sw, port, undefined, now) as PortPolicy, now)
  }

  /**
   * The grant of a handshake as the configuration in force has it when its port is about to be made (tokens
   * and networks may have changed since the upgrade); false, refused (1008, counted) if it no longer admits it.
   */
  private inForce (ws: WebSocket, slot: Slot, remote: string, sw: Switch, grant: TokenGrant | undefined): TokenGrant | undefined | false {
    const gone = this.networks.removed(sw)
    const auth = gone === undefined ? grantInForce(this.config().tokens, grant, sw.name) : { ok: false as const, reason: 'unknown_network', message: gone, id: grant?.id }
    if (auth.ok) return auth.grant
    this.refuseHello(ws, slot, remote, sw, auth.reason, auth.message, { token: auth.id }, 'connection_rejected')
    return false
  }

  /**
   * Whether one more port from the handshake's address fits its share, parked ports included (an address cannot go
   * past it by letting its ports go silent); if not, the socket is closed (1008) and the refusal counted.
   */
  private fits (ws: WebSocket, slot: Slot, remote: string, sw: Switch): boolean {
    const max = this.config().limits.maxPortsPerAddress
    if (this.shares.portsOf(slot.address) < max) return true
    this.refuseHello(ws, slot, remote, sw, 'limit_address', `at most ${max} ports per client address, parked ones included`, {}, 'connection_rejected')
    return false
  }

  private endHandshake (slot: Slot): void {
    if (slot.ended) return
    slot.ended = true
    this.shares.handshakeEnded(slot.key)
  }

  private awaitHello (ws: WebSocket, slot: Slot, remote: string, sw: Switch, grantAtUpgrade: TokenGrant | undefined, fleet: boolean): void {
    this.pending.add(ws)
    const timeout = this.config().limits.handshakeTimeout
    const timer = setTimeout(() => {
      this.refused('hello_timeout')
      closeSocket(ws, CLOSE_HELLO_TIMEOUT, `no hello within ${timeout} s`)
    }, timeout * 1000)
    const onMessage = (data: RawData, isBinary: boolean): void => {
      // Closed by us (its hello came too late): what it says now makes no port.
      if (ws.readyState !== ws.OPEN) return
      clearTimeout(timer)
      this.pending.delete(ws)
      ws.off('message', onMessage)
      ws.off('close', onClose)
      // From here on the handshake either makes a port or fails; on failure the network goes if it was made for us.
      if (isBinary) { this.refused('data_before_hello'); closeSocket(ws, CLOSE_PROTOCOL_ERROR, 'data before hello'); this.networks.release(sw); return }
      let hello: Hello
      try {
        hello = parseHello((data as Buffer).toString('utf8'))
      } catch (err) {
        this.refused('bad_hello')
        log.client('warn', 'bad_hello', slot.address, { remote, error: (err as Error).message })
        closeSocket(ws, CLOSE_BAD_HELLO, (err as Error).message)
        this.networks.release(sw)
        return
      }
      // Checked at the upgrade; a reload since may have revoked the token or moved it: the configuration in force decides.
      const grant = fleet ? undefined : this.inForce(ws, slot, remote, sw, grantAtUpgrade)
      if (grant === false) return
      // Offload (virtio-net headers on every record) is granted to whoever asks: the switch makes plain frames for the others.
      const offload = hello.capabilities?.includes(CAP_OFFLOAD) === true
      // Another replica's mesh link: only with the fleet credential, which opens nothing else (mesh-admit.ts).
      const mesh = meshVerdict(hello, fleet)
      if ('refuse' in mesh) { this.refuseHello(ws, slot, remote, sw, 'mesh_refused', mesh.refuse, {}); return }
      if (mesh.mesh) { this.joinMesh(ws, slot, remote, sw, mesh.peer, offload, hello.mtu); return }
      if (hello.resume !== undefined && this.resume(ws, slot, remote, sw, grant, hello.resume, offload)) return
      // Another switchd dialling in as a trunk: with tokens, only one that allows it.
      const trunk = hello.capabilities?.includes(CAP_TRUNK) === true
      if (trunk && grant !== undefined && !grant.trunk) { this.refuseHello(ws, slot, remote, sw, 'trunk_refused', 'this token may not connect a trunk (give it "trunk": true)', { token: grant.id }); return }
      const port = new BatchPort(this.nextPortId++, '', ws, remote, this.config().portBuffer, sw)
      port.name = grant?.name ?? this.uniqueName(hello.name, trunk ? 'trunk' : 'agent', port.id)
      // The name in a hello is a claim; a token's pin, or a name switchd made up, is trusted.
      port.nameTrusted = grant?.name !== undefined || hello.name === undefined
      if (trunk) port.capabilities.push(CAP_TRUNK)
      setOffload(port, offload)
      const policy = this.networks.policyFor(sw, port, hello.vlan, grant, trunk)
      if (typeof policy === 'string') { this.refuseHello(ws, slot, remote, sw, 'vlan_refused', policy, { port: port.name }); return }
      // Without tokens, trunks are opt-in too: only a name whose profile says `trunk: true` (issue 12, finding 8).
      if (trunk && grant === undefined && policy.trunk !== true) {
        this.refuseHello(ws, slot, remote, sw, 'trunk_refused', 'trunks are opt-in: a token with "trunk": true, or a claimable profile with "trunk": true', { port: port.name })
        return
      }
      if (!this.fits(ws, slot, remote, sw)) return
      this.requests.set(port, hello.vlan)
      this.join(port, slot, policy, grant, hello.mtu, trunk)
      if (port.stp !== null) port.stp.rootGuard = grant !== undefined ? grant.rootGuard : policy.rootGuard === true
      this.welcome(port, false)
    }
    const onClose = (): void => { clearTimeout(timer); this.pending.delete(ws); this.networks.release(sw) }
    ws.on('message', onMessage)
    ws.on('close', onClose)
  }

  /** Refuse a handshake: counted under `reason`, logged (`event`), closed with 1008 and `why`; the network goes if it was made for it. */
  private refuseHello (ws: WebSocket, slot: Slot, remote: string, sw: Switch, reason: string, why: string, fields: Record<string, string | undefined>, event = reason): void {
    this.refused(reason)
    log.client('warn', event, slot.address, { remote, reason, network: sw.name, ...fields, why })
    closeSocket(ws, CLOSE_POLICY, why)
    this.networks.release(sw)
  }

  /** Another replica's mesh link (mesh-admit.ts): the fleet's VLANs whatever it asked, no spanning tree. */
  private joinMesh (ws: WebSocket, slot: Slot, remote: string, sw: Switch, peer: string, offload: boolean, mtu: number | undefined): void {
    if (!this.fits(ws, slot, remote, sw)) return
    const port = meshPort(new BatchPort(this.nextPortId++, '', ws, remote, this.config().portBuffer, sw), offload)
    port.name = this.uniqueName(MESH_PREFIX + peer, 'mesh', port.id)
    this.join(port, slot, meshPolicy(this.config().fleet?.vlans ?? [], sw.fdb.maxEntries), undefined, mtu)
    this.welcome(port, false)
  }

  /**
   * Hand a parked port back to its agent; false if the token is unknown, expired, not this
   * client's, or its port is being closed on purpose (a new mode, BPDU guard: a resume would
   * outlive that close, old policy and all). The port moves to the resuming connection's address.
   */
  private resume (ws: WebSocket, slot: Slot, remote: string, sw: Switch, grant: TokenGrant | undefined, token: string, offload: boolean): boolean {
    const port = this.resumable.get(token)
    const why = port === undefined ? 'unknown or expired token'
      : !this.ports.has(port) || port.network !== sw || port.grantDigest !== grant?.digest ? 'not this client\'s port' : port.noResume ? 'being closed on purpose; reconnect'
        : this.portKeys.get(port) !== slot.key && this.shares.portsOf(slot.address) >= this.config().limits.maxPortsPerAddress ? 'this address has its maximum of ports (limits.maxPortsPerAddress)'
          : undefined
    if (port === undefined || why !== undefined) {
      log.client('info', 'resume_refused', slot.address, { remote, network: sw.name, reason: why })
      return false
    }
    this.resumable.delete(token)
    clearTimeout(this.parkTimers.get(port))
    const old = port.ws
    // The port moves to the resuming connection's address (it fits there: checked above).
    this.release(port)
    this.take(port, slot)
    port.reattach(ws, remote)
    setOffload(port, offload)
    // Not parked yet: switchd had not noticed the drop. The old socket's close is ignored (port.ws moved on).
    if (old !== ws) old.terminate()
    this.resumed++
    this.wire(port)
    log.client('info', 'port_resumed', slot.address, { port: port.name, id: port.id, network: sw.name, remote, fdb_entries: port.fdbEntries, dropped_while_away: port.drops[R_DISCONNECTED] })
    this.welcome(port, true)
    return true
  }

  private welcome (port: BatchPort, resumed: boolean): void {
    const grace = this.config().resumeGrace
    const welcome = welcomeOf(port, this.config().pingInterval)
    // A trunk is not resumed: the switch that dialled starts its side afresh, so ours does too.
    if (grace > 0 && port.stp === null && !port.mesh) {
      const token = randomBytes(24).toString('base64url')
      this.resumable.set(token, port)
      port.resumeToken = token
      welcome.resume = token
      welcome.resumeGrace = grace
    }
    if (resumed) welcome.resumed = true
    sendWelcome(port, welcome)
    // From here on the frames may take the native path (native-ports.ts); the session goes on over the socket that replaces ws.
    this.native?.carry(port, this, () => { this.wire(port) })
  }

  /** The handshake became `port`: it counts for the handshake's address from now on. */
  private take (port: WsPort, slot: Slot): void {
    this.endHandshake(slot)
    this.portKeys.set(port, this.shares.portAdded(slot.key))
  }

  /** The port no longer counts for the address it counted under (it goes, or moves). */
  private release (port: WsPort): void {
    const key = this.portKeys.get(port)
    if (key === undefined) return
    this.portKeys.delete(port)
    this.shares.portRemoved(key, port.parked)
  }

  private join (port: WsPort, slot: Slot, policy: PortPolicy, grant: TokenGrant | undefined, mtu?: number, trunk = false): void {
    const sw = port.network
    this.take(port, slot)
    port.applyPolicy(policy)
    port.ownsName = this.networks.ownsName(sw, port)
    if (grant !== undefined) {
      port.grantId = grant.id
      port.grantDigest = grant.digest
      port.allowedMacs = grant.macs ?? null
      port.rateBps = grant.rate
    }
    this.accepted++
    this.ports.add(port)
    sw.addPort(port, trunk)
    log.client('info', 'port_up', slot.address, { port: port.name, id: port.id, network: sw.name, kind: port.kind, vlan: JSON.stringify(describeVlan(policy)), remote: port.remote, token: grant?.id, mtu, offload: port.offload })
    if (mtu !== undefined && mtu + 18 > sw.maxFrameSize) {
      log.client('warn', 'mtu_exceeds_max_frame_size', slot.address, { port: port.name, mtu, max_frame_size: sw.maxFrameSize })
    }
    this.wire(port)
  }

  /** Install the session's handlers on the port's current socket; when it closes, park the port or remove it. */
  private wire (port: WsPort): void {
    wireSession(port, this, (code, reason) => {
      const grace = this.config().resumeGrace
      if (port instanceof BatchPort && grace > 0 && port.timedOut && !port.noResume && !this.closing && code !== CLOSE_NORMAL) {
        this.park(port, grace, code)
        return
      }
      this.remove(port, code, reason)
    })
  }

  /**
   * Take a port down for a policy reason (a reload revoked its token): a
   * connected one is closed, a parked one, whose peer is away, goes now
   * rather than at the end of its resume grace.
   */
  evict (port: WsPort, code: number, reason: string): void {
    if (!port.parked) { port.shutdown(code, reason); return }
    clearTimeout(this.parkTimers.get(port))
    this.remove(port, code, reason)
  }

  private park (port: BatchPort, grace: number, code: number): void {
    port.parked = true
    const key = this.portKeys.get(port)
    if (key !== undefined) this.shares.parkedAt(key)
    log.client('info', 'port_parked', port.address, { port: port.name, id: port.id, network: port.network.name, remote: port.remote, code, resume_grace_seconds: grace, fdb_entries: port.fdbEntries })
    this.parkTimers.set(port, setTimeout(() => {
      if (port.resumeToken !== undefined) this.resumable.delete(port.resumeToken)
      this.remove(port, code, 'resume grace expired')
    }, grace * 1000))
  }

  private remove (port: WsPort, code: number, reason: string): void {
    if (!this.ports.delete(port)) return
    this.release(port)
    if (port instanceof BatchPort && port.resumeToken !== undefined) this.resumable.delete(port.resumeToken)
    const sw = port.network
    const flushed = sw.removePort(port)
    port.stopConditionTimers()
    this.networks.release(sw)
    this.native?.release(sw, this.networks.removed(sw) !== undefined)
    log.client('info', 'port_down', port.address, {
      port: port.name, id: port.id, network: sw.name, code, reason, fdb_flushed: flushed, remote: port.remote,
      rx_frames: port.rxFrames, tx_frames: port.txFrames, dropped_backpressure: port.drops[R_BACKPRESSURE]
    })
  }

  /** One keepalive round over the sessions (io/ws-session.ts keepaliveRound). */
  keepalive (pingInterval: number, now = performance.now()): void {
    this.lastKeepalive = keepaliveRound(this.ports, this, pingInterval, this.config().limits.notReadingTimeout, this.lastKeepalive, now)
  }

  /** Shutdown or drain (drain.ts): every socket to close, and parked ports dropped now (no one will resume them here). */
  sockets (why = 'switchd shutting down'): WebSocket[] {
    this.closing = true
    for (const p of [...this.ports]) {
      if (p.parked) { clearTimeout(this.parkTimers.get(p)); this.remove(p, 1001, why) }
    }
    return [...this.pending, ...[...this.ports].map((p) => p.ws)]
  }

  /** The name asked for if no connected port has it and the configuration does not reserve it (token pins, QEMU names), else `name-id`; unnamed ports get `fallback-id`. */
  private uniqueName (asked: string | undefined, fallback: string, id: number): string {
    if (asked === undefined) return `${fallback}-${id}`
    // mesh-<replica> is a mesh link's (guards.trusted may name it): a station asking for it gets name-id.
    if (isReservedName(this.config(), asked) || (fallback !== 'mesh' && asked.startsWith(MESH_PREFIX))) return `${asked}-${id}`
    for (const p of this.ports) if (p.name === asked) return `${asked}-${id}`
    return asked
  }
}
