/**
 * The frame trace (issue 15; Open vSwitch's `ofproto/trace`): each step of
 * the forwarding decision for a frame arriving on a port, as the switch
 * would take it now, and where the frame would go.
 *
 * It follows switch.ts handleFrame() step by step and asks the same
 * questions with the same helpers: canEgress (port.ts), classify, egressOp
 * and forwardsGroup (classify.ts), the fdb's lookup and its side-effect-free
 * wouldLearn / evictionVictim / peek, storm.ts floodTokens and rateTokens,
 * protection.ts loopVictim. It changes nothing: no learning, no tokens
 * spent, no counters, no frame sent, no entry's age touched. The trace test
 * (test/unit/trace.test.ts) runs random frames through both and fails if the
 * trace's egress set or drop reason differs from what handleFrame does.
 *
 * The frame is plain (no virtio-net header): a trace shows the decision,
 * not offload conversion. Slow path: it allocates freely.
 */

import { ETH_HLEN, ETH_SOURCE, isBroadcast, isGroup, macAt, formatMac } from '../../common/ethernet'
import { OP_ASIS, OP_PUSH, OP_RETAG, VLAN_COUNT } from '../../common/vlan'
import type { TraceJson, TraceStepJson } from '../../common/api-types'
import { BLOCK_OPERATOR, BLOCK_LINK, DIR_IN, DIR_OUT, MODE_TRUNK, canEgress, portState, type Port } from './port'
import { conditionVerdict, conditionJson } from './condition'
import { classify, egressOp, linkLocalGroup, forwardsGroup, CLASS_DROP, CLASS_RUNT, CLASS_DOUBLE_TAG, CLASS_TAGGED, CLASS_TAG_VID, CLASS_VID } from './classify'
import { LEARN_OK, LEARN_LIMIT, LEARN_PINNED, LEARN_FLAP, LEARN_HELD, type FdbEntry } from './fdb'
import { floodTokens, rateTokens, KIND_BROADCAST, KIND_MULTICAST, KIND_UNKNOWN_UNICAST } from './storm'
import { loopVictim } from './protection'
import { GUARD_PASS } from './guard'
import {
  DROP_REASONS, R_RUNT, R_OVERSIZE, R_BAD_SOURCE, R_HAIRPIN, R_VLAN, R_PORT_SECURITY, R_STORM, R_LOOP, R_DISABLED, R_RATE,
  R_EGRESS_BLOCKED, R_LINK_LOCAL, R_LINK_DOWN
} from './drops'
import type { Switch } from './switch'

const KIND_NAMES = ['broadcast', 'multicast', 'unknown unicast']

function portVlans (p: Port): string {
  if (p.mode !== MODE_TRUNK) return `access VLAN ${p.pvid}`
  const vids: number[] = []
  for (let v = 1; v < VLAN_COUNT && vids.length <= 16; v++) if (p.member[v] === 1) vids.push(v)
  return `trunk VLANs ${vids.slice(0, 16).join(',')}${vids.length > 16 ? ',...' : ''} native ${p.pvid === 0 ? 'none' : p.pvid}`
}

