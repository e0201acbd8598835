/**
 * A fake VTEP for integration tests: a UDP socket on an address of 127/8
 * (each VTEP its own, as the allowlist matches addresses) that sends VXLAN or
 * GENEVE datagrams to switchd's listener and keeps what it receives.
 */

import * as dgram from 'node:dgram'
import { ENCAP_GENEVE, ENCAP_VXLAN, writeHeader, vniAt, parseHeader } from '../../src/switch/core/encap'

export interface Received {
  /** The VNI of the header, the inner frame, and the UDP source port it came from. */
  vni: number
  frame: Buffer
  sourcePort: number
  /** The whole datagram, its header included. */
  raw: Buffer
}

export class FakeVtep {
  readonly received: Received[] = []
  private readonly socket: dgram.Socket
  port = 0

  private constructor (readonly address: string, readonly encap: number) {
    this.socket = dgram.createSocket('udp4')
    this.socket.on('error', () => {})
    this.socket.on('message', (msg, rinfo) => {
      const off = parseHeader(this.encap, msg, msg.length)
      this.received.push({ vni: off < 0 ? -1 : vniAt(msg), frame: off < 0 ? Buffer.alloc(0) : msg.subarray(off), sourcePort: rinfo.port, raw: msg })
    })
  }

  /** A VTEP at `address` (127.0.0.2, 127.0.0.3, …) on a port the system chooses. */
  static async open (address: string, encap: 'vxlan' | 'geneve' = 'vxlan'): Promise<FakeVtep> {
    const v = new FakeVtep(address, encap === 'geneve' ? ENCAP_GENEVE : ENCAP_VXLAN)
    await new Promise<void>((resolve, reject) => {
      v.socket.once('error', reject)
      v.socket.bind(0, address, () => { v.socket.off('error', reject); resolve() })
    })
    v.port = v.socket.address().port
    return v
  }

  /** How the configuration lists it. */
  get remote (): string { return `${this.address}:${this.port}` }

  /** `frame` in VNI `vni` to switchd's listener at 127.0.0.1:`to`. */
  send (to: number, vni: number, frame: Buffer): void {
    const d = Buffer.alloc(8 + frame.length)
    writeHeader(this.encap, d, 0, vni)
    frame.copy(d, 8)
    this.sendRaw(to, d)
  }

  /** Any bytes as one datagram. */
  sendRaw (to: number, datagram: Buffer): void {
    this.socket.send(datagram, to, '127.0.0.1')
  }

  /** The inner frames received so far, taken. */
  take (): Received[] { return this.received.splice(0) }

  close (): void { try { this.socket.close() } catch { /* closed */ } }
}
