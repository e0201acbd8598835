/**
 * The forwarding decision of one network, and the state it reads (switch.ts
 * adds the ports' comings and goings, static entries and the clock).
 *
 * handleFrame() is the whole per-frame policy, in Linux br_handle_frame order:
 * drop what a blocked port sends; validate (runt, oversize, group or zero
 * source); classify the VLAN (tag or the port's pvid) and check membership;
 * ask the network's guards (guard.ts: DHCP snooping, ARP inspection, IP
 * source guard); learn the source (port security, loop detection); look up
 * the destination; drop IEEE link-local groups the network does not
 * forward; then forward to exactly one egress port or flood, within the
 * storm limits, to every other member of the VLAN. A frame never leaves by
 * its ingress port. Each egress gets the frame tagged or untagged as its
 * mode says.
 *
 * One decision, many observers (observe.ts; Open vSwitch's xlate_actions):
 * given an observer, handleFrame tells it each step; with commit false it
 * changes nothing (learning and the token buckets only answer; no counter,
 * no drop log, no output, no loop block, no fast-path offer). The frame
 * trace (control/trace.ts) and the fast path's revalidation (fastpath.ts)
 * are that same decision, run dry.
 *
 * Every dropped frame is one drop() call: the port's and the network's
 * counter for its reason, the drop log (droplog.ts, a preallocated ring) and
 * the observer.
 *
 * Output is batched per ingress message (Switch.receiveBatch): output()
 * queues on the egress port, which is marked dirty, and flushDirty() sends
 * each dirty port's queue once at the end of the message.
 *
 * Link conditions are not here: they stand at the port's edge (edge.ts,
 * Port.edge), before the switch sees a frame and around a port's output, as
 * netem is a qdisc outside br_forward. A port without an edge pays one null
 * check per message and per output.
 *
 * Per-frame problems are counters, never exceptions; this file allocates
 * nothing per frame and imports no I/O.
 */


import { debuglog } from 'node:util'
import { ETH_HLEN, ETH_SOURCE, isBroadcast, isGroup, macAt, formatMac } from '../../common/ethernet'
import { DEFAULT_MAX_FRAME_SIZE } from '../../common/protocol'
import { checkOffload, needsSoftware, OFFLOAD_OK, OFFLOAD_OVERSIZE } from '../../common/gso'
import { SoftwareOffload } from './offload'
import { Fdb, LEARN_OK, LEARN_FLAP, LEARN_HELD, LEARN_LIMIT, LEARN_PINNED } from './fdb'
import { spendFlood, spendBytes, KIND_BROADCAST, KIND_MULTICAST, KIND_UNKNOWN_UNICAST } from './storm'
import { BLOCK_OPERATOR, BLOCK_LINK, canEgress, type Port, type FastPathHooks } from './port'
import { HeldBudget, DEFAULT_HELD_TOTAL, DEFAULT_HELD_PER_CLIENT } from './held-queue'
import { classify, egressOp, linkLocalGroup, forwardsGroup, CLASS_DROP, CLASS_RUNT, CLASS_TAGGED, CLASS_TAG_VID, CLASS_VID } from './classify'
import { DropLog } from './droplog'
import {
  R_RUNT, R_OVERSIZE, R_BAD_SOURCE, R_HAIRPIN, R_VLAN, R_PORT_SECURITY, R_STORM, R_LOOP, R_DISABLED, R_RATE,
  R_BAD_OFFLOAD, R_EGRESS_BLOCKED, R_LINK_LOCAL, R_LINK_DOWN, R_SPLIT_HORIZON
} from './reasons'
import { SwitchStats } from './stats'
import { DEFAULT_GROUP_FWD_MASK, DEFAULT_LOOP_HOLD_DOWN, type SwitchOptions, type FrameTap } from './options'
import { portViolation, blockLoop, loopVictim } from './protection'
import { SpanningTree, makeBridgeId } from './stp'
import { GUARD_PASS, type Guard } from './guard'
import { S_INGRESS, S_RATE, S_VALIDATE, S_VLAN, S_GUARD, S_LEARN, S_LOOKUP, S_GROUP, S_LINK_LOCAL, S_STORM, S_EGRESS, S_DROP, S_SPLIT_HORIZON, type DecisionObserver } from './observe'
import type { Network } from './network'

