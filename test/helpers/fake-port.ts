import { Port } from '../../src/switch/core/port'
import { egressLength, writeEgress } from '../../src/common/vlan'
import { BatchSlab } from '../../src/switch/io/net-port'
import { RECORD_HEADER } from '../../src/common/protocol'

/**
 * A Port that records what the switch gives it (copies, transformed as a
 * transport would send them). With `offload` set, each is the record's
 * payload: the virtio-net header (zeros if the frame had none) then the frame,
 * written by the real BatchSlab so the header handling under test is ours.
 */
export class FakePort extends Port {
  readonly sent: Buffer[] = []
  flushes = 0
  closed: { code: number, reason: string } | undefined

  output (buf: Buffer, off: number, len: number, op: number, vid: number, hdrOff: number): void {
    if (hdrOff >= 0 && !this.offload) throw new Error(`port ${this.name} has no offload but was given a virtio-net header`)
    let out: Buffer
    if (this.offload) {
      const slab = new BatchSlab()
      this.txBytes += slab.append(buf, off, len, op, vid, true, hdrOff)
      out = Buffer.from((slab.take() as Buffer).subarray(RECORD_HEADER))
    } else {
      out = Buffer.alloc(egressLength(len, op))
      writeEgress(out, 0, buf, off, len, op, vid)
      this.txBytes += out.length
    }
    this.sent.push(out)
    this.txFrames++
  }

  flush (): void { this.flushes++ }

  shutdown (code: number, reason: string): void { this.closed = { code, reason } }

  /** Take and clear what was sent. */
  take (): Buffer[] { return this.sent.splice(0) }
}
