/**
 * VXLAN (RFC 7348) and GENEVE (RFC 8926) ports: one UDP listener per
 * configured `vxlan` entry, and one port per (VNI, remote VTEP) in the VNI's
 * network (docs/VXLAN.md). The switch then does the rest as for any port:
 * MACs behind a VTEP are learned on its port, a flood is one unicast copy per
 * VTEP (head-end replication), and port security, storm control, conditions,
 * captures, the trace and the drop log apply unchanged.
 *
 * Ingress. A datagram is accepted only from a listed VTEP's address (any
 * source port: kernels hash it) for a VNI that VTEP is listed in: the lookup
 * is two Map gets on what dgram already made (the address string, the VNI
 * as a number). Anything else is dropped and counted on the listener by
 * reason (plain fields, read at scrape time) and logged within the sending
 * address's budget (log.client). The inner frame is decided where it lies
 * in the datagram (Switch.receiveFrameAt): no copy.
 *
 * Egress. output() writes header + frame (its egress op applied) into the
 * listener's slab, which is never rewritten while a send may hold a view (a
 * new slab when the tail is short, as BatchSlab does), and sends it at once
 * as one datagram, from the socket the inner flow's hash picks (so the
 * source port follows the flow: the underlay can spread flows and keep each
 * in order). A frame whose datagram would exceed the underlay MTU is dropped
 * (`underlay_mtu`); one beyond what the port or the listener may have in
 * flight (PORT_IN_FLIGHT, MAX_IN_FLIGHT), counted as backpressure, as on every
 * NetPort; a send that fails is counted (`send_error`).
 */

import * as dgram from 'node:dgram'
import * as net from 'node:net'
import { randomInt } from 'node:crypto'
import { NetPort } from './net-port'
import type { Switch } from '../core/switch'
import type { PortPolicy } from '../core/port'
import { R_UNDERLAY_MTU } from '../core/reasons'
import {
  parseHeader, vniAt, writeHeader, flowHash, socketIndex, maxInnerFrame, ENCAP_VXLAN, ENCAP_GENEVE, ENCAP_HLEN,
  PARSE_TRUNCATED, SOURCE_PORT_MIN, SOURCE_PORT_MAX, VXLAN_DROP_REASONS, type VxlanDropReason
} from '../core/encap'
import type { VxlanSpec } from '../core/endpoint-spec'
import { egressLength, writeEgress } from '../../common/vlan'
import { logger } from '../../common/log'
import { TapswitchError, ERR_CONFIG } from '../../common/errors'

const log = logger('vxlan')

/** Indexes of VXLAN_DROP_REASONS (core/encap.ts). */
const DROP_UNLISTED = 0
const DROP_UNKNOWN_VNI = 1
const DROP_BAD_HEADER = 2
const DROP_TRUNCATED = 3
const DROP_SEND_ERROR = 4

/** Egress slab: many datagrams' worth, never rewritten while a send may hold a view of it. */
const SLAB_SIZE = 1024 * 1024
/** The largest datagram: header + the largest frame (65535-byte MTU). */
const MAX_DATAGRAM = 65535
/** Tries at a free source port in 49152-65535 per sending socket. */
const BIND_TRIES = 32
/**
 * SO_RCVBUF of every socket (the kernel caps it at net.core.rmem_max, 4 MiB on Debian): a kernel VTEP sends
 * a TCP burst as one TSO superframe cut into ~45 datagrams at once, which overflowed the default 208 KiB
 * while the event loop was busy (UdpRcvbufErrors; 18 % of a TCP stream's segments retransmitted).
 */
const RECV_BUFFER = 4 * 1024 * 1024
/** Log lines a listener may attempt per second for dropped datagrams (each within its address's budget too). */
const LOG_ATTEMPTS_PER_SECOND = 100
/**
 * Datagrams and bytes a listener may have handed to dgram and not seen
 * sent. dgram defers every send by a tick (its address lookup) and the
 * kernel's queue shows none of them meanwhile: without this bound one
 * WebSocket message of 4,000 broadcasts to 256 VTEPs held a million sends
 * (~600 MB) before any backpressure could show.
 */
const MAX_IN_FLIGHT = 16384
const MAX_IN_FLIGHT_BYTES = 32 * 1024 * 1024
/**
 * What one port may hold of it (and no more bytes than the port buffer): a
 * burst to one VTEP (a WebSocket message holds at most ~170 full frames)
 * fits, and no port takes the whole listener. A flood takes a copy for each
 * port in turn, so under the listener's bound they lose alike.
 */
