/**
 * A port's edge: its link conditions (condition.ts) between its transport
 * and the switch, as Linux's sch_netem is a qdisc on a device and
 * br_forward knows nothing of it. Toward the switch, a message's frames are
 * admitted by the ingress condition before the decision sees them (passed
 * now, held for later, or lost on the link); toward the endpoint, what the
 * decision outputs goes through the egress condition. Held frames come back
 * through release() when the port's timer fires (io/net-port.ts); a frame
 * held for the endpoint leaves only if the port may still take it.
 *
 * A port has an edge (Port.edge) only while it has a condition in either
 * direction (link.ts sets it); the switch then pays one null check per
 * message and per output. Per frame: allocates nothing (held frames are
 * copied into the condition's own queue, held-queue.ts).
 */

import { RECORD_HEADER, VNET_HDR_LEN } from '../../common/protocol'
import { BLOCK_LINK, canEgress, type Port, type PortEdge } from './port'
import { DIR_IN, V_PASS, V_QUEUED, V_LOST, V_DOWN, type LinkCondition } from './condition'
import { R_CONDITION, R_CONDITION_QUEUE, R_LINK_DOWN, R_EGRESS_BLOCKED, R_VLAN } from './reasons'
import type { Network } from './network'

export class ConditionEdge implements PortEdge {
  constructor (private readonly sw: Network, private readonly port: Port) {}

  receiveBatch (msg: Buffer): void {
    const sw = this.sw
    const port = this.port
    const hdr = port.offload ? VNET_HDR_LEN : 0
    const now = sw.preciseClock()
    let off = 0
    const end = msg.length
    while (off < end) {
      const len = msg.readUInt32BE(off)
      // A record too short for its header is the decision's runt; no link condition acts on it.
      if (len < hdr) sw.handleFrame(port, msg, off + RECORD_HEADER, 0, -1)
      else this.admitIn(msg, off + RECORD_HEADER + hdr, len - hdr, hdr === 0 ? -1 : off + RECORD_HEADER, now)
      off += RECORD_HEADER + len
    }
    sw.flushDirty()
  }

  receiveFrame (frame: Buffer): void {
    this.admitIn(frame, 0, frame.length, -1, this.sw.preciseClock())
    this.sw.flushDirty()
  }

  output (buf: Buffer, off: number, len: number, op: number, vid: number, hdrOff: number): void {
    const c = this.port.condOut
    if (c === null) { this.port.output(buf, off, len, op, vid, hdrOff); return }
    const v = c.admit(buf, off, len, hdrOff, op, vid, this.sw.preciseClock())
    if (v === V_PASS) this.port.output(buf, off, len, op, vid, hdrOff)
    else this.conditioned(c, 1, v, buf, off, len, vid)
  }

  /**
   * Send what the condition in `dir` holds that is due by `nowMs`: toward
   * the switch, through the forwarding decision now; toward the endpoint, out
   * of the port if it may still egress. Returns when the next held frame is
   * due (Infinity: none), for the caller's timer.
   */
  release (dir: number, nowMs: number): number {
    const port = this.port
    const sw = this.sw
    const c = dir === DIR_IN ? port.condIn : port.condOut
    if (c === null) return Infinity
    sw.releasing = true
    try {
      if (dir === DIR_IN) {
        for (let f = c.take(nowMs); f !== undefined; f = c.take(nowMs)) sw.handleFrame(port, f.buf, f.off, f.len, f.hdrOff)
        sw.flushDirty()
      } else {
        let sent = false
        for (let f = c.take(nowMs); f !== undefined; f = c.take(nowMs)) {
          // The port may have gone down, been blocked or left the frame's VLAN (a reload) while the frame was on the wire.
          if (canEgress(port, f.vid)) { port.output(f.buf, f.off, f.len, f.op, f.vid, port.offload ? f.hdrOff : -1); sent = true } else sw.drop(port, notDelivered(port), f.buf, f.off, f.len, f.vid)
        }
        if (sent) port.flush()
      }
    } finally {
      sw.releasing = false
    }
    const next = c.nextDue()
    c.wakeAt = next
    return next
  }

  /** Ingress through the condition: the frame passes now, is held for later, or is lost on the link. */
  private admitIn (buf: Buffer, off: number, len: number, hdrOff: number, now: number): void {
    const c = this.port.condIn
    if (c === null) { this.sw.handleFrame(this.port, buf, off, len, hdrOff); return }
    const v = c.admit(buf, off, len, hdrOff, 0, 0, now)
    if (v === V_PASS) this.sw.handleFrame(this.port, buf, off, len, hdrOff)
    else this.conditioned(c, DIR_IN, v, buf, off, len, 0)
  }

  /**
   * Count what admit() said about a frame that did not pass, as a drop of
   * the port's (the ingress, or the egress whose link lost it); ask the port
   * for a wake-up if the frame was held.
   */
  private conditioned (c: LinkCondition, dir: number, v: number, buf: Buffer, off: number, len: number, vid: number): void {
    const port = this.port
    if ((v & V_QUEUED) !== 0) {
      port.framesDelayed++
      const due = c.nextDue()
      if (due < c.wakeAt) { c.wakeAt = due; port.wakeCondition(dir, due) }
    } else {
      this.sw.drop(port, v === V_LOST ? R_CONDITION : v === V_DOWN ? R_LINK_DOWN : R_CONDITION_QUEUE, buf, off, len, vid)
    }
  }
}

/** Why a frame held for `port` may no longer be given to it. */
function notDelivered (port: Port): number {
  return (port.blocked & BLOCK_LINK) !== 0 ? R_LINK_DOWN : port.blocked !== 0 ? R_EGRESS_BLOCKED : R_VLAN
}
