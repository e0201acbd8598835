/**
 * ARP to the gateway, a share per client. libslirp keeps the stations' MACs
 * in a table of 16 entries, each new sender taking the next slot in turn
 * (arp_table.c arp_table_add), and learns from every ARP reply and every
 * request for one of its own addresses. Sixteen stations' worth of such
 * ARPs, sent as fast as a port can (unicast to the gateway's MAC, so storm
 * control never sees them), pushed every other station out of it again and
 * again: slirp then asks who a station is before each reply to it, and one
 * station lost 86 of 200 UDP replies (measured, issue 21 attacked afresh).
 *
 * As Cisco IOS dynamic ARP inspection limits each untrusted port (15 ARPs a
 * second by default), each client here (Port.clientKey: a WebSocket address
 * or IPv6 /64, any other port its own) gets a token bucket of the ARPs slirp
 * learns from: ARP_BURST at once, ARP_PER_SECOND after. Beyond it they are
 * dropped and counted (`arp_rate`), and a station's entry is pushed out at
 * most a few times a second by anyone. ARPs slirp ignores (requests for
 * another station) are not counted. Ports the guards trust are exempt.
 */

/** ARPs slirp learns from that one client may send at once, and a second after that. */
export const ARP_BURST = 64
export const ARP_PER_SECOND = 16

const ARPOP_REQUEST = 1
const ARPOP_REPLY = 2

/** Whether slirp learns the sender of the ARP whose header is at `a`: a reply, or a request for the gateway's or DNS address. */
export function slirpLearns (buf: Buffer, a: number, gw: number, dns: number): boolean {
  const op = buf.readUInt16BE(a + 6)
  if (op === ARPOP_REPLY) return true
  if (op !== ARPOP_REQUEST) return false
  const tpa = buf.readUInt32BE(a + 24)
  return tpa === gw || tpa === dns
}

interface Bucket { tokens: number, at: number }

export class ArpBudget {
  private readonly buckets = new Map<string, Bucket>()

  /** Whether client `key` may send one more ARP now (ms on any clock); takes its token. */
  take (key: string, nowMs: number): boolean {
    let b = this.buckets.get(key)
    if (b === undefined) { b = { tokens: ARP_BURST, at: nowMs }; this.buckets.set(key, b) }
    b.tokens = Math.min(ARP_BURST, b.tokens + (nowMs - b.at) * ARP_PER_SECOND / 1000)
    b.at = nowMs
    if (b.tokens < 1) return false
    b.tokens--
    return true
  }

  /** Forget the buckets that are full again (once a second): the map holds only the clients that ARPed lately. */
  prune (nowMs: number): void {
    for (const [key, b] of this.buckets) if (b.tokens + (nowMs - b.at) * ARP_PER_SECOND / 1000 >= ARP_BURST) this.buckets.delete(key)
  }

  /** Clients with a bucket now (tests). */
  get size (): number { return this.buckets.size }
}
