/**
 * One network: its ports, its fdb and the forwarding decision.
 *
 * handleFrame() is the whole per-frame policy, in Linux br_handle_frame order:
 * drop what a blocked port sends; validate (runt, oversize, group or zero
 * source); classify the VLAN (tag or the port's pvid) and check membership;
 * ask the network's guards (guard.ts: DHCP snooping, ARP inspection, IP
 * source guard); learn the source (port security, loop detection); look up
 * the destination; drop IEEE link-local groups the network does not
 * forward; then forward to exactly one egress port or flood, within the
 * storm limits, to every other member of the VLAN. A frame never leaves by
 * its ingress port.
 * Each egress gets the frame tagged or untagged as its mode says.
 *
 * Output is batched per ingress message: output() queues on the egress port,
 * which is marked dirty, and flushDirty() sends each dirty port's queue once
 * at the end of the message.
 *
 * A port may have link conditions (condition.ts): toward the switch, its
 * messages go through receiveConditioned() before the decision; toward the
 * endpoint, output() hands frames to outputConditioned(). Held frames come
 * back through releaseHeld() when the port's timer fires. A port without
 * one pays a null check per message and per output.
 *
 * Per-frame problems are counters, never exceptions, and each dropped frame
 * goes into the drop log (droplog.ts, a preallocated ring); this file
 * allocates nothing per frame and imports no I/O. The steps that the frame
 * trace (trace.ts) must take the same way are in classify.ts.
 */

import { debuglog } from 'node:util'
import { ETH_HLEN, ETH_SOURCE, isBroadcast, isGroup, macAt, formatMac } from '../../common/ethernet'
import { DEFAULT_MAX_FRAME_SIZE, RECORD_HEADER, VNET_HDR_LEN, countRecords } from '../../common/protocol'
import { checkOffload, needsSoftware, OFFLOAD_OK, OFFLOAD_OVERSIZE } from '../../common/gso'
import { SoftwareOffload } from './offload'
import { Fdb, LEARN_OK, LEARN_FLAP, LEARN_HELD, LEARN_LIMIT, LEARN_PINNED, type FdbOptions } from './fdb'
import { admitFlood, admitBytes, KIND_BROADCAST, KIND_MULTICAST, KIND_UNKNOWN_UNICAST } from './storm'
import { BLOCK_LOOP, BLOCK_OPERATOR, BLOCK_LINK, DIR_IN, DIR_OUT, canEgress, type Port } from './port'
import { V_PASS, V_QUEUED, V_LOST, V_DOWN, type LinkCondition } from './condition'
import { HeldBudget, DEFAULT_HELD_TOTAL, DEFAULT_HELD_PER_CLIENT } from './held-queue'
import { applyConfiguredCondition } from './link'
import { classify, egressOp, linkLocalGroup, forwardsGroup, CLASS_DROP, CLASS_RUNT, CLASS_TAGGED, CLASS_TAG_VID, CLASS_VID } from './classify'
import { DropLog } from './droplog'
import {
  R_RUNT, R_OVERSIZE, R_BAD_SOURCE, R_HAIRPIN, R_VLAN, R_PORT_SECURITY, R_STORM, R_LOOP, R_DISABLED, R_RATE, R_MALFORMED,
  R_BAD_OFFLOAD, R_EGRESS_BLOCKED, R_LINK_LOCAL, R_CONDITION, R_CONDITION_QUEUE, R_LINK_DOWN
} from './drops'
import { DetachedPort, bindStatics, type StaticEntry } from './statics'
import { refuseSource, blockLoop } from './protection'
import { SpanningTree, makeBridgeId } from './stp'
import type { FastPathHooks } from './fastpath'
import { GUARD_PASS, guardDrop, type Guard } from './guard'
import { logger } from '../../common/log'

const trace = debuglog('tapswitch:switch')
const log = logger('switch')

export const DEFAULT_LOOP_HOLD_DOWN = 30