export { SwitchStats, DEFAULT_GROUP_FWD_MASK, DEFAULT_LOOP_HOLD_DOWN, type SwitchOptions, type FrameTap }

const trace = debuglog('tapswitch:switch')

/** An offload frame's drop reason (its virtio-net header at buf[hdrOff]), or -1 if it may go on. */
function offloadReason (buf: Buffer, hdrOff: number, off: number, len: number, maxFrameSize: number): number {
  const verdict = checkOffload(buf, hdrOff, off, len, maxFrameSize)
  return verdict === OFFLOAD_OK ? -1 : verdict === OFFLOAD_OVERSIZE ? R_OVERSIZE : R_BAD_OFFLOAD
}

/** The drop reason of a frame from a blocked port, the strongest block first. */
function blockedReason (blocked: number): number {
  return (blocked & BLOCK_OPERATOR) !== 0 ? R_DISABLED : (blocked & BLOCK_LINK) !== 0 ? R_LINK_DOWN : R_LOOP
}

/** The decision and the state it reads; Switch (switch.ts) is the network around it. */
export class Decision implements Network {
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
   * True while a port's edge hands out frames from a condition's queue, whose
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
  /** Live captures; empty unless someone is capturing, so the frame path pays one length check. */
  readonly taps: FrameTap[] = []
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
  /** The observer and the commit flag of the decision running now (handleFrame sets them for a call). */
  private obs: DecisionObserver | null = null
  private commit = true

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

  /**
   * The one writer of a port's blocked state (Linux br_set_state): set or
   * clear one BLOCK_* reason, and let every cached decision go with it.
   */
  setBlocked (port: Port, bit: number, on: boolean): void {
    port.blocked = on ? port.blocked | bit : port.blocked & ~bit
    this.invalidate()
  }
  /**
   * The forwarding decision for buf[off, off + len) arriving on `ingress`;
   * `hdrOff` is where its virtio-net header is in `buf` (offload ports), or
   * -1. `obs` is told each step (observe.ts); with `commit` false nothing
   * changes (a dry run: the trace, the fast path's revalidation).
   */
  handleFrame (ingress: Port, buf: Buffer, off: number, len: number, hdrOff: number, obs: DecisionObserver | null = null, commit = true): void {
    if (obs === null && commit) { this.decide(ingress, buf, off, len, hdrOff); return }
    const o = this.obs
    const c = this.commit
    this.obs = obs
    this.commit = commit
    try {
      this.decide(ingress, buf, off, len, hdrOff)
    } finally {
      this.obs = o
      this.commit = c
    }
  }

