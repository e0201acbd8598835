/**
 * The host sockets libslirp holds for the stations, modelled from both
 * directions of the gateway port, so that each client gets a bounded share
 * (issue 21, finding 3: one station's 20,052 UDP datagrams, one per source
 * port, took the child's 20,000 descriptors, and NAT, DNS and published
 * ports stopped for everyone for 240 s).
 *
 * The model over-approximates libslirp 4.7.0: whenever slirp may hold a
 * socket, a flow is here. A frame that would open a flow beyond its
 * client's share (`flowsPerClient`) or the gateway's total (`maxFlows`) is
 * refused (GatewayPort drops it, reason `flows`); the client's existing
 * flows carry on. What slirp opens, and when it lets go:
 *
 *  - UDP: one socket per (station address, source port), whatever the
 *    destination (udp.c solookup on the local side only), kept until 240 s
 *    after its last datagram either way (SO_EXPIRE), 10 s after a reply when
 *    the station's last datagram that slirp accepted went to port 53
 *    (SO_EXPIREFAST; socket.c sorecvfrom; one slirp drops, a bad checksum
 *    or TTL 0, leaves the port it had);
 *  - TCP: one per 4-tuple, opened by a bare SYN. Until the gateway answers
 *    (SYN-ACK: slirp's own connect() succeeded) it is embryonic, dropped by
 *    slirp's KEEP_INIT timer 75 s after the SYN. Once open it lives until it
 *    closes, however long it idles (slirp sends no keepalives). Closed: an RST
 *    from the gateway that only a freed socket sends (RST|ACK, or any RST once
 *    slirp is past SYN_RECEIVED), a station's RST that slirp must accept
 *    (checksums right, TTL not 0, at or left of the right edge the gateway
 *    advertised), or both FINs, each acknowledged (the station's by the
 *    gateway and never overlapped by data, the gateway's by the station in a
 *    segment slirp must take); then 30 s after its last frame (slirp's 2MSL
 *    is 10 s). The gateway's FIN without such a close: 700 s after the last
 *    frame (slirp's FIN_WAIT_2 idle limit, 600 s and a 75 s probe; and slirp
 *    retransmits an unacknowledged FIN about 10 minutes, halving its MSS:
 *    tcp_timer.c), however well a station hides those retransmissions (its
 *    ARP entry pushed out of slirp's table). Every close the model believes
 *    is one slirp must have accepted;
 *  - ICMP echo: one socket per request (ip_icmp.c icmp_send; duplicates
 *    each take one), until its reply or an ICMP error about it, or 240 s;
 *  - published UDP ports (hostfwd): slirp's socket is its own and lasting;
 *    a peer that sent to a station through it is kept here 240 s (`peer`), so
 *    that the station may answer that peer and no other port of this host.
 *    Peers share one budget of flowsPerClient and count in no client's share.
 *
 * The flows live in a FlowTable (core/flow-table.ts: typed arrays, integer
 * keys, sized by maxFlows at construction), the clients' shares in
 * FlowShares (core/flow-shares.ts). A frame of an existing flow costs a hash
 * and a probe and allocates nothing; a new flow looks its client's share up
 * by the client's key once. Expiry walks the table once a
 * second from the switch's tick, never per frame. When the child
 * restarts, its sockets are gone and so is the table (clear()).
 */

import { TCP_OPEN_MASK, tcpSegmentValid, udpDatagramValid } from './l4-valid'
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK } from '../../common/ethernet'
import { FlowTable, EMPTY } from './flow-table'
import { FlowShares } from './flow-shares'

const K_UDP = 1
const K_TCP = 2
const K_ICMP = 3
const K_PEER = 4

/** TCP states, as bits. */
const T_SYNACK = 1 // the gateway answered the SYN: slirp's connect() succeeded
const T_EST = 2 // the gateway sent a segment without SYN or RST: slirp is past SYN_RECEIVED
const T_EDGE = 4 // ackMax and edge hold what the gateway advertised
const T_FIN_OUT = 8 // the station sent a valid FIN at finSeq
const T_FIN_BAD = 16 // ... that is not believed (data over it, or another FIN elsewhere)
const T_FIN_OUT_ACKED = 32 // the gateway acknowledged that FIN
const T_FIN_IN = 64 // the gateway sent its FIN
const T_CLOSED = 128 // an RST slirp acted on
const T_FIN_IN_ACKED = 256 // the station acknowledged the gateway's FIN, in a segment slirp must take
/** UDP: the station last sent to port 53 (a reply then shortens slirp's expiry), and the last event was such a reply. */
const U_DNS = 1
const U_FAST = 2

