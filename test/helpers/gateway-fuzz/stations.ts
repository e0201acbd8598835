/**
 * The gateway fuzz's stations, one interface over four kinds of client: a
 * raw WebSocket (a browser VM's way) and a tapswitch agent (batched), each
 * from a client address of its own choosing (every loopback address is one
 * client to switchd, `loopback`; another address its own), and a VM behind
 * a QEMU listener (its port a client of its own), Unix or
 * TCP (4-byte length + frame). Each keeps what it receives in `inbox` and
 * counts the frames it sent, so the run can wait until switchd has read
 * them all (an arrival count it keeps per port).
 */

import * as net from 'node:net'
import WebSocket from 'ws'
import { SUBPROTOCOL_V1, MAX_MESSAGE_SIZE, decodeBatch, encodeBatch } from '../../../src/common/protocol'
import type { NetPort } from '../../../src/switch/io/net-port'
import { onceWithin, waitFor } from '../net'

export type StationKind = 'raw' | 'agent' | 'vm-unix' | 'vm-tcp'

/** How to reach switchd: its WebSocket URL for the network, and the QEMU listeners' addresses. */
export interface Endpoints {
  wsUrl: string
  vmUnix: { name: string, path: string }
  vmTcp: { name: string, port: number }
}

export class Station {
  readonly inbox: Buffer[] = []
  /** Frames sent (each is one record switchd reads). */
  sent = 0
  closed = false
  port: NetPort | undefined
  /** MACs it has used as a source, its own first. */
  readonly macs: number[]
  /** Its MACs whose lease it was ACKed itself (bound to its port: the guards pass what it sends from them). */
  readonly leased = new Set<number>()
  private closeHooks: Array<() => void> = []

  private constructor (readonly id: number, readonly kind: StationKind, readonly client: string, mac: number,
    private readonly write: (frames: Buffer[]) => void, private readonly end: () => void) {
    this.macs = [mac]
  }

  get mac (): number { return this.macs[0] as number }

  send (frames: Buffer[]): void {
    if (this.closed || frames.length === 0) return
    this.sent += frames.length
    this.write(frames)
  }

  close (): void {
    this.end()
  }

  onClose (fn: () => void): void { this.closeHooks.push(fn) }

  private closedNow (): void {
    if (this.closed) return
    this.closed = true
    for (const fn of this.closeHooks) fn()
  }

  /** Join switchd as `kind`; `ports` lists the server's ports (to find this station's). */
  static async join (id: number, kind: StationKind, mac: number, local: string, ep: Endpoints, ports: () => NetPort[]): Promise<Station> {
    if (kind === 'raw' || kind === 'agent') return await Station.joinWs(id, kind, mac, local, ep, ports)
    const sock = kind === 'vm-unix' ? net.connect(ep.vmUnix.path) : net.connect(ep.vmTcp.port, '127.0.0.1')
    sock.setNoDelay(true)
    await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) })
    sock.on('error', () => {})
    const name = kind === 'vm-unix' ? ep.vmUnix.name : ep.vmTcp.name
    const s = new Station(id, kind, name, mac, (frames) => {
      sock.write(Buffer.concat(frames.flatMap((f) => { const h = Buffer.alloc(4); h.writeUInt32BE(f.length); return [h, f] })))
    }, () => { sock.destroy() })
    let pending: Buffer = Buffer.alloc(0)
    sock.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
      while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
        const len = pending.readUInt32BE(0)
        s.inbox.push(Buffer.from(pending.subarray(4, 4 + len)))
        pending = pending.subarray(4 + len)
      }
    })
    sock.on('close', () => { s.closedNow() })
    // The listener's port: it joins with the first connection and stays.
    await waitFor(() => { s.port = ports().find((p) => p.name === name && (p as unknown as { socket?: unknown }).socket !== undefined); return s.port !== undefined }, 30_000, `the port of ${name}`)
    return s
  }

  private static async joinWs (id: number, kind: 'raw' | 'agent', mac: number, local: string, ep: Endpoints, ports: () => NetPort[]): Promise<Station> {
    const batched = kind === 'agent'
    const ws = batched
      ? new WebSocket(ep.wsUrl, [SUBPROTOCOL_V1], { perMessageDeflate: false, maxPayload: MAX_MESSAGE_SIZE, localAddress: local })
      : new WebSocket(ep.wsUrl, { perMessageDeflate: false, localAddress: local })
    ws.on('error', () => {})
    const s = new Station(id, kind, local, mac, (frames) => {
      if (batched) ws.send(encodeBatch(frames))
      else for (const f of frames) ws.send(f)
    }, () => { ws.terminate() })
    let welcomed = !batched
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) { welcomed = true; return }
      if (batched) { for (const r of decodeBatch(data)) s.inbox.push(Buffer.from(r)) } else s.inbox.push(Buffer.from(data))
    })
    ws.on('close', () => { s.closedNow() })
    await onceWithin(ws, 'open', 30_000)
    if (batched) ws.send(JSON.stringify({ type: 'hello', version: 1, name: `fz${id}` }))
    await waitFor(() => welcomed || s.closed, 30_000, `the welcome of station ${id}`)
    if (s.closed) throw new Error(`station ${id} (${kind} from ${local}) was closed instead of joining`)
    const localPort = (ws as unknown as { _socket: { localPort: number } })._socket.localPort
    await waitFor(() => { s.port = ports().find((p) => p.remote.endsWith(`${local}:${localPort}`)); return s.port !== undefined }, 30_000, `the port of station ${id}`)
    return s
  }
}