export interface SwitchOptions extends FdbOptions {
  /** Network name, for logs. */
  name?: string
  /** Largest frame forwarded, Ethernet header and any tag included (default 1518). */
  maxFrameSize?: number
  /** Seconds a port stays blocked after loop protection blocked it. */
  loopHoldDown?: number
  /** This switchd's spanning-tree bridge id (stp.ts); random by default. */
  bridgeId?: string
  /** Where dropped frames are recorded (shared by a switchd's networks); a small one of its own by default. */
  dropLog?: DropLog
  /** Bit X set: flood 01:80:c2:00:00:0X (classify.ts forwardsGroup); default DEFAULT_GROUP_FWD_MASK. */
  groupFwdMask?: number
  /** What link-condition queues may hold (shared by a switchd's networks); one of its own with the defaults otherwise. */
  heldBudget?: HeldBudget
}

/** Link-local groups flooded by default: STP BPDUs only (while the network has no trunks), as a Linux bridge without STP. */
export const DEFAULT_GROUP_FWD_MASK = 0x0001

/** Network-wide counters (per-port ones live on Port). */
export class SwitchStats {
  forwarded = 0
  floodedBroadcast = 0
  floodedMulticast = 0
  floodedUnknown = 0
  dropRunt = 0
  dropOversize = 0
  dropBadSource = 0
  dropHairpin = 0
  dropVlan = 0
  dropPortSecurity = 0
  dropStorm = 0
  dropLoop = 0
  dropDisabled = 0
  dropRate = 0
  dropMalformed = 0
  /** Known unicast to a port that may not egress (disabled, loop-blocked, discarding). */
  dropEgressBlocked = 0
  /** Link conditions (condition.ts): lost, queue full, and frames on a link that was down. */
  dropCondition = 0
  dropConditionQueue = 0
  dropLinkDown = 0
  /** IEEE link-local group frames the network does not forward (groupFwdMask). */
  dropLinkLocal = 0
  /** Offload records with a malformed virtio-net header or GSO headers (gso.ts). */
  dropBadOffload = 0
  /** The guards (guard.ts): DHCP server messages, ARPs and IPv4 sources that untrusted ports may not send. */
  dropDhcpSnooping = 0
  dropArpInspection = 0
  dropIpSourceGuard = 0
  /** Offload frames converted for ports without offload: GSO frames segmented, checksums finished. */
  offloadSegmented = 0
  offloadChecksummed = 0
  /** Control messages (BPDUs) not sent because the trunk peer was not reading; ports keep their own dropControl. */
  controlDropped = 0
  /** Frames for a port whose peer was away (Port.dropDisconnected): parked, QEMU or the gateway child not connected. */
  dropDisconnected = 0
  /** Backpressure drops of ports that have left (live ports keep their own). */
  dropBackpressureRetired = 0
  loopsDetected = 0
  portsAdded = 0
  portsRemoved = 0
}

/**
 * A live capture (capture.ts): offered every frame the switch forwards or
 * floods while it is attached. `egress` is undefined for a flood.
 */
export interface FrameTap {
  offer (ingress: Port, egress: Port | undefined, vid: number, buf: Buffer, off: number, len: number): void
}

export class Switch {
  readonly name: string
  readonly fdb: Fdb
  maxFrameSize: number
  loopHoldDown: number
  /** Which IEEE link-local groups 01:80:c2:00:00:0X are flooded (bit X); the others are dropped (link_local). */
  groupFwdMask: number
  /** The last dropped frames (droplog.ts). */
  readonly dropLog: DropLog
  /** Memory link-condition queues may take, per client and in all (held-queue.ts). */
  readonly heldBudget: HeldBudget
  /**
   * True while releaseHeld() hands out frames from a condition's queue, whose
   * bytes are rewritten once the call returns: a transport that keeps views of
   * what output() gives it (a raw WebSocket port) copies these instead.
   */
  releasing = false
  readonly stats = new SwitchStats()
  /** Dense, swap-removed on leave: flood walks it without allocating. */
  readonly ports: Port[] = []
  /** The switch clock, ms on any monotonic epoch; advanced by tick(). */
  nowMs: number
  /** Ports with queued output; reused, never shrunk, so marking allocates nothing. */
  private readonly dirty: Port[] = []
  private dirtyCount = 0
  private statics: readonly StaticEntry[] = []
  private configStatics: readonly StaticEntry[] = []
  /** The egress of static entries whose port is away. */
  readonly detached = new DetachedPort(0, '(detached)')
  /** Live captures; empty unless someone is capturing, so the frame path pays one length check. */
  readonly taps: FrameTap[] = []
  /** Static entries added at run time (admin API), on top of the configured ones. */
  private extraStatics: StaticEntry[] = []
  /** Over the trunks to other switches (ports whose `stp` is set when they join). */
  readonly stp: SpanningTree
  /** Offload frames made plain for ports without offload (the slow path). */
  private readonly soft = new SoftwareOffload(this.stats)
  /**
   * The clock link conditions run on, ms: finer than nowMs (a 20 ms delay
   * cannot ride a 100 ms tick). Read only for frames of conditioned ports;
   * tests inject their own.
   */
  preciseClock: () => number = () => performance.now()
  /** The native fast path of this network's TAPs (io/fast-path.ts), if any. */
  fastPath: FastPathHooks | null = null
  /** DHCP snooping, ARP inspection, IP source guard (guard.ts); null: none, one null check per frame. */
  guard: Guard | null = null
  /** Bumped by invalidate(): tests see that an event reached the one hook. */
  invalidations = 0

