import assert from 'node:assert/strict'
import { Switch } from '../../src/switch/core/switch'
import { CaptureHub, type CaptureSink } from '../../src/switch/control/capture'
import { FakePort } from '../helpers/fake-port'
import { eth, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'
import { parsePcap } from '../helpers/pcap'
import { setLogSink } from '../../src/common/log'

class Sink implements CaptureSink {
  chunks: Buffer[] = []
  ended = false
  writableLength = 0
  write (chunk: Buffer): boolean { this.chunks.push(chunk); return true }
  end (): void { this.ended = true }
  pcap (): ReturnType<typeof parsePcap> { return parsePcap(Buffer.concat(this.chunks)) }
}

describe('capture', () => {
  let restore: (line: string) => void
  beforeEach(() => { restore = setLogSink(() => {}) })
  afterEach(() => { setLogSink(restore) })

  function setup (): { sw: Switch, a: FakePort, b: FakePort, c: FakePort, hub: CaptureHub } {
    const sw = new Switch({}, 1000)
    const a = new FakePort(1, 'a'); const b = new FakePort(2, 'b'); const c = new FakePort(3, 'c')
    for (const p of [a, b, c]) sw.addPort(p)
    return { sw, a, b, c, hub: new CaptureHub() }
  }

  it('writes a pcap of forwarded and flooded frames, filtered by port', () => {
    const { sw, a, b, c, hub } = setup()
    const sink = new Sink()
    hub.start(sw, { port: 'b' }, { count: 100, bytes: 1e9, duration: 10 }, sink)
    sw.receiveFrame(a, eth(BROADCAST, MAC_A, 1)) // flooded: reaches b
    sw.receiveFrame(b, eth(MAC_A, MAC_B, 2)) // from b
    sw.receiveFrame(c, eth(MAC_A, '020000000003', 3)) // c -> a: not b's
    const { linktype, records } = sink.pcap()
    assert.equal(linktype, 1)
    assert.deepEqual(records.map((r) => r.frame[14]), [1, 2])
    assert.equal(hub.stats.frames, 2)
    hub.stopAll()
    assert.equal(sink.ended, true)
    assert.equal(sw.taps.length, 0, 'the tap is gone once the capture ends')
  })

  it('stops at its frame count', () => {
    const { sw, a, hub } = setup()
    const sink = new Sink()
    hub.start(sw, {}, { count: 2, bytes: 1e9, duration: 10 }, sink)
    for (let i = 0; i < 5; i++) sw.receiveFrame(a, eth(BROADCAST, MAC_A, i))
    assert.equal(sink.pcap().records.length, 2)
    assert.equal(sink.ended, true)
    assert.equal(hub.size, 0)
  })

  it('drops (and counts) capture frames while its reader is behind, without touching forwarding', () => {
    const { sw, a, b, hub } = setup()
    const sink = new Sink()
    hub.start(sw, {}, { count: 100, bytes: 1e9, duration: 10 }, sink)
    sink.writableLength = 2 * 1024 * 1024
    for (let i = 0; i < 5; i++) sw.receiveFrame(a, eth(BROADCAST, MAC_A, i))
    assert.equal(hub.stats.dropped, 5)
    assert.equal(b.sent.length, 5, 'the ports got every frame')
    hub.stopAll()
  })
})

describe('capture (several at once)', () => {
  it('gives every capture the frame on which one of them reaches its limit', () => {
    const restore = setLogSink(() => {})
    try {
      const sw = new Switch({}, 1000)
      const a = new FakePort(1, 'a'); const b = new FakePort(2, 'b')
      sw.addPort(a); sw.addPort(b)
      const hub = new CaptureHub()
      const sinks = [new Sink(), new Sink(), new Sink()]
      hub.start(sw, {}, { count: 5, bytes: 1e9, duration: 10 }, sinks[0] as Sink)
      hub.start(sw, {}, { count: 1, bytes: 1e9, duration: 10 }, sinks[1] as Sink)
      hub.start(sw, {}, { count: 5, bytes: 1e9, duration: 10 }, sinks[2] as Sink)
      sw.receiveFrame(a, eth(BROADCAST, MAC_A, 1))
      sw.receiveFrame(a, eth(BROADCAST, MAC_A, 2))
      assert.deepEqual(sinks.map((s) => s.pcap().records.length), [2, 1, 2])
      hub.stopAll()
    } finally {
      setLogSink(restore)
    }
  })
})
