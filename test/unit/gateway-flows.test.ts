/**
 * Issue 21, finding 3: the model of the host sockets libslirp holds for the
 * stations (core/gateway-flows.ts), each client's share of them, and when
 * they end. The clock is injected: nothing sleeps.
 */

import assert from 'node:assert/strict'
import { GatewayFlows, UDP_IDLE_MS, UDP_DNS_IDLE_MS, EMBRYONIC_MS, CLOSE_MARGIN_MS, FIN_WAIT_MS, ICMP_IDLE_MS } from '../../src/switch/core/gateway-flows'
import { ip4, TCP, UDP, ICMP, SYN, ACK, RST, FIN, PSH, GW_MAC } from '../helpers/ipv4'
import { Rng } from '../helpers/rawws'

const S = 1000
const HOUR = 3600 * S
const MAC_A = 0x020000000001
const MAC_A2 = 0x020000000011 // another port of A's address
const MAC_B = 0x020000000002

function table (maxFlows = 64, flowsPerClient = 4): GatewayFlows {
  const keys = new Map([[MAC_A, 'address 192.0.2.10'], [MAC_A2, 'address 192.0.2.10'], [MAC_B, 'port 7']])
  return new GatewayFlows({ maxFlows, flowsPerClient, clientOf: (_vid, mac) => keys.get(mac) ?? 'unknown', isPublishedUdp: () => false, seed: 42 })
}

/** A station's frame into the table: true if it may go on. */
function out (t: GatewayFlows, f: Buffer, now = 0): boolean { return t.egress(f, 0, 14, f.length, 1, now) }
/** A frame from the gateway to a station. */
function back (t: GatewayFlows, f: Buffer, now = 0): void { t.ingress(f, 14, f.length, now) }

const udpOut = (sport: number, o: { dst?: string, dport?: number, smac?: number, src?: string } = {}): Buffer =>
  ip4({ proto: UDP, src: o.src ?? '10.0.2.15', dst: o.dst ?? '198.51.100.1', sport, dport: o.dport ?? 9, smac: o.smac ?? MAC_A })
const udpBack = (dport: number, sport = 53, from = '198.51.100.1'): Buffer =>
  ip4({ proto: UDP, src: from, dst: '10.0.2.15', sport, dport, smac: GW_MAC, dmac: MAC_A })
const seg = (flags: number, o: { sport?: number, seq?: number, ack?: number, payload?: Buffer, smac?: number } = {}): Buffer =>
  ip4({ proto: TCP, src: '10.0.2.15', dst: '198.51.100.1', sport: o.sport ?? 40000, dport: 443, flags, seq: o.seq ?? 1000, ack: o.ack ?? 0, payload: o.payload, smac: o.smac ?? MAC_A })
const segBack = (flags: number, o: { dport?: number, seq?: number, ack?: number, win?: number } = {}): Buffer =>
  ip4({ proto: TCP, src: '198.51.100.1', dst: '10.0.2.15', sport: 443, dport: o.dport ?? 40000, flags, seq: o.seq ?? 5000, ack: o.ack ?? 1001, win: o.win ?? 8192, smac: GW_MAC, dmac: MAC_A })

/** SYN out, SYN-ACK back: an open connection (station's next sequence 1001, the gateway's 5001). */
function connect (t: GatewayFlows, sport = 40000, now = 0): void {
  assert.ok(out(t, seg(SYN, { sport }), now))
  back(t, segBack(SYN | ACK, { dport: sport }), now)
}