const PORT_IN_FLIGHT = 1024

/** Sends handed to dgram and not yet completed, and their bytes: a port's, and its listener's over all its ports. */
class InFlight {
  count = 0
  bytes = 0

  add (size: number): void {
    this.count++
    this.bytes += size
  }

  /** One completed. A failed send reports no length: the count is exact, and the bytes start again from zero once none is left. */
  done (bytes: number | undefined): void {
    this.count--
    this.bytes = this.count === 0 ? 0 : Math.max(0, this.bytes - (bytes ?? 0))
  }
}

/** One (VNI, VTEP) port of a listener. */
export interface VxlanPortSpec {
  vni: number
  address: string
  port: number
  name: string
  sw: Switch
  policy: PortPolicy
  id: number
  /** Split-horizon group (core/port.ts Port.horizon): the VNI's, or 0 where it relays. */
  horizon: number
}

/** A remote VTEP of one VNI, as a port. */
export class VxlanPort extends NetPort {
  readonly kind: 'vxlan' | 'geneve'
  /** Its datagrams handed to dgram and not yet completed (within the listener's share for each port). */
  readonly inFlight = new InFlight()
  /** One completion for every send of this port (made once, not per datagram). */
  readonly sent = (err: Error | null, bytes?: number): void => {
    this.inFlight.done(bytes)
    this.listener.completed(err, bytes)
  }

  constructor (readonly listener: VxlanListener, readonly vni: number, readonly vtepAddress: string, readonly vtepPort: number,
    id: number, name: string, highWaterMark: number, sw: Switch) {
    super(id, name, net.isIPv6(vtepAddress) ? `[${vtepAddress}]:${vtepPort}` : `${vtepAddress}:${vtepPort}`, highWaterMark, sw)
    this.kind = listener.encap === ENCAP_GENEVE ? 'geneve' : 'vxlan'
    this.clientKey = `vtep ${vtepAddress}`
  }

  /** What this port handed to its sockets and they have not sent yet (the kernel's and libuv's queues among it). */
  bufferedBytes (): number { return this.inFlight.bytes }

  output (buf: Buffer, off: number, len: number, op: number, vid: number): void {
    const l = this.listener
    if (l.closed) { this.dropAway(buf, off, len, vid); return }
    const outLen = egressLength(len, op)
    if (outLen > l.maxInner) { this.network.drop(this, R_UNDERLAY_MTU, buf, off, len, vid); return }
    // The hash skips VLAN tags: the frame as it came hashes as it will leave.
    const size = ENCAP_HLEN + outLen
    if (this.inFlight.count >= PORT_IN_FLIGHT || this.inFlight.bytes + size > this.highWaterMark || !l.mayHold(size)) { this.dropForBackpressure(); return }
    if (this.congested) this.checkDrained()
    const socket = l.senderFor(flowHash(buf, off, len, l.seed))
    const at = l.reserve(size)
    const slab = l.slab
    writeHeader(l.encap, slab, at, this.vni)
    writeEgress(slab, at + ENCAP_HLEN, buf, off, len, op, vid)
    this.inFlight.add(size)
    l.inFlight.add(size)
    socket.send(slab, at, size, this.vtepPort, this.vtepAddress, this.sent)
    l.packetsOut++
    l.bytesOut += ENCAP_HLEN + outLen
    this.txFrames++
    this.txBytes += outLen
  }

  /** Each frame left as its own datagram in output(). */
  flush (): void {}

  shutdown (code: number, reason: string): void {
    // No peer to tell: the port is disabled (as `switchctl port disable` does) until an operator enables it.
    // After the frame being handled (this runs inside it).
    log.warn('port_shutdown', { port: this.name, id: this.id, code, reason, note: 'disabled: `switchctl port enable` brings it back' })
    setImmediate(() => { this.network.disablePort(this) })
  }
}