/** The decision for `frame` (the whole buffer) arriving on `ingress` of `sw` now. */
export function traceFrame (sw: Switch, ingress: Port, frame: Buffer): TraceJson {
  const len = frame.length
  const steps: TraceStepJson[] = []
  const full = len >= ETH_HLEN
  const out: TraceJson = {
    network: sw.name,
    ingress: ingress.name,
    frame: {
      dst: len >= 6 ? formatMac(macAt(frame, 0)) : '(none)',
      src: len >= 12 ? formatMac(macAt(frame, ETH_SOURCE)) : '(none)',
      vlan: full && frame.readUInt16BE(12) === 0x8100 && len >= 16 ? frame.readUInt16BE(14) & 0xfff : null,
      ethertype: full ? '0x' + frame.readUInt16BE(frame.readUInt16BE(12) === 0x8100 && len >= 18 ? 16 : 12).toString(16).padStart(4, '0') : '(none)',
      length: len
    },
    steps,
    action: 'drop',
    egress: []
  }
  const step = (s: TraceStepJson['step'], verdict: TraceStepJson['verdict'], detail: string): void => { steps.push({ step: s, verdict, detail }) }
  const drop = (s: TraceStepJson['step'], reason: number, detail: string): TraceJson => {
    step(s, 'drop', detail)
    out.action = 'drop'
    out.dropReason = (DROP_REASONS[reason] as { reason: string }).reason
    return out
  }
  const now = sw.nowMs

  // Ingress: a blocked port takes nothing in.
  if (ingress.blocked !== 0) {
    const b = ingress.blocked
    return drop('ingress', (b & BLOCK_OPERATOR) !== 0 ? R_DISABLED : (b & BLOCK_LINK) !== 0 ? R_LINK_DOWN : R_LOOP, `port ${ingress.name} is ${portState(ingress)}: it takes no frames in`)
  }
  step('ingress', 'pass', `port ${ingress.name} is forwarding (${portVlans(ingress)})`)
  // Link conditions (delay, loss, a one-way drill) act on the frame before the switch decides.
  const cond = conditionVerdict(ingress, DIR_IN)
  if (cond.action === 'down') return drop('condition', R_LINK_DOWN, `the link toward the switch is down (a one-way drill on ${ingress.name})`)
  if (cond.action === 'none') step('condition', 'pass', 'no link condition toward the switch on this port')
  else step('condition', 'note', `toward the switch: ${describeCondition(cond)}; the steps below are the decision when it passes`)
  const rate = rateTokens(ingress, now)
  if (rate >= 0 && rate < len) return drop('rate', R_RATE, `over the port's byte rate (${ingress.rateBps} B/s, ${Math.floor(rate)} B left now)`)
  if (rate >= 0) step('rate', 'pass', `within the port's byte rate (${Math.floor(rate)} B left now)`)

  // Validation.
  if (len < ETH_HLEN) return drop('validate', R_RUNT, `runt: ${len} bytes, less than an Ethernet header`)
  if (len > sw.maxFrameSize) return drop('validate', R_OVERSIZE, `${len} bytes, over the network's maxFrameSize ${sw.maxFrameSize}`)
  const src = macAt(frame, ETH_SOURCE)
  if (src === 0 || isGroup(frame, ETH_SOURCE)) return drop('validate', R_BAD_SOURCE, `source ${formatMac(src)} is ${src === 0 ? 'all zeros' : 'a group address'}: never learned or forwarded`)
  if (ingress.allowedMacs !== null && !ingress.allowedMacs.has(src)) return drop('validate', R_PORT_SECURITY, `source ${formatMac(src)} is not one of the MACs the port's token names`)
  step('validate', 'pass', `${len} bytes, source ${formatMac(src)}`)

  // VLAN classification.
  const c = classify(ingress, frame, 0, len)
  if ((c & CLASS_DROP) !== 0) {
    if (c === CLASS_RUNT) return drop('vlan', R_RUNT, 'too short for its 802.1Q tag')
    if ((c & CLASS_DOUBLE_TAG) !== 0) return drop('vlan', R_VLAN, 'a second VLAN tag behind the first (double tagging is dropped wherever it enters)')
    const v = c & CLASS_VID
    return drop('vlan', R_VLAN, v === 0 ? `untagged, and port ${ingress.name} has no native VLAN` : v === 0xfff ? 'VLAN 4095 is reserved' : `VLAN ${v} is not on port ${ingress.name} (${portVlans(ingress)})`)
  }
  const vid = c & CLASS_VID
  const tagged = (c & CLASS_TAGGED) !== 0
  const tagVid = (c & CLASS_TAG_VID) !== 0 ? vid : 0
  step('vlan', 'pass', `VLAN ${vid} (${tagged ? (tagVid !== 0 ? 'from its tag' : 'priority-tagged: the port\'s pvid') : 'untagged: the port\'s pvid'})`)

  // The guards (guard.ts): the same question handleFrame asks, which changes nothing.
  if (sw.guard !== null) {
    const g = sw.guard.admit(ingress, frame, 0, len, vid)
    const why = sw.guard.explain(ingress, frame, vid, g)
    if (g !== GUARD_PASS) return drop('guard', g, why)
    step('guard', 'pass', why)
  }

  // Learning: what learn() would answer, without learning.
  const learned = sw.fdb.wouldLearn(vid, src, ingress)
  const entry: FdbEntry | undefined = sw.fdb.peek(vid, src)
  let willBlock: Port | null = null
  let evicted: FdbEntry | undefined
  if (learned === LEARN_LIMIT) return drop('learn', R_PORT_SECURITY, `port ${ingress.name} is at its limit of ${ingress.maxMacs} MACs${ingress.shutdownOnViolation ? ' (and the port would be shut: violation shutdown)' : ''}`)
  if (learned === LEARN_PINNED) return drop('learn', R_BAD_SOURCE, `${formatMac(src)} is static on port ${entry?.port.name ?? '?'}`)
  if ((learned & LEARN_FLAP) !== 0 && entry !== undefined) {
    const victim = loopVictim(ingress, entry.claimant, entry.home)
    if (victim === ingress) return drop('learn', R_LOOP, `${formatMac(src)} would flap between ${entry.claimant.name} and ${ingress.name} (a loop): loop protection would block ${ingress.name}`)
    willBlock = victim
    step('learn', 'note', `${formatMac(src)} would flap (a loop): loop protection would block ${victim.name} and forget its MACs`)
  }
  if ((learned & LEARN_HELD) !== 0) return drop('learn', R_PORT_SECURITY, `${formatMac(src)} lives on port ${entry?.port.name ?? '?'}, which sent it ${entry === undefined ? '?' : now - entry.seenMs} ms ago (moveHold ${sw.fdb.moveHold} ms): not moved, frame refused`)
  if (entry === undefined) {
    evicted = sw.fdb.evictionVictim(ingress)
    step('learn', 'pass', `would learn ${formatMac(src)} on ${ingress.name} in VLAN ${vid}` + (evicted !== undefined ? ` (fdb full: evicts ${formatMac(evicted.mac)} of ${evicted.port.name})` : ''))
  } else if (entry.port === ingress) {
    step('learn', 'pass', `${formatMac(src)} is already on ${ingress.name}: refreshed`)
  } else {
    step('learn', 'pass', `${formatMac(src)} would move from ${entry.port.name} to ${ingress.name}`)
  }

  // Lookup.
  let kind = KIND_UNKNOWN_UNICAST
  if (!isGroup(frame, 0)) {
    const dst = macAt(frame, 0)
    let egress = dst === src ? ingress : sw.fdb.lookup(vid, dst)
    const dstEntry = sw.fdb.peek(vid, dst)
    if (egress !== undefined && dst !== src && willBlock !== null && egress === willBlock && dstEntry !== undefined && !dstEntry.isStatic) egress = undefined
    if (egress !== undefined && evicted !== undefined && evicted.vid === vid && evicted.mac === dst) egress = undefined
    if (egress !== undefined) {
      if (egress === ingress) return drop('lookup', R_HAIRPIN, `${formatMac(dst)} is on ${ingress.name}, the ingress port (hairpin)`)
      if (!canEgress(egress, vid) || egress === willBlock) {
        return egress.member[vid] === 0
          ? drop('lookup', R_VLAN, `${formatMac(dst)} is on ${egress.name}, which is not in VLAN ${vid}`)
          : drop('lookup', R_EGRESS_BLOCKED, `${formatMac(dst)} is on ${egress.name}, which is ${egress === willBlock ? 'about to be blocked' : portState(egress)}`)
      }
      step('lookup', 'forward', `${formatMac(dst)} is on ${egress.name}${dstEntry?.isStatic === true ? ' (static)' : ''}`)
      out.egress.push(egressJson(egress, tagged, tagVid, vid))
      out.action = 'forward'
      step('egress', 'forward', `to ${egress.name}`)
      egressCondition(sw, egress.name, step)
      return out
    }
    step('lookup', 'flood', `${formatMac(dst)} is unknown in VLAN ${vid}: flood`)
  } else {
    kind = isBroadcast(frame, 0) ? KIND_BROADCAST : KIND_MULTICAST
    step('lookup', 'flood', `${KIND_NAMES[kind] as string} destination: flood`)
    const x = kind === KIND_MULTICAST ? linkLocalGroup(frame, 0) : -1
    if (x >= 0) {
      if (!forwardsGroup(sw.groupFwdMask, x, sw.stp.ports.length)) {
        return drop('link_local', R_LINK_LOCAL, `01:80:c2:00:00:${x.toString(16).padStart(2, '0')} is an IEEE link-local group this network does not forward` +
          (x === 0 && ((sw.groupFwdMask & 1) === 1) ? ' (STP: not while the network runs its own spanning tree on trunks)' : ' (networks[].forwardGroups)'))
      }
      step('link_local', 'pass', `01:80:c2:00:00:${x.toString(16).padStart(2, '0')}: the network forwards this link-local group (forwardGroups)`)
    }
  }
  const tokens = floodTokens(ingress, kind, now)
  if (tokens >= 0 && tokens < 1) return drop('storm', R_STORM, `storm control: port ${ingress.name} is over its ${KIND_NAMES[kind] as string} limit`)
  if (tokens >= 0) step('storm', 'pass', `storm control: ${Math.floor(tokens)} ${KIND_NAMES[kind] as string} frames left in this second`)
  const skipped: string[] = []
  for (const p of sw.ports) {
    if (p === ingress) continue
    if (canEgress(p, vid) && p !== willBlock) out.egress.push(egressJson(p, tagged, tagVid, vid))
    else if (p.member[vid] === 1) skipped.push(`${p.name} (${p === willBlock ? 'about to be blocked' : portState(p)})`)
  }
  out.action = 'flood'
  step('egress', 'flood', `to ${out.egress.length} port${out.egress.length === 1 ? '' : 's'} in VLAN ${vid}` + (skipped.length > 0 ? `; not to ${skipped.join(', ')}` : ''))
  for (const e of out.egress) egressCondition(sw, e.port, step)
  return out
}

