/**
 * The dry run (commit false) changes nothing, whoever runs it: the frame
 * trace (POST /api/v1/trace) and the fast path's revalidation. Stronger than
 * trace.test.ts's snapshot: here the whole object graph of the network is
 * compared before and after (every port's fields and tokens, the fdb's
 * entries with their move and loop books, the guards' lease bindings, the
 * link conditions' queues and the held-memory budget, the drop log, the
 * storm and rate buckets, the fast path's hooks), in random worlds with
 * guards, captures, conditions, drills, static entries and full tables.
 */

import assert from 'node:assert/strict'
import { Switch } from '../../src/switch/core/switch'
import { traceFrame } from '../../src/switch/control/trace'
import { revalidate } from '../../src/switch/core/fastpath'
import { BLOCK_LOOP, BLOCK_OPERATOR, DIR_IN, DIR_OUT, DEFAULT_POLICY, MODE_ACCESS, MODE_TRUNK, type PortPolicy, type FastPathHooks } from '../../src/switch/core/port'
import type { FrameTap } from '../../src/switch/core/options'
import { setLinkDown, setCondition } from '../../src/switch/core/link'
import { readCondition } from '../../src/switch/core/condition'
import { Guard } from '../../src/switch/core/guard'
import { LeaseTable } from '../../src/switch/core/leases'
import { setLogSink } from '../../src/common/log'
import { FakePort } from '../helpers/fake-port'
import { eth, tagged, arp, udp } from '../helpers/frames'
import { Rng } from '../helpers/rawws'

/** Scratch fields a dry run may write (what the decision reads right after learn() answers), and what FakePort records. */
const SCRATCH = new Set(['dryVictim', 'flapFrom', 'flapHome', 'sent'])

/** Every reachable own field of `root`, one `path=value` line each (objects seen before by their first path's number). */
function graph (root: unknown): string {
  const seen = new Map<object, number>()
  const out: string[] = []
  const walk = (v: unknown, path: string): void => {
    if (typeof v === 'function') return
    if (v === null || typeof v !== 'object') { out.push(`${path}=${String(v)}`); return }
    const id = seen.get(v)
    if (id !== undefined) { out.push(`${path}=#${id}`); return }
    seen.set(v, seen.size)
    if (ArrayBuffer.isView(v)) { out.push(`${path}=${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')}`); return }
    if (v instanceof Map) { let i = 0; for (const [k, x] of v) { walk(k, `${path}.k${i}`); walk(x, `${path}.v${i++}`) } return }
    if (v instanceof Set) { let i = 0; for (const x of v) walk(x, `${path}.s${i++}`); return }
    for (const k of Object.getOwnPropertyNames(v)) if (!SCRATCH.has(k)) walk((v as Record<string, unknown>)[k], `${path}.${k}`)
  }
  walk(root, '$')
  return out.join('\n')
}

/** The first lines where two graphs differ. */
function firstDifference (a: string, b: string): string {
  const x = a.split('\n'); const y = b.split('\n')
  for (let i = 0; i < Math.max(x.length, y.length); i++) if (x[i] !== y[i]) return `- ${x[i] ?? ''}\n+ ${y[i] ?? ''}`
  return ''
}

function access (vid: number): PortPolicy { return { ...DEFAULT_POLICY, mode: MODE_ACCESS, pvid: vid, vlans: [vid] } }
function trunk (vlans: number[], native: number): PortPolicy { return { ...DEFAULT_POLICY, mode: MODE_TRUNK, pvid: native, vlans } }

const MACS = [0x020000000001, 0x020000000002, 0x020000000003, 0x020000000004, 0x020000000005, 0x020000000006]
const GROUPS = [0xffffffffffff, 0x0180c2000000, 0x0180c200000e, 0x01005e000001]
const hex = (m: number): string => m.toString(16).padStart(12, '0')

/** Counts what a dry run must never ask of the fast path. */
class CountingHooks implements FastPathHooks {
  calls = 0
  offer (): void { this.calls++ }
  flush (): void { this.calls++ }
  sync (): void {}
  stats (): { flows: number, forwarded: number, misses: number, missDropped: number } { return { flows: 0, forwarded: 0, misses: 0, missDropped: 0 } }
}