export class VxlanListener {
  readonly encap: number
  /** Counted on the listener: datagrams and their bytes, in and out, and drops by reason (VXLAN_DROP_REASONS). */
  packetsIn = 0
  bytesIn = 0
  packetsOut = 0
  bytesOut = 0
  readonly drops = new Float64Array(VXLAN_DROP_REASONS.length)
  /** The largest inner frame one datagram carries on this underlay. */
  readonly maxInner: number
  /** This listener's flow-hash seed (Linux's hashrnd): stable for its life. */
  readonly seed = randomInt(0x7fffffff)
  /** The egress slab and how much of it is written. */
  slab = Buffer.allocUnsafe(0)
  private end = 0
  readonly ports: VxlanPort[] = []
  /** VTEP address → VNI → its port: the allowlist. */
  private readonly sources = new Map<string, Map<number, VxlanPort>>()
  private readonly socket: dgram.Socket
  private senders: dgram.Socket[] = []
  /** Set by close(): a port's output then counts its frames as `disconnected`. */
  closed = false
  private logAttempts = LOG_ATTEMPTS_PER_SECOND
  private logTimer: NodeJS.Timeout | undefined
  /** The networks its ports are in, and whether a flush of them is due (flushAll). */
  private readonly networks: Switch[] = []
  private flushPending = false
  /**
   * libuv reads up to 32 datagrams a turn and dgram emits each: the frames
   * they queue for a port (a WebSocket, a TAP) leave as one batch after the
   * turn's reads, not one message each. setImmediate runs right after the
   * loop's poll phase, so a lone frame waits for nothing.
   */
  private readonly flushAll = (): void => {
    this.flushPending = false
    for (const sw of this.networks) sw.flushDirty()
  }
  /** Datagrams its ports handed to dgram and not yet completed (at most MAX_IN_FLIGHT, MAX_IN_FLIGHT_BYTES). */
  readonly inFlight = new InFlight()

  constructor (readonly spec: VxlanSpec, ports: readonly VxlanPortSpec[], highWaterMark: number) {
    this.encap = spec.encap === 'geneve' ? ENCAP_GENEVE : ENCAP_VXLAN
    const v6 = net.isIPv6(spec.host)
    this.maxInner = Math.min(maxInnerFrame(spec.mtu, v6), MAX_DATAGRAM - ENCAP_HLEN)
    this.socket = this.newSocket()
    this.socket.on('message', (msg, rinfo) => { this.receive(msg, rinfo.address) })
    for (const p of ports) {
      const port = new VxlanPort(this, p.vni, p.address, p.port, p.id, p.name, highWaterMark, p.sw)
      port.applyPolicy(p.policy)
      port.horizon = p.horizon
      this.ports.push(port)
      if (!this.networks.includes(p.sw)) this.networks.push(p.sw)
      let byVni = this.sources.get(p.address)
      if (byVni === undefined) { byVni = new Map(); this.sources.set(p.address, byVni) }
      byVni.set(p.vni, port)
    }
  }

  /** The listener's label in metrics and logs: its address as bound. */
  get label (): string {
    const port = this.boundPort
    return net.isIPv6(this.spec.host) ? `[${this.spec.host}]:${port}` : `${this.spec.host}:${port}`
  }

  /** The UDP port it listens on (the one the system chose, for port 0). */
  get boundPort (): number {
    try { return this.socket.address().port } catch { return this.spec.port }
  }

  /** Bind the listening socket and the sending ones, then join the ports to their networks. */
  async listen (): Promise<void> {
    try {
      await bind(this.socket, this.spec.port, this.spec.host)
    } catch (err) {
      const e = err as NodeJS.ErrnoException
      const where = net.isIPv6(this.spec.host) ? `[${this.spec.host}]:${this.spec.port}` : `${this.spec.host}:${this.spec.port}`
      const fix = e.code === 'EADDRINUSE'
        ? 'another socket holds it (a kernel vxlan device on this host listens on 0.0.0.0:4789 by default): choose another port in "listen" or --vxlan-listen'
        : e.code === 'EADDRNOTAVAIL' ? 'no interface of this host has that address: listen on one it has' : 'check "listen" or --vxlan-listen'
      throw new TapswitchError(ERR_CONFIG, `${this.spec.encap} listener ${where}: ${e.code ?? e.message}: ${fix}`, { cause: err })
    }
    for (let i = 0; i < this.spec.sourcePorts; i++) this.senders.push(await this.bindSender())
    if (this.senders.length === 0) this.senders.push(this.socket)
    for (const p of this.ports) p.network.addPort(p)
    this.logTimer = setInterval(() => { this.logAttempts = LOG_ATTEMPTS_PER_SECOND }, 1000)
    this.logTimer.unref()
    log.info('vxlan_listening', {
      listen: this.label, encap: this.spec.encap, ports: this.ports.length, source_ports: this.senders.map((s) => s.address().port).join(','),
      max_inner_frame: this.maxInner
    })
  }