  protected decide (ingress: Port, buf: Buffer, off: number, len: number, hdrOff: number): void {
    const obs = this.obs
    const commit = this.commit
    if (commit) { ingress.rxFrames++; ingress.rxBytes += len }
    if (obs !== null) obs.step(S_INGRESS, 0, 0, ingress)
    if (ingress.blocked !== 0) { this.drop(ingress, blockedReason(ingress.blocked), buf, off, len, 0); return }
    if (ingress.rateBps !== 0 && !this.admitRate(ingress, buf, off, len)) return
    // Validation: length (a GSO frame may exceed maxFrameSize, its segments may not), then the source.
    if (obs !== null) obs.step(S_VALIDATE, 0, 0, ingress)
    const bad = len < ETH_HLEN ? R_RUNT : hdrOff < 0 ? (len > this.maxFrameSize ? R_OVERSIZE : -1) : offloadReason(buf, hdrOff, off, len, this.maxFrameSize)
    if (bad >= 0) { this.drop(ingress, bad, buf, off, len, 0); return }
    const src = macAt(buf, off + ETH_SOURCE)
    // is_valid_ether_addr(h_source): a group or all-zero source is never learned or forwarded.
    if (src === 0 || isGroup(buf, off + ETH_SOURCE)) { this.drop(ingress, R_BAD_SOURCE, buf, off, len, 0); return }
    // A token that names the port's MACs: any other source is refused like a port-security violation.
    if (ingress.allowedMacs !== null && !ingress.allowedMacs.has(src)) { this.drop(ingress, R_PORT_SECURITY, buf, off, len, 0); return }

    // VLAN classification (classify.ts): the tag's VID, or the port's pvid for untagged and priority-tagged frames.
    const c = classify(ingress, buf, off, len)
    if (obs !== null) obs.step(S_VLAN, c, 0, ingress)
    if ((c & CLASS_DROP) !== 0) { this.drop(ingress, c === CLASS_RUNT ? R_RUNT : R_VLAN, buf, off, len, c === CLASS_RUNT ? 0 : c & CLASS_VID); return }
    const vid = c & CLASS_VID
    // The guards see every frame of an untrusted port before it can teach the fdb anything.
    if (this.guard !== null) {
      const g = this.guard.admit(ingress, buf, off, len, vid)
      if (obs !== null) obs.step(S_GUARD, g, vid, ingress)
      if (g !== GUARD_PASS) { this.drop(ingress, g, buf, off, len, vid); return }
    }
    const learned = this.fdb.learn(vid, src, ingress, commit)
    let avoid: Port | null = null
    if (learned !== LEARN_OK) {
      const a = this.refused(ingress, buf, off, len, vid, src, learned)
      if (a === undefined) return
      avoid = a
    } else if (obs !== null) obs.step(S_LEARN, learned, 0, undefined)

    let kind = KIND_UNKNOWN_UNICAST
    if (!isGroup(buf, off)) {
      let egress = this.fdb.lookup(vid, macAt(buf, off))
      if (!commit) egress = this.dryEgress(ingress, egress, vid, macAt(buf, off), src, avoid)
      if (obs !== null) obs.step(S_LOOKUP, 0, vid, egress)
      if (egress !== undefined) {
        if (egress === ingress) { this.drop(ingress, R_HAIRPIN, buf, off, len, vid); return }
        if (!canEgress(egress, vid) || egress === avoid) { this.drop(ingress, egress.member[vid] === 0 ? R_VLAN : R_EGRESS_BLOCKED, buf, off, len, vid); return }
        // Split horizon: never from one port of a horizon group out of another (a full mesh of replicas or VTEPs needs no second hop).
        if (ingress.horizon !== 0 && egress.horizon === ingress.horizon) { if (obs !== null) obs.step(S_SPLIT_HORIZON, 1, vid, egress); this.drop(ingress, R_SPLIT_HORIZON, buf, off, len, vid); return }
        if (obs !== null) obs.step(S_EGRESS, 0, vid, egress)
        if (commit) this.forward(ingress, egress, buf, off, len, c, hdrOff)
        return
      }
    } else {
      kind = isBroadcast(buf, off) ? KIND_BROADCAST : KIND_MULTICAST
      if (obs !== null) obs.step(S_GROUP, kind, vid, undefined)
      // IEEE link-local groups (STP, LACP, 802.1X, LLDP...): dropped unless the network floods that one.
      if (kind === KIND_MULTICAST && buf[off + 1] === 0x80) {
        const x = linkLocalGroup(buf, off)
        if (x >= 0) {
          if (obs !== null) obs.step(S_LINK_LOCAL, x, 0, undefined)
          if (!forwardsGroup(this.groupFwdMask, x, this.stp.ports.length)) { this.drop(ingress, R_LINK_LOCAL, buf, off, len, vid); return }
        }
      }
    }
    const tokens = spendFlood(ingress, kind, this.nowMs, commit)
    if (tokens >= 0 && this.overStorm(ingress, buf, off, len, vid, kind, tokens)) return
    if (obs !== null && ingress.horizon !== 0) obs.step(S_SPLIT_HORIZON, 0, vid, ingress)
    if (commit) this.flood(ingress, buf, off, len, c, hdrOff, kind); else this.observeFlood(ingress, vid, avoid)
  }