  constructor (opts: SwitchOptions = {}, nowMs = 0) {
    this.name = opts.name ?? 'default'
    this.fdb = new Fdb(opts, nowMs)
    this.maxFrameSize = opts.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE
    this.loopHoldDown = opts.loopHoldDown ?? DEFAULT_LOOP_HOLD_DOWN
    this.groupFwdMask = opts.groupFwdMask ?? DEFAULT_GROUP_FWD_MASK
    this.dropLog = opts.dropLog ?? new DropLog(64)
    this.heldBudget = opts.heldBudget ?? new HeldBudget(DEFAULT_HELD_TOTAL, DEFAULT_HELD_PER_CLIENT)
    this.nowMs = nowMs
    this.stp = new SpanningTree(this, opts.bridgeId ?? makeBridgeId())
    this.fdb.onChange = () => { this.invalidate() }
  }

  /**
   * Something a forwarding decision depends on changed (an fdb entry came,
   * moved or went, a port joined, left or changed state, a policy, a
   * condition, a capture): every cached decision (the native fast path's
   * flows) goes now. The one hook; slow path only.
   */
  invalidate (): void {
    this.invalidations++
    if (this.fastPath !== null) this.fastPath.flush()
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
    if (this.statics.length > 0) bindStatics(this.fdb, this.ports, this.statics, this.detached)
  }

  /** Detach `port` and forget its MACs; returns how many fdb entries went. */
  removePort (port: Port): number {
    const i = this.ports.indexOf(port)
    if (i < 0) return 0
    const last = this.ports.pop() as Port
    if (last !== port) this.ports[i] = last
    this.stats.portsRemoved++
    this.invalidate()
    this.stats.dropBackpressureRetired += port.dropBackpressure
    if (port.stp !== null) this.stp.removePort(port)
    if (port.condIn !== null) { port.condIn.discard(); port.condIn = null }
    if (port.condOut !== null) { port.condOut.discard(); port.condOut = null }
    const n = this.fdb.deletePort(port)
    if (this.guard !== null) this.guard.portLeft(port)
    if (this.statics.length > 0) bindStatics(this.fdb, this.ports, this.statics, this.detached)
    return n
  }

  /** Replace the static entries (configuration load or reload). */
  setStatics (entries: readonly StaticEntry[]): void {
    this.configStatics = entries
    this.statics = [...entries, ...this.extraStatics]
    this.invalidate()
    bindStatics(this.fdb, this.ports, this.statics, this.detached)
  }

  /** Add (or re-point) a static entry at run time; it lasts until removed or switchd restarts. */
  addStatic (entry: StaticEntry): void {
    this.extraStatics = [...this.extraStatics.filter((e) => e.vid !== entry.vid || e.mac !== entry.mac), entry]
    this.setStatics(this.configStatics.filter((e) => e.vid !== entry.vid || e.mac !== entry.mac))
  }

  /** Static entries in force (configured and run-time). */
  get staticCount (): number { return this.statics.length }

  /** Whether `mac` in `vid` has a static entry. */
  hasStatic (vid: number, mac: number): boolean {
    for (const e of this.statics) if (e.vid === vid && e.mac === mac) return true
    return false
  }

  /** Remove a static entry (run-time or configured, until the next reload); false if there was none. */
  removeStatic (vid: number, mac: number): boolean {
    const keep = (e: StaticEntry): boolean => e.vid !== vid || e.mac !== mac
    const before = this.statics.length
    this.extraStatics = this.extraStatics.filter(keep)
    this.setStatics(this.configStatics.filter(keep))
    return this.statics.length < before
  }