/** A held or lossy link toward an egress port: the frame is sent to it, and its condition acts on the way. */
function egressCondition (sw: Switch, name: string, step: (s: TraceStepJson['step'], v: TraceStepJson['verdict'], d: string) => void): void {
  const p = sw.ports.find((x) => x.name === name)
  if (p === undefined) return
  const c = conditionVerdict(p, DIR_OUT)
  if (c.action === 'down') step('condition', 'drop', `toward ${name}: the link is down (a one-way drill): dropped there (link_down)`)
  else if (c.action !== 'none') step('condition', 'note', `toward ${name}: ${describeCondition(c)}`)
}

function describeCondition (c: ReturnType<typeof conditionVerdict>): string {
  if (c.params === undefined) return c.action
  const j = conditionJson(c.params)
  const parts = Object.entries(j).filter(([k]) => k !== 'queueFrames' && k !== 'queueBytes' && k !== 'seed').map(([k, v]) => `${k} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
  const held = `${c.queuedFrames ?? 0} frames held`
  return `${parts.join(', ')} (${held}${c.action === 'full' ? ', queue FULL: a frame it must hold is dropped (condition_queue)' : ''})`
}

function egressJson (p: Port, tagged: boolean, tagVid: number, vid: number): TraceJson['egress'][number] {
  const op = egressOp(p, tagged, tagVid, vid)
  return { port: p.name, vlan: vid, tagging: op === OP_PUSH || op === OP_RETAG || (op === OP_ASIS && tagged) ? 'tagged' : 'untagged' }
}