const S = 1000
/** Slack on every timeout: slirp's clock and ours tick apart. */
const SLACK_MS = 2 * S
export const UDP_IDLE_MS = 240 * S
export const UDP_DNS_IDLE_MS = 10 * S
export const EMBRYONIC_MS = 75 * S
export const CLOSE_MARGIN_MS = 30 * S
export const FIN_WAIT_MS = 700 * S
export const ICMP_IDLE_MS = 240 * S
/** Sequence numbers further than this from what the gateway acknowledged are outside any window slirp keeps (64 KiB, unscaled). */
const SEQ_SANE = 1 << 30

/** 32-bit sequence difference a - b, signed. */
function seqDiff (a: number, b: number): number { return (a - b) | 0 }

export interface GatewayFlowsOptions {
  maxFlows: number
  flowsPerClient: number
  /** A station's client key (Port.clientKey) from the frame's VLAN and source MAC: asked once per new flow. */
  clientOf: (vid: number, mac: number) => string
  /** Is (UDP, address, port) published? */
  isPublishedUdp: (guest: number, port: number) => boolean
  /** Hash seed; random by default. */
  seed?: number
}

export class GatewayFlows {
  readonly maxFlows: number
  readonly flowsPerClient: number
  /** Host sockets the model says slirp holds for stations (ICMP requests each count). */
  flows = 0
  /** Peers of published UDP ports being remembered. */
  peers = 0
  private readonly t: FlowTable
  /** Per flow: state bits, client share, requests (ICMP), last frame and start (ms), and TCP sequence marks. */
  private readonly st: Uint16Array
  private readonly share: Int32Array
  private readonly count: Uint32Array
  private readonly seen: Float64Array
  private readonly born: Float64Array
  private readonly ackMax: Uint32Array
  private readonly edge: Uint32Array
  private readonly sndMax: Uint32Array
  private readonly finSeq: Uint32Array
  /** The sequence number just past the gateway's FIN: what the station's ACK of it says. */
  private readonly finIn: Uint32Array
  /** Client shares; share 0 is the peers' budget. */
  private readonly shares: FlowShares

  constructor (private readonly o: GatewayFlowsOptions) {
    this.maxFlows = o.maxFlows
    this.flowsPerClient = o.flowsPerClient
    const t = new FlowTable(2 * (o.maxFlows + o.flowsPerClient), (o.seed ?? Math.floor(Math.random() * 0x100000000)) >>> 0)
    this.t = t
    this.st = t.column((n) => new Uint16Array(n)); this.share = t.column((n) => new Int32Array(n)); this.count = t.column((n) => new Uint32Array(n))
    this.seen = t.column((n) => new Float64Array(n)); this.born = t.column((n) => new Float64Array(n))
    this.ackMax = t.column((n) => new Uint32Array(n)); this.edge = t.column((n) => new Uint32Array(n))
    this.sndMax = t.column((n) => new Uint32Array(n)); this.finSeq = t.column((n) => new Uint32Array(n)); this.finIn = t.column((n) => new Uint32Array(n))
    this.shares = new FlowShares(o.maxFlows + 2, o.flowsPerClient)
  }

  /** Clients holding flows now. */
  get clients (): number { return this.shares.clients }

  /** Flows the client `key` holds. */
  flowsOf (key: string): number { return this.shares.flowsOf(key) }

  private find (k: number, a: number, b: number, c: number, d: number): number { return this.t.find(k, a, b, c, d) }

  /** A slot for a new flow of share `s` (room() said there is room). */
  private insert (k: number, a: number, b: number, c: number, d: number, s: number, nowMs: number): number {
    const i = this.t.insert(k, a, b, c, d)
    this.share[i] = s; this.count[i] = 1; this.st[i] = 0
    this.seen[i] = nowMs; this.born[i] = nowMs
    this.shares.add(s, 1)
    if (k === K_PEER) this.peers++; else this.flows++
    return i
  }