describe('GatewayFlows', () => {
  describe('shares', () => {
    it('UDP: one flow per (station address, source port), whatever the destination', () => {
      const t = table()
      assert.ok(out(t, udpOut(40000, { dst: '198.51.100.1' })))
      assert.ok(out(t, udpOut(40000, { dst: '198.51.100.2', dport: 53 })))
      assert.ok(out(t, udpOut(40000, { dst: '10.0.2.3', dport: 53 })))
      assert.equal(t.flows, 1)
      assert.ok(out(t, udpOut(40001)))
      assert.ok(out(t, udpOut(40000, { src: '10.0.2.16' })))
      assert.equal(t.flows, 3)
    })

    it('attack: a client gets flowsPerClient flows, one per source port, and no more; another client is not affected', () => {
      const t = table(64, 4)
      const passed = [0, 1, 2, 3, 4, 5].map((i) => out(t, udpOut(20000 + i)))
      assert.deepEqual(passed, [true, true, true, true, false, false])
      assert.ok(out(t, udpOut(20000)), 'its existing flows carry on')
      assert.ok(out(t, udpOut(20000, { smac: MAC_B, src: '10.0.2.16' })), 'another client')
      assert.deepEqual([t.flows, t.flowsOf('address 192.0.2.10'), t.flowsOf('port 7'), t.clients], [5, 4, 1, 2])
    })

    it('attack: two ports of one client address share one share (the key is the client, not the port)', () => {
      const t = table(64, 4)
      for (let i = 0; i < 3; i++) assert.ok(out(t, udpOut(20000 + i)))
      assert.ok(out(t, udpOut(30000, { smac: MAC_A2, src: '10.0.2.17' })))
      assert.ok(!out(t, udpOut(30001, { smac: MAC_A2, src: '10.0.2.17' })))
      assert.equal(t.flowsOf('address 192.0.2.10'), 4)
    })

    it('holds the total at maxFlows whatever the shares', () => {
      const t = table(16, 16)
      for (let i = 0; i < 10; i++) assert.ok(out(t, udpOut(20000 + i)))
      for (let i = 0; i < 6; i++) assert.ok(out(t, udpOut(20000 + i, { smac: MAC_B, src: '10.0.2.16' })))
      assert.ok(!out(t, udpOut(20100, { smac: MAC_B, src: '10.0.2.16' })))
      assert.ok(!out(t, seg(SYN, { smac: MAC_B })))
      assert.equal(t.flows, 16)
    })

    it('clear() (the child restarted: its sockets are gone) frees every share', () => {
      const t = table(64, 4)
      for (let i = 0; i < 4; i++) out(t, udpOut(20000 + i))
      t.clear()
      assert.deepEqual([t.flows, t.clients], [0, 0])
      for (let i = 0; i < 4; i++) assert.ok(out(t, udpOut(21000 + i)))
    })
  })

  describe('UDP expiry (slirp: 240 s after the last datagram, 10 s after a DNS reply)', () => {
    it('ends 240 s after the last datagram either way', () => {
      const t = table()
      out(t, udpOut(40000), 0)
      back(t, udpBack(40000, 9), 100 * S)
      t.expire(100 * S + UDP_IDLE_MS)
      assert.equal(t.flows, 1, 'not before 240 s and the slack')
      t.expire(100 * S + UDP_IDLE_MS + 2 * S)
      assert.equal(t.flows, 0)
    })

    it('ends 10 s after a reply when the station last sent to port 53, 240 s again once it sends', () => {
      const t = table()
      out(t, udpOut(40000, { dport: 53 }), 0)
      t.expire(UDP_DNS_IDLE_MS + 5 * S)
      assert.equal(t.flows, 1, 'no reply yet: slirp keeps it 240 s')
      back(t, udpBack(40000), S)
      t.expire(S + UDP_DNS_IDLE_MS + 1 * S)
      assert.equal(t.flows, 1)
      t.expire(S + UDP_DNS_IDLE_MS + 2 * S)
      assert.equal(t.flows, 0)
      out(t, udpOut(40001, { dport: 53 }), 0)
      back(t, udpBack(40001), S)
      out(t, udpOut(40001, { dport: 53 }), 2 * S)
      t.expire(2 * S + UDP_DNS_IDLE_MS + 2 * S)
      assert.equal(t.flows, 1)
    })

    it('attack: a datagram to port 53 that slirp drops (bad checksum, TTL 0) leaves the hold at 240 s: slirp records the port only of one it accepts', () => {
      for (const bad of [{ badChecksum: true }, { ttl: 0 }]) {
        const t = table()
        out(t, udpOut(40000, { dport: 9 }), 0) // slirp's socket: last port 9
        out(t, ip4({ proto: UDP, src: '10.0.2.15', dst: '10.0.2.3', sport: 40000, dport: 53, smac: MAC_A, payload: Buffer.from('q'), ...bad }), 0)
        back(t, udpBack(40000, 9), S)
        t.expire(S + UDP_DNS_IDLE_MS + 3 * S)
        assert.equal(t.flows, 1, JSON.stringify(bad))
        t.expire(S + UDP_IDLE_MS + 2 * S)
        assert.equal(t.flows, 0)
      }
    })
  })

  describe('TCP', () => {
    it('a bare SYN opens one flow (its retransmissions none more); other segments without a flow open none', () => {
      const t = table()
      assert.ok(out(t, seg(SYN)))
      assert.ok(out(t, seg(SYN)))
      assert.equal(t.flows, 1)
      assert.ok(out(t, seg(ACK, { sport: 41000 })))
      assert.ok(out(t, seg(SYN | ACK, { sport: 41001 })))
      assert.ok(out(t, seg(SYN | FIN, { sport: 41002 })))
      assert.equal(t.flows, 1)
    })

    it('an embryonic flow (no SYN-ACK) ends 75 s after its SYN (slirp\'s KEEP_INIT), retransmissions or not', () => {
      const t = table()
      out(t, seg(SYN), 0)
      out(t, seg(SYN), 60 * S)
      t.expire(EMBRYONIC_MS + S)
      assert.equal(t.flows, 1)
      t.expire(EMBRYONIC_MS + 2 * S)
      assert.equal(t.flows, 0)
    })

    it('an open flow lives however long it idles (slirp sends no keepalives)', () => {
      const t = table()
      connect(t)
      t.expire(1000 * HOUR)
      assert.equal(t.flows, 1)
    })

    it('ends 30 s after the gateway\'s RST|ACK (only a freed socket sends one)', () => {
      const t = table()
      connect(t)
      back(t, segBack(RST | ACK, { seq: 5001 }), 10 * S)
      t.expire(10 * S + CLOSE_MARGIN_MS - 1)
      assert.equal(t.flows, 1)
      t.expire(10 * S + CLOSE_MARGIN_MS)
      assert.equal(t.flows, 0)
    })

    it('attack: a bare RST from the gateway before it went past SYN_RECEIVED is not a close (slirp keeps the socket after a bad ACK)', () => {
      const t = table()
      connect(t)
      back(t, segBack(RST, { seq: 77 }), S)
      t.expire(HOUR)
      assert.equal(t.flows, 1)
      back(t, segBack(ACK, { seq: 5001 }), HOUR) // an ACK: slirp is established
      back(t, segBack(RST, { seq: 5001 }), HOUR)
      t.expire(HOUR + CLOSE_MARGIN_MS)
      assert.equal(t.flows, 0)
    })

    it('ends 30 s after a station\'s RST that slirp must accept (checksums right, at or left of the advertised edge)', () => {
      const t = table()
      connect(t)
      assert.ok(out(t, seg(RST, { seq: 1001 }), S))
      t.expire(S + CLOSE_MARGIN_MS)
      assert.equal(t.flows, 0)
    })

    it('attack: a station\'s RST that slirp drops (bad checksum, TTL 0, beyond the window, before the SYN-ACK) frees nothing', () => {
      const t = table()
      connect(t)
      const bad = seg(RST, { seq: 1001 }); bad[14 + 20 + 17] = (bad[14 + 20 + 17] as number) ^ 0xff
      out(t, bad, S)
      out(t, seg(RST, { seq: 1001 + 8192 + 1 }), S) // one past the right edge (ack 1001 + window 8192)
      out(t, seg(RST, { seq: 1001 + 0x40000000 }), S)
      out(t, ip4({ proto: TCP, src: '10.0.2.15', dst: '198.51.100.1', sport: 40000, dport: 443, flags: RST, seq: 1001, smac: MAC_A, ttl: 0 }), S) // ip_input drops TTL 0
      t.expire(HOUR)
      assert.equal(t.flows, 1)
      const early = table()
      out(early, seg(SYN), 0)
      out(early, seg(RST, { seq: 1001 }), S) // slirp is still connecting: it drops everything
      early.expire(EMBRYONIC_MS + S)
      assert.equal(early.flows, 1)
    })

    it('ends 30 s after both FINs, the station\'s acknowledged by the gateway', () => {
      const t = table()
      connect(t)
      out(t, seg(FIN | ACK, { seq: 1001, ack: 5001 }), S)
      back(t, segBack(FIN | ACK, { seq: 5001, ack: 1002 }), 2 * S)
      out(t, seg(ACK, { seq: 1002, ack: 5002 }), 2 * S)
      t.expire(2 * S + CLOSE_MARGIN_MS)
      assert.equal(t.flows, 0)
    })

    it('attack: a station that never acknowledges the gateway\'s FIN (slirp in LAST_ACK retransmits it for ~10 minutes) keeps its share 700 s, not 30', () => {
      const close = (last: Buffer | undefined): GatewayFlows => {
        const t = table()
        connect(t)
        out(t, seg(FIN | ACK, { seq: 1001, ack: 5001 }), S)
        back(t, segBack(ACK, { seq: 5001, ack: 1002 }), S)
        back(t, segBack(FIN | ACK, { seq: 5001, ack: 1002 }), 2 * S)
        if (last !== undefined) out(t, last, 2 * S)
        t.expire(2 * S + CLOSE_MARGIN_MS)
        return t
      }
      assert.equal(close(undefined).flows, 1, 'no ACK of the gateway\'s FIN')
      assert.equal(close(seg(ACK, { seq: 1002, ack: 5001 })).flows, 1, 'an ACK short of the FIN')
      assert.equal(close(ip4({ proto: TCP, src: '10.0.2.15', dst: '198.51.100.1', sport: 40000, dport: 443, flags: ACK, seq: 1002, ack: 5002, smac: MAC_A, ttl: 0 })).flows, 1, 'an ACK slirp drops (TTL 0)')
      assert.equal(close(seg(ACK, { seq: 1002 + 8192 + 1, ack: 5002 })).flows, 1, 'an ACK beyond the window (slirp drops it)')
      assert.equal(close(seg(ACK, { seq: 1002, ack: 5002 })).flows, 0, 'the ACK of the FIN: closed')
      const t = close(undefined)
      t.expire(2 * S + FIN_WAIT_MS)
      assert.equal(t.flows, 0, 'gone once slirp must have given up')
    })

    it('attack: a FIN slirp did not take (data over its place, a FIN elsewhere, a bad checksum) is not believed: 700 s after the gateway\'s FIN', () => {
      const cases: Array<(t: GatewayFlows) => void> = [
        (t) => { out(t, seg(FIN | ACK, { seq: 1001 })); out(t, seg(ACK | PSH, { seq: 1001, payload: Buffer.alloc(10) })) },
        (t) => { out(t, seg(ACK | PSH, { seq: 1001, payload: Buffer.alloc(10) })); out(t, seg(FIN | ACK, { seq: 1001 })) },
        (t) => { out(t, seg(FIN | ACK, { seq: 1001 })); out(t, seg(FIN | ACK, { seq: 1005 })) },
        (t) => { const f = seg(FIN | ACK, { seq: 1001 }); f[14 + 20 + 16] = (f[14 + 20 + 16] as number) ^ 1; out(t, f) }
      ]
      for (const [n, trick] of cases.entries()) {
        const t = table()
        connect(t)
        trick(t)
        back(t, segBack(FIN | ACK, { seq: 5001, ack: 1012 }), S)
        t.expire(S + CLOSE_MARGIN_MS)
        assert.equal(t.flows, 1, `case ${n}: not closed after 30 s`)
        t.expire(S + FIN_WAIT_MS)
        assert.equal(t.flows, 0, `case ${n}: gone after slirp's FIN_WAIT_2 limit`)
      }
    })

    it('a SYN on a closed 4-tuple opens it again without a second share', () => {
      const t = table()
      connect(t)
      back(t, segBack(RST | ACK), S)
      assert.ok(out(t, seg(SYN), 2 * S))
      assert.equal(t.flows, 1)
      t.expire(2 * S + CLOSE_MARGIN_MS)
      assert.equal(t.flows, 1, 'embryonic again')
      t.expire(2 * S + EMBRYONIC_MS + 2 * S)
      assert.equal(t.flows, 0)
    })
  })

  describe('ICMP echo (one socket per request)', () => {
    const echo = (seq: number): Buffer => ip4({ proto: ICMP, dst: '198.51.100.1', id: 9, icmpSeq: seq, smac: MAC_A })
    const reply = (seq: number): Buffer => ip4({ proto: ICMP, src: '198.51.100.1', dst: '10.0.2.15', type: 0, id: 9, icmpSeq: seq, smac: GW_MAC, dmac: MAC_A })

    it('attack: counts every request, duplicates too, within the share; a reply or an error about it ends one', () => {
      const t = table(64, 4)
      for (let i = 0; i < 3; i++) assert.ok(out(t, echo(1)))
      assert.ok(out(t, echo(2)))
      assert.ok(!out(t, echo(1)), 'a fifth socket is over the share')
      assert.equal(t.flows, 4)
      back(t, reply(1))
      assert.equal(t.flows, 3)
      // Host unreachable, quoting the request (its IPv4 header and 8 bytes).
      const quoted = echo(2).subarray(14, 14 + 28)
      back(t, ip4({ proto: ICMP, src: '10.0.2.2', dst: '10.0.2.15', type: 3, id: 0, icmpSeq: 0, payload: quoted, smac: GW_MAC, dmac: MAC_A }))
      assert.equal(t.flows, 2)
      t.expire(ICMP_IDLE_MS + 2 * S)
      assert.equal(t.flows, 0)
    })
  })

  describe('the table', () => {
    it('keeps every flow findable through random opens and expiries (backward-shift deletion), as a plain Map would', () => {
      const rng = new Rng(2112)
      const t = new GatewayFlows({ maxFlows: 96, flowsPerClient: 40, clientOf: (_v, mac) => `c${mac}`, isPublishedUdp: () => false, seed: 7 })
      const model = new Map<string, { client: number, seen: number }>()
      let now = 0
      for (let step = 0; step < 20_000; step++) {
        if (rng.bool(0.02)) {
          now += rng.int(0, 300) * S
          t.expire(now)
          for (const [k, v] of model) if (now >= v.seen + UDP_IDLE_MS + 2 * S) model.delete(k)
          assert.equal(t.flows, model.size, `step ${step}: the count after expiry`)
          continue
        }
        const client = rng.int(1, 4)
        const sport = rng.int(1, 60)
        const key = `${client}:${sport}`
        const own = [...model.values()].filter((v) => v.client === client).length
        const expected = model.has(key) || (own < 40 && model.size < 96)
        const f = udpOut(sport, { smac: client, src: `10.0.2.${20 + client}` })
        assert.equal(t.egress(f, 0, 14, f.length, 1, now), expected, `step ${step}: ${key}`)
        if (expected) model.set(key, { client, seen: now })
      }
    })
  })
})
