/**
 * Ports over a WebSocket: raw mode (one frame per message) and tapswitch
 * mode (batches). Backpressure and batching are NetPort's and BatchSlab's.
 */

import type { WebSocket } from 'ws'
import type { Switch } from '../core/switch'
import { NetPort, BatchSlab } from './net-port'
import type { FastPathPort } from './fast-path'
import { OP_ASIS, egressLength, writeEgress } from '../../common/vlan'
import { truncateReason, linkMessage } from '../../common/protocol'
import { logger } from '../../common/log'
import { clientKeyOf, splitHostPort } from '../../common/address'

const log = logger('port')

/** Hoisted: ws reads these per send, so one object serves every frame. */
const SEND_OPTS = { binary: true, compress: false, fin: true } as const
const LINK_UP = JSON.stringify(linkMessage(true))
const LINK_DOWN = JSON.stringify(linkMessage(false))
/** ws's readyState OPEN: from our close (or the peer's) on, what ws is given is lost, and so counted as `disconnected`. */
const WS_OPEN = 1

export { DEFAULT_HIGH_WATER_MARK } from './net-port'

/**
 * How long the peer of a socket we close has to answer our close frame before
 * the socket is cut. ws would wait 30 s, and meanwhile the peer holds its
 * place (its address's share, a port of the switch) and what it sends would
 * still be read: a revoked token's port, or a handshake past its timeout,
 * would live on for as long as its client ignores the close.
 */
export const CLOSE_GRACE_MS = 1000

/**
 * Close `ws` on our initiative (a refusal, a policy, an operator): the
 * reason cut to what a close frame carries, and the socket cut if its peer
 * does not answer within CLOSE_GRACE_MS. From the close on, nothing it sends
 * is read (daemon/port-table.ts checks `readyState`).
 */
export function closeSocket (ws: WebSocket, code: number, reason: string): void {
  // The reason may list VLANs or echo a client: ws throws past 123 bytes, and a throw here would kill switchd.
  ws.close(code, truncateReason(reason))
  setTimeout(() => { ws.terminate() }, CLOSE_GRACE_MS).unref()
}

/** The client key of a WebSocket port whose peer is `remote` (ADDRESS:PORT): its address's, shared by all its ports. */
function clientOf (remote: string): string { return clientKeyOf(splitHostPort(remote)[0]) }

export abstract class WsPort extends NetPort {
  /** Cleared by the keepalive timer, set by any pong or message. */
  alive = true
  /** Its link dropped; kept (fdb entries and all) for its agent to resume. Frames to it are dropped. */
  parked = false
  /** Closed on purpose (policy, protocol error, operator, shutdown): never parked. */
  noResume = false
  /** Keepalive found it silent: the link, not the agent, went away (only such ports are parked). */
  timedOut = false
  /** A hello name is a claim: daemon/port-table.ts sets this once it knows the name is trusted or claimable. */
  override ownsName = false
  /** Keepalive rounds its peer has read nothing (buffered above the high-water mark); closed (4004) after limits.notReadingTimeout. */
  notReading = 0
  /** What was buffered for it, and its txBytes, at the last keepalive round: did its peer read since? */
  lastBuffered = 0
  lastTxBytes = 0

  constructor (id: number, name: string, public ws: WebSocket, remote: string, highWaterMark: number, network: Switch) {
    super(id, name, remote, highWaterMark, network)
    this.clientKey = clientOf(remote)
  }

  abstract override readonly kind: 'raw' | 'tapswitch' | 'mesh'

  bufferedBytes (): number { return this.ws.bufferedAmount }

  /** The client's address (`remote` without its port): what per-address limits and log budgets go by. */
  get address (): string { return this.remote.slice(0, this.remote.lastIndexOf(':')) }

  shutdown (code: number, reason: string): void {
    // Within its address's log budget: a client can have its ports shut at will (a BPDU, a bad batch).
    log.client('warn', 'port_shutdown', this.address, { port: this.name, id: this.id, code, reason })
    this.noResume = true
    closeSocket(this.ws, code, reason)
  }
}

