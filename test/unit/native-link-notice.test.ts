/**
 * A native link's notice (native/ws_link.h E_NOTICE) reaches the agent, which
 * logs it naming the cause and the fix: a kernel that refused a UDP run
 * (--udp-runs before Linux 6.2) leaves the link writing each frame alone, and
 * the operator should hear once that the flag does nothing there. The thread's
 * side (counted once, noticed once, frames alone) is fuzz/ws_link_runs_refused_test.cc.
 */
import { strict as assert } from 'node:assert'
import type * as net from 'node:net'
import { NativeLink, NOTICE_UDP_RUNS_REFUSED, LINK_STAT_COUNT, type LinkBinding } from '../../src/agent/native-link'
import { Agent } from '../../src/agent/agent'
import type { Uplink } from '../../src/common/uplink'
import type { Endpoint } from '../../src/agent/endpoint'
import { setLogSink } from '../../src/common/log'

type OnEvent = (kind: number, code: number, data: Buffer) => void

/** A binding whose link does nothing but hand the test its event callback. */
function fakeBinding (): { binding: LinkBinding, emit: () => OnEvent } {
  let onEvent: OnEvent | undefined
  class FakeWsLink {
    constructor (_sock: number, _tap: number, _vnet: boolean, _zero: boolean, _hwm: number, _prefill: Buffer | null, cb: OnEvent) { onEvent = cb }
    start (): void {}
    send (): number { return 0 }
    terminate (): void {}
    close (): void {}
    stats (): void {}
    get bufferedAmount (): number { return 0 }
  }
  const binding = { WsLink: FakeWsLink, LINK_STAT_COUNT } as unknown as LinkBinding
  return { binding, emit: () => { assert.ok(onEvent); return onEvent } }
}

const takeover = { fd: -1, prefill: null, socket: { destroy () {} } as unknown as net.Socket }

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
    const lines: string[] = []
    const restore = setLogSink((l) => { lines.push(l) })
    try {
      const tap = { name: 'tsw9' } as unknown as Endpoint
      const agent = new Agent(tap, {} as unknown as Uplink)
      ;(agent as unknown as { linkNotice: (n: number) => void }).linkNotice(NOTICE_UDP_RUNS_REFUSED)
      ;(agent as unknown as { linkNotice: (n: number) => void }).linkNotice(99) // unknown: nothing said
    } finally {
      setLogSink(restore)
    }
    assert.equal(lines.length, 1, lines.join('\n'))
    const e = JSON.parse(lines[0] as string) as Record<string, unknown>
    assert.equal(e.level, 'warn')
    assert.equal(e.event, 'udp_runs_refused')
    assert.equal(e.tap, 'tsw9')
    assert.match(String(e.error), /Linux 6\.2/)
    assert.match(String(e.fix), /--udp-runs/)
  })
})
