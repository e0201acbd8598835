/**
 * Fake VTEPs for integration tests: a UDP socket on an address of 127/8
 * (each VTEP its own, as the allowlist matches addresses) that sends VXLAN or
 * GENEVE datagrams to switchd's listener and keeps what it receives; and a
 * fixture of a switchd with listeners, its VTEPs and WebSocket hosts.
 */

import assert from 'node:assert/strict'
import * as dgram from 'node:dgram'
import { ENCAP_GENEVE, ENCAP_VXLAN, writeHeader, vniAt, parseHeader } from '../../src/switch/core/encap'
import type { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { VxlanPort, type VxlanListener } from '../../src/switch/io/vxlan'
import type { NetPort } from '../../src/switch/io/net-port'
import type { TestClient } from './client'
import { SwitchdFixture, useFixture } from './switchd-fixture'
import { metricValues } from './metrics-text'

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
    this.socket = dgram.createSocket(address.includes(':') ? 'udp6' : 'udp4')
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
  get remote (): string { return this.address.includes(':') ? `[${this.address}]:${this.port}` : `${this.address}:${this.port}` }

  /** `frame` in VNI `vni` to switchd's listener at 127.0.0.1:`to` (::1 for an IPv6 VTEP). */
  send (to: number, vni: number, frame: Buffer): void {
    const d = Buffer.alloc(8 + frame.length)
    writeHeader(this.encap, d, 0, vni)
    frame.copy(d, 8)
    this.sendRaw(to, d)
  }

  /** Any bytes as one datagram. */
  sendRaw (to: number, datagram: Buffer): void {
    this.socket.send(datagram, to, this.address.includes(':') ? '::1' : '127.0.0.1')
  }

  /** The inner frames received so far, taken. */
  take (): Received[] { return this.received.splice(0) }

  close (): void { try { this.socket.close() } catch { /* closed */ } }
}

/**
 * A switchd with `vxlan` listeners for each test of a `describe`, its fake
 * VTEPs and WebSocket hosts, all closed after the test. switchd, the hosts
 * and the log lines are a SwitchdFixture's (`sd`: its life cycle, written
 * once); this adds the listeners' configuration and the VTEPs.
 */
export class VxlanFixture {
  readonly sd = new SwitchdFixture()
  readonly vteps: FakeVtep[] = []

  get switchd (): SwitchServer { return this.sd.switchd }

  /** switchd's log lines of this test. */
  get logs (): string[] { return this.sd.logs }

  async vtep (address: string, encap: 'vxlan' | 'geneve' = 'vxlan'): Promise<FakeVtep> {
    const v = await FakeVtep.open(address, encap)
    this.vteps.push(v)
    return v
  }

  /** switchd with `vxlan` listeners (each on 127.0.0.1:0 unless it says) and `extra` configuration; returns each listener's UDP port. */
  async start (vxlan: Array<Record<string, unknown>>, extra: Record<string, unknown> = {}): Promise<number[]> {
    const list = vxlan.map((l) => ({ listen: '127.0.0.1:0', ...l }))
    await this.sd.start({ config: buildConfig({ vxlan: list, ...extra }, 'test') })
    return this.listeners().map((l) => l.boundPort)
  }

  /** The listeners, through their ports (the registry's owner `vxlan`), in configuration order. */
  listeners (): VxlanListener[] {
    return [...new Set(this.switchd.ports().filter((p): p is VxlanPort => p instanceof VxlanPort).map((p) => p.listener))]
  }

  /** A tapswitch WebSocket host named `name`. */
  async host (name: string, path = '/'): Promise<TestClient> {
    return await this.sd.batched({ name }, path)
  }

  port (name: string): NetPort {
    const p = this.switchd.ports().find((x) => x.name === name)
    assert.ok(p !== undefined, `port ${name}`)
    return p
  }

  /** The value of the series `name` of switchd's /metrics that has these labels (among others), or undefined. */
  async metric (name: string, labels: Record<string, string>): Promise<number | undefined> {
    const res = await fetch(`http://127.0.0.1:${this.switchd.address().port}/metrics`, { signal: AbortSignal.timeout(30_000) })
    return metricValues(await res.text(), name, labels)[0]
  }

  async stop (): Promise<void> {
    for (const v of this.vteps.splice(0)) v.close()
    await this.sd.stop()
  }
}

/** Registers beforeEach/afterEach in the calling `describe`; the test calls start(). */
export function useVxlan (): VxlanFixture {
  return useFixture(new VxlanFixture())
}
