/**
 * The frame trace (issue 15; Open vSwitch's `ofproto/trace`): each step of
 * the forwarding decision for a frame arriving on a port, as the switch
 * would take it now, and where the frame would go.
 *
 * It is no copy of the decision: it runs the decision itself
 * (Switch.handleFrame) dry, with commit false (no learning, no tokens spent,
 * no counters, no drop log, no frame sent, no loop block), and renders in
 * words the step codes the decision reports to its observer
 * (core/observe.ts). So the trace cannot disagree with handleFrame; the trace
 * test (test/unit/trace.test.ts) still runs random frames through both.
 * Link conditions stand at the port's edge, outside the decision
 * (core/edge.ts): the renderer asks the port for them (conditionVerdict) and
 * shows them where they act, before the decision and after each egress.
 *
 * The frame is plain (no virtio-net header): a trace shows the decision,
 * not offload conversion. Slow path: it allocates freely.
 */

import { ETH_HLEN, ETH_SOURCE, macAt, formatMac } from '../../common/ethernet'
import { OP_ASIS, OP_PUSH, OP_RETAG, VLAN_COUNT } from '../../common/vlan'
import type { TraceJson, TraceStepJson } from '../../common/api-types'
import { DIR_IN, DIR_OUT, MODE_TRUNK, portState, type Port } from '../core/port'
import { conditionVerdict, conditionJson } from '../core/condition'
import { egressOp, CLASS_RUNT, CLASS_DOUBLE_TAG, CLASS_TAGGED, CLASS_TAG_VID, CLASS_VID } from '../core/classify'
import { LEARN_LIMIT, LEARN_PINNED, LEARN_FLAP, LEARN_HELD } from '../core/fdb'
import { DROP_REASONS, R_LINK_DOWN } from '../core/reasons'
import {
  S_INGRESS, S_RATE, S_VALIDATE, S_VLAN, S_GUARD, S_LEARN, S_LOOKUP, S_GROUP, S_LINK_LOCAL, S_STORM, S_EGRESS, S_DROP, S_SPLIT_HORIZON, type DecisionObserver
} from '../core/observe'
import type { Switch } from '../core/switch'

const KIND_NAMES = ['broadcast', 'multicast', 'unknown unicast']

type StepName = TraceStepJson['step']
type Verdict = TraceStepJson['verdict']

/** One step the decision reported. */
interface Event { code: number, a: number, b: number, port: Port | undefined }

/** Records what the dry run reports. */
class Recorder implements DecisionObserver {
  readonly events: Event[] = []
  step (code: number, a: number, b: number, port: Port | undefined): void { this.events.push({ code, a, b, port }) }
}

function portVlans (p: Port): string {
  if (p.mode !== MODE_TRUNK) return `access VLAN ${p.pvid}`
  const vids: number[] = []
  for (let v = 1; v < VLAN_COUNT && vids.length <= 16; v++) if (p.member[v] === 1) vids.push(v)
  return `trunk VLANs ${vids.slice(0, 16).join(',')}${vids.length > 16 ? ',...' : ''} native ${p.pvid === 0 ? 'none' : p.pvid}`
}

/** The decision for `frame` (the whole buffer) arriving on `ingress` of `sw` now. */
export function traceFrame (sw: Switch, ingress: Port, frame: Buffer): TraceJson {
  const rec = new Recorder()
  sw.handleFrame(ingress, frame, 0, frame.length, -1, rec, false)
  const r = new Renderer(sw, ingress, frame)
  r.render(rec.events)
  return r.out
}

/** Turns the decision's step codes into the trace's steps, in words. */
class Renderer {
  readonly out: TraceJson
  private readonly len: number
  private readonly src: number
  private vid = 0
  private c = 0
  /** The port loop protection would block (the decision goes on as if it were). */
  private willBlock: Port | undefined
  private forwardTo: Port | undefined

  constructor (private readonly sw: Switch, private readonly ingress: Port, private readonly frame: Buffer) {
    const len = frame.length
    const full = len >= ETH_HLEN
    this.len = len
    this.src = len >= 12 ? macAt(frame, ETH_SOURCE) : 0
    this.out = {
      network: sw.name,
      ingress: ingress.name,
      frame: {
        dst: len >= 6 ? formatMac(macAt(frame, 0)) : '(none)',
        src: len >= 12 ? formatMac(macAt(frame, ETH_SOURCE)) : '(none)',
        vlan: full && frame.readUInt16BE(12) === 0x8100 && len >= 16 ? frame.readUInt16BE(14) & 0xfff : null,
        ethertype: full ? '0x' + frame.readUInt16BE(frame.readUInt16BE(12) === 0x8100 && len >= 18 ? 16 : 12).toString(16).padStart(4, '0') : '(none)',
        length: len
      },
      steps: [],
      action: 'drop',
      egress: []
    }
  }

