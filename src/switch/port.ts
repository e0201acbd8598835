/**
 * A switch port as the forwarding logic sees it: an id, a name, counters and
 * an egress. The WebSocket wiring (ws-port.ts) subclasses it; unit tests use a
 * fake that records what it is given. Nothing here does I/O.
 *
 * Counters are plain number fields, initialised in the constructor so every
 * Port has one hidden class, and read at scrape time (never prom-client calls
 * per frame).
 */

export abstract class Port {
  /** Set by the switch while the port has output waiting for flush(). */
  dirty = false
  /** fdb entries that point at this port (kept by the Fdb). */
  fdbEntries = 0
  /** When the port joined, ms since the epoch (slow path only). */
  readonly connectedAt = Date.now()

  rxFrames = 0
  rxBytes = 0
  txFrames = 0
  txBytes = 0
  /** Ingress drops, by reason. */
  dropRunt = 0
  dropOversize = 0
  dropBadSource = 0
  dropHairpin = 0
  /** Binary messages whose batch framing was broken (the port is then closed). */
  dropMalformed = 0
  /** Egress drops: the peer did not read fast enough. */
  dropBackpressure = 0

  constructor (readonly id: number, public name: string) {}

  /**
   * Queue one frame, buf[off, off + len), for this port. Must not keep `buf`
   * beyond what the transport needs, must never throw, and drops (counting
   * dropBackpressure) rather than queue without bound.
   */
  abstract output (buf: Buffer, off: number, len: number): void

  /** Send whatever output() queued; called once per ingress message. */
  abstract flush (): void
}