/** A random network: ports of both modes with storm, rate, MAC limits and pins, drills and conditions, maybe guards and a capture. */
function world (rng: Rng, clock: { now: number }): { s: Switch, ports: FakePort[], guarded: boolean, hooks: CountingHooks } {
  const s = new Switch({ moveHold: rng.pick([0, 1000]), loopMoves: rng.int(2, 4), loopWindow: 1000, maxEntries: rng.pick([4, 100]) }, clock.now)
  s.preciseClock = () => clock.now
  const hooks = new CountingHooks()
  s.fastPath = hooks
  const ports: FakePort[] = []
  for (let i = 0; i < rng.int(2, 6); i++) {
    const p = new FakePort(i + 1, `p${i + 1}`)
    p.applyPolicy(rng.bool(0.6) ? access(rng.pick([1, 10])) : trunk(rng.bool() ? [1, 10, 20] : [10, 20], rng.pick([0, 1, 10])))
    if (rng.bool(0.2)) p.maxMacs = rng.int(1, 2)
    if (rng.bool(0.4)) { p.bcRate = 1; p.bcTokens = 1 }
    if (rng.bool(0.3)) { p.uuRate = 1; p.uuTokens = 1 }
    if (rng.bool(0.2)) { p.rateBps = 200; p.rateTokens = 200 }
    if (rng.bool(0.1)) p.allowedMacs = new Set([rng.pick(MACS)])
    if (rng.bool(0.3)) p.fastPath = hooks
    s.addPort(p, rng.bool(0.1))
    if (rng.bool(0.1)) s.setBlocked(p, rng.pick([BLOCK_OPERATOR, BLOCK_LOOP]), true)
    const drill = rng.int(0, 9)
    if (drill === 0) setLinkDown(s, p, DIR_IN, true)
    else if (drill === 1) setLinkDown(s, p, DIR_OUT, true)
    else if (drill === 2) setCondition(s, p, DIR_IN, readCondition({ delay: 5 }, 'condition'))
    else if (drill === 3) setCondition(s, p, DIR_OUT, readCondition({ delay: 5, loss: 30, seed: 3 }, 'condition'))
    ports.push(p)
  }
  if (rng.bool(0.3)) s.addStatic({ vid: rng.pick([1, 10]), mac: rng.pick(MACS), port: rng.pick(ports).name })
  if (rng.bool(0.3)) s.taps.push({ offer: () => {} } satisfies FrameTap)
  const guarded = rng.bool(0.5)
  if (guarded) {
    const g = new Guard({ dhcpSnooping: true, arpInspection: true, ipSourceGuard: rng.bool(), trusted: ['p1'], leases: true, subnet: 0x0a000200, mask: 0xffffff00, gateway: 0x0a000202, dns: 0x0a000203 })
    const leases = new LeaseTable({ subnet: 0x0a000200, mask: 0xffffff00, start: 0x0a00020f, size: 16, reserved: [], statics: new Map() })
    const l = leases.offer(MACS[0] as number, 0x0a00020f, rng.pick(ports), 1e13)
    leases.bind(l, l.port, 1e13)
    g.bindings = leases
    s.guard = g
  }
  return { s, ports, guarded, hooks }
}

function randomFrame (rng: Rng, guarded: boolean): Buffer {
  const dst = rng.bool(0.6) ? rng.pick(MACS) : rng.pick(GROUPS)
  const src = rng.bool(0.95) ? rng.pick(MACS) : 0
  const vlan = [0, 1, 10, 20][rng.int(0, 3)] as number
  let f = vlan === 0 ? eth(hex(dst), hex(src)) : tagged(hex(dst), hex(src), vlan)
  if (guarded && rng.bool(0.4)) {
    f = rng.bool(0.6) ? arp(src, src, rng.pick([0x0a000202, 0x0a00020f, 0x0a000210]), 0x0a000202, 1, dst) : udp(dst, src, 0x0a00020f, 0xffffffff, rng.pick([67, 68]), rng.pick([67, 68]))
  }
  return rng.bool(0.03) ? f.subarray(0, rng.int(0, 17)) : f
}

describe('the dry run changes nothing (trace, fast-path revalidation)', () => {
  let restore: (line: string) => void
  beforeEach(() => { restore = setLogSink(() => {}) })
  afterEach(() => { setLogSink(restore) })

  it('leaves the whole network as it was, for random frames in random worlds, between committed frames', function () {
    this.timeout(60_000)
    const seed = Number(process.env.TRACE_SEED ?? (Date.now() >>> 0))
    const rng = new Rng(seed)
    let checked = 0
    for (let w = 0; w < 20; w++) {
      const clock = { now: 1000 }
      const { s, ports, guarded, hooks } = world(rng, clock)
      for (let step = 0; step < 60; step++) {
        clock.now += rng.pick([0, 0, 10, 300, 1200])
        s.tick(clock.now)
        const ingress = rng.pick(ports)
        const f = randomFrame(rng, guarded)
        const before = graph(s)
        const calls = hooks.calls
        traceFrame(s, ingress, f)
        for (const egress of ports) revalidate(s, ingress, egress, rng.pick([1, 10]), f.length >= 12 ? f.readUIntBE(0, 6) : 0, f.length >= 12 ? f.readUIntBE(6, 6) : 0)
        assert.equal(hooks.calls, calls, `a dry run offered or flushed a flow (seed ${seed} world ${w} step ${step})`)
        const after = graph(s)
        if (after !== before) assert.fail(`a dry run changed the network (seed ${seed} world ${w} step ${step}, frame ${f.toString('hex')} on ${ingress.name}):\n${firstDifference(before, after)}`)
        // Then the frame for real, so the next dry run meets learned MACs, spent buckets, held frames and blocks.
        s.receiveFrame(ingress, f)
        s.releaseHeld(ingress, DIR_IN, clock.now)
        for (const p of ports) { s.releaseHeld(p, DIR_OUT, clock.now); p.take() }
        checked++
      }
    }
    assert.equal(checked, 20 * 60)
  })
})