  render (events: readonly Event[]): void {
    for (let i = 0; i < events.length; i++) {
      const e = events[i] as Event
      const next = events[i + 1]
      const dropped = next !== undefined && next.code === S_DROP ? next.a : -1
      if (e.code === S_DROP) return
      if (e.code === S_INGRESS) { if (!this.ingressStep(dropped)) return } else if (e.code === S_EGRESS) this.egress(e.port as Port, e.b)
      else if (!this.decisionStep(e, dropped)) return
      // A flood's egress steps all came: the flood's summary.
      if (e.code === S_EGRESS && this.forwardTo === undefined && (next === undefined || next.code !== S_EGRESS)) this.floodSummary()
    }
    if (this.out.action === 'flood' && this.out.egress.length === 0) this.floodSummary()
  }

  private step (s: StepName, verdict: Verdict, detail: string): void { this.out.steps.push({ step: s, verdict, detail }) }

  private drop (s: StepName, reason: number, detail: string): false {
    this.step(s, 'drop', detail)
    this.out.action = 'drop'
    this.out.dropReason = (DROP_REASONS[reason] as { reason: string }).reason
    return false
  }

  /** The ingress port, then its edge's condition toward the switch (it acts before the decision). */
  private ingressStep (dropped: number): boolean {
    const p = this.ingress
    const cond = conditionVerdict(p, DIR_IN)
    if (dropped >= 0 && cond.action !== 'down') return this.drop('ingress', dropped, `port ${p.name} is ${portState(p)}: it takes no frames in`)
    if (p.blocked === 0) this.step('ingress', 'pass', `port ${p.name} is forwarding (${portVlans(p)})`)
    if (cond.action === 'down') return this.drop('condition', R_LINK_DOWN, `the link toward the switch is down (a one-way drill on ${p.name})`)
    if (cond.action === 'none') this.step('condition', 'pass', 'no link condition toward the switch on this port')
    else this.step('condition', 'note', `toward the switch: ${describeCondition(cond)}; the steps below are the decision when it passes`)
    return true
  }

  /** One step of the decision before its egress; false once the frame is dropped. */
  private decisionStep (e: Event, dropped: number): boolean {
    const p = this.ingress
    const len = this.len
    const mac = formatMac(this.src)
    switch (e.code) {
      case S_RATE:
        if (dropped >= 0) return this.drop('rate', dropped, `over the port's byte rate (${p.rateBps} B/s, ${Math.floor(e.a)} B left now)`)
        this.step('rate', 'pass', `within the port's byte rate (${Math.floor(e.a)} B left now)`)
        return true
      case S_VALIDATE:
        if (dropped >= 0) return this.drop('validate', dropped, this.invalid(dropped))
        this.step('validate', 'pass', `${len} bytes, source ${mac}`)
        return true
      case S_VLAN: return this.vlan(e.a, dropped)
      case S_GUARD: {
        const why = (this.sw.guard as NonNullable<Switch['guard']>).explain(p, this.frame, e.b, e.a)
        if (dropped >= 0) return this.drop('guard', dropped, why)
        this.step('guard', 'pass', why)
        return true
      }
      case S_LEARN: return this.learn(e.a, e.port, dropped)
      case S_LOOKUP: return this.lookup(e.port, dropped)
      case S_GROUP:
        this.step('lookup', 'flood', `${KIND_NAMES[e.a] as string} destination: flood`)
        this.out.action = 'flood'
        return true
      case S_LINK_LOCAL: return this.linkLocal(e.a, dropped)
      case S_STORM:
        if (dropped >= 0) return this.drop('storm', dropped, `storm control: port ${p.name} is over its ${KIND_NAMES[e.a] as string} limit`)
        this.step('storm', 'pass', `storm control: ${Math.floor(e.b)} ${KIND_NAMES[e.a] as string} frames left in this second`)
        return true
      case S_SPLIT_HORIZON:
        if (dropped >= 0) return this.drop('split_horizon', dropped, `split horizon: from ${horizonWords(p)} ${p.name}, never out of another (${e.port?.name ?? '?'})`)
        this.step('split_horizon', 'note', `split horizon: from ${horizonWords(p)} ${p.name}, the flood reaches no other port of its group`)
        return true
      default: return true
    }
  }

