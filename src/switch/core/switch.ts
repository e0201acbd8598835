/**
 * One network: its ports, its fdb, its static entries, its clock and the
 * forwarding decision (decision.ts, which this class extends: the per-frame
 * path is there, on one screen). Adding and removing ports, disabling them,
 * static entries and the tick are slow path; link conditions stand at each
 * port's edge (edge.ts, set up by link.ts), not here.
 */

import { BLOCK_LOOP, BLOCK_OPERATOR, type Port } from './port'
import { applyConfiguredCondition, dropConditions, trimConditions } from './link'
import { R_BACKPRESSURE, R_MALFORMED } from './reasons'
import { RECORD_HEADER, VNET_HDR_LEN, countRecords } from '../../common/protocol'
import { DetachedPort, StaticTable, type StaticEntry } from './statics'
import { Decision, type SwitchOptions } from './decision'
import { logger } from '../../common/log'

export { Decision, SwitchStats, DEFAULT_GROUP_FWD_MASK, DEFAULT_LOOP_HOLD_DOWN, type SwitchOptions, type FrameTap } from './decision'

const log = logger('switch')

export class Switch extends Decision {
  /** The egress of static entries whose port is away. */
  readonly detached = new DetachedPort(0, '(detached)')
  private readonly statics: StaticTable

  constructor (opts: SwitchOptions = {}, nowMs = 0) {
    super(opts, nowMs)
    this.statics = new StaticTable(this.fdb, this.ports, this.detached, () => { this.invalidate() })
  }

  /** Add a port; `trunk` makes it a spanning-tree port that discards until the tree lets it forward. */
  addPort (port: Port, trunk = false): void {
    port.stormRefilledAt = this.nowMs
    port.rateRefilledAt = this.nowMs
    port.rateTokens = port.rateBps
    this.ports.push(port)
    this.stats.portsAdded++
    this.invalidate()
    if (port.policy.condition !== undefined) applyConfiguredCondition(this, port)
    if (trunk) this.stp.addPort(port)
    this.statics.rebind()
  }

  /** Detach `port` and forget its MACs; returns how many fdb entries went. */
  removePort (port: Port): number {
    const i = this.ports.indexOf(port)
    if (i < 0) return 0
    const last = this.ports.pop() as Port
    if (last !== port) this.ports[i] = last
    this.stats.portsRemoved++
    this.invalidate()
    this.stats.drops[R_BACKPRESSURE] = (this.stats.drops[R_BACKPRESSURE]) + (port.drops[R_BACKPRESSURE])
    if (port.stp !== null) this.stp.removePort(port)
    dropConditions(port)
    const n = this.fdb.deletePort(port)
    if (this.guard !== null) this.guard.portLeft(port)
    this.statics.rebind()
    return n
  }

  /** Replace the static entries (configuration load or reload). */
  setStatics (entries: readonly StaticEntry[]): void { this.statics.set(entries) }
  /** Add (or re-point) a static entry at run time; it lasts until removed or switchd restarts. */
  addStatic (entry: StaticEntry): void { this.statics.add(entry) }
  /** Static entries in force (configured and run-time). */
  get staticCount (): number { return this.statics.size }
  /** Whether `mac` in `vid` has a static entry. */
  hasStatic (vid: number, mac: number): boolean { return this.statics.has(vid, mac) }
  /** Remove a static entry (run-time or configured, until the next reload); false if there was none. */
  removeStatic (vid: number, mac: number): boolean { return this.statics.remove(vid, mac) }

  /** Operator disable: no frames in or out until enable(); its MACs are forgotten. */
  disablePort (port: Port): void {
    this.setBlocked(port, BLOCK_OPERATOR, true)
    this.fdb.deletePort(port)
  }

  enablePort (port: Port): void { this.setBlocked(port, BLOCK_OPERATOR, false) }

  /**
   * Send what `port`'s edge holds in `dir` that is due by `nowMs` (edge.ts);
   * returns when the next held frame is due (Infinity: none), for the caller's timer.
   */
  releaseHeld (port: Port, dir: number, nowMs: number): number {
    return port.edge === null ? Infinity : port.edge.release(dir, nowMs)
  }

  /** Advance the clock (ms); once a second expire idle fdb entries and trim idle condition queues; end hold-downs that are over. */
  tick (nowMs: number): void {
    const second = Math.floor(nowMs / 1000) !== Math.floor(this.nowMs / 1000)
    this.nowMs = nowMs
    this.fdb.tick(nowMs)
    // Before expiry: MACs that only the fast path carried are refreshed first.
    if (this.fastPath !== null) this.fastPath.sync()
    // purgeStale walks every entry: once a second is what ageing in whole seconds needs.
    if (second) this.fdb.expire()
    this.stp.tick(nowMs)
    for (const p of this.ports) {
      // Queues idle for a second give their memory back.
      if (second) trimConditions(p)
      if ((p.blocked & BLOCK_LOOP) !== 0 && nowMs >= p.loopUntil) {
        this.setBlocked(p, BLOCK_LOOP, false)
        log.info('loop_unblocked', { network: this.name, port: p.name })
      }
    }
  }

  /** Raw mode ingress: the message is one frame (through the port's edge, if it has one). */
  receiveFrame (ingress: Port, frame: Buffer): void {
    if (ingress.edge !== null) { ingress.edge.receiveFrame(frame); return }
    this.decide(ingress, frame, 0, frame.length, -1)
    this.flushDirty()
  }

  /**
   * One frame at buf[off, off + len) of a larger message (a VXLAN or GENEVE
   * datagram, after its headers): decided where it lies. Only a port with an
   * edge (link conditions) gets a view of it, which the edge may hold.
   * `flush` false: the caller calls flushDirty() once for several frames (a
   * transport that reads many datagrams in one turn of the loop, so that
   * what they queue for a port leaves as one message, not one each).
   */
  receiveFrameAt (ingress: Port, buf: Buffer, off: number, len: number, flush = true): void {
    if (ingress.edge !== null) { ingress.edge.receiveFrame(buf.subarray(off, off + len)); return }
    this.decide(ingress, buf, off, len, -1)
    if (flush) this.flushDirty()
  }

  /**
   * tapswitch-mode ingress: a batch of `[u32 len][frame]` records, or of
   * `[u32 len][virtio-net header][frame]` on an offload port. The
   * framing is checked before any frame is acted on; false means it was
   * broken (counted) and the caller should close the port. A port with an
   * edge hands the message to it (one null check per message).
   */
  receiveBatch (ingress: Port, msg: Buffer): boolean {
    if (countRecords(msg) < 0) { this.drop(ingress, R_MALFORMED, msg, 0, 0, 0); return false }
    if (ingress.edge !== null) { ingress.edge.receiveBatch(msg); return true }
    let off = 0
    const end = msg.length
    const hdr = ingress.offload ? VNET_HDR_LEN : 0
    while (off < end) {
      const len = msg.readUInt32BE(off)
      // A record too short for its header is a runt like any other.
      if (len < hdr) this.decide(ingress, msg, off + RECORD_HEADER, 0, -1)
      else this.decide(ingress, msg, off + RECORD_HEADER + hdr, len - hdr, hdr === 0 ? -1 : off + RECORD_HEADER)
      off += RECORD_HEADER + len
    }
    this.flushDirty()
    return true
  }

  /** `n` frames dropped for `reason` where the frames are not at hand (a transport's batch counts): the port's and the network's counters only. */
  countDrops (port: Port, reason: number, n: number): void {
    port.addDrops(reason, n)
    this.stats.drops[reason] = (this.stats.drops[reason] as number) + n
  }
}
