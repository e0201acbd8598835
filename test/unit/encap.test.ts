import assert from 'node:assert/strict'
import {
  parseHeader, vniAt, writeHeader, flowHash, socketIndex, maxInnerFrame, ENCAP_VXLAN, ENCAP_GENEVE, PARSE_TRUNCATED, PARSE_BAD_HEADER, VNI_MAX
} from '../../src/switch/core/encap'
import { eth, tagged, udp, frame, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'

/** A datagram payload: the header for `vni` and `inner`. */
function datagram (encap: number, vni: number, inner: Buffer): Buffer {
  const d = Buffer.alloc(8 + inner.length)
  writeHeader(encap, d, 0, vni)
  inner.copy(d, 8)
  return d
}

/** A GENEVE header with `optWords` option words (zeros) and the given byte 1 (O, C bits) and version. */
function geneve (vni: number, inner: Buffer, optWords = 0, b1 = 0, version = 0, type = 0x6558): Buffer {
  const d = Buffer.alloc(8 + optWords * 4 + inner.length)
  d[0] = (version << 6) | optWords
  d[1] = b1
  d.writeUInt16BE(type, 2)
  d.writeUIntBE(vni, 4, 3)
  inner.copy(d, 8 + optWords * 4)
  return d
}

const v4tcp = (sport: number, dport: number, src = 0x0a000001, dst = 0x0a000002): Buffer => {
  const f = udp(0x020000000002, 0x020000000001, src, dst, sport, dport)
  f[23] = 6 // TCP: the hash reads the ports alike
  return f
}

describe('encap (VXLAN and GENEVE headers)', () => {
  describe('VXLAN', () => {
    it('writes flags 0x08, the VNI in bytes 4-6 and zero reserved bits, and reads them back', () => {
      const d = datagram(ENCAP_VXLAN, 0xabcdef, eth(BROADCAST, MAC_A))
      assert.deepEqual([...d.subarray(0, 8)], [0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0])
      assert.equal(parseHeader(ENCAP_VXLAN, d, d.length), 8)
      assert.equal(vniAt(d), 0xabcdef)
    })

    it('is truncated at every length below header + 14, and whole at header + 14', () => {
      const d = datagram(ENCAP_VXLAN, 42, eth(BROADCAST, MAC_A))
      for (let len = 0; len < 22; len++) assert.equal(parseHeader(ENCAP_VXLAN, d, len), PARSE_TRUNCATED, `length ${len}`)
      assert.equal(parseHeader(ENCAP_VXLAN, d, 22), 8)
    })

    it('refuses a header without the I flag, and ignores reserved bits', () => {
      const d = datagram(ENCAP_VXLAN, 42, eth(BROADCAST, MAC_A))
      d[0] = 0x00
      assert.equal(parseHeader(ENCAP_VXLAN, d, d.length), PARSE_BAD_HEADER)
      d[0] = 0xf7 // every flag but I
      assert.equal(parseHeader(ENCAP_VXLAN, d, d.length), PARSE_BAD_HEADER)
      d[0] = 0xff; d[1] = 0xff; d[2] = 0xff; d[3] = 0xff; d[7] = 0xff
      assert.equal(parseHeader(ENCAP_VXLAN, d, d.length), 8)
      assert.equal(vniAt(d), 42)
    })

    it('keeps VNI 0 and the largest VNI', () => {
      for (const vni of [0, 1, VNI_MAX]) assert.equal(vniAt(datagram(ENCAP_VXLAN, vni, eth(BROADCAST, MAC_A))), vni)
    })
  })

  describe('GENEVE', () => {
    it('writes version 0, no options, protocol type 0x6558 and the VNI', () => {
      const d = datagram(ENCAP_GENEVE, 7, eth(BROADCAST, MAC_A))
      assert.deepEqual([...d.subarray(0, 8)], [0, 0, 0x65, 0x58, 0, 0, 7, 0])
      assert.equal(parseHeader(ENCAP_GENEVE, d, d.length), 8)
    })

    it('skips its options: the inner frame starts after optlen * 4 bytes', () => {
      for (const words of [1, 2, 63]) {
        const d = geneve(9, eth(BROADCAST, MAC_A, 5), words)
        const off = parseHeader(ENCAP_GENEVE, d, d.length)
        assert.equal(off, 8 + words * 4)
        assert.equal(d[off + 14], 5)
        assert.equal(vniAt(d), 9)
      }
    })

    it('is truncated at every length below header + options + 14', () => {
      const d = geneve(9, eth(BROADCAST, MAC_A), 3)
      for (let len = 0; len < 8 + 12 + 14; len++) assert.equal(parseHeader(ENCAP_GENEVE, d, len), PARSE_TRUNCATED, `length ${len}`)
      assert.equal(parseHeader(ENCAP_GENEVE, d, 34), 20)
    })

    it('refuses a control packet (O), a critical option (C), another version or another protocol type', () => {
      const inner = eth(BROADCAST, MAC_A)
      assert.equal(parseHeader(ENCAP_GENEVE, geneve(1, inner, 0, 0x80), 22), PARSE_BAD_HEADER, 'O')
      assert.equal(parseHeader(ENCAP_GENEVE, geneve(1, inner, 1, 0x40), 26), PARSE_BAD_HEADER, 'C')
      for (const v of [1, 2, 3]) assert.equal(parseHeader(ENCAP_GENEVE, geneve(1, inner, 0, 0, v), 22), PARSE_BAD_HEADER, `version ${v}`)
      for (const t of [0x0800, 0x86dd, 0x6559, 0]) assert.equal(parseHeader(ENCAP_GENEVE, geneve(1, inner, 0, 0, 0, t), 22), PARSE_BAD_HEADER, `type ${t}`)
      assert.equal(parseHeader(ENCAP_GENEVE, geneve(1, inner, 0, 0x3f), 22), 8, 'reserved bits ignored')
    })

    it('does not take a GENEVE header for VXLAN (its I flag is clear)', () => {
      const d = datagram(ENCAP_GENEVE, 7, eth(BROADCAST, MAC_A))
      assert.equal(parseHeader(ENCAP_VXLAN, d, d.length), PARSE_BAD_HEADER)
    })
  })

  describe('maxInnerFrame', () => {
    it('leaves room for IP, UDP and the header: 1464 on a 1500 IPv4 underlay, 1444 on IPv6', () => {
      assert.equal(maxInnerFrame(1500, false), 1464)
      assert.equal(maxInnerFrame(1500, true), 1444)
      assert.equal(maxInnerFrame(1280, false), 1244)
      assert.equal(maxInnerFrame(65535, false) + 8, 65507, 'the largest IPv4 UDP payload')
    })
  })

  describe('flowHash', () => {
    it('is stable per flow, and the same for the flow tagged or not', () => {
      const f = v4tcp(1000, 80)
      assert.equal(flowHash(f, 0, f.length, 5), flowHash(Buffer.from(f), 0, f.length, 5))
      const t = Buffer.concat([f.subarray(0, 12), Buffer.from('81000014', 'hex'), f.subarray(12)])
      assert.equal(flowHash(t, 0, t.length, 5), flowHash(f, 0, f.length, 5))
      const at = Buffer.concat([Buffer.alloc(3), f])
      assert.equal(flowHash(at, 3, f.length, 5), flowHash(f, 0, f.length, 5), 'read where it lies')
    })

    it('tells flows apart by addresses and ports, and ignores the payload', () => {
      const base = flowHash(v4tcp(1000, 80), 0, 60, 1)
      assert.notEqual(flowHash(v4tcp(1001, 80), 0, 60, 1), base)
      assert.notEqual(flowHash(v4tcp(1000, 81), 0, 60, 1), base)
      assert.notEqual(flowHash(v4tcp(1000, 80, 0x0a000003), 0, 60, 1), base)
      const other = v4tcp(1000, 80)
      other[50] = 0xff
      assert.equal(flowHash(other, 0, other.length, 1), base)
    })

    it('does not read ports of a later IPv4 fragment (it has none)', () => {
      const a = v4tcp(1000, 80)
      const b = v4tcp(2000, 90)
      a[20] = 0x00; a[21] = 0x10; b[20] = 0x00; b[21] = 0x10 // fragment offset 16
      assert.equal(flowHash(a, 0, a.length, 1), flowHash(b, 0, b.length, 1))
    })

    it('hashes IPv6 addresses and ports', () => {
      const f = frame('020000000002 020000000001 86dd 60000000 0008 11 40' + '20010db8'.padEnd(32, '0') + '20010db8'.padEnd(31, '0') + '1' + '0400 0035 0008 0000')
      const g = Buffer.from(f)
      g.writeUInt16BE(0x0401, 54)
      assert.notEqual(flowHash(f, 0, f.length, 1), flowHash(g, 0, g.length, 1))
      assert.equal(flowHash(f, 0, f.length, 1), flowHash(Buffer.from(f), 0, f.length, 1))
    })

    it('falls back to the MACs and EtherType for frames that are not IP, and survives runts', () => {
      assert.notEqual(flowHash(eth(MAC_B, MAC_A), 0, 60, 1), flowHash(eth(MAC_A, MAC_B), 0, 60, 1))
      for (let len = 0; len < 60; len++) assert.ok(Number.isInteger(flowHash(tagged(MAC_B, MAC_A, 5), 0, len, 1)))
    })

    it('spreads flows over the sending sockets', () => {
      const n = 16
      const used = new Array<number>(n).fill(0)
      const flows = 4096
      for (let i = 0; i < flows; i++) {
        const f = v4tcp(1024 + i, 443)
        const k = socketIndex(flowHash(f, 0, f.length, 0x1234), n)
        used[k] = (used[k] as number) + 1
      }
      // Each socket near its share (256): a hash that spread badly would leave some far off.
      for (const u of used) assert.ok(u > 256 / 2 && u < 256 * 2, `a socket got ${u} of ${flows} flows`)
    })
  })

  it('picks a socket index in range for any hash', () => {
    for (const h of [0, 1, 0x7fffffff, 0x80000000, 0xffffffff]) for (const n of [1, 2, 16, 64]) {
      const i = socketIndex(h, n)
      assert.ok(i >= 0 && i < n)
    }
  })
})
