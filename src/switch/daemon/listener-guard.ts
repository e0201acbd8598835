/**
 * What each of switchd's HTTP listeners (the main one and --metrics-listen)
 * does with a connection before it has read a request from it, so that no
 * listener is a way around the per-address shares (control/admission.ts):
 *
 *  - a gateway child's socket is refused (child-peers.ts);
 *  - a connection not yet upgraded counts for its client address: within
 *    limits.maxPendingPerAddress of limits.maxPending, else it is closed
 *    before a byte is read. Each listener has a pool of its own, so a flood
 *    of one (a scraper's port open to the network) cannot fill the other's;
 *  - a request must arrive whole within limits.handshakeTimeout (Node's
 *    headersTimeout and requestTimeout), and with TLS so must the TLS
 *    handshake before it: Node's own TLS handshake timeout is 120 s and is
 *    fixed when the server is made, so a deadline of ours ends it, read
 *    from the configuration in force.
 *
 * Every limit is read when it is used, or set again by apply() on reload: a
 * lower limits.handshakeTimeout (an operator's answer to a slow-headers flood)
 * holds at once for new connections and for every request still arriving.
 */

import type * as http from 'node:http'
import type * as net from 'node:net'
import { PendingConnections, type PendingLimits } from '../control/admission'
import type { ChildPeerGuard } from '../io/child-peers'
import { logger } from '../../common/log'

const log = logger('server')

export interface GuardLimits extends PendingLimits {
  /** Seconds a request (and a TLS handshake) has to arrive whole. */
  handshakeTimeout: number
}

/** Node's timeouts (ms) for a request that must arrive within `seconds`. */
export function requestTimeouts (seconds: number): { headersTimeout: number, requestTimeout: number } {
  const ms = Math.max(1, seconds) * 1000
  return { headersTimeout: ms, requestTimeout: ms }
}

export class ListenerGuard {
  /** Connections on this listener not yet upgraded, per client address. */
  readonly pending = new PendingConnections()
  /** TLS handshakes under way, by the connection's remote address and port (the raw and the TLS socket share them). */
  private readonly handshakes = new Map<string, NodeJS.Timeout>()

  constructor (
    private readonly server: http.Server,
    private readonly listener: string,
    private readonly limits: () => GuardLimits,
    private readonly childPeers: ChildPeerGuard,
    private readonly refused: (reason: string) => void,
    private readonly tls: boolean
  ) {
    this.apply()
    server.on('connection', (socket: net.Socket) => { this.onConnection(socket) })
    if (tls) server.on('secureConnection', (socket: net.Socket) => { this.secured(socket) })
  }

  /** Set the request timeouts from the configuration in force (at start and on every reload). */
  apply (): void {
    Object.assign(this.server, requestTimeouts(this.limits().handshakeTimeout))
  }

  /** Handshakes whose deadline is pending (for tests: none left behind). */
  get tlsHandshakes (): number { return this.handshakes.size }

  private onConnection (socket: net.Socket): void {
    if (this.childPeers.refuse(socket, this.listener)) return
    const address = socket.remoteAddress ?? '?'
    const limits = this.limits()
    const why = this.pending.refusal(address, limits)
    if (why !== undefined) {
      this.refused(why)
      log.client('warn', 'connection_rejected', address, { remote: address, reason: why, listener: this.listener })
      socket.destroy()
      return
    }
    socket.once('close', this.pending.opened(address))
    if (this.tls) this.deadline(socket, limits.handshakeTimeout)
  }

  /** A TLS handshake not done within `seconds` is cut (counted by Node as a tlsClientError, logged there). */
  private deadline (socket: net.Socket, seconds: number): void {
    const key = `${socket.remoteAddress ?? '?'}|${socket.remotePort ?? 0}`
    const timer = setTimeout(() => {
      this.handshakes.delete(key)
      socket.destroy()
    }, Math.max(1, seconds) * 1000)
    timer.unref()
    this.handshakes.set(key, timer)
    socket.once('close', () => { this.done(key, timer) })
  }

  private secured (socket: net.Socket): void {
    const key = `${socket.remoteAddress ?? '?'}|${socket.remotePort ?? 0}`
    const timer = this.handshakes.get(key)
    if (timer !== undefined) this.done(key, timer)
  }

  private done (key: string, timer: NodeJS.Timeout): void {
    clearTimeout(timer)
    if (this.handshakes.get(key) === timer) this.handshakes.delete(key)
  }
}
