/**
 * A native link's notice (native/ws_link.h E_NOTICE) reaches the agent, which
 * logs it naming the cause and the fix: a kernel that refused a UDP run
 * (--udp-runs before Linux 6.2) leaves the link writing each frame alone, and
 * the operator should hear once that the flag does nothing there. The thread's
 * side (counted once, noticed once, frames alone) is fuzz/ws_link_runs_refused_test.cc.
 */
import { strict as assert } from 'node:assert'
import type * as net from 'node:net'
import { NativeLink, NOTICE_UDP_RUNS_REFUSED, LINK_STAT_COUNT, LINK_UDP_RUNS_REFUSED, linkBindingOf, linkBindingRefusal, type LinkBinding } from '../../src/agent/native-link'
import { Agent } from '../../src/agent/agent'
import type { Uplink } from '../../src/common/uplink'
import type { Endpoint } from '../../src/agent/endpoint'
import { setLogSink } from '../../src/common/log'
import { spawn } from 'node:child_process'
import * as path from 'node:path'

type OnEvent = (kind: number, code: number, data: Buffer) => void

/**
 * A binding whose link does nothing but hand the test its event callback, note
 * the udpRuns each link was started with, and report `refused` as its
 * LINK_UDP_RUNS_REFUSED counter.
 */
function fakeBinding (): { binding: LinkBinding, emit: () => OnEvent, runs: boolean[], refused: { n: number } } {
  let onEvent: OnEvent | undefined
  const runs: boolean[] = []
  const refused = { n: 0 }
  class FakeWsLink {
    private readonly refusedAtStart = refused.n
    constructor (_sock: number, _tap: number, _vnet: boolean, _zero: boolean, _hwm: number, _prefill: Buffer | null, cb: OnEvent) { onEvent = cb }
    start (_vnet: boolean, _busy: number, udpRuns: boolean): void { runs.push(udpRuns) }
    send (): number { return 0 }
    terminate (): void {}
    close (): void {}
    stats (link: Float64Array): void { link[LINK_UDP_RUNS_REFUSED] = refused.n - this.refusedAtStart }
    get bufferedAmount (): number { return 0 }
  }
  const binding = { WsLink: FakeWsLink, LINK_STAT_COUNT } as unknown as LinkBinding
  return { binding, emit: () => { assert.ok(onEvent); return onEvent }, runs, refused }
}

/** An agent with --udp-runs on a fake TAP over `binding`, and a way to open and start a link as a connection's welcome would. */
function agentOn (binding: LinkBinding): { agent: Agent, connect: () => void } {
  const tap = { name: 'tsw9', fd: 3, vnetHdr: true, vnetRecords: true, start () {}, stop () {} } as unknown as Endpoint
  const uplink = { stats: { txMessages: 0, txBytes: 0, rxMessages: 0, rxBytes: 0, rxMalformed: 0 } } as unknown as Uplink
  const agent = new Agent(tap, uplink, 0, false, binding, false, true)
  const priv = agent as unknown as { openLink: (t: unknown, l: LinkBinding, fd: number, v: boolean) => void, startLink: () => void }
  const connect = (): void => {
    priv.openLink({ takeover, zeroMask: true, highWaterMark: 1 << 20 }, binding, 3, true)
    priv.startLink()
  }
  return { agent, connect }
}

const takeover = { fd: -1, prefill: null, socket: { destroy () {} } as unknown as net.Socket }

/** The log lines `fn` wrote (the sink put back after, also when it throws). */
function logsOf (fn: () => void): string[] {
  const lines: string[] = []
  const restore = setLogSink((l) => { lines.push(l) })
  try {
    fn()
  } finally {
    setLogSink(restore)
  }
  return lines
}

