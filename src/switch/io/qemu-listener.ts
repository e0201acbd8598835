/**
 * QEMU VMs on switchd's own host, with no agent in between: switchd listens
 * on a Unix (or TCP) socket per configured VM, and QEMU connects with
 * `-netdev stream,server=off,addr.type=unix,addr.path=…`.
 *
 * Each listener is one port, named in the configuration. It joins its network
 * when QEMU first connects and stays: a QEMU that restarts and reconnects gets
 * the same port back (its MACs included); while none is connected, frames for
 * it are dropped and counted. QEMU's framing (4-byte length + frame) is the
 * batch record format, so what QEMU sends is handed to the switch as batches,
 * and the port's egress batches go to QEMU as they are.
 *
 * QEMU's stream has no authentication of its own, so who may connect is the
 * socket's business (issue 12, finding 16): a Unix socket file is created
 * 0600 (or 0660 with `socketMode`), like /dev/net/tun or libvirt's sockets;
 * a TCP listener is loopback-only unless its entry says `allowRemote` (see
 * config.ts). And the first connection keeps the port: another one while it
 * is up is refused (closed, counted as `qemu_busy`, logged rate-limited), so
 * nobody can take a running VM's port and its traffic by connecting. A VM
 * that restarts gets the port back once its old connection has closed, which
 * the kernel does when the old QEMU exits (TCP keepalive finds a peer that
 * vanished without a word).
 */

import * as net from 'node:net'
import * as fs from 'node:fs'
import { isMainThread } from 'node:worker_threads'
import { NetPort, BatchSlab } from './net-port'
import type { Switch } from '../core/switch'
import { R_MALFORMED as DROP_MALFORMED } from '../core/reasons'
import type { PortPolicy } from '../core/port'
import type { ListenAddress } from '../core/endpoint-spec'
import { Deframer, PREFIX_U32 } from '../../common/framing'
import { logger } from '../../common/log'

const log = logger('qemu')

/** A port whose peer is a QEMU stream socket. */
export class StreamPort extends NetPort {
  readonly kind = 'qemu'
  socket: net.Socket | undefined
  private readonly batch = new BatchSlab()

  bufferedBytes (): number { return this.socket === undefined ? 0 : this.socket.writableLength }

  output (buf: Buffer, off: number, len: number, op: number, vid: number): void {
    // Destroyed (a framing error, switchd closing) until its close event: a write would be lost unseen.
    if (this.socket === undefined || this.socket.destroyed) { this.dropAway(buf, off, len, vid); return }
    this.enqueue(this.batch, buf, off, len, op, vid, -1)
  }

  flush (): void {
    const b = this.batch.take()
    if (b !== undefined) this.socket?.write(b)
  }

  shutdown (code: number, reason: string): void {
    log.warn('port_shutdown', { port: this.name, id: this.id, code, reason })
    this.socket?.destroy()
  }
}

export interface QemuListenerSpec {
  name: string
  address: ListenAddress
  /** Mode of a unix: socket file (default 0o600). */
  socketMode?: number
}

/** Every reason a QEMU connection can be refused: pre-zeroed in switchd_connections_rejected_total. */
export const QEMU_REJECT_REASONS = ['qemu_busy'] as const

/** Seconds of TCP silence before keepalive probes look for a QEMU that vanished (a crashed host sends no FIN). */
const KEEPALIVE_IDLE = 15

export class QemuListener {
  readonly port: StreamPort
  private readonly server: net.Server
  private joined = false

  /** `refuseSocket` sees a TCP connection first and returns true when it refused it (daemon/endpoints.ts: a gateway child's). */
  constructor (readonly spec: QemuListenerSpec, private readonly sw: Switch, policy: PortPolicy, id: number, highWaterMark: number,
    private readonly refused: (reason: typeof QEMU_REJECT_REASONS[number]) => void = () => {},
    private readonly refuseSocket: (socket: net.Socket) => boolean = () => false) {
    const where = spec.address.kind === 'unix' ? `unix:${spec.address.path}` : `tcp:${spec.address.host}:${spec.address.port}`
    this.port = new StreamPort(id, spec.name, where, highWaterMark, sw)
    this.port.applyPolicy(policy)
    this.server = net.createServer((socket) => { this.attach(socket) })
  }