  /** Why validation refused the frame (`reason`). */
  private invalid (reason: number): string {
    const why = (DROP_REASONS[reason] as { reason: string }).reason
    const len = this.len
    const mac = formatMac(this.src)
    if (why === 'runt') return `runt: ${len} bytes, less than an Ethernet header`
    if (why === 'oversize') return `${len} bytes, over the network's maxFrameSize ${this.sw.maxFrameSize}`
    if (why === 'bad_source') return `source ${mac} is ${this.src === 0 ? 'all zeros' : 'a group address'}: never learned or forwarded`
    return `source ${mac} is not one of the MACs the port's token names`
  }

  private vlan (c: number, dropped: number): boolean {
    const p = this.ingress
    if (dropped >= 0) {
      if (c === CLASS_RUNT) return this.drop('vlan', dropped, 'too short for its 802.1Q tag')
      if ((c & CLASS_DOUBLE_TAG) !== 0) return this.drop('vlan', dropped, 'a second VLAN tag behind the first (double tagging is dropped wherever it enters)')
      const v = c & CLASS_VID
      return this.drop('vlan', dropped, v === 0 ? `untagged, and port ${p.name} has no native VLAN` : v === 0xfff ? 'VLAN 4095 is reserved' : `VLAN ${v} is not on port ${p.name} (${portVlans(p)})`)
    }
    const vid = c & CLASS_VID
    const tagged = (c & CLASS_TAGGED) !== 0
    const tagVid = (c & CLASS_TAG_VID) !== 0 ? vid : 0
    this.c = c
    this.vid = vid
    this.step('vlan', 'pass', `VLAN ${vid} (${tagged ? (tagVid !== 0 ? 'from its tag' : 'priority-tagged: the port\'s pvid') : 'untagged: the port\'s pvid'})`)
    return true
  }

  private learn (learned: number, victim: Port | undefined, dropped: number): boolean {
    const p = this.ingress
    const sw = this.sw
    const mac = formatMac(this.src)
    const entry = sw.fdb.peek(this.vid, this.src)
    if (learned === LEARN_LIMIT) return this.drop('learn', dropped, `port ${p.name} is at its limit of ${p.maxMacs} MACs${p.shutdownOnViolation ? ' (and the port would be shut: violation shutdown)' : ''}`)
    if (learned === LEARN_PINNED) return this.drop('learn', dropped, `${mac} is static on port ${entry?.port.name ?? '?'}`)
    if ((learned & LEARN_FLAP) !== 0 && victim !== undefined) {
      if (victim === p) return this.drop('learn', dropped, `${mac} would flap between ${entry?.claimant.name ?? '?'} and ${p.name} (a loop): loop protection would block ${p.name}`)
      this.willBlock = victim
      this.step('learn', 'note', `${mac} would flap (a loop): loop protection would block ${victim.name} and forget its MACs`)
    }
    if ((learned & LEARN_HELD) !== 0) return this.drop('learn', dropped, `${mac} lives on port ${entry?.port.name ?? '?'}, which sent it ${entry === undefined ? '?' : sw.nowMs - entry.seenMs} ms ago (moveHold ${sw.fdb.moveHold} ms): not moved, frame refused`)
    if (entry === undefined) {
      const evicted = sw.fdb.dryVictim
      this.step('learn', 'pass', `would learn ${mac} on ${p.name} in VLAN ${this.vid}` + (evicted !== undefined ? ` (fdb full: evicts ${formatMac(evicted.mac)} of ${evicted.port.name})` : ''))
    } else if (entry.port === p) {
      this.step('learn', 'pass', `${mac} is already on ${p.name}: refreshed`)
    } else {
      this.step('learn', 'pass', `${mac} would move from ${entry.port.name} to ${p.name}`)
    }
    return true
  }

