/** The web console's capture decoder (src/ui/decode.ts): one line per frame, and a pcap reader fed in pieces. */
import assert from 'node:assert/strict'
import { describeFrame, ipv6Text, PcapReader } from '../../src/ui/decode'
import { pcapHeader } from '../../src/switch/control/capture'
import { frame } from '../helpers/frames'

const ETH = '020000000002 020000000001'

describe('console decode', () => {
  describe('describeFrame()', () => {
    it('describes ARP requests and replies', () => {
      const req = frame(`ffffffffffff 020000000001 0806 0001 0800 06 04 0001 020000000001 0a000001 000000000000 0a000002`, 60)
      assert.equal(describeFrame(req), '02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff, ARP who-has 10.0.0.2 tell 10.0.0.1, length 60')
      const rep = frame(`${ETH} 0806 0001 0800 06 04 0002 020000000002 0a000002 020000000001 0a000001`, 60)
      assert.equal(describeFrame(rep), '02:00:00:00:00:01 > 02:00:00:00:00:02, ARP reply 10.0.0.2 is-at 02:00:00:00:00:02, length 60')
    })

    it('describes IPv4 TCP with flags and UDP with ports, behind a VLAN tag', () => {
      const tcp = frame(`${ETH} 8100 0064 0800 45000028 00004000 4006 0000 0a000001 0a000002 d431 0050 00000001 00000000 5002 ffff 0000 0000`)
      assert.equal(describeFrame(tcp), '02:00:00:00:00:01 > 02:00:00:00:00:02, vlan 100, IPv4 10.0.0.1:54321 > 10.0.0.2:80: TCP [SYN] seq 1 len 0, length 58')
      const udp = frame(`${ETH} 0800 45000020 00000000 4011 0000 0a000001 0a000002 0035 c000 000c 0000 61626364`)
      assert.equal(describeFrame(udp), '02:00:00:00:00:01 > 02:00:00:00:00:02, IPv4 10.0.0.1:53 > 10.0.0.2:49152: UDP len 4, length 46')
    })

    it('describes IPv6 ICMPv6 neighbor solicitations and echo', () => {
      const src = 'fe800000000000000000000000000001'; const dst = 'ff0200000000000000000001ff000002'
      const ns = frame(`333300000002 020000000001 86dd 60000000 0018 3a ff ${src} ${dst} 8700 0000 00000000 fe800000000000000000000000000002`)
      assert.equal(describeFrame(ns), '02:00:00:00:00:01 > 33:33:00:00:00:02, IPv6 fe80::1 > ff02::1:ff00:2: ICMP6 neighbor solicitation fe80::2, length 78')
      const echo = frame(`${ETH} 86dd 60000000 0008 3a 40 ${src} fe800000000000000000000000000002 8000 0000 0007 0001`)
      assert.match(describeFrame(echo), /ICMP6 echo request id 7 seq 1/)
    })

    it('names other ethertypes and BPDUs, and says when a frame is short', () => {
      assert.match(describeFrame(frame(`${ETH} 88cc 0000`)), /LLDP/)
      assert.match(describeFrame(frame('0180c2000000 020000000001 0026 424203 0000', 60)), /STP BPDU/)
      assert.equal(describeFrame(frame('0102')), 'runt frame, 2 bytes')
      assert.match(describeFrame(frame(`${ETH} 0800 4500`)), /IPv4 \(truncated\)/)
      assert.match(describeFrame(frame(`${ETH} 0800 45000014 00000000 4006 0000 0a000001 0a000002`)), /TCP \(truncated\)/)
    })

    it('attack: never throws on random frames', () => {
      let seed = 17
      const rnd = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed }
      for (let i = 0; i < 5000; i++) {
        const f = new Uint8Array(rnd() % 120)
        for (let j = 0; j < f.length; j++) f[j] = rnd() & 255
        if (f.length >= 14 && i % 2 === 0) { f[12] = 0x08; f[13] = i % 4 === 0 ? 0x00 : 0x06 }
        if (f.length >= 14 && i % 3 === 0) { f[12] = 0x86; f[13] = 0xdd }
        assert.equal(typeof describeFrame(f), 'string')
      }
    })
  })

  it('ipv6Text() shortens the longest run of zeros (RFC 5952)', () => {
    const b = Buffer.from('20010db8000000000001000000000001', 'hex')
    assert.equal(ipv6Text(b, 0), '2001:db8::1:0:0:1')
    assert.equal(ipv6Text(Buffer.alloc(16), 0), '::')
  })

  describe('PcapReader', () => {
    function record (f: Buffer): Buffer {
      const h = Buffer.alloc(16)
      h.writeUInt32LE(1700000000, 0); h.writeUInt32LE(250000, 4); h.writeUInt32LE(f.length, 8); h.writeUInt32LE(f.length, 12)
      return Buffer.concat([h, f])
    }

    it('returns whole records however the stream is cut', () => {
      const a = frame(`${ETH} 0800`, 60); const b = frame(`${ETH} 86dd`, 70)
      const stream = Buffer.concat([pcapHeader(), record(a), record(b)])
      for (const cut of [1, 7, 23, 24, 30, 100]) {
        const r = new PcapReader()
        const got = [...r.push(stream.subarray(0, cut)), ...r.push(stream.subarray(cut))]
        assert.equal(got.length, 2, `cut at ${cut}`)
        assert.deepEqual(Buffer.from(got[1]?.frame ?? []), b)
        assert.equal(got[0]?.timeMs, 1700000000250)
      }
    })

    it('attack: refuses a stream that is not pcap, or a record beyond the snap length', () => {
      const r = new PcapReader()
      assert.deepEqual(r.push(Buffer.from('<html>not a capture at all</html>')), [])
      assert.equal(r.error, 'not a pcap stream')
      const huge = Buffer.alloc(16); huge.writeUInt32LE(1 << 30, 8)
      const s = new PcapReader()
      s.push(Buffer.concat([pcapHeader(), huge]))
      assert.match(s.error ?? '', /record of/)
    })
  })
})