  /** Operator disable: no frames in or out until enable(); its MACs are forgotten. */
  disablePort (port: Port): void {
    port.blocked |= BLOCK_OPERATOR
    this.invalidate()
    this.fdb.deletePort(port)
  }

  enablePort (port: Port): void {
    port.blocked &= ~BLOCK_OPERATOR
    this.invalidate()
  }

  /**
   * Send what `port`'s condition in `dir` holds that is due by `nowMs`:
   * toward the switch, through the forwarding decision now; toward the
   * endpoint, out of the port if it may still egress. Returns when the next
   * held frame is due (Infinity: none), for the caller's timer.
   */
  releaseHeld (port: Port, dir: number, nowMs: number): number {
    const c = dir === DIR_IN ? port.condIn : port.condOut
    if (c === null) return Infinity
    this.releasing = true
    try {
      if (dir === DIR_IN) {
        for (let f = c.take(nowMs); f !== undefined; f = c.take(nowMs)) this.handleFrame(port, f.buf, f.off, f.len, f.hdrOff)
        this.flushDirty()
      } else {
        let sent = false
        for (let f = c.take(nowMs); f !== undefined; f = c.take(nowMs)) {
          // The port may have gone down, been blocked or left the frame's VLAN (a reload) while the frame was on the wire.
          if (canEgress(port, f.vid)) { port.output(f.buf, f.off, f.len, f.op, f.vid, port.offload ? f.hdrOff : -1); sent = true } else this.heldNotDelivered(port, f.buf, f.off, f.len, f.vid)
        }
        if (sent) port.flush()
      }
    } finally {
      this.releasing = false
    }
    const next = c.nextDue()
    c.wakeAt = next
    return next
  }

  /** A frame held for `port` that it may no longer be given: counted under the reason it may not. */
  private heldNotDelivered (port: Port, buf: Buffer, off: number, len: number, vid: number): void {
    const s = this.stats
    if ((port.blocked & BLOCK_LINK) !== 0) { port.dropLinkDown++; s.dropLinkDown++; this.logDrop(port, R_LINK_DOWN, buf, off, len, vid) } else if (port.blocked !== 0) { port.dropEgressBlocked++; s.dropEgressBlocked++; this.logDrop(port, R_EGRESS_BLOCKED, buf, off, len, vid) } else { port.dropVlan++; s.dropVlan++; this.logDrop(port, R_VLAN, buf, off, len, vid) }
  }

  /**
   * Count what admit() said about a frame that did not pass, and log a drop
   * under `port` (the ingress, or the egress whose link lost it); ask the port
   * for a wake-up if the frame was held.
   */
  private conditioned (port: Port, c: LinkCondition, dir: number, v: number, buf: Buffer, off: number, len: number, vid: number): void {
    const s = this.stats
    if ((v & V_QUEUED) !== 0) {
      port.framesDelayed++
      const due = c.nextDue()
      if (due < c.wakeAt) { c.wakeAt = due; port.wakeCondition(dir, due) }
    } else if (v === V_LOST) {
      port.dropCondition++; s.dropCondition++; this.logDrop(port, R_CONDITION, buf, off, len, vid)
    } else if (v === V_DOWN) {
      port.dropLinkDown++; s.dropLinkDown++; this.logDrop(port, R_LINK_DOWN, buf, off, len, vid)
    } else {
      port.dropConditionQueue++; s.dropConditionQueue++; this.logDrop(port, R_CONDITION_QUEUE, buf, off, len, vid)
    }
  }