  /** Storm control for a limited kind: true if the frame is over it (dropped). */
  private overStorm (ingress: Port, buf: Buffer, off: number, len: number, vid: number, kind: number, tokens: number): boolean {
    if (this.obs !== null) this.obs.step(S_STORM, kind, tokens, ingress)
    if (tokens >= 1) return false
    this.drop(ingress, R_STORM, buf, off, len, vid)
    return true
  }

  /** The port's byte rate (a port with one): false if the frame is over it (dropped). */
  private admitRate (ingress: Port, buf: Buffer, off: number, len: number): boolean {
    const tokens = spendBytes(ingress, len, this.nowMs, this.commit)
    if (this.obs !== null) this.obs.step(S_RATE, tokens, 0, ingress)
    if (tokens >= len) return true
    this.drop(ingress, R_RATE, buf, off, len, 0)
    return false
  }

  /**
   * Learning answered other than LEARN_OK (port security, a static MAC,
   * loop detection). Returns undefined if the frame was dropped; else the
   * port loop protection would block in a dry run (the decision goes on as
   * if it were blocked), or null.
   */
  private refused (ingress: Port, buf: Buffer, off: number, len: number, vid: number, src: number, learned: number): Port | null | undefined {
    const commit = this.commit
    if (learned === LEARN_LIMIT || learned === LEARN_PINNED) {
      if (this.obs !== null) this.obs.step(S_LEARN, learned, 0, undefined)
      this.drop(ingress, learned === LEARN_LIMIT ? R_PORT_SECURITY : R_BAD_SOURCE, buf, off, len, vid)
      if (commit && learned === LEARN_LIMIT) portViolation(this, ingress)
      return undefined
    }
    let victim: Port | null = null
    if ((learned & LEARN_FLAP) !== 0) {
      victim = loopVictim(ingress, this.fdb.flapFrom as Port, this.fdb.flapHome as Port)
      if (commit) blockLoop(this, ingress, victim, this.fdb.flapFrom as Port, src, vid)
    }
    if (this.obs !== null) this.obs.step(S_LEARN, learned, 0, victim ?? undefined)
    if (victim === ingress) { this.drop(ingress, R_LOOP, buf, off, len, vid); return undefined }
    // The MAC lives on a port still sending it: a spoofer or a loop's copy. Cisco port-security counts it a violation.
    if ((learned & LEARN_HELD) !== 0) { this.drop(ingress, R_PORT_SECURITY, buf, off, len, vid); return undefined }
    return commit ? null : victim
  }

  /** A dry run's lookup: the fdb as learning and loop protection would have left it. */
  private dryEgress (ingress: Port, egress: Port | undefined, vid: number, dst: number, src: number, avoid: Port | null): Port | undefined {
    if (dst === src) return ingress
    if (egress === undefined) return undefined
    const v = this.fdb.dryVictim
    if (v !== undefined && v.vid === vid && v.mac === dst) return undefined
    // Loop protection forgets the blocked port's learned MACs; a static one stays, to a blocked port.
    if (egress === avoid && this.fdb.peek(vid, dst)?.isStatic !== true) return undefined
    return egress
  }

  /** Known unicast, committed: out of `egress`, counted, offered to captures and the fast path. */
  private forward (ingress: Port, egress: Port, buf: Buffer, off: number, len: number, c: number, hdrOff: number): void {
    const vid = c & CLASS_VID
    if (trace.enabled) trace('forward %s vlan=%d port=%s', formatMac(macAt(buf, off)), vid, egress.name)
    const tagged = (c & CLASS_TAGGED) !== 0
    this.output(egress, buf, off, len, tagged, (c & CLASS_TAG_VID) !== 0 ? vid : 0, vid, hdrOff)
    this.stats.forwarded++
    if (this.taps.length !== 0) this.offerTaps(ingress, egress, vid, buf, off, len)
    // One null check for ports without a fast path.
    if (ingress.fastPath !== null && egress.fastPath === ingress.fastPath && !tagged) ingress.fastPath.offer(ingress, egress, vid, macAt(buf, off), macAt(buf, off + ETH_SOURCE))
  }

