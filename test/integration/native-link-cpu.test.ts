import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { NativeRig } from '../helpers/native-rig'
import { Agent } from '../../src/agent/agent'
import { CPU_FOLLOW_BUSY_FRAMES, linkBindingOf } from '../../src/agent/native-link'
import { loadNative } from '../../src/common/native'
import { agentPlan, SPECS } from '../../src/agent/options'
import { parseCli } from '../../src/common/cli'
import { agentRegistry } from '../../src/agent/metrics'
import { PairTap } from '../helpers/pair-tap'
import { TestClient } from '../helpers/client'
import { sleep, waitFor } from '../helpers/net'
import { eth, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'
import { threadsNamed } from '../helpers/proc'

const links = linkBindingOf(loadNative('tests'))

/** "0-1,3" (a Cpus_allowed_list) as a sorted list of CPUs. */
function cpuList (text: string): number[] {
  const out: number[] = []
  for (const part of text.trim().split(',')) {
    const [lo, hi] = part.split('-').map(Number) as [number, number | undefined]
    for (let c = lo; c <= (hi ?? lo); c++) out.push(c)
  }
  return out
}

function cpusOf (tid: string): number[] {
  const m = /^Cpus_allowed_list:\s*(\S+)$/m.exec(fs.readFileSync(`/proc/self/task/${tid}/status`, 'utf8'))
  assert.ok(m, `no Cpus_allowed_list for thread ${tid}`)
  return cpuList(m[1] as string)
}

/**
 * Pin every thread of this process but `except` (the switch's, the client's: on loopback their sends and
 * ACKs are processed on their CPU) to `cpus`; returns what puts each back.
 */
function pinAllBut (except: string, cpus: number[]): () => void {
  const was = fs.readdirSync('/proc/self/task').filter((t) => t !== except).map((t) => ({ t, cpus: cpusOf(t) }))
  for (const { t } of was) execFileSync('taskset', ['-p', '-c', cpus.join(','), t], { stdio: 'ignore' })
  return () => {
    for (const w of was) {
      try { execFileSync('taskset', ['-p', '-c', w.cpus.join(','), w.t], { stdio: 'ignore' }) } catch { /* the thread ended */ }
    }
  }
}

/** The same CPUs, in the same order (cpusOf sorts). */
function sameCpus (a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((c, i) => c === b[i])
}

/** `n` threads that never sleep on `cpu` only (`nice` their niceness), stopped by their PIDs: kill each with SIGKILL. */
function spinners (cpu: number, n = 2, nice = 0): ChildProcess[] {
  return Array.from({ length: n }, () => spawn('nice', ['-n', String(nice), 'taskset', '-c', String(cpu), 'sh', '-c', 'while :; do :; done'], { stdio: 'ignore' }))
}

/** Set the main thread's affinity (threads it starts inherit it); taskset is util-linux's. */
function pinMainThread (cpus: number[]): void {
  execFileSync('taskset', ['-p', '-c', cpus.join(','), String(process.pid)], { stdio: 'ignore' })
}

describe('tap-agent native link: its thread follows the CPU its frames arrive on (integration)', () => {
  const rig = new NativeRig()
  let agent: Agent | undefined
  let client: TestClient | undefined
  let restoreMask: number[] | undefined
  let unpin: (() => void) | undefined
  let restoreLog: (line: string) => void

  beforeEach(() => { restoreLog = setLogSink(() => {}) })
  afterEach(async () => {
    await rig.close()
    agent = client = undefined
    unpin?.()
    unpin = undefined
    if (restoreMask !== undefined) pinMainThread(restoreMask)
    restoreMask = undefined
    setLogSink(restoreLog)
  })

  /** A switchd, a native agent on a PairTap (cpuFollow as asked) and a client; resolves with the link thread's TID. */
  async function start (cpuFollow: boolean): Promise<{ tap: PairTap, tid: string }> {
    const before = new Set(threadsNamed('tsw-link'))
    const tap = await rig.start('follow', (t, uplink) => new Agent(t, uplink, 0, false, links, cpuFollow))
    agent = rig.agent
    client = rig.client
    let tid: string | undefined
    await waitFor(() => (tid = threadsNamed('tsw-link').find((t) => !before.has(t))) !== undefined, undefined, 'the link thread')
    return { tap, tid: tid as string }
  }

  /** One frame from the switch to the agent's TAP, delivered. */
  async function down (tap: PairTap): Promise<void> {
    const n = tap.received.length
    client?.send([eth(MAC_A, MAC_B)])
    await tap.waitReceived(n + 1)
  }

  function moves (): number {
    agent?.fold()
    return agent?.stats.cpuMoves ?? -1
  }

  it('while quiet it runs on one CPU of the mask it started with; a busy tick gives the whole mask back; quiet again, it follows again', async () => {
    const { tap, tid } = await start(true)
    const whole = cpusOf(tid)
    if (whole.length < 2) {
      // One CPU to run on: nothing to follow. The thread keeps its mask and counts no move.
      for (let i = 0; i < 5; i++) await down(tap)
      assert.deepEqual(cpusOf(tid), whole)
      assert.equal(moves(), 0)
      return
    }
    // Frames from the switch (a read from the socket each): the thread narrows to the CPU they came in on.
    for (let i = 0; i < 50 && cpusOf(tid).length !== 1; i++) await down(tap)
    const narrowed = cpusOf(tid)
    assert.equal(narrowed.length, 1, `narrowed to one CPU: ${narrowed.join(',')}`)
    assert.ok(whole.includes(narrowed[0] as number), 'within the mask it started with')
    assert.ok(moves() >= 1)
    // Busy: more than CPU_FOLLOW_BUSY_FRAMES frames within a tick (10 ms) from the TAP: the whole mask at once.
    // (A flood that goes on is placed at each tick's end: the next test. So each try starts after a quiet gap.)
    const burst = Array.from({ length: CPU_FOLLOW_BUSY_FRAMES * 2 }, () => eth(BROADCAST, MAC_A))
    for (let i = 0; i < 20 && cpusOf(tid).length !== whole.length; i++) {
      await sleep(30)
      const seen = client?.frames.length ?? 0
      tap.inject(burst)
      await waitFor(() => (client?.frames.length ?? 0) >= seen + burst.length, undefined, 'the burst at the client')
    }
    assert.deepEqual(cpusOf(tid), whole, 'the whole mask back while busy')
    const afterBusy = moves()
    assert.ok(afterBusy >= 2)
    // Quiet again (a gap of more than two ticks): the next frames from the switch narrow it again.
    await sleep(50)
    for (let i = 0; i < 50 && cpusOf(tid).length !== 1; i++) await down(tap)
    assert.equal(cpusOf(tid).length, 1, 'narrowed again once quiet')
    assert.ok(moves() > afterBusy)
    // The metric says the same.
    const text = await agentRegistry(agent as Agent).metrics()
    assert.match(text, new RegExp(`tap_agent_link_cpu_moves_total\\{tap="follow0"\\} ${moves()}\\n`))
  })

  it('a flood that goes on places it at each tick: up, on the CPU the switch takes its frames on; down, anywhere but there', async () => {
    const { tap, tid } = await start(true)
    const whole = cpusOf(tid)
    if (whole.length < 2) return assert.equal(moves(), 0)
    // The switch's side (its threads, the client's) on one CPU: its ACKs and its sends come in there.
    const sw = whole[0] as number
    unpin = pinAllBut(tid, [sw])
    // Up: frames from the TAP, burst after burst (each a barrier at the client), until a tick's end places it.
    const up = Array.from({ length: 1024 }, () => eth(BROADCAST, MAC_A))
    for (let i = 0; i < 100 && !sameCpus(cpusOf(tid), [sw]); i++) {
      const seen = client?.frames.length ?? 0
      await tap.feed(up)
      await waitFor(() => (client?.frames.length ?? 0) >= seen + up.length, undefined, 'the burst at the client')
    }
    assert.deepEqual(cpusOf(tid), [sw], 'a busy uplink runs where the switch takes its frames')
    // Down: frames from the switch to the TAP, until it runs anywhere but the switch's CPU (bursts the
    // test's end of the TAP pair holds whole, so each is a barrier).
    const others = whole.filter((c) => c !== sw)
    const downBurst = Array.from({ length: 128 }, () => eth(MAC_A, MAC_B))
    for (let i = 0; i < 400 && !sameCpus(cpusOf(tid), others); i++) {
      const n = tap.received.length
      client?.send(downBurst)
      await tap.waitReceived(n + downBurst.length)
    }
    assert.deepEqual(cpusOf(tid), others, 'a busy downlink runs off the CPU the switch sends from')
  })

  it('attack: busy uplinks crowded onto the switch\'s CPU (threads that never sleep there) take the whole mask back', async () => {
    const { tap, tid } = await start(true)
    const whole = cpusOf(tid)
    if (whole.length < 2) return assert.equal(moves(), 0)
    const sw = whole[0] as number
    unpin = pinAllBut(tid, [sw])
    const up = Array.from({ length: 1024 }, () => eth(BROADCAST, MAC_A))
    const flood = async (): Promise<void> => {
      const seen = client?.frames.length ?? 0
      await tap.feed(up)
      await waitFor(() => (client?.frames.length ?? 0) >= seen + up.length, undefined, 'the burst at the client')
    }
    for (let i = 0; i < 100 && !sameCpus(cpusOf(tid), [sw]); i++) await flood()
    assert.deepEqual(cpusOf(tid), [sw], 'placed with the switch first')
    // Two threads that never sleep, on that CPU only (started and stopped by their PIDs): the link waits
    // there about twice what it runs, as beside two other agents' busy uplinks.
    const spin = spinners(sw)
    try {
      // One long flood (the pair's queue full most of the time, so the link never goes quiet), its
      // mask sampled meanwhile: held on the crowded CPU it would be there nearly always.
      let held = 0
      let samples = 0
      let done = false
      const sampler = (async () => {
        while (!done) {
          samples++
          if (sameCpus(cpusOf(tid), [sw])) held++
          await sleep(2)
        }
      })()
      const seen = client?.frames.length ?? 0
      const long = Array.from({ length: 60_000 }, () => eth(BROADCAST, MAC_A))
      await tap.feed(long)
      await waitFor(() => (client?.frames.length ?? 0) >= seen + long.length, undefined, 'the flood at the client')
      done = true
      await sampler
      assert.ok(samples >= 10, `sampled ${samples} times`)
      assert.ok(held < samples * 0.9, `held on the crowded CPU in ${held} of ${samples} samples`)
    } finally {
      for (const p of spin) p.kill('SIGKILL')
    }
  })

  // On 2 CPUs "anywhere but the switch's" is one CPU: a busy downlink placed there beside threads that
  // never sleep waited to run twice what it ran, placed again each tick, for as long as the flood went on.
  it('attack: a busy downlink placed off the switch\'s CPU, crowded where it was placed, takes the whole mask back', async () => {
    const { tap, tid } = await start(true)
    const whole = cpusOf(tid)
    if (whole.length < 2) return assert.equal(moves(), 0)
    const sw = whole[0] as number
    unpin = pinAllBut(tid, [sw])
    const others = whole.filter((c) => c !== sw)
    const downBurst = Array.from({ length: 128 }, () => eth(MAC_A, MAC_B))
    const flood = async (): Promise<void> => {
      const n = tap.received.length
      client?.send(downBurst)
      await tap.waitReceived(n + downBurst.length)
    }
    for (let i = 0; i < 400 && !sameCpus(cpusOf(tid), others); i++) await flood()
    assert.deepEqual(cpusOf(tid), others, 'placed off the switch\'s CPU first')
    // Two threads that never sleep on each CPU it was placed on (started and stopped by their PIDs).
    const spin = others.flatMap((c) => spinners(c))
    try {
      let held = 0
      let samples = 0
      const until = Date.now() + 3000
      while (Date.now() < until) {
        // Several bursts at once: a flood the link keeps busy (more than a tick's worth of frames) while it waits.
        // (More than the test's end of the pair holds: some are dropped, so it waits until none come.)
        for (let b = 0; b < 8; b++) client?.send(downBurst)
        for (let n = -1; n !== tap.received.length;) {
          n = tap.received.length
          await sleep(5)
        }
        samples++
        if (sameCpus(cpusOf(tid), others)) held++
      }
      assert.ok(samples >= 10, `sampled ${samples} times`)
      assert.ok(held < samples * 0.9, `held on the crowded CPUs in ${held} of ${samples} samples`)
    } finally {
      for (const p of spin) p.kill('SIGKILL')
    }
  })

  it('--no-cpu-follow: the thread keeps its mask whatever it carries, and counts no move', async () => {
    const { tap, tid } = await start(false)
    const whole = cpusOf(tid)
    for (let i = 0; i < 10; i++) await down(tap)
    tap.inject(Array.from({ length: CPU_FOLLOW_BUSY_FRAMES * 2 }, () => eth(BROADCAST, MAC_A)))
    for (let i = 0; i < 10; i++) await down(tap)
    assert.deepEqual(cpusOf(tid), whole)
    assert.equal(moves(), 0)
    const base = ['--url', 'ws://127.0.0.1:1/']
    assert.equal(agentPlan(parseCli(SPECS, base, {}, 'tap-agent')).cpuFollow, true)
    assert.equal(agentPlan(parseCli(SPECS, [...base, '--no-cpu-follow'], {}, 'tap-agent')).cpuFollow, false)
    assert.equal(agentPlan(parseCli(SPECS, base, { TAP_AGENT_NO_CPU_FOLLOW: '1' }, 'tap-agent')).cpuFollow, false)
  })

  it('attack: a link started inside a one-CPU mask (a cpuset, taskset) never leaves it, whatever CPU its frames arrive on', async () => {
    const mine = cpusOf(String(process.pid))
    const only = mine[mine.length - 1] as number
    restoreMask = mine
    pinMainThread([only])  // the link thread, started below, inherits it
    const { tap, tid } = await start(true)
    restoreMask = undefined
    pinMainThread(mine)    // the switch's threads and the frames' softirqs may run anywhere again
    assert.deepEqual(cpusOf(tid), [only])
    for (let i = 0; i < 20; i++) await down(tap)
    tap.inject(Array.from({ length: CPU_FOLLOW_BUSY_FRAMES * 2 }, () => eth(BROADCAST, MAC_A)))
    await sleep(50)
    for (let i = 0; i < 20; i++) await down(tap)
    assert.deepEqual(cpusOf(tid), [only])
    assert.equal(moves(), 0)
  })

  it('an affinity set from outside while it runs (taskset -p on the thread) wins: the thread stops following', async () => {
    const { tap, tid } = await start(true)
    const whole = cpusOf(tid)
    if (whole.length < 2) return assert.equal(moves(), 0)
    for (let i = 0; i < 50 && cpusOf(tid).length !== 1; i++) await down(tap)
    assert.equal(cpusOf(tid).length, 1)
    const operators = whole.slice(0, 2)
    execFileSync('taskset', ['-p', '-c', operators.join(','), tid], { stdio: 'ignore' })
    const before = moves()
    // Busy, then quiet: either would have moved it.
    tap.inject(Array.from({ length: CPU_FOLLOW_BUSY_FRAMES * 2 }, () => eth(BROADCAST, MAC_A)))
    await sleep(50)
    for (let i = 0; i < 20; i++) await down(tap)
    assert.deepEqual(cpusOf(tid), operators)
    assert.equal(moves(), before)
  })

  it('a CPU it shares with busy threads (it waits there to run) gives it the whole mask back', async () => {
    const { tap, tid } = await start(true)
    const whole = cpusOf(tid)
    if (whole.length < 2) return assert.equal(moves(), 0)
    for (let i = 0; i < 50 && cpusOf(tid).length !== 1; i++) await down(tap)
    const [cpu] = cpusOf(tid) as [number]
    // Two threads that never sleep, on that CPU only (started and stopped by their PIDs).
    const spin = spinners(cpu)
    try {
      // Quiet traffic, a tick apart: each frame now waits behind the spinners to be written, so the
      // thread takes its whole mask back (and may follow again, to a CPU where it does not wait: the
      // switch's own thread moves off the spinners too). It must not stay held on theirs.
      // (It does not tell the wait rule from the following: a form that held the switch's side on that
      // CPU too, so that only the wait could move it, failed beside a busy CI: on kernel 6.18 a thread
      // woken by one on its own CPU hardly waits, whatever runs there. The wait rule alone:
      // test/integration/cpu-follow-native.test.ts, with the wait read from a file.)
      const held = (): boolean => { const now = cpusOf(tid); return now.length === 1 && now[0] === cpu }
      const before = moves()
      for (let i = 0; i < 100 && held(); i++) {
        await down(tap)
        await sleep(12)
      }
      assert.ok(!held(), 'not held on the CPU it has to wait for')
      assert.ok(moves() > before)
    } finally {
      for (const p of spin) p.kill('SIGKILL')
    }
  })

  // The thread cannot tell an operator's `taskset -p -c C TID` from its own narrowing to C (the kernel keeps
  // no record of who set a mask): with following on, the next busy tick widens it again. The operator's
  // remedy is --no-cpu-follow (docs/LOCAL-TAPS.md); this holds it to that.
  it('attack: with --no-cpu-follow an operator\'s pin of the link thread to one CPU holds through busy and quiet traffic', async () => {
    const { tap, tid } = await start(false)
    const whole = cpusOf(tid)
    const c = whole[whole.length - 1] as number
    execFileSync('taskset', ['-p', '-c', String(c), tid], { stdio: 'ignore' })
    const burst = Array.from({ length: CPU_FOLLOW_BUSY_FRAMES * 2 }, () => eth(BROADCAST, MAC_A))
    for (let r = 0; r < 3; r++) {
      const seen = client?.frames.length ?? 0
      tap.inject(burst)
      await waitFor(() => (client?.frames.length ?? 0) >= seen + burst.length, undefined, 'the burst at the client')
      assert.deepEqual(cpusOf(tid), [c], 'the operator\'s pin kept while busy')
    }
    await sleep(50)
    for (let i = 0; i < 20; i++) await down(tap)
    assert.deepEqual(cpusOf(tid), [c], 'the operator\'s pin kept while quiet')
    assert.equal(moves(), 0)
  })

  it('attack: the binding refuses a followBusy that is not a whole number of frames', () => {
    assert.ok(links !== undefined)
    const tap = new PairTap('follow-bad')
    const [sock] = loadNative('tests').socketPair()
    const link = new links.WsLink(sock, tap.fd, false, true, 1 << 20, null, () => {})
    try {
      for (const bad of [-1, 1.5, Number.NaN, 2e6]) assert.throws(() => { link.start(false, bad) }, RangeError, String(bad))
      assert.throws(() => { (link.start as (v: boolean) => void)(false) }, TypeError)
    } finally {
      link.close()
      tap.close()
    }
  })
})
