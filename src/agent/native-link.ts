/**
 * tap-agent's native link (issue 24): once ws has opened an uplink's
 * connection to switchd, a thread of the addon (native/ws_link.h) carries its
 * frames between the TAP and the socket, and this is its JS side: the
 * backend of a NativeSocket (common/native-socket.ts), so the uplink's own
 * logic (hello, welcome, pings, watchdog, close codes, reconnect) runs
 * unchanged on the socket it gets back.
 *
 * The link's events (text, ping, pong, the end) go to the NativeSocket; the
 * end reaches JS only once the thread is joined, so the TAP's fd is the
 * agent's again from then on (it restarts its own reader). The counters are
 * the link's, cumulative per connection: the agent folds them into its own at
 * scrape time (Agent.fold).
 */

import type * as Native from '../../native'
import { NativeSocket, type NativeBackend } from '../common/native-socket'
import type { Takeover } from '../common/ws-takeover'
import { SUBPROTOCOL_V1 } from '../common/protocol'

/** What the agent needs of the addon for a native link (the addon satisfies it; a fake TAP's binding does not). */
export interface LinkBinding {
  WsLink: typeof Native.WsLink
  LINK_STAT_COUNT: number
}

/** Indexes into a link's counters (native/index.d.ts WsLink#stats, ws_link.h LinkStat). */
export const LINK_UP_FRAMES = 0
export const LINK_UP_BURSTS = 1
export const LINK_UP_BYTES = 2
export const LINK_DROPPED_BACKPRESSURE = 3
export const LINK_DOWN_FRAMES = 4
export const LINK_RX_MESSAGES = 5
export const LINK_RX_BYTES = 6
export const LINK_RX_MALFORMED = 7
export const LINK_CPU_MOVES = 8
export const LINK_DOWN_RUN_FRAMES = 9
export const LINK_COALESCE_WAITS = 10
export const LINK_UDP_RUNS_REFUSED = 11
export const LINK_STAT_COUNT = 12

/**
 * The link's thread runs on the CPU its connection's frames arrive on while at
 * most this many frames pass in a tick of 10 ms (native/cpu_follow.h): 6,400
 * frames a second, far above an interactive link's and far below a bulk
 * transfer's, which gets the whole mask back.
 */
export const CPU_FOLLOW_BUSY_FRAMES = 64

/**
 * µs a flood's TAP waits between bursts by default (--coalesce-usecs): the
 * CLI's default and an Agent's alike. At most MAX_COALESCE_USECS, as the
 * binding checks (ws_link_binding.cc kMaxCoalesceUsecs).
 */
export const DEFAULT_COALESCE_USECS = 50
export const MAX_COALESCE_USECS = 200

/** The link's event kinds (ws_link.h EventKind). */
const E_TEXT = 1
const E_PING = 9
const E_PONG = 10
const E_NOTICE = 0x20
const E_END = 255
const CLOSE_ABNORMAL = 1006

/** The link's notices (ws_link.h Notice), an E_NOTICE's code. */
export const NOTICE_UDP_RUNS_REFUSED = 1

/** The binding, if this addon has native links (a fake TAP's does not). */
export function linkBindingOf (binding: object): LinkBinding | undefined {
  const b = binding as Partial<LinkBinding>
  return typeof b.WsLink === 'function' && b.LINK_STAT_COUNT === LINK_STAT_COUNT ? b as LinkBinding : undefined
}

/**
 * Why an addon that has native links cannot carry this build's (an addon built
 * from other sources: its counters would be misread), or undefined. A binding
 * without links (a fake TAP's) is not refused, it just has none.
 */
export function linkBindingRefusal (binding: object): string | undefined {
  const b = binding as Partial<LinkBinding>
  if (typeof b.WsLink !== 'function' || b.LINK_STAT_COUNT === LINK_STAT_COUNT) return undefined
  return `the addon's native link keeps ${String(b.LINK_STAT_COUNT)} counters, this tap-agent reads ${LINK_STAT_COUNT}: it was built from other sources`
}

/** What a link carries: the TAP's fd and whether it has virtio-net headers. */
export interface LinkTap {
  readonly fd: number
  readonly vnetHdr: boolean
}

export class NativeLink implements NativeBackend {
  /** The socket the uplink uses from the takeover on. */
  readonly sock: NativeSocket
  private readonly link: Native.WsLink
  private readonly socket: Takeover['socket']
  private ended = false

  constructor (binding: LinkBinding, t: Takeover, tap: LinkTap, zeroMask: boolean, highWaterMark: number,
    private readonly onEnd: (link: NativeLink) => void, private readonly onNotice: (notice: number) => void = () => {}) {
    this.link = new binding.WsLink(t.fd, tap.fd, tap.vnetHdr, zeroMask, highWaterMark, t.prefill, (kind, code, data) => { this.event(kind, code, data) })
    this.sock = new NativeSocket(this, SUBPROTOCOL_V1)
    this.socket = t.socket
  }