  /** Flood, committed: to every other port that may take the frame. */
  private flood (ingress: Port, buf: Buffer, off: number, len: number, c: number, hdrOff: number, kind: number): void {
    const vid = c & CLASS_VID
    const s = this.stats
    if (kind === KIND_UNKNOWN_UNICAST) s.floodedUnknown++; else if (kind === KIND_BROADCAST) s.floodedBroadcast++; else s.floodedMulticast++
    const tagged = (c & CLASS_TAGGED) !== 0
    const tagVid = (c & CLASS_TAG_VID) !== 0 ? vid : 0
    const ports = this.ports
    // Split horizon: a flood from a horizon group (the mesh, a VNI's VTEPs) reaches no other port of it.
    const horizon = ingress.horizon
    for (let i = 0; i < ports.length; i++) {
      const p = ports[i] as Port
      if (p !== ingress && canEgress(p, vid) && (horizon === 0 || p.horizon !== horizon)) this.output(p, buf, off, len, tagged, tagVid, vid, hdrOff)
    }
    if (this.taps.length !== 0) this.offerTaps(ingress, undefined, vid, buf, off, len)
  }

  /** A dry run's flood: the observer hears each egress (`avoid`: the port loop protection would block). */
  private observeFlood (ingress: Port, vid: number, avoid: Port | null): void {
    const obs = this.obs
    if (obs === null) return
    const horizon = ingress.horizon
    for (const p of this.ports) if (p !== ingress && canEgress(p, vid) && p !== avoid && (horizon === 0 || p.horizon !== horizon)) obs.step(S_EGRESS, 0, vid, p)
  }

  /**
   * The one way a frame is dropped: count it under `reason` (reasons.ts) on
   * `port` and the network, record it in the drop log (its MACs if it has
   * them, -1 if not; `vid` 0 if not classified yet) and tell the observer.
   * In a dry run only the observer hears of it. Stores only.
   */
  drop (port: Port, reason: number, buf: Buffer, off: number, len: number, vid: number): void {
    if (this.obs !== null) this.obs.step(S_DROP, reason, vid, port)
    if (!this.commit) return
    port.addDrops(reason, 1)
    this.stats.drops[reason] = (this.stats.drops[reason] as number) + 1
    const full = len >= ETH_HLEN
    this.dropLog.add(this.nowMs, this.name, port.name, full ? macAt(buf, off + ETH_SOURCE) : -1, full ? macAt(buf, off) : -1, vid, reason)
  }

  /**
   * Queue the frame on `egress` (through its edge, if it has one), tagged or
   * untagged as the port's mode says for `vid`. Only an offload port is given
   * the virtio-net header; any other gets the frame as it is if the header
   * asks nothing of it, else its segments or the frame with its checksum
   * finished (offload.ts).
   */
  private output (egress: Port, buf: Buffer, off: number, len: number, tagged: boolean, tagVid: number, vid: number, hdrOff: number): void {
    const op = egressOp(egress, tagged, tagVid, vid)
    const edge = egress.edge
    if (hdrOff < 0 || egress.offload || !needsSoftware(buf, hdrOff)) {
      const h = egress.offload ? hdrOff : -1
      if (edge === null) egress.output(buf, off, len, op, vid, h); else edge.output(buf, off, len, op, vid, h)
    } else {
      const frames = this.soft.plainFrames(buf, hdrOff, off, len)
      for (let i = 0; i < frames.length; i++) {
        const f = frames[i] as Buffer
        if (edge === null) egress.output(f, 0, f.length, op, vid, -1); else edge.output(f, 0, f.length, op, vid, -1)
      }
    }
    if (!egress.dirty) {
      egress.dirty = true
      this.dirty[this.dirtyCount++] = egress
    }
  }

  /** Backwards: a capture that reaches its limit removes itself from taps while we walk it. */
  private offerTaps (ingress: Port, egress: Port | undefined, vid: number, buf: Buffer, off: number, len: number): void {
    const taps = this.taps
    for (let i = taps.length - 1; i >= 0; i--) (taps[i] as FrameTap).offer(ingress, egress, vid, buf, off, len)
  }

  /** End of an ingress message: send each dirty port's queue. */
  flushDirty (): void {
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