  /** The share index of the client of this frame, made on first use; -1 if that client (or the total) has no room. */
  private room (vid: number, mac: number): number {
    if (this.flows >= this.maxFlows) return -1
    return this.shares.room(this.o.clientOf(vid, mac))
  }

  /** Forget the flow in slot i. */
  private remove (i: number): void {
    const k = this.t.kind[i]
    const n = k === K_ICMP ? this.count[i] as number : 1
    this.shares.release(this.share[i] as number, n)
    if (k === K_PEER) this.peers--; else this.flows -= n
    this.t.remove(i)
  }

  /**
   * A frame from a station to the gateway that may open a host socket
   * (GatewayFilter's V_FLOW): true if it may go on to slirp, false if it
   * would open a flow beyond its client's share or the total.
   */
  egress (buf: Buffer, off: number, l3: number, end: number, vid: number, nowMs: number): boolean {
    const proto = buf[l3 + 9]
    const l4 = l3 + ((buf[l3] as number) & 15) * 4
    const src = buf.readUInt32BE(l3 + 12)
    if (proto === IPPROTO_UDP) {
      const sport = buf.readUInt16BE(l4)
      let i = this.find(K_UDP, src, sport, 0, 0)
      if (i < 0) {
        const s = this.room(vid, buf.readUIntBE(off + 6, 6))
        if (s < 0) return false
        i = this.insert(K_UDP, src, sport, 0, 0, s, nowMs)
      }
      this.seen[i] = nowMs
      // slirp records the port only of a datagram it accepted: one it drops must not shorten its hold to DNS's 10 s.
      this.st[i] = buf.readUInt16BE(l4 + 2) === 53 && udpDatagramValid(buf, l3, end) ? U_DNS : 0
      return true
    }
    if (proto === IPPROTO_ICMP) {
      const dst = buf.readUInt32BE(l3 + 16)
      const idSeq = buf.readUInt32BE(l4 + 4)
      const i = this.find(K_ICMP, src, idSeq, dst, 0)
      if (i < 0) {
        const s = this.room(vid, buf.readUIntBE(off + 6, 6))
        if (s < 0) return false
        this.insert(K_ICMP, src, idSeq, dst, 0, s, nowMs)
        return true
      }
      // A duplicate request is one more socket (slirp looks none up for echo).
      const s = this.share[i] as number
      if (this.flows >= this.maxFlows || !this.shares.hasRoom(s)) return false
      this.count[i] = (this.count[i] as number) + 1; this.shares.add(s, 1); this.flows++
      this.seen[i] = nowMs
      return true
    }
    if (proto !== IPPROTO_TCP) return true
    const sport = buf.readUInt16BE(l4)
    const dst = buf.readUInt32BE(l3 + 16)
    const dport = buf.readUInt16BE(l4 + 2)
    const flags = buf[l4 + 13] as number
    let i = this.find(K_TCP, src, sport, dst, dport)
    if ((flags & TCP_OPEN_MASK) === TCP_SYN) {
      if (i < 0) {
        const s = this.room(vid, buf.readUIntBE(off + 6, 6))
        if (s < 0) return false
        i = this.insert(K_TCP, src, sport, dst, dport, s, nowMs)
        return true
      }
      // A SYN on a closed tuple starts it again (slirp: at most one socket per 4-tuple).
      if (((this.st[i] as number) & T_CLOSED) !== 0) { this.st[i] = 0; this.born[i] = nowMs }
    }
    if (i < 0) return true // slirp opens nothing for it: an RST answers
    this.seen[i] = nowMs
    this.stationSegment(i, buf, l3, l4, end, flags)
    return true
  }