  /**
   * The welcome was followed: records carry virtio-net headers or not, and the link reads the TAP from now on.
   * `cpuFollow`: the thread runs where its frames arrive while the link is quiet (native/cpu_follow.h).
   * `udpRuns`: a run of UDP datagrams of one flow goes to the TAP as one write (native/udp_run.h).
   * `coalesceUsecs`: a flood's TAP is read again only this many µs later (0: at once).
   */
  start (vnetRecords: boolean, cpuFollow: boolean, udpRuns = false, coalesceUsecs = 0): void {
    this.link.start(vnetRecords, cpuFollow ? CPU_FOLLOW_BUSY_FRAMES : 0, udpRuns, coalesceUsecs)
  }

  /** The link's counters (LINK_*) and the TAP's (STAT_*), cumulative. */
  stats (link: Float64Array, tap: Float64Array): void { this.link.stats(link, tap) }

  get isEnded (): boolean { return this.ended }

  // --- NativeBackend ---
  send (opcode: number, data: Buffer): number { return this.link.send(opcode, data) }
  buffered (): number { return this.link.bufferedAmount }
  end (): void {
    if (this.ended) return
    this.ended = true
    this.link.close()
    this.socket.destroy()
    this.onEnd(this)
  }

  private event (kind: number, code: number, data: Buffer): void {
    const s = this.sock
    if (kind === E_TEXT) s.receiveText(data)
    else if (kind === E_PING) s.receivePing(data)
    else if (kind === E_PONG) s.receivePong(data)
    else if (kind === E_NOTICE) this.onNotice(code)
    else if (kind === E_END) {
      // The link sent the close frame it owed (an echo, or its own on a parse failure) before it ended.
      if (code === CLOSE_ABNORMAL) s.receiveEnd()
      else s.receiveClose(code, data, true)
    }
  }
}

/** The agent's and the uplink's counters a link's are folded into (agent.ts AgentStats, uplink.ts UplinkStats). */
interface FoldInto {
  agent: { upFrames: number, upBursts: number, downFrames: number, droppedBackpressure: number, cpuMoves: number, udpRunFrames: number, coalesceWaits: number, udpRunsRefused: number }
  uplink: { txMessages: number, txBytes: number, rxMessages: number, rxBytes: number, rxMalformed: number }
}

/**
 * The links' counters, folded into the agent's plain fields at scrape time
 * with the delta pattern (what each link counted since the last fold), and
 * the TAP counters they kept, summed over every link so far (`tap`, in the
 * addon's STAT_* layout, for Agent.endpointStats).
 */
export class LinkCounters {
  readonly tap: Float64Array
  private readonly now = new Float64Array(LINK_STAT_COUNT)
  private readonly seen = new Float64Array(LINK_STAT_COUNT)
  private readonly tapNow: Float64Array
  private readonly tapSeen: Float64Array

  constructor (statCount: number) {
    this.tap = new Float64Array(statCount)
    this.tapNow = new Float64Array(statCount)
    this.tapSeen = new Float64Array(statCount)
  }

  /** A new link: its counters start at zero. */
  reset (): void { this.seen.fill(0); this.tapSeen.fill(0) }

  fold (link: NativeLink, into: FoldInto): void {
    const now = this.now
    const seen = this.seen
    link.stats(now, this.tapNow)
    const d = (i: number): number => (now[i] as number) - (seen[i] as number)
    const a = into.agent
    const u = into.uplink
    a.upFrames += d(LINK_UP_FRAMES)
    a.upBursts += d(LINK_UP_BURSTS)
    a.downFrames += d(LINK_DOWN_FRAMES)
    a.droppedBackpressure += d(LINK_DROPPED_BACKPRESSURE)
    a.cpuMoves += d(LINK_CPU_MOVES)
    a.udpRunFrames += d(LINK_DOWN_RUN_FRAMES)
    a.coalesceWaits += d(LINK_COALESCE_WAITS)
    a.udpRunsRefused += d(LINK_UDP_RUNS_REFUSED)
    u.txMessages += d(LINK_UP_BURSTS)
    u.txBytes += d(LINK_UP_BYTES)
    u.rxMessages += d(LINK_RX_MESSAGES)
    u.rxBytes += d(LINK_RX_BYTES)
    u.rxMalformed += d(LINK_RX_MALFORMED)
    for (let i = 0; i < this.tap.length; i++) this.tap[i] = (this.tap[i] as number) + (this.tapNow[i] as number) - (this.tapSeen[i] as number)
    seen.set(now)
    this.tapSeen.set(this.tapNow)
  }
}
