/**
 * The agent's glue: endpoint batches -> uplink, uplink batches -> endpoint.
 *
 * Endpoints produce batches in the wire format already (the TAP binding reads
 * each burst into its slab that way; a QEMU stream is that format), so a
 * burst leaves as one WebSocket message with no copy of ours. A message from
 * the switch goes to the endpoint in one call (one native call for the TAP).
 * No timers sit on the frame path, so nothing waits for a batch to fill.
 *
 * While the uplink is down the endpoint stays up; what it produces is dropped
 * and counted (droppedDisconnected), as are bursts refused because the switch
 * is not reading fast enough (droppedBackpressure).
 *
 * Offload is settled per welcome: a TAP that can carry it asks for it in
 * every hello, and each welcome (connect, reconnect, failover to another
 * switchd) switches the TAP's records and offloads to what that switch
 * granted, synchronously, before the first frame of that connection flows
 * either way.
 *
 * With the addon's native links (`links`, a TAP, not --no-fast-path), each
 * ws:// connection is carried by a thread once ws opened it (native-link.ts):
 * the uplink keeps its logic on the socket it gets back, and at the welcome,
 * once offload is followed, the agent stops its own TAP reader and starts the
 * link; when the link ends the reader starts again, so frames while
 * disconnected are counted as before. The link's counters are folded into
 * these at scrape time (fold).
 */

import type { Endpoint, EndpointStats } from './endpoint'
import type { Uplink } from '../common/uplink'
import type { UplinkTakeover } from '../common/uplink-native'
import type { NativeSocket } from '../common/native-socket'
import { NativeLink, LinkCounters, DEFAULT_COALESCE_USECS, NOTICE_UDP_RUNS_REFUSED, type LinkBinding } from './native-link'
import { STAT_COUNT, statsFrom } from '../common/native'
import { CAP_OFFLOAD, parseControl, type Welcome } from '../common/protocol'
import { logger } from '../common/log'
import { tapMtu } from '../common/tap'

const log = logger('agent')

export class AgentStats {
  /** Frames read from the TAP and sent up. */
  upFrames = 0
  upBursts = 0
  /** Frames from the switch handed to the TAP. */
  downFrames = 0
  droppedDisconnected = 0
  droppedBackpressure = 0
  /** Changes of the native link thread's CPU affinity (native/cpu_follow.h). */
  cpuMoves = 0
  /** Of downFrames: written to the TAP as part of a UDP run, one write for many (native/udp_run.h). */
  udpRunFrames = 0
  /** Times the native link left a flood's TAP to fill before reading it again (--coalesce-usecs). */
  coalesceWaits = 0
  /** Times the kernel refused a UDP run (no USO before Linux 6.2): 0 or 1, the agent writes each frame alone from then on. */
  udpRunsRefused = 0
}

export class Agent {
  readonly stats = new AgentStats()
  /** The MTU last set from a welcome, so a reconnect to the same switch does not set it again. */
  private followedMtu: number | undefined
  /** The TAP's records carry virtio-net headers and its offloads are on: what the current switch granted. */
  offload = false
  /** The switch took our link down (a failure drill, `{"type":"link","up":false}`): the carrier is off until it says up. */
  linkDown = false
  /** The native link carrying the current connection, if any. */
  private link: NativeLink | undefined
  private readonly linkCounters = new LinkCounters(STAT_COUNT)
  private linksUsed = false
  /** A link's UDP run was refused (no USO before Linux 6.2): this kernel never takes one, so no later link tries. */
  private runsRefused = false
  /** Our own TAP reader was stopped for a link (restarted when it ends). */
  private tapStopped = false
  private onTap: (batch: Buffer, count: number) => void = () => {}

  /**
   * `fixedMtu`: the user chose the MTU (--mtu), or 0 to leave it alone (--attach);
   * otherwise the TAP follows the switch's maximum frame size. `carrier`: the
   * TAP's carrier follows the uplink, so guests see link down while it is.
   */
  constructor (readonly tap: Endpoint, readonly uplink: Uplink, readonly fixedMtu?: number, readonly carrier = false, readonly links?: LinkBinding,
    readonly cpuFollow = true, readonly udpRuns = false, readonly coalesceUsecs = DEFAULT_COALESCE_USECS) {}

  /** Fold the native link's counters into stats, the uplink's and the TAP's (scrape time). */
  fold (): void {
    if (this.link !== undefined) this.linkCounters.fold(this.link, { agent: this.stats, uplink: this.uplink.stats })
  }

  /** The TAP's counters: its own reader's and writer's, and what the native links counted. */
  endpointStats (): EndpointStats {
    const s = this.tap.stats()
    if (!this.linksUsed) return s
    this.fold()
    const l = statsFrom(this.linkCounters.tap)
    for (const k of Object.keys(s) as Array<keyof EndpointStats>) s[k] += l[k]
    return s
  }

  /** The uplink's hook at ws's 'open': a link carries this connection from now on. */
  private openLink (t: UplinkTakeover, links: LinkBinding, fd: number, vnetHdr: boolean): NativeSocket {
    this.link?.end()
    const link = new NativeLink(links, t.takeover, { fd, vnetHdr }, t.zeroMask, t.highWaterMark, (l) => { this.linkEnded(l) }, (n) => { this.linkNotice(n) })
    this.link = link
    this.linksUsed = true
    this.linkCounters.reset()
    return link.sock
  }

