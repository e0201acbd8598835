import { Port } from '../../src/switch/port'

/** A Port that records what the switch gives it (copies, as a transport would send them). */
export class FakePort extends Port {
  readonly sent: Buffer[] = []
  flushes = 0

  output (buf: Buffer, off: number, len: number): void {
    this.sent.push(Buffer.from(buf.subarray(off, off + len)))
    this.txFrames++
    this.txBytes += len
  }

  flush (): void { this.flushes++ }

  /** Take and clear what was sent. */
  take (): Buffer[] { return this.sent.splice(0) }
}