describe('native link notices (E_NOTICE)', () => {
  it('a notice from the thread goes to onNotice with its code, and nowhere else', () => {
    const { binding, emit } = fakeBinding()
    const got: number[] = []
    const link = new NativeLink(binding, takeover, { fd: -1, vnetHdr: true }, true, 1 << 20, () => {}, (n) => { got.push(n) })
    let texts = 0
    link.sock.on('message', () => { texts++ })
    emit()(0x20, NOTICE_UDP_RUNS_REFUSED, Buffer.alloc(0))
    assert.deepEqual(got, [NOTICE_UDP_RUNS_REFUSED])
    assert.equal(texts, 0, 'a notice is not a message')
    assert.equal(link.isEnded, false, 'a notice does not end the link')
  })

  it('the agent logs a refused UDP run as a warning naming the kernel and the fix', () => {
    const lines = logsOf(() => {
      const tap = { name: 'tsw9' } as unknown as Endpoint
      const agent = new Agent(tap, {} as unknown as Uplink)
      ;(agent as unknown as { linkNotice: (n: number) => void }).linkNotice(NOTICE_UDP_RUNS_REFUSED)
      ;(agent as unknown as { linkNotice: (n: number) => void }).linkNotice(99) // unknown: nothing said
    })
    assert.equal(lines.length, 1, lines.join('\n'))
    const e = JSON.parse(lines[0] as string) as Record<string, unknown>
    assert.equal(e.level, 'warn')
    assert.equal(e.event, 'udp_runs_refused')
    assert.equal(e.tap, 'tsw9')
    assert.match(String(e.error), /Linux 6\.2/)
    assert.match(String(e.fix), /--udp-runs/)
  })

  it('once refused, no later connection\'s link tries a run, and the agent warns once', () => {
    const lines = logsOf(() => {
      const { binding, emit, runs, refused } = fakeBinding()
      const { connect } = agentOn(binding)
      connect()
      refused.n++
      emit()(0x20, NOTICE_UDP_RUNS_REFUSED, Buffer.alloc(0))
      connect() // a reconnect: the kernel is the same
      connect()
      assert.deepEqual(runs, [true, false, false])
    })
    assert.equal(lines.filter((l) => l.includes('udp_runs_refused')).length, 1, lines.join('\n'))
  })

  it('a refusal whose notice was never drained (the link closed from JS first) is still said, and not tried again', () => {
    const lines = logsOf(() => {
      const { binding, runs, refused } = fakeBinding()
      const { agent, connect } = agentOn(binding)
      connect()
      refused.n++ // counted by the thread; its E_NOTICE dies with close()
      connect()
      assert.deepEqual(runs, [true, false])
      assert.equal(agent.stats.udpRunsRefused, 1)
    })
    assert.equal(lines.filter((l) => l.includes('udp_runs_refused')).length, 1, lines.join('\n'))
  })

  it('attack: an addon whose link keeps 11 counters (built before LINK_UDP_RUNS_REFUSED) is refused and said, not misread', () => {
    const stale = { WsLink: function WsLink () {}, LINK_STAT_COUNT: LINK_STAT_COUNT - 1 }
    assert.equal(linkBindingOf(stale), undefined)
    assert.match(linkBindingRefusal(stale) ?? '', new RegExp(`keeps ${LINK_STAT_COUNT - 1} counters, this tap-agent reads ${LINK_STAT_COUNT}`))
    assert.equal(linkBindingRefusal({ WsLink: function WsLink () {}, LINK_STAT_COUNT }), undefined)
    assert.equal(linkBindingRefusal({}), undefined, 'a binding without links (a fake TAP\'s) has nothing to refuse')
  })

  it('tap-agent on a stale addon warns fast_path_unavailable, naming the fix', async function () {
    this.timeout(30_000)
    // A child: main() installs signal handlers. Its log is on stderr; its uplink points at a closed port, and the warning comes before that fails.
    const script = "const { fakeTapBinding } = require('./test/helpers/fake-tap');" +
      "require('./src/agent/main').main(['--url', 'ws://127.0.0.1:9/', '--name', 'stale'], { ...fakeTapBinding, WsLink: function WsLink () {}, LINK_STAT_COUNT: 11 })"
    const child = spawn(process.execPath, ['-r', 'tsx/cjs', '-e', script], { cwd: path.join(__dirname, '..', '..'), stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => { reject(new Error(`no uplink event within 20 s:\n${out}`)) }, 20_000)
        child.stderr.on('data', (d: Buffer) => {
          out += d.toString()
          if (out.includes('"uplink_')) { clearTimeout(timer); resolve() }
        })
        child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`exited ${String(code)}:\n${out}`)) })
      })
    } finally {
      child.kill()
    }
    const warn = out.split('\n').find((l) => l.includes('"fast_path_unavailable"'))
    assert.ok(warn !== undefined, out)
    const e = JSON.parse(warn) as Record<string, unknown>
    assert.equal(e.level, 'warn')
    assert.match(String(e.error), /keeps 11 counters, this tap-agent reads 12/)
    assert.match(String(e.fix), /node-gyp rebuild/)
  })
})