  /** Something the link's thread wants said, once a link (native/ws_link.h Notice). */
  private linkNotice (notice: number): void {
    if (notice === NOTICE_UDP_RUNS_REFUSED) {
      // The link writes each frame alone from now on, losing none; --udp-runs does nothing on this kernel,
      // so later links (each reconnect's) start without runs: one refusal, one warning, per agent.
      if (this.runsRefused) return
      this.runsRefused = true
      log.warn('udp_runs_refused', { tap: this.tap.name, error: 'the kernel refused a UDP run: GSO_UDP_L4 on a TAP needs Linux 6.2 or later', fix: 'frames are written one at a time; leave out --udp-runs on this host' })
    }
  }

  private linkEnded (link: NativeLink): void {
    if (this.link !== link) return
    this.fold()
    // A link closed from JS (a reconnect, stop()) delivers no event queued before: its refusal is in the counters.
    if (this.stats.udpRunsRefused > 0) this.linkNotice(NOTICE_UDP_RUNS_REFUSED)
    this.link = undefined
    if (this.tapStopped) {
      this.tapStopped = false
      this.tap.start(this.onTap)
    }
  }

  /** At the welcome, with offload followed: the link reads the TAP from now on, not us. */
  private startLink (): void {
    const link = this.link
    if (link === undefined || link.isEnded || this.tap.stop === undefined) return
    if (!this.tapStopped) this.tap.stop()
    this.tapStopped = true
    link.start(this.tap.vnetRecords === true, this.cpuFollow, this.udpRuns && !this.runsRefused, this.coalesceUsecs)
  }

  private setCarrier (on: boolean): void {
    if (this.tap.setCarrier === undefined) return
    try {
      this.tap.setCarrier(on)
      log.info('carrier', { tap: this.tap.name, on })
    } catch (err) {
      log.limited('warn', 'carrier_not_set', { tap: this.tap.name, on, error: (err as Error).message })
    }
  }

  /** Follow the welcome: offload records and TSO on if it granted offload, plain frames otherwise. */
  private followOffload (welcome: Welcome): void {
    const tap = this.tap
    if (tap.setOffload === undefined || tap.offloadCapable !== true) return
    const on = welcome.capabilities.includes(CAP_OFFLOAD)
    if (on === this.offload) return
    // The record format follows the grant even if the kernel refuses the flags (setOffload throws after).
    this.offload = on
    try {
      tap.setOffload(on)
      log.info('offload_set', { tap: tap.name, on })
    } catch (err) {
      log.warn('offload_not_set', { tap: tap.name, on, error: (err as Error).message })
    }
  }

  start (): void {
    const stats = this.stats
    const uplink = this.uplink
    const tap = this.tap
    if (tap.offloadCapable === true) {
      const caps = uplink.opts.capabilities ?? []
      if (!caps.includes(CAP_OFFLOAD)) uplink.opts.capabilities = [...caps, CAP_OFFLOAD]
    }
    this.onTap = (batch, count) => {
      if (uplink.send(batch)) {
        stats.upFrames += count
        stats.upBursts++
      } else if (uplink.isUp) {
        stats.droppedBackpressure += count
      } else {
        stats.droppedDisconnected += count
      }
    }
    tap.start(this.onTap)
    const links = this.links
    const fd = tap.fd
    const vnetHdr = tap.vnetHdr
    if (links !== undefined && fd !== undefined && fd >= 0 && vnetHdr !== undefined) uplink.takeover = (t) => this.openLink(t, links, fd, vnetHdr)
    uplink.onBatch = (msg) => { stats.downFrames += tap.write(msg) }
    // A failure drill at the switch: the TAP's carrier follows, whatever --carrier says, so the host sees a pulled cable.
    uplink.onControl = (text) => {
      const m = parseControl(text)
      if (m?.type !== 'link' || typeof m.up !== 'boolean' || m.up !== this.linkDown) return
      this.linkDown = !m.up
      log.info(m.up ? 'link_up' : 'link_down', { tap: tap.name, by: 'switch' })
      this.setCarrier(m.up)
    }
    if (this.carrier) {
      this.setCarrier(false)
      uplink.on('down', () => { this.setCarrier(false) })
    }
    uplink.on('up', (welcome) => {
      this.followOffload(welcome)
      this.startLink()
      // A new welcome starts with the link up; a switch still holding it down says so right after.
      if (this.carrier || this.linkDown) this.setCarrier(true)
      this.linkDown = false
      const mtu = this.fixedMtu
      if (mtu === 0) return
      if (mtu !== undefined) {
        if (mtu + 18 > welcome.maxFrameSize) log.warn('mtu_exceeds_max_frame_size', { tap: tap.name, mtu, max_frame_size: welcome.maxFrameSize })
        return
      }
      const want = tapMtu(welcome.maxFrameSize)
      if (want === this.followedMtu || tap.setMtu === undefined) return
      try {
        tap.setMtu(want)
        this.followedMtu = want
        log.info('mtu_set', { tap: tap.name, mtu: want, max_frame_size: welcome.maxFrameSize })
      } catch (err) {
        log.warn('mtu_not_set', { tap: tap.name, mtu: want, error: (err as Error).message })
      }
    })
    uplink.start()
  }

  async stop (): Promise<void> {
    await this.uplink.close()
    this.tap.close()
  }
}
