/**
 * Switch objects joined by simulated trunks, for spanning-tree unit tests:
 * BPDUs and frames cross in a queue pumped by the test, the clock is the
 * test's. A broadcast that could circle forever is bounded by the pump's
 * budget, so a loop shows up as a count, not a hang.
 */

import assert from 'node:assert/strict'
import { Switch } from '../../src/switch/core/switch'
import { Port } from '../../src/switch/core/port'
import { FakePort } from './fake-port'

type Job = () => void

/** Frames and BPDUs in flight between switches. */
export class Wire {
  readonly queue: Job[] = []
  delivered = 0

  /** Run queued deliveries, at most `budget`; returns how many were left undone. */
  pump (budget = 10_000): number {
    while (this.queue.length > 0 && budget-- > 0) { (this.queue.shift() as Job)(); this.delivered++ }
    return this.queue.length
  }
}

/** One end of a simulated trunk: what it is given arrives at `peer` on `peer.sw`. */
export class TrunkEnd extends Port {
  peer!: TrunkEnd
  up = true
  constructor (id: number, name: string, readonly sw: Switch, private readonly wire: Wire) { super(id, name) }

  output (buf: Buffer, off: number, len: number): void {
    if (!this.up) return
    const copy = Buffer.from(buf.subarray(off, off + len))
    this.txFrames++
    const peer = this.peer
    this.wire.queue.push(() => { if (peer.up) peer.sw.receiveFrame(peer, copy) })
  }

  flush (): void {}
  shutdown (): void {}

  /** The longest control message this end sent. */
  longestControl = 0

  override sendControl (text: string): void {
    this.longestControl = Math.max(this.longestControl, text.length)
    if (!this.up) return
    const peer = this.peer
    this.wire.queue.push(() => { if (peer.up) peer.sw.stp.receive(peer, text) })
  }
}

export class Fabric {
  readonly wire = new Wire()
  readonly switches: Switch[] = []
  readonly hosts: FakePort[] = []
  now = 1000
  private nextId = 1

  /** Switches named by their bridge ids: the lowest is the root. */
  constructor (ids: string[]) {
    for (const id of ids) {
      const sw = new Switch({ name: 'lab', bridgeId: id }, this.now)
      this.switches.push(sw)
      const host = new FakePort(this.nextId++, `host-${this.switches.length - 1}`)
      sw.addPort(host)
      this.hosts.push(host)
    }
  }

  link (i: number, j: number): [TrunkEnd, TrunkEnd] {
    const a = new TrunkEnd(this.nextId++, `t${i}${j}`, this.switches[i] as Switch, this.wire)
    const b = new TrunkEnd(this.nextId++, `t${j}${i}`, this.switches[j] as Switch, this.wire)
    a.peer = b
    b.peer = a
    a.sw.addPort(a, true)
    b.sw.addPort(b, true)
    return [a, b]
  }

  cut (ends: [TrunkEnd, TrunkEnd]): void {
    for (const e of ends) { e.up = false; e.sw.removePort(e) }
  }

  /** Advance the clock in 100 ms steps (as switchd does), delivering everything in flight after each. */
  run (ms: number): void {
    for (let t = 0; t < ms; t += 100) {
      this.now += 100
      for (const sw of this.switches) sw.tick(this.now)
      assert.equal(this.wire.pump(), 0, 'the wire should drain between ticks')
    }
  }

  trunks (): TrunkEnd[] {
    return this.switches.flatMap((sw) => sw.stp.ports as TrunkEnd[])
  }
}