/** Raw mode: one frame per binary message (v86 / jor1k / JSLinux). */
export class RawPort extends WsPort {
  readonly kind = 'raw'

  output (buf: Buffer, off: number, len: number, op: number, vid: number): void {
    // Closing (a policy, an operator, keepalive) until its close event takes the port away: ws would drop it and count it sent.
    if (this.ws.readyState !== WS_OPEN) { this.dropAway(buf, off, len, vid); return }
    if (this.ws.bufferedAmount > this.highWaterMark) { this.dropForBackpressure(); return }
    if (this.congested) this.checkDrained()
    let frame: Buffer
    if (op === OP_ASIS && !this.network.releasing) {
      // ws needs a Buffer per message; a view (not a copy) when the frame is part of a batch.
      frame = off === 0 && len === buf.length ? buf : buf.subarray(off, off + len)
    } else {
      // A tag to add or remove, or a frame from a condition's queue (reused once this returns, while ws may still hold it): a copy.
      frame = Buffer.allocUnsafe(egressLength(len, op))
      writeEgress(frame, 0, buf, off, len, op, vid)
    }
    this.ws.send(frame, SEND_OPTS)
    this.txFrames++
    this.txBytes += frame.length
  }

  flush (): void {}
}

/**
 * tapswitch mode: frames queued by output() leave as one batch message per
 * flush(). Its connection may be carried by the network's native fast path
 * (io/fast-path.ts addWs): `ws` is then a NativeSocket, and what the thread
 * does not forward comes back through receiveMisses.
 */
export class BatchPort extends WsPort implements FastPathPort {
  /** 'mesh': the answering end of a mesh link from another replica (daemon/mesh-admit.ts), which sets it before the port joins. */
  kind: 'tapswitch' | 'mesh' = 'tapswitch'
  /** The token its agent can resume it with (the latest welcome's). */
  resumeToken: string | undefined
  /** Capabilities granted in its welcome. */
  readonly capabilities: string[] = []
  private readonly batch = new BatchSlab()

  output (buf: Buffer, off: number, len: number, op: number, vid: number, hdrOff: number): void {
    if (this.parked || this.ws.readyState !== WS_OPEN) { this.dropAway(buf, off, len, vid); return }
    this.enqueue(this.batch, buf, off, len, op, vid, hdrOff)
  }

  flush (): void {
    const b = this.batch.take()
    if (b !== undefined) this.ws.send(b, SEND_OPTS)
  }

  /** Dropped (counted) while the peer is not reading, as frames are: BPDUs repeat every hello. */
  override sendControl (text: string): void {
    if (this.parked) return
    if (this.ws.bufferedAmount > this.highWaterMark) { this.dropControl++; this.network.stats.controlDropped++; return }
    this.ws.send(text)
  }

  /**
   * A failure drill took the link down or up: tell the agent, whose TAP's
   * carrier follows (TUNSETCARRIER), so the host sees NO-CARRIER as with a
   * pulled cable. Not counted against backpressure: one small message per drill.
   */
  override linkChanged (up: boolean): void {
    if (this.parked || this.stp !== null) return
    this.ws.send(up ? LINK_UP : LINK_DOWN)
  }

  /** Records the native thread did not forward: a batch as if ws had read it (ws-session.ts's message handler). */
  receiveMisses (slab: Buffer, start: number, end: number): void {
    if (this.ws.readyState !== WS_OPEN) return
    this.alive = true
    // The thread framed these records itself: a malformed batch goes up as an event, never here.
    this.network.receiveBatch(this, slab.subarray(start, end))
  }

  heard (): void { this.alive = true }

  /** Its agent is back (resume): carry on over `ws`. */
  reattach (ws: WebSocket, remote: string): void {
    this.ws = ws
    this.remote = remote
    this.clientKey = clientOf(remote)
    this.parked = false
    this.timedOut = false
    this.alive = true
    this.congested = false
    this.batch.discard()
  }
}
