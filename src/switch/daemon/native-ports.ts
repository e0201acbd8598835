/**
 * Which WebSocket ports the networks' native fast paths carry (issue 24;
 * docs/NATIVE-PATH.md). Right after its welcome, a tapswitch.v1 port's
 * connection is handed to its network's thread (io/fast-path.ts addWs) when
 * all of this holds: the fast path is on (`fastPath`, --no-fast-path), the
 * addon has one, and the connection can be taken over now
 * (common/ws-takeover.ts: a plain ws:// socket, nothing half-parsed, nothing
 * waiting to be written). Otherwise the port stays on the JS path, counted
 * by why; a transient reason (writes or bytes in flight) is tried again on
 * the next turns of the loop, a few times.
 *
 * A network's fast path is made with its first carried port (or TAP:
 * endpoints.ts) and closed with the network, so a dynamic network leaves no
 * thread behind.
 */

import type { WebSocket } from 'ws'
import type { Switch } from '../core/switch'
import type { BatchPort } from '../io/ws-port'
import { FastPath, type FastPathBinding } from '../io/fast-path'
import { loadTapBinding, type TapBinding } from '../io/tap-port'
import { answerPings, type SessionCounters } from '../io/ws-session'
import { takeoverRefusal, takeOver } from '../../common/ws-takeover'
import type { NativeSocket } from '../../common/native-socket'
import { logger } from '../../common/log'

const log = logger('ports')

/** Why a port stays on the JS path (the API's `path`, switchctl ports; counted in `fallbacks`). */
export const FALLBACK_REASONS = ['off', 'no_addon', 'tls', 'busy', 'full', 'refused', 'mesh'] as const
export type FallbackReason = typeof FALLBACK_REASONS[number]

/** Turns of the loop a port waits for its connection to settle (writes or bytes in flight) before it stays on JS. */
const SETTLE_TRIES = 3
/** Ports one fast path carries at most (native/datapath.h kMaxPorts). */
const MAX_SLOTS = 1024

export class NativePorts {
  /** WebSocket ports handed to a native thread so far. */
  carried = 0
  /** Ports left on the JS path, by why. */
  readonly fallbacks: Record<FallbackReason, number> = Object.fromEntries(FALLBACK_REASONS.map((r) => [r, 0])) as Record<FallbackReason, number>
  private binding: TapBinding | undefined | null = null

  constructor (
    private readonly enabled: () => boolean,
    private readonly fastPaths: Map<Switch, FastPath>,
    private readonly given?: TapBinding
  ) {}

  /**
   * Hand `port`'s connection to its network's thread once it may be (see the
   * header): its `ws` becomes the NativeSocket over its slot, which answers
   * pings as the session does, and `rewire()` installs the session's handlers
   * on it. Tries again later while its connection is settling.
   */
  carry (port: BatchPort, counters: SessionCounters, rewire: () => void, tries = SETTLE_TRIES): void {
    const ws = port.ws
    const why = this.refusal(port)
    if (why === 'busy' && tries > 0) {
      setImmediate(() => { if (port.ws === ws && !port.parked) this.carry(port, counters, rewire, tries - 1) })
      return
    }
    if (why !== undefined) { this.fallback(port, why); return }
    const fp = this.fastPathOf(port.network) as FastPath
    const h = takeOver(ws) as NonNullable<ReturnType<typeof takeOver>>
    let socket: NativeSocket
    try {
      socket = fp.addWs(port, h, port.offload, port.highWaterMark)
    } catch (err) {
      // Taken over already, so it cannot go back to ws: the port ends as if its link dropped.
      log.client('warn', 'native_port_failed', port.address, { port: port.name, id: port.id, error: (err as Error).message })
      this.fallbacks.refused++
      h.socket.destroy()
      ws.emit('close', 1006, Buffer.alloc(0))
      return
    }
    this.carried++
    port.ws = socket as unknown as WebSocket // the subset of ws's API the session uses (common/native-socket.ts)
    answerPings(port.ws, port.highWaterMark, counters)
    rewire()
    log.client('debug', 'port_native', port.address, { port: port.name, id: port.id, network: port.network.name })
  }

  /**
   * Close the fast path of a network that went away (a dynamic one, with its
   * last port). A network that stays keeps its thread (asleep in poll) and
   * so its counters, which metrics read as monotonic.
   */
  release (sw: Switch, gone: boolean): void {
    const fp = this.fastPaths.get(sw)
    if (fp === undefined || !gone || fp.portCount !== 0) return
    fp.close()
    this.fastPaths.delete(sw)
  }

  private refusal (port: BatchPort): FallbackReason | undefined {
    // A mesh link stays on JS: split horizon and its counters are the decision's, which the thread does not run for misses it forwards.
    if (port.mesh) return 'mesh'
    if (!this.enabled()) return 'off'
    const b = this.loaded()
    if (b?.FastPath === undefined) return 'no_addon'
    const why = takeoverRefusal(port.ws)
    if (why === 'TLS') return 'tls'
    if (why === 'writes pending' || why === 'bytes half-parsed') return 'busy'
    if (why !== undefined) return 'refused'
    const fp = this.fastPathOf(port.network)
    if (fp === undefined) return 'no_addon'
    if (fp.portCount >= MAX_SLOTS) return 'full'
    return undefined
  }

  private fallback (port: BatchPort, why: FallbackReason): void {
    this.fallbacks[why]++
    if (why !== 'off' && why !== 'tls') log.client('debug', 'port_js_path', port.address, { port: port.name, id: port.id, reason: why })
  }

  private loaded (): TapBinding | undefined {
    if (this.binding !== null) return this.binding
    try {
      this.binding = this.given ?? loadTapBinding()
    } catch {
      this.binding = undefined
    }
    return this.binding
  }

  private fastPathOf (sw: Switch): FastPath | undefined {
    let fp = this.fastPaths.get(sw)
    const b = this.loaded()
    if (fp === undefined && b?.FastPath !== undefined) {
      fp = new FastPath(b as FastPathBinding, sw)
      this.fastPaths.set(sw, fp)
    }
    return fp
  }
}
