import assert from 'node:assert/strict'
import { Switch } from '../../src/switch/core/switch'
import { DEFAULT_POLICY, MODE_TRUNK } from '../../src/switch/core/port'
import { encodeBatch } from '../../src/common/protocol'
import { vnetHeader } from '../../src/common/gso'
import { setLogSink } from '../../src/common/log'
import { FakePort } from '../helpers/fake-port'
import { eth, MAC_A, MAC_B, MAC_D, BROADCAST } from '../helpers/frames'
import { tcpFrame, parseSegment, pattern, MAC_DST } from '../helpers/tcp'
import { R_BAD_OFFLOAD, R_OVERSIZE, R_RUNT } from '../../src/switch/core/reasons'

const MSS = 1448

describe('Switch with offload ports', () => {
  let sw: Switch
  let a: FakePort, b: FakePort, c: FakePort, d: FakePort
  let restore: (line: string) => void

  /** a and b negotiated offload; c and d did not. */
  beforeEach(() => {
    restore = setLogSink(() => {})
    sw = new Switch({ maxFrameSize: 1518 }, 100)
    a = new FakePort(1, 'a'); b = new FakePort(2, 'b'); c = new FakePort(3, 'c'); d = new FakePort(4, 'd')
    a.offload = true
    b.offload = true
    for (const p of [a, b, c, d]) sw.addPort(p)
  })
  afterEach(() => { setLogSink(restore) })

  const gso = (payload = pattern(5000)): ReturnType<typeof tcpFrame> => tcpFrame({ payload, mss: MSS })

  it('offload -> offload: the GSO record arrives intact, header and frame, with no conversion', () => {
    sw.receiveBatch(b, encodeBatch([Buffer.concat([Buffer.alloc(10), eth(BROADCAST, MAC_B)])])) // the frame's destination lives behind b
    c.take(); d.take()
    const { record } = gso()
    assert.equal(sw.receiveBatch(a, encodeBatch([record])), true)
    assert.deepEqual(b.take(), [record])
    assert.equal(c.sent.length + d.sent.length, 0)
    assert.equal(sw.stats.offloadSegmented + sw.stats.offloadChecksummed, 0)
  })

  it('offload -> plain: only MSS-sized segments with valid checksums, payload intact, converted once for a flood', () => {
    const payload = pattern(5000)
    sw.receiveBatch(a, encodeBatch([gso(payload).record]))
    for (const p of [c, d]) {
      const segs = p.take()
      assert.equal(segs.length, 4, `${p.name} gets the segments`)
      for (const f of segs) {
        assert.ok(f.length <= 1514)
        const s = parseSegment(f)
        assert.ok(s.ipChecksumOk && s.tcpChecksumOk)
      }
      assert.deepEqual(Buffer.concat(segs.map((f) => parseSegment(f).payload)), payload)
    }
    assert.equal(sw.stats.offloadSegmented, 1, 'one conversion for the whole flood')
  })

  it('offload -> plain: a partial checksum is finished; a header that asks nothing passes the frame as it is', () => {
    const { record, frame } = tcpFrame({ payload: pattern(700) })
    const plain = eth(BROADCAST, MAC_A, 9)
    sw.receiveBatch(a, encodeBatch([record, Buffer.concat([vnetHeader({ flags: 2 }), plain])]))
    const [done, same] = c.take()
    assert.ok(done !== undefined && same !== undefined)
    assert.ok(parseSegment(done).tcpChecksumOk)
    assert.equal(done.length, frame.length)
    assert.deepEqual(same, plain)
    assert.equal(sw.stats.offloadChecksummed, 1)
    assert.deepEqual(b.take()[0], record, 'the offload port still gets the partial checksum, untouched')
  })

  it('plain -> offload: a zero header goes before the frame; plain -> plain: no header', () => {
    const f = eth(BROADCAST, MAC_D, 3)
    sw.receiveFrame(d, f)
    assert.deepEqual(a.take(), [Buffer.concat([Buffer.alloc(10), f])])
    assert.deepEqual(b.take(), [Buffer.concat([Buffer.alloc(10), f])])
    assert.deepEqual(c.take(), [f])
  })

  it('moves csum_start and hdr_len by 4 when the egress pushes a tag, and cuts tagged segments for a plain trunk', () => {
    const trunk = { ...DEFAULT_POLICY, mode: MODE_TRUNK, pvid: 0, vlans: [1] }
    b.applyPolicy(trunk)
    c.applyPolicy(trunk)
    const { record, header, frame } = gso()
    sw.receiveBatch(a, encodeBatch([record]))
    const [tagged] = b.take()
    assert.ok(tagged !== undefined)
    assert.equal(tagged.readUInt16LE(6), header.readUInt16LE(6) + 4, 'csum_start')
    assert.equal(tagged.readUInt16LE(2), header.readUInt16LE(2) + 4, 'hdr_len')
    assert.equal(tagged.readUInt16LE(4), MSS, 'gso_size')
    assert.equal(tagged.length, 10 + frame.length + 4)
    assert.equal(tagged.readUInt16BE(10 + 12), 0x8100)
    const segs = c.take().map(parseSegment)
    assert.equal(segs.length, 4)
    assert.ok(segs.every((s) => s.vlan === 1 && s.tcpChecksumOk && s.ipChecksumOk))
  })

  it('moves them back by 4 when the egress strips the tag', () => {
    a.applyPolicy({ ...DEFAULT_POLICY, mode: MODE_TRUNK, pvid: 0, vlans: [1] })
    const { record, header } = tcpFrame({ payload: pattern(5000), mss: MSS, vlan: 1 })
    sw.receiveBatch(a, encodeBatch([record]))
    const [untagged] = b.take()
    assert.ok(untagged !== undefined)
    assert.equal(untagged.readUInt16LE(6), header.readUInt16LE(6) - 4)
    assert.equal(untagged.readUInt16BE(10 + 12), 0x0800)
    const segs = c.take().map(parseSegment)
    assert.ok(segs.length === 4 && segs.every((s) => s.vlan === undefined && s.tcpChecksumOk))
  })

  it('forwards a learned GSO frame to its one port', () => {
    sw.receiveFrame(c, eth(BROADCAST, MAC_B)) // MAC_B (the GSO frame's destination) lives behind c
    a.take(); b.take(); d.take()
    assert.equal(MAC_DST.toString('hex'), MAC_B)
    sw.receiveBatch(a, encodeBatch([gso().record]))
    assert.equal(c.take().length, 4)
    assert.equal(b.sent.length + d.sent.length, 0)
    assert.equal(sw.stats.forwarded, 1)
  })

  it('drops and counts malformed headers and short records; a bad GSO frame reaches no one', () => {
    const bad = gso().record
    bad.writeUInt16LE(0, 4) // gso_size 0
    assert.equal(sw.receiveBatch(a, encodeBatch([bad, Buffer.alloc(6), Buffer.alloc(12)])), true)
    assert.equal(a.drops[R_BAD_OFFLOAD], 1)
    assert.equal(sw.stats.drops[R_BAD_OFFLOAD], 1)
    assert.equal(a.drops[R_RUNT], 2, 'a record shorter than its header, and a 2-byte frame after one')
    assert.equal(b.sent.length + c.sent.length + d.sent.length, 0)
  })

  it('drops as oversize a GSO frame whose segments would exceed maxFrameSize, and plain frames over it', () => {
    sw.receiveBatch(a, encodeBatch([tcpFrame({ payload: pattern(5000), mss: 1600 }).record, Buffer.concat([Buffer.alloc(10), eth(BROADCAST, MAC_A, 0, 1519)])]))
    assert.equal(a.drops[R_OVERSIZE], 2)
    sw.receiveBatch(a, encodeBatch([tcpFrame({ payload: pattern(60000), mss: MSS }).record]))
    assert.equal(a.drops[R_OVERSIZE], 2, 'a 60 KB GSO frame with 1448-byte segments is fine')
    assert.equal(c.take().length, Math.ceil(60000 / MSS))
  })

  it('a plain port never sees a header on frames from a plain port (fast path unchanged)', () => {
    sw.receiveBatch(c, encodeBatch([eth(BROADCAST, MAC_A, 1), eth(BROADCAST, MAC_A, 2)]))
    assert.deepEqual(d.take().map((f) => f.length), [60, 60])
  })
})
