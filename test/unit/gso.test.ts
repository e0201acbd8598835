import assert from 'node:assert/strict'
import {
  checkOffload, segment, completeChecksum, toPlainFrames, shiftHeader, needsSoftware, vnetHeader,
  OFFLOAD_OK, OFFLOAD_OVERSIZE, OFFLOAD_MALFORMED, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4
} from '../../src/common/gso'
import { tcpFrame, parseSegment, pattern, checksum, FIN, PSH, ACK, CWR } from '../helpers/tcp'

const MSS = 1448

/** Segment a GSO frame held as [header][frame] in one buffer, as the switch holds a record. */
function cut (record: Buffer): Buffer[] {
  return segment(record, 0, 10, record.length - 10)
}

describe('gso', () => {
  describe('segment()', () => {
    for (const v6 of [false, true]) {
      for (const vlan of [undefined, 10]) {
        it(`cuts a TCP${v6 ? 'v6' : 'v4'} GSO frame ${vlan === undefined ? 'without' : 'with'} an 802.1Q tag into valid MSS-sized segments`, () => {
          // The MSS of a 1500-byte MTU with TCP timestamps.
          const mss = v6 ? 1428 : 1448
          const payload = pattern(5000)
          const { record, l4 } = tcpFrame({ v6, vlan, payload, mss, seq: 1000, id: 0x1234, flags: ACK | PSH | FIN | CWR })
          const segs = cut(record)
          assert.equal(segs.length, 4, '5000 bytes at 1448 (1428) a segment')
          const sizes = [mss, mss, mss, 5000 - 3 * mss]
          for (const [i, f] of segs.entries()) {
            const s = parseSegment(f)
            assert.equal(f.length, l4 + 32 + (sizes[i] as number), `segment ${i} length`)
            assert.ok(f.length <= 1514 + (vlan === undefined ? 0 : 4), 'fits an MTU of 1500')
            assert.equal(s.vlan, vlan)
            assert.equal(s.ipLength, (v6 ? 0 : 20) + 32 + (sizes[i] as number))
            assert.ok(s.ipChecksumOk, `segment ${i}: IPv4 header checksum`)
            assert.ok(s.tcpChecksumOk, `segment ${i}: TCP checksum`)
            if (!v6) assert.equal(s.id, 0x1234 + i, 'IPv4 id increments per segment')
            assert.equal(s.seq, 1000 + i * mss)
            assert.equal(s.flags & ACK, ACK, 'ACK on every segment')
            assert.equal(s.flags & (FIN | PSH), i === 3 ? FIN | PSH : 0, 'FIN and PSH on the last only')
            assert.equal(s.flags & CWR, i === 0 ? CWR : 0, 'CWR on the first only')
          }
          assert.deepEqual(Buffer.concat(segs.map((f) => parseSegment(f).payload)), payload, 'the payloads, in order, are the original')
        })
      }
    }

    it('wraps sequence numbers and IPv4 ids', () => {
      const { record } = tcpFrame({ payload: pattern(3 * MSS), mss: MSS, seq: 0xffffffff - 100, id: 0xffff })
      const segs = cut(record).map(parseSegment)
      assert.deepEqual(segs.map((s) => s.seq), [0xffffffff - 100, (0xffffffff - 100 + MSS) % 2 ** 32, (0xffffffff - 100 + 2 * MSS) % 2 ** 32])
      assert.deepEqual(segs.map((s) => s.id), [0xffff, 0, 1])
      assert.ok(segs.every((s) => s.tcpChecksumOk && s.ipChecksumOk))
    })

    it('makes one segment of a payload no longer than gso_size, and handles a 64 KiB frame', () => {
      assert.equal(cut(tcpFrame({ payload: pattern(100), mss: MSS }).record).length, 1)
      const big = pattern(65535 - 20 - 32)
      const segs = cut(tcpFrame({ payload: big, mss: MSS }).record)
      assert.equal(segs.length, Math.ceil(big.length / MSS))
      assert.deepEqual(Buffer.concat(segs.map((f) => parseSegment(f).payload)), big)
      assert.ok(segs.every((f) => parseSegment(f).tcpChecksumOk))
    })

    it('returns no segment for headers that do not parse, never throws', () => {
      const { record } = tcpFrame({ payload: pattern(3000), mss: MSS })
      const arp = Buffer.from(record)
      arp.writeUInt16BE(0x0806, 10 + 12)
      assert.deepEqual(cut(arp), [])
      const v6AsV4 = Buffer.from(record)
      v6AsV4[1] = 4 // gso_type TCPv6 on an IPv4 frame
      assert.deepEqual(cut(v6AsV4), [])
      for (let i = 0; i < 2000; i++) {
        const junk = Buffer.from(record.subarray(0, 10 + Math.floor(Math.random() * 200)))
        for (let j = 0; j < 8; j++) junk[Math.floor(Math.random() * junk.length)] = Math.floor(Math.random() * 256)
        if (junk.length < 24) continue
        const verdict = checkOffload(junk, 0, 10, junk.length - 10, 1518)
        if (verdict === OFFLOAD_OK && needsSoftware(junk, 0)) toPlainFrames(junk, 0, 10, junk.length - 10)
      }
    })
  })

  describe('completeChecksum()', () => {
    it('finishes a partial TCP checksum seeded with the pseudo-header sum (IPv4 and IPv6, tagged or not)', () => {
      for (const v6 of [false, true]) {
        for (const vlan of [undefined, 20]) {
          const { record, frame } = tcpFrame({ v6, vlan, payload: pattern(999) })
          const s0 = parseSegment(frame)
          assert.ok(!s0.tcpChecksumOk, 'partial before')
          const done = completeChecksum(record, 0, 10, frame.length)
          const s = parseSegment(done)
          assert.ok(s.tcpChecksumOk, `TCP checksum after (v6 ${String(v6)}, vlan ${String(vlan)})`)
          assert.deepEqual(s.payload, pattern(999))
          assert.deepEqual(frame, record.subarray(10), 'the original is left alone')
        }
      }
    })

    it('finishes a UDP checksum, writing 0 as 0xffff', () => {
      const ip = Buffer.from('4500001e0000400040110000c0000201c0000202', 'hex')
      ip.writeUInt16BE(checksum(ip), 10)
      const udp = Buffer.from('9c401451000a00000000', 'hex')
      const pseudo = Buffer.concat([ip.subarray(12, 20), Buffer.from([0, 17, 0, 10])])
      // A payload word that brings the sum to all ones: the finished checksum is then 0.
      udp.writeUInt16BE(checksum(pseudo, udp), 8)
      udp.writeUInt16BE(~checksum(pseudo) & 0xffff, 6)
      const frame = Buffer.concat([Buffer.from('020000000002020000000001' + '0800', 'hex'), ip, udp])
      const hdr = vnetHeader({ flags: VNET_F_NEEDS_CSUM, csumStart: 34, csumOffset: 6 })
      const done = completeChecksum(Buffer.concat([hdr, frame]), 0, 10, frame.length)
      assert.equal(done.readUInt16BE(40), 0xffff, 'UDP reads 0 as "no checksum": 0 goes as 0xffff')
      assert.equal(checksum(pseudo, done.subarray(34)), 0, 'valid')
    })
  })

  describe('checkOffload()', () => {
    const max = 1518
    const gso = (): Buffer => tcpFrame({ payload: pattern(4000), mss: MSS }).record
    const judge = (rec: Buffer, maxFrameSize = max): number => checkOffload(rec, 0, 10, rec.length - 10, maxFrameSize)

    it('accepts a GSO frame whose segments fit, and plain frames up to the maximum', () => {
      assert.equal(judge(gso()), OFFLOAD_OK)
      assert.equal(judge(tcpFrame({ v6: true, vlan: 5, payload: pattern(9000), mss: 1400 }).record), OFFLOAD_OK)
      assert.equal(judge(Buffer.concat([vnetHeader({}), Buffer.alloc(1518)])), OFFLOAD_OK)
      assert.equal(judge(tcpFrame({ payload: pattern(1400) }).record), OFFLOAD_OK, 'NEEDS_CSUM alone')
    })

    it('calls a plain frame over the maximum, or GSO segments over it, oversize', () => {
      assert.equal(judge(Buffer.concat([vnetHeader({}), Buffer.alloc(1519)])), OFFLOAD_OVERSIZE)
      assert.equal(judge(tcpFrame({ payload: pattern(4000), mss: 1500 }).record), OFFLOAD_OVERSIZE, '14 + 20 + 32 + 1500 > 1518')
      assert.equal(judge(tcpFrame({ payload: pattern(4000), mss: 1452 }).record), OFFLOAD_OK, '14 + 20 + 32 + 1452 = 1518')
      assert.equal(judge(tcpFrame({ payload: pattern(70000), mss: MSS }).record), OFFLOAD_OVERSIZE, 'beyond the protocol maximum')
    })

    it('calls malformed: gso_size 0, UDP GSO, unknown flags, bad csum_start, no NEEDS_CSUM, headers that do not parse, hdr_len past the end', () => {
      const cases: Array<[string, (r: Buffer) => void]> = [
        ['gso_size 0', (r) => { r.writeUInt16LE(0, 4) }],
        ['UDP GSO (UFO)', (r) => { r[1] = 3 }],
        ['USO', (r) => { r[1] = 5 }],
        ['ECN bit without GSO', (r) => { r[1] = 0x80 }],
        ['unknown flag', (r) => { r[0] = (r[0] as number) | 4 }],
        ['csum_start before the IP header', (r) => { r.writeUInt16LE(4, 6) }],
        ['csum past the end', (r) => { r.writeUInt16LE(r.length, 6) }],
        ['GSO without NEEDS_CSUM', (r) => { r[0] = 0 }],
        ['csum_offset not TCP\'s', (r) => { r.writeUInt16LE(6, 8) }],
        ['not IPv4', (r) => { r.writeUInt16BE(0x0806, 10 + 12) }],
        ['csum_start not after the IP header', (r) => { r.writeUInt16LE(38, 6) }],
        ['not TCP', (r) => { r[10 + 14 + 9] = 17 }],
        ['an IP fragment', (r) => { r.writeUInt16BE(0x2000, 10 + 14 + 6) }],
        ['TCP data offset under 5', (r) => { r[10 + 34 + 12] = 0x40 }],
        ['hdr_len past the end', (r) => { r.writeUInt16LE(0xffff, 2) }]
      ]
      for (const [what, spoil] of cases) {
        const r = gso()
        spoil(r)
        assert.equal(judge(r), OFFLOAD_MALFORMED, what)
      }
    })
  })

  describe('shiftHeader()', () => {
    it('moves csum_start and hdr_len with a pushed or stripped tag, leaves hdr_len 0 alone', () => {
      const h = vnetHeader({ flags: VNET_F_NEEDS_CSUM, gsoType: VNET_GSO_TCPV4, hdrLen: 66, gsoSize: MSS, csumStart: 34, csumOffset: 16 })
      shiftHeader(h, 0, 4)
      assert.deepEqual([h.readUInt16LE(2), h.readUInt16LE(4), h.readUInt16LE(6), h.readUInt16LE(8)], [70, MSS, 38, 16])
      shiftHeader(h, 0, -4)
      assert.deepEqual([h.readUInt16LE(2), h.readUInt16LE(6)], [66, 34])
      const z = vnetHeader({})
      shiftHeader(z, 0, 4)
      assert.deepEqual(z, vnetHeader({}), 'a zero header stays zero')
    })
  })

  it('needsSoftware() is false only for headers that ask nothing (zero, or DATA_VALID)', () => {
    assert.equal(needsSoftware(vnetHeader({}), 0), false)
    assert.equal(needsSoftware(vnetHeader({ flags: 2 }), 0), false)
    assert.equal(needsSoftware(vnetHeader({ flags: VNET_F_NEEDS_CSUM }), 0), true)
    assert.equal(needsSoftware(vnetHeader({ gsoType: VNET_GSO_TCPV4 }), 0), true)
  })
})