  /** What a station's segment tells of a TCP flow: only what slirp must have accepted. */
  private stationSegment (i: number, buf: Buffer, l3: number, l4: number, end: number, flags: number): void {
    let st = this.st[i] as number
    if ((st & T_EDGE) === 0) return // before the gateway acknowledged anything, slirp drops all but the SYN
    const seq = buf.readUInt32BE(l4 + 4)
    const ack = this.ackMax[i] as number
    if (seqDiff(seq, ack) > SEQ_SANE || seqDiff(seq, ack) < -SEQ_SANE) return // outside any window: slirp drops it
    if ((flags & TCP_RST) !== 0) {
      const d = seqDiff(seq, this.edge[i] as number)
      if (d <= 0 && d > -SEQ_SANE && tcpSegmentValid(buf, l3, end)) this.st[i] = st | T_CLOSED
      return
    }
    // slirp in LAST_ACK (or FIN_WAIT_1) holds the socket until this ACK, however long it retransmits its FIN.
    if ((st & (T_FIN_IN | T_FIN_IN_ACKED)) === T_FIN_IN && (flags & TCP_ACK) !== 0 && buf.readUInt32BE(l4 + 8) === this.finIn[i] &&
      seqDiff(seq, this.edge[i] as number) <= 0 && tcpSegmentValid(buf, l3, end)) st |= T_FIN_IN_ACKED
    const ipEnd = Math.min(end, l3 + buf.readUInt16BE(l3 + 2))
    const len = Math.max(0, ipEnd - l4 - ((buf[l4 + 12] as number) >> 4) * 4)
    const dataEnd = (seq + len) >>> 0
    if ((st & T_FIN_OUT) !== 0 && len > 0 && ((this.finSeq[i] as number) - seq) >>> 0 < len) st |= T_FIN_BAD
    if ((flags & TCP_FIN) !== 0) {
      if ((st & T_FIN_OUT) === 0) {
        if (seqDiff(this.sndMax[i] as number, dataEnd) > 0 || !tcpSegmentValid(buf, l3, end)) st |= T_FIN_BAD
        st |= T_FIN_OUT
        this.finSeq[i] = dataEnd
      } else if (this.finSeq[i] !== dataEnd) st |= T_FIN_BAD
    }
    if (len > 0 && seqDiff(dataEnd, this.sndMax[i] as number) > 0) this.sndMax[i] = dataEnd
    this.st[i] = st
  }

  /** A frame from the gateway to a station (IPv4 header at l3): what it tells of the flows. */
  ingress (buf: Buffer, l3: number, end: number, nowMs: number): void {
    if ((buf.readUInt16BE(l3 + 6) & 0x1fff) !== 0) return // a later fragment: the first told all
    const l4 = l3 + ((buf[l3] as number) & 15) * 4
    const ipEnd = Math.min(end, l3 + buf.readUInt16BE(l3 + 2))
    if (ipEnd - l4 < 8) return
    const proto = buf[l3 + 9]
    const station = buf.readUInt32BE(l3 + 16)
    const peer = buf.readUInt32BE(l3 + 12)
    if (proto === IPPROTO_UDP) {
      const dport = buf.readUInt16BE(l4 + 2)
      const i = this.find(K_UDP, station, dport, 0, 0)
      if (i >= 0) {
        this.seen[i] = nowMs
        if (((this.st[i] as number) & U_DNS) !== 0) this.st[i] = U_DNS | U_FAST
        return
      }
      if (this.o.isPublishedUdp(station, dport)) this.notePeer(station, dport, peer, buf.readUInt16BE(l4), nowMs)
      return
    }
    if (proto === IPPROTO_ICMP) { this.icmpIn(buf, l4, ipEnd, station, peer); return }
    if (proto !== IPPROTO_TCP || ipEnd - l4 < 20) return
    const i = this.find(K_TCP, station, buf.readUInt16BE(l4 + 2), peer, buf.readUInt16BE(l4))
    if (i < 0) return
    this.seen[i] = nowMs
    const flags = buf[l4 + 13] as number
    let st = this.st[i] as number
    if ((flags & TCP_RST) !== 0) {
      // Only a freed socket answers RST|ACK; a bare RST also answers a bad ACK in SYN_RECEIVED, where slirp keeps it.
      if ((flags & TCP_ACK) !== 0 || (st & T_EST) !== 0) this.st[i] = st | T_CLOSED
      return
    }
    st |= (flags & TCP_SYN) !== 0 ? ((flags & TCP_ACK) !== 0 ? T_SYNACK : 0) : T_EST
    if ((flags & TCP_ACK) !== 0) {
      const ack = buf.readUInt32BE(l4 + 8)
      const right = (ack + buf.readUInt16BE(l4 + 14)) >>> 0
      if ((st & T_EDGE) === 0) {
        this.ackMax[i] = ack; this.edge[i] = right; this.sndMax[i] = ack
      } else {
        if (seqDiff(ack, this.ackMax[i] as number) > 0) this.ackMax[i] = ack
        if (seqDiff(right, this.edge[i] as number) > 0) this.edge[i] = right
      }
      st |= T_EDGE
      if ((st & (T_FIN_OUT | T_FIN_BAD)) === T_FIN_OUT && seqDiff(ack, this.finSeq[i] as number) > 0) st |= T_FIN_OUT_ACKED
    }
    if ((flags & TCP_FIN) !== 0) {
      st |= T_FIN_IN
      this.finIn[i] = (buf.readUInt32BE(l4 + 4) + Math.max(0, ipEnd - l4 - ((buf[l4 + 12] as number) >> 4) * 4) + 1) >>> 0
    }
    this.st[i] = st
  }