  /** Ingress through the port's condition: frames pass now, are held for later, or are lost on the link. */
  private receiveConditioned (ingress: Port, c: LinkCondition, buf: Buffer, off: number, len: number, hdrOff: number, now: number): void {
    const v = c.admit(buf, off, len, hdrOff, 0, 0, now)
    if (v === V_PASS) this.handleFrame(ingress, buf, off, len, hdrOff)
    else this.conditioned(ingress, c, DIR_IN, v, buf, off, len, 0)
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
      if (second) { if (p.condIn !== null) p.condIn.trim(); if (p.condOut !== null) p.condOut.trim() }
      if ((p.blocked & BLOCK_LOOP) !== 0 && nowMs >= p.loopUntil) {
        p.blocked &= ~BLOCK_LOOP
        this.invalidate()
        log.info('loop_unblocked', { network: this.name, port: p.name })
      }
    }
  }

  /** Raw mode ingress: the message is one frame. */
  receiveFrame (ingress: Port, frame: Buffer): void {
    if (ingress.condIn !== null) this.receiveConditioned(ingress, ingress.condIn, frame, 0, frame.length, -1, this.preciseClock())
    else this.handleFrame(ingress, frame, 0, frame.length, -1)
    this.flushDirty()
  }

  /**
   * tapswitch-mode ingress: a batch of `[u32 len][frame]` records, or of
   * `[u32 len][virtio-net header][frame]` on an offload port. The
   * framing is checked before any frame is acted on; false means it was
   * broken (counted) and the caller should close the port.
   */
  receiveBatch (ingress: Port, msg: Buffer): boolean {
    if (countRecords(msg) < 0) {
      ingress.dropMalformed++
      this.stats.dropMalformed++
      this.logDrop(ingress, R_MALFORMED, msg, 0, 0, 0)
      return false
    }
    let off = 0
    const end = msg.length
    const hdr = ingress.offload ? VNET_HDR_LEN : 0
    // One null check per message: a port without a condition pays nothing per frame for the feature.
    const cond = ingress.condIn
    if (cond !== null) {
      const now = this.preciseClock()
      while (off < end) {
        const len = msg.readUInt32BE(off)
        if (len < hdr) this.handleFrame(ingress, msg, off + RECORD_HEADER, 0, -1)
        else this.receiveConditioned(ingress, cond, msg, off + RECORD_HEADER + hdr, len - hdr, hdr === 0 ? -1 : off + RECORD_HEADER, now)
        off += RECORD_HEADER + len
      }
      this.flushDirty()
      return true
    }
    while (off < end) {
      const len = msg.readUInt32BE(off)
      // A record too short for its header is a runt like any other.
      if (len < hdr) this.handleFrame(ingress, msg, off + RECORD_HEADER, 0, -1)
      else this.handleFrame(ingress, msg, off + RECORD_HEADER + hdr, len - hdr, hdr === 0 ? -1 : off + RECORD_HEADER)
      off += RECORD_HEADER + len
    }
    this.flushDirty()
    return true
  }

  /**
   * The forwarding decision for buf[off, off + len) arriving on `ingress`;
   * `hdrOff` is where its virtio-net header is in `buf` (offload ports), or -1.
   */
  handleFrame (ingress: Port, buf: Buffer, off: number, len: number, hdrOff: number): void {
    const s = this.stats
    ingress.rxFrames++
    ingress.rxBytes += len
    if (ingress.blocked !== 0) {
      if ((ingress.blocked & BLOCK_OPERATOR) !== 0) { ingress.dropDisabled++; s.dropDisabled++; this.logDrop(ingress, R_DISABLED, buf, off, len, 0) } else if ((ingress.blocked & BLOCK_LINK) !== 0) { ingress.dropLinkDown++; s.dropLinkDown++; this.logDrop(ingress, R_LINK_DOWN, buf, off, len, 0) } else { ingress.dropLoop++; s.dropLoop++; this.logDrop(ingress, R_LOOP, buf, off, len, 0) }
      return
    }
    if (ingress.rateBps !== 0 && !admitBytes(ingress, len, this.nowMs)) { s.dropRate++; this.logDrop(ingress, R_RATE, buf, off, len, 0); return }
    if (len < ETH_HLEN) { ingress.dropRunt++; s.dropRunt++; this.logDrop(ingress, R_RUNT, buf, off, len, 0); return }
    if (hdrOff < 0) {
      if (len > this.maxFrameSize) { ingress.dropOversize++; s.dropOversize++; this.logDrop(ingress, R_OVERSIZE, buf, off, len, 0); return }
    } else {
      // A GSO frame may exceed maxFrameSize; its segments may not.
      const verdict = checkOffload(buf, hdrOff, off, len, this.maxFrameSize)
      if (verdict !== OFFLOAD_OK) {
        if (verdict === OFFLOAD_OVERSIZE) { ingress.dropOversize++; s.dropOversize++; this.logDrop(ingress, R_OVERSIZE, buf, off, len, 0) } else { ingress.dropBadOffload++; s.dropBadOffload++; this.logDrop(ingress, R_BAD_OFFLOAD, buf, off, len, 0) }
        return
      }
    }
    const src = macAt(buf, off + ETH_SOURCE)
    // is_valid_ether_addr(h_source): a group or all-zero source is never learned or forwarded.
    if (src === 0 || isGroup(buf, off + ETH_SOURCE)) { ingress.dropBadSource++; s.dropBadSource++; this.logDrop(ingress, R_BAD_SOURCE, buf, off, len, 0); return }
    // A token that names the port's MACs: any other source is refused like a port-security violation.
    if (ingress.allowedMacs !== null && !ingress.allowedMacs.has(src)) { ingress.dropPortSecurity++; s.dropPortSecurity++; this.logDrop(ingress, R_PORT_SECURITY, buf, off, len, 0); return }

    // VLAN classification (classify.ts): the tag's VID, or the port's pvid for untagged and priority-tagged frames.
    const c = classify(ingress, buf, off, len)
    if ((c & CLASS_DROP) !== 0) {
      if (c === CLASS_RUNT) { ingress.dropRunt++; s.dropRunt++; this.logDrop(ingress, R_RUNT, buf, off, len, 0) } else { ingress.dropVlan++; s.dropVlan++; this.logDrop(ingress, R_VLAN, buf, off, len, c & CLASS_VID) }
      return
    }
    const vid = c & CLASS_VID
    const tagged = (c & CLASS_TAGGED) !== 0
    const tagVid = (c & CLASS_TAG_VID) !== 0 ? vid : 0
    // The guards see every frame of an untrusted port before it can teach the fdb anything.
    if (this.guard !== null) {
      const g = this.guard.admit(ingress, buf, off, len, vid)
      if (g !== GUARD_PASS) { guardDrop(this, ingress, g, buf, off, len, vid); return }
    }

    const learned = this.fdb.learn(vid, src, ingress)
    if (learned !== LEARN_OK) {
      if (learned === LEARN_LIMIT || learned === LEARN_PINNED) { refuseSource(this, ingress, learned, buf, off, len, vid); return }
      if ((learned & LEARN_FLAP) !== 0 && blockLoop(this, ingress, this.fdb.flapFrom as Port, this.fdb.flapHome as Port, src, vid)) { this.logDrop(ingress, R_LOOP, buf, off, len, vid); return }
      // The MAC lives on a port still sending it: a spoofer or a loop's copy. Cisco port-security counts it a violation.
      if ((learned & LEARN_HELD) !== 0) { ingress.dropPortSecurity++; s.dropPortSecurity++; this.logDrop(ingress, R_PORT_SECURITY, buf, off, len, vid); return }
    }

    let kind = KIND_UNKNOWN_UNICAST
    if (!isGroup(buf, off)) {
      const egress = this.fdb.lookup(vid, macAt(buf, off))
      if (egress !== undefined) {
        if (egress === ingress) { ingress.dropHairpin++; s.dropHairpin++; this.logDrop(ingress, R_HAIRPIN, buf, off, len, vid); return }
        if (trace.enabled) trace('forward %s vlan=%d port=%s', formatMac(macAt(buf, off)), vid, egress.name)
        if (!canEgress(egress, vid)) {
          if (egress.member[vid] === 0) { ingress.dropVlan++; s.dropVlan++; this.logDrop(ingress, R_VLAN, buf, off, len, vid) } else { ingress.dropEgressBlocked++; s.dropEgressBlocked++; this.logDrop(ingress, R_EGRESS_BLOCKED, buf, off, len, vid) }
          return
        }
        this.output(egress, buf, off, len, tagged, tagVid, vid, hdrOff)
        s.forwarded++
        if (this.taps.length !== 0) this.offerTaps(ingress, egress, vid, buf, off, len)
        // One null check for ports without a fast path.
        if (ingress.fastPath !== null && egress.fastPath === ingress.fastPath && !tagged) ingress.fastPath.offer(ingress, egress, vid, macAt(buf, off), src)
        return
      }
    } else {
      kind = isBroadcast(buf, off) ? KIND_BROADCAST : KIND_MULTICAST
      // IEEE link-local groups (STP, LACP, 802.1X, LLDP...): dropped unless the network floods that one.
      if (kind === KIND_MULTICAST && buf[off + 1] === 0x80) {
        const x = linkLocalGroup(buf, off)
        if (x >= 0 && !forwardsGroup(this.groupFwdMask, x, this.stp.ports.length)) { ingress.dropLinkLocal++; s.dropLinkLocal++; this.logDrop(ingress, R_LINK_LOCAL, buf, off, len, vid); return }
      }
    }
    if (!admitFlood(ingress, kind, this.nowMs)) { s.dropStorm++; this.logDrop(ingress, R_STORM, buf, off, len, vid); return }
    if (kind === KIND_UNKNOWN_UNICAST) s.floodedUnknown++
    else if (kind === KIND_BROADCAST) s.floodedBroadcast++
    else s.floodedMulticast++
    const ports = this.ports
    for (let i = 0; i < ports.length; i++) {
      const p = ports[i] as Port
      if (p !== ingress && canEgress(p, vid)) this.output(p, buf, off, len, tagged, tagVid, vid, hdrOff)
    }
    if (this.taps.length !== 0) this.offerTaps(ingress, undefined, vid, buf, off, len)
  }

  /**
   * Record a dropped frame in the drop log: its MACs if it has them (-1 if
   * not), `vid` (0 if not classified yet) and the reason (drops.ts R_*).
   * Stores into the preallocated ring only.
   */
  logDrop (ingress: Port, reason: number, buf: Buffer, off: number, len: number, vid: number): void {
    const full = len >= ETH_HLEN
    this.dropLog.add(this.nowMs, this.name, ingress.name, full ? macAt(buf, off + ETH_SOURCE) : -1, full ? macAt(buf, off) : -1, vid, reason)
  }

  /**
   * Queue the frame on `egress`, tagged or untagged as the port's mode says
   * for `vid`. Only an offload port is given the virtio-net header; any
   * other gets the frame as it is if the header asks nothing of it, else
   * its segments or the frame with its checksum finished (offload.ts).
   */
  private output (egress: Port, buf: Buffer, off: number, len: number, tagged: boolean, tagVid: number, vid: number, hdrOff: number): void {
    const op = egressOp(egress, tagged, tagVid, vid)
    if (hdrOff < 0 || egress.offload || !needsSoftware(buf, hdrOff)) {
      if (egress.condOut === null) egress.output(buf, off, len, op, vid, egress.offload ? hdrOff : -1)
      else this.outputConditioned(egress, egress.condOut, buf, off, len, op, vid, egress.offload ? hdrOff : -1)
    } else {
      const frames = this.soft.plainFrames(buf, hdrOff, off, len)
      for (let i = 0; i < frames.length; i++) {
        const f = frames[i] as Buffer
        if (egress.condOut === null) egress.output(f, 0, f.length, op, vid, -1)
        else this.outputConditioned(egress, egress.condOut, f, 0, f.length, op, vid, -1)
      }
    }
    if (!egress.dirty) {
      egress.dirty = true
      this.dirty[this.dirtyCount++] = egress
    }
  }

  /** Egress through the port's condition: out now, held (a copy) for later, or lost on the link. */
  private outputConditioned (egress: Port, c: LinkCondition, buf: Buffer, off: number, len: number, op: number, vid: number, hdrOff: number): void {
    const v = c.admit(buf, off, len, hdrOff, op, vid, this.preciseClock())
    if (v === V_PASS) egress.output(buf, off, len, op, vid, hdrOff)
    else this.conditioned(egress, c, DIR_OUT, v, buf, off, len, vid)
  }

  /** Backwards: a capture that reaches its limit removes itself from taps while we walk it. */
  private offerTaps (ingress: Port, egress: Port | undefined, vid: number, buf: Buffer, off: number, len: number): void {
    const taps = this.taps
    for (let i = taps.length - 1; i >= 0; i--) (taps[i] as FrameTap).offer(ingress, egress, vid, buf, off, len)
  }

  private flushDirty (): void {
    const d = this.dirty
    const n = this.dirtyCount
    this.dirtyCount = 0
    for (let i = 0; i < n; i++) {
      const p = d[i] as Port
      p.dirty = false
      p.flush()
    }
    this.soft.clear()
  }
}