  async listen (): Promise<void> {
    const a = this.spec.address
    if (a.kind === 'unix' && fs.existsSync(a.path) && fs.statSync(a.path).isSocket()) fs.unlinkSync(a.path) // left by an earlier run
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      const done = (): void => { this.server.off('error', reject); resolve() }
      if (a.kind === 'unix') {
        // bind(2) creates the file with the process umask: narrow it for this
        // one synchronous call, so the socket is never connectable by others,
        // not even between bind and a chmod.
        // (A worker cannot set the umask: there only the chmod below applies.)
        const old = isMainThread ? process.umask(0o777 & ~(this.spec.socketMode ?? 0o600)) : undefined
        try { this.server.listen(a.path, done) } finally { if (old !== undefined) process.umask(old) }
      } else {
        this.server.listen(a.port, a.host, done)
      }
    })
    if (a.kind === 'unix') fs.chmodSync(a.path, this.spec.socketMode ?? 0o600) // exact, whatever the umask was
    log.info('qemu_listening', { port: this.spec.name, network: this.sw.name, address: a.kind === 'tcp' ? `tcp:${a.host}:${this.tcpPort}` : this.port.remote })
  }

  /** The TCP port it listens on (the one the system chose, for `tcp:HOST:0`); 0 for a Unix socket. */
  get tcpPort (): number {
    const bound = this.server.address()
    return this.spec.address.kind === 'tcp' && bound !== null && typeof bound === 'object' ? bound.port : 0
  }

  private attach (socket: net.Socket): void {
    if (this.spec.address.kind === 'tcp' && this.refuseSocket(socket)) return
    const port = this.port
    // Connecting and leaving costs a client nothing: its lines come out of its address's log budget.
    const remote = socket.remoteAddress ?? 'unix'
    if (port.socket !== undefined) {
      // A managed switch's port-security "protect": the port keeps what it
      // has, the newcomer is dropped. Never replace: that hands the VM's
      // port, MACs and traffic to whoever connects.
      this.refused('qemu_busy')
      log.client('warn', 'qemu_refused', remote, { port: port.name, reason: 'busy: a QEMU is connected; the next one is taken once it has closed', remote })
      socket.on('error', () => {})
      socket.destroy()
      return
    }
    socket.setNoDelay(true)
    if (this.spec.address.kind === 'tcp') socket.setKeepAlive(true, KEEPALIVE_IDLE * 1000)
    port.socket = socket
    if (!this.joined) { this.sw.addPort(port); this.joined = true }
    log.client('info', 'qemu_connected', remote, { port: port.name, network: this.sw.name, remote, fdb_entries: port.fdbEntries })
    const deframer = new Deframer(PREFIX_U32, (batch) => {
      if (!this.sw.receiveBatch(port, batch)) socket.destroy()
    })
    socket.on('data', (chunk: Buffer) => {
      if (!deframer.push(chunk)) {
        port.addDrops(DROP_MALFORMED, 1)
        log.client('warn', 'qemu_framing_error', remote, { port: port.name, remote, reason: 'a frame length over the maximum' })
        socket.destroy()
      }
    })
    socket.on('error', (err) => { log.client('info', 'qemu_socket_error', remote, { port: port.name, remote, error: err.message }) })
    socket.on('close', () => {
      if (port.socket !== socket) return
      port.socket = undefined
      log.client('info', 'qemu_disconnected', remote, { port: port.name, remote, note: 'the port stays until QEMU comes back' })
    })
  }

  close (): void {
    this.port.socket?.destroy()
    this.server.close()
    if (this.spec.address.kind === 'unix') fs.rmSync(this.spec.address.path, { force: true })
    if (this.joined) this.sw.removePort(this.port)
    this.port.stopConditionTimers()
  }
}