  /** An echo reply, or an ICMP error quoting an echo request, ends one request's socket. */
  private icmpIn (buf: Buffer, l4: number, ipEnd: number, station: number, peer: number): void {
    const type = buf[l4]
    let i = -1
    if (type === 0) i = this.find(K_ICMP, station, buf.readUInt32BE(l4 + 4), peer, 0)
    else if (type === 3 || type === 11) {
      const q = l4 + 8 // the quoted IPv4 header
      if (ipEnd - q < 20 || buf[q + 9] !== IPPROTO_ICMP) return
      const ql4 = q + ((buf[q] as number) & 15) * 4
      if (ipEnd - ql4 < 8 || buf[ql4] !== 8) return
      i = this.find(K_ICMP, buf.readUInt32BE(q + 12), buf.readUInt32BE(ql4 + 4), buf.readUInt32BE(q + 16), 0)
    }
    if (i < 0) return
    if (this.count[i] === 1) { this.remove(i); return }
    this.count[i] = (this.count[i] as number) - 1; this.flows--
    this.shares.release(this.share[i] as number, 1)
  }

  private notePeer (guest: number, port: number, peer: number, peerPort: number, nowMs: number): void {
    let i = this.find(K_PEER, guest, port, peer, peerPort)
    if (i < 0) {
      if (!this.shares.hasRoom(0)) return
      i = this.insert(K_PEER, guest, port, peer, peerPort, 0, nowMs)
    }
    this.seen[i] = nowMs
  }

  /** A station's datagram from its published UDP port to `peer`: true (and kept alive) if that peer sent to it through the gateway. */
  touchPeer (guest: number, port: number, peer: number, peerPort: number, nowMs: number): boolean {
    const i = this.find(K_PEER, guest, port, peer, peerPort)
    if (i < 0) return false
    this.seen[i] = nowMs
    return true
  }

  /** When the flow in slot i ends at the latest, ms (Infinity: while slirp keeps it open). */
  private deadline (i: number): number {
    const k = this.t.kind[i]
    const seen = this.seen[i] as number
    if (k === K_UDP) return seen + (((this.st[i] as number) & U_FAST) !== 0 ? UDP_DNS_IDLE_MS : UDP_IDLE_MS) + SLACK_MS
    if (k !== K_TCP) return seen + ICMP_IDLE_MS + SLACK_MS
    const st = this.st[i] as number
    const BOTH = T_FIN_IN | T_FIN_IN_ACKED | T_FIN_OUT_ACKED
    if ((st & T_CLOSED) !== 0 || (st & BOTH) === BOTH) return seen + CLOSE_MARGIN_MS
    if ((st & T_FIN_IN) !== 0) return seen + FIN_WAIT_MS
    if ((st & (T_SYNACK | T_EST)) === 0) return (this.born[i] as number) + EMBRYONIC_MS + SLACK_MS
    return Infinity
  }

  /** Forget the flows slirp has let go by now (once a second, from the switch's tick). */
  expire (nowMs: number): void {
    const kind = this.t.kind
    for (let i = 0; i < this.t.cap;) {
      if (kind[i] !== EMPTY && nowMs >= this.deadline(i)) this.remove(i) // what moved into i is looked at next
      else i++
    }
  }

  /** The child is gone, and its sockets with it. */
  clear (): void {
    this.t.clear()
    this.flows = 0
    this.peers = 0
    this.shares.clear()
  }
}