  private lookup (egress: Port | undefined, dropped: number): boolean {
    const dst = formatMac(macAt(this.frame, 0))
    const vid = this.vid
    if (egress === undefined) {
      this.step('lookup', 'flood', `${dst} is unknown in VLAN ${vid}: flood`)
      this.out.action = 'flood'
      return true
    }
    if (dropped >= 0) {
      if (egress === this.ingress) return this.drop('lookup', dropped, `${dst} is on ${egress.name}, the ingress port (hairpin)`)
      if (egress.member[vid] === 0) return this.drop('lookup', dropped, `${dst} is on ${egress.name}, which is not in VLAN ${vid}`)
      return this.drop('lookup', dropped, `${dst} is on ${egress.name}, which is ${egress === this.willBlock ? 'about to be blocked' : portState(egress)}`)
    }
    const entry = this.sw.fdb.peek(vid, macAt(this.frame, 0))
    this.step('lookup', 'forward', `${dst} is on ${egress.name}${entry?.isStatic === true ? ' (static)' : ''}`)
    this.forwardTo = egress
    this.out.action = 'forward'
    return true
  }

  private linkLocal (x: number, dropped: number): boolean {
    const group = `01:80:c2:00:00:${x.toString(16).padStart(2, '0')}`
    const mask = this.sw.groupFwdMask
    if (dropped >= 0) {
      return this.drop('link_local', dropped, `${group} is an IEEE link-local group this network does not forward` +
        (x === 0 && ((mask & 1) === 1) ? ' (STP: not while the network runs its own spanning tree on trunks)' : ' (networks[].forwardGroups)'))
    }
    this.step('link_local', 'pass', `${group}: the network forwards this link-local group (forwardGroups)`)
    return true
  }

  /** One egress port of the decision. */
  private egress (p: Port, vid: number): void {
    this.out.egress.push(egressJson(p, this.c, vid))
    if (this.forwardTo === undefined) { this.out.action = 'flood'; return }
    this.out.action = 'forward'
    this.step('egress', 'forward', `to ${p.name}`)
    egressCondition(p, (s, v, d) => { this.step(s, v, d) })
  }

  /** The flood's egress step: where it goes, where it does not and why, and the conditions on the way. */
  private floodSummary (): void {
    const out = this.out
    const vid = this.vid
    const sent = new Set(out.egress.map((e) => e.port))
    const skipped: string[] = []
    for (const p of this.sw.ports) {
      if (p === this.ingress || sent.has(p.name)) continue
      if (p.member[vid] === 1) skipped.push(`${p.name} (${p === this.willBlock ? 'about to be blocked' : portState(p)})`)
    }
    out.action = 'flood'
    this.step('egress', 'flood', `to ${out.egress.length} port${out.egress.length === 1 ? '' : 's'} in VLAN ${vid}` + (skipped.length > 0 ? `; not to ${skipped.join(', ')}` : ''))
    for (const e of out.egress) {
      const p = this.sw.ports.find((x) => x.name === e.port)
      if (p !== undefined) egressCondition(p, (s, v, d) => { this.step(s, v, d) })
    }
  }
}

/** A held or lossy link toward an egress port (its edge): the frame is sent to it, and its condition acts on the way. */
function egressCondition (p: Port, step: (s: StepName, v: Verdict, d: string) => void): void {
  const c = conditionVerdict(p, DIR_OUT)
  if (c.action === 'down') step('condition', 'drop', `toward ${p.name}: the link is down (a one-way drill): dropped there (link_down)`)
  else if (c.action !== 'none') step('condition', 'note', `toward ${p.name}: ${describeCondition(c)}`)
}

function describeCondition (c: ReturnType<typeof conditionVerdict>): string {
  if (c.params === undefined) return c.action
  const j = conditionJson(c.params)
  const parts = Object.entries(j).filter(([k]) => k !== 'queueFrames' && k !== 'queueBytes' && k !== 'seed').map(([k, v]) => `${k} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
  const held = `${c.queuedFrames ?? 0} frames held`
  return `${parts.join(', ')} (${held}${c.action === 'full' ? ', queue FULL: a frame it must hold is dropped (condition_queue)' : ''})`
}

function egressJson (p: Port, c: number, vid: number): TraceJson['egress'][number] {
  const tagged = (c & CLASS_TAGGED) !== 0
  const op = egressOp(p, tagged, (c & CLASS_TAG_VID) !== 0 ? vid : 0, vid)
  return { port: p.name, vlan: vid, tagging: op === OP_PUSH || op === OP_RETAG || (op === OP_ASIS && tagged) ? 'tagged' : 'untagged' }
}

/** What a port's horizon group is, in the trace's words. */
function horizonWords (p: { mesh: boolean }): string {
  return p.mesh ? 'mesh port' : 'VTEP port'
}