  /** A socket bound at a free port in 49152-65535 on the listen host (RFC 7348 §5's range for source ports). */
  private async bindSender (): Promise<dgram.Socket> {
    for (let i = 0; ; i++) {
      const s = this.newSocket()
      try {
        await bind(s, randomInt(SOURCE_PORT_MIN, SOURCE_PORT_MAX + 1), this.spec.host)
        return s
      } catch (err) {
        s.close()
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || i >= BIND_TRIES) throw err
      }
    }
  }

  private newSocket (): dgram.Socket {
    // An IPv6 listener takes IPv6 only: an IPv4 sender would come as ::ffff:a.b.c.d, a family its remotes are not.
    const s = dgram.createSocket(net.isIPv6(this.spec.host) ? { type: 'udp6', ipv6Only: true, recvBufferSize: RECV_BUFFER } : { type: 'udp4', recvBufferSize: RECV_BUFFER })
    // A send that fails (no route, ICMP unreachable reported) is counted by `sent`; nothing else may throw.
    s.on('error', (err) => { log.limited('warn', 'vxlan_socket_error', { listen: this.label, error: err.message }) })
    return s
  }

  /** One datagram from `from`: to its port, or dropped and counted. */
  private receive (msg: Buffer, from: string): void {
    this.packetsIn++
    this.bytesIn += msg.length
    const byVni = this.sources.get(from)
    if (byVni === undefined) { this.refuse(DROP_UNLISTED, from); return }
    const off = parseHeader(this.encap, msg, msg.length)
    if (off < 0) { this.refuse(off === PARSE_TRUNCATED ? DROP_TRUNCATED : DROP_BAD_HEADER, from); return }
    const port = byVni.get(vniAt(msg))
    if (port === undefined) { this.refuse(DROP_UNKNOWN_VNI, from); return }
    port.network.receiveFrameAt(port, msg, off, msg.length - off, false)
    if (!this.flushPending) { this.flushPending = true; setImmediate(this.flushAll) }
  }

  private count (reason: number): void { this.drops[reason] = (this.drops[reason] as number) + 1 }

  /** Whether one more datagram of `size` bytes may be handed over. */
  mayHold (size: number): boolean { return this.inFlight.count < MAX_IN_FLIGHT && this.inFlight.bytes + size <= MAX_IN_FLIGHT_BYTES }

  /** A port's send completed; a failed one is counted `send_error`. */
  completed (err: Error | null, bytes: number | undefined): void {
    this.inFlight.done(bytes)
    if (err !== null) this.count(DROP_SEND_ERROR)
  }

  private refuse (reason: number, from: string): void {
    this.count(reason)
    if (this.logAttempts <= 0) return
    this.logAttempts--
    log.client('warn', 'vxlan_dropped', from, { listen: this.label, remote: from, reason: VXLAN_DROP_REASONS[reason] as string })
  }

  /** Room for `n` bytes in the slab; returns where they go. A new slab when the tail is short: sends may still hold the old one. */
  reserve (n: number): number {
    if (this.slab.length - this.end < n) { this.slab = Buffer.allocUnsafe(SLAB_SIZE); this.end = 0 }
    const at = this.end
    this.end += n
    return at
  }

  /** The socket a flow with this hash is sent from. */
  senderFor (hash: number): dgram.Socket {
    const s = this.senders
    return s.length === 1 ? s[0] as dgram.Socket : s[socketIndex(hash, s.length)] as dgram.Socket
  }

  /** The counters by reason, for metrics. */
  dropCounts (): Record<VxlanDropReason, number> {
    const out = {} as Record<VxlanDropReason, number>
    VXLAN_DROP_REASONS.forEach((r, i) => { out[r] = this.drops[i] as number })
    return out
  }

  close (): void {
    if (this.closed) return
    this.closed = true
    clearInterval(this.logTimer)
    for (const p of this.ports) { p.network.removePort(p); p.stopConditionTimers() }
    for (const s of new Set([this.socket, ...this.senders])) { try { s.close() } catch { /* not bound */ } }
  }
}

function bind (s: dgram.Socket, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void => { reject(err) }
    s.once('error', fail)
    s.bind(port, host, () => { s.off('error', fail); resolve() })
  })
}
