import { Port } from '../../src/switch/port'
import { egressLength, writeEgress } from '../../src/common/vlan'

/** A Port that records what the switch gives it (copies, transformed as a transport would send them). */
export class FakePort extends Port {
  readonly sent: Buffer[] = []
  flushes = 0
  closed: { code: number, reason: string } | undefined

  output (buf: Buffer, off: number, len: number, op: number, vid: number): void {
    const out = Buffer.alloc(egressLength(len, op))
    writeEgress(out, 0, buf, off, len, op, vid)
    this.sent.push(out)
    this.txFrames++
    this.txBytes += out.length
  }

  flush (): void { this.flushes++ }

  shutdown (code: number, reason: string): void { this.closed = { code, reason } }

  /** Take and clear what was sent. */
  take (): Buffer[] { return this.sent.splice(0) }
}
