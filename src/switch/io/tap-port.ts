/**
 * TAPs on switchd's own host, served by switchd itself (`taps` / `--tap`):
 * the TAP's fd is polled on switchd's own event loop through the native
 * addon, so a frame between two local TAPs wakes ONE process, not three
 * (agent, switchd, agent). On a machine where a process wake-up costs a few
 * hundred µs that is most of a ping's round trip (issue 14; docs/LOCAL-TAPS.md).
 * Open vSwitch's userspace datapath and VDE's vde_switch -t serve their local
 * ports the same way.
 *
 * A burst read from the TAP (until EAGAIN, or 64 frames / 64 KiB) is one
 * batch for the switch; what the switch queues for the port leaves in one
 * native writeBatch per flush, from a slab that is rewound after it (the
 * write is synchronous, nobody keeps a view). A write the kernel refuses
 * (its queue full, or the link down) is counted and dropped, never queued:
 * the TAP's own queue (txqueuelen) is the bound.
 *
 * The TAP may be moved into another network namespace after it was created
 * (`ip link set NAME netns NS`): its fd stays valid, and switchd never
 * touches it by name again.
 */

import type { Switch } from '../core/switch'
import { R_DISCONNECTED, R_BACKPRESSURE } from '../core/reasons'
import type { PortPolicy } from '../core/port'
import { NetPort, BatchSlab } from './net-port'
import type { FastPath, FastPathBinding, FastPathPort } from './fast-path'
import { TapDevice, TapError, tapMtu, type TapBinding as DeviceBinding, type OffloadMode } from '../../common/tap'
import { loadNative } from '../../common/native'
import { TapswitchError, ERR_TAP } from '../../common/errors'
import { logger } from '../../common/log'

const log = logger('tap')

/** What switchd needs of the native binding for its TAPs (native/index.d.ts); tests pass a fake. */
export interface TapBinding extends DeviceBinding {
  /** The native fast path (native/fastpath.cc); absent in a fake binding. */
  FastPath?: FastPathBinding['FastPath']
  PORT_STAT_COUNT?: number
  FASTPATH_STAT_COUNT?: number
  /** Bounded adaptive busy polling after each burst, µs (0 = off). */
  setBusyPoll?: (usec: number) => void
}

export interface TapPortSpec {
  name: string
  offload: OffloadMode
  up: boolean
}

/** The addon (common/native.ts loads it once), or a TSW_ERR_ADDON error saying how to build it. */
export function loadTapBinding (): TapBinding {
  return loadNative('taps')
}

/**
 * The wrapper's TapError as switchd words it, the configuration key first:
 * `tap tap0: open: EPERM (needs CAP_NET_ADMIN)`; with a hint of switchd's own
 * where the binding gave none.
 */
function tapError (err: unknown, name: string, mtu: number): Error {
  if (!(err instanceof TapError)) return err as Error
  const e = err.cause
  const hint = e.hint !== '' ? e.hint
    : e.code === 'EPERM' || e.code === 'EACCES' ? 'switchd needs CAP_NET_ADMIN to create a TAP, or the TAP must exist and belong to its user'
      : e.code === 'EINVAL' && e.syscall === 'ioctl(TUNSETIFF)' ? 'an interface of that name exists and is not a TAP; choose another name'
        : ''
  const step = err.step === 'set MTU' ? `set MTU ${mtu}` : err.step
  return new TapswitchError(ERR_TAP, `tap ${name}: ${step}: ${e.code}${hint !== '' ? ` (${hint})` : ''}`, { cause: e })
}

export class TapPort extends NetPort implements FastPathPort {
  readonly kind = 'tap'
  private readonly batch = new BatchSlab()
  private txDroppedSeen = 0
  /** The native fast path reading this TAP, and its slot there; undefined: read on the event loop. */
  private fast: FastPath | undefined
  private fastSlot = -1

  private constructor (id: number, name: string, readonly tap: TapDevice, highWaterMark: number, network: Switch) {
    super(id, name, `tap:${name}`, highWaterMark, network)
  }

  /**
   * Open (or create) the TAP and make it a port of `sw`, with offloads on
   * when the TAP can (offload 'auto' or 'on') and the MTU that fills the
   * network's largest frame; nothing is read until start(). Throws a
   * TapswitchError (TSW_ERR_TAP) naming the cause.
   */
  static open (binding: TapBinding, spec: TapPortSpec, sw: Switch, policy: PortPolicy, id: number, highWaterMark: number): TapPort {
    const mtu = tapMtu(sw.maxFrameSize)
    let dev: TapDevice
    try {
      dev = TapDevice.open(binding, { name: spec.name, offload: spec.offload, mtu, up: spec.up })
    } catch (err) {
      throw tapError(err, spec.name, mtu)
    }
    const port = new TapPort(id, spec.name, dev, highWaterMark, sw)
    if (dev.offloadCapable) {
      try {
        dev.setOffload(true)
        port.offload = true
      } catch (err) {
        try { dev.setOffload(false) } catch { /* its records are plain again either way */ }
        if (spec.offload === 'on') { dev.close(); throw tapError(err, spec.name, mtu) }
      }
    }
    port.applyPolicy(policy)
    return port
  }

  /**
   * Join the switch and start reading: each burst is one batch, handled
   * before the callback returns. With `fast`, the network's native thread
   * reads the TAP and hands over only what its flows do not cover, in the
   * same batches; it needs records exactly as read(2) gives them (no
   * virtio-net header stripped: vnetHdr and vnetRecords agree).
   */
  start (fast?: FastPath): void {
    const sw = this.network
    if (fast !== undefined && this.tap.vnetHdr === this.tap.vnetRecords) {
      this.fast = fast
      this.fastSlot = fast.add(this, this.tap.fd, this.tap.vnetRecords)
      return
    }
    this.tap.start((batch) => {
      // Our own binding frames these records: a malformed one would be a bug, counted by the switch.
      sw.receiveBatch(this, batch)
    })
  }

  receiveMisses (slab: Buffer, start: number, end: number): void {
    this.network.receiveBatch(this, slab.subarray(start, end))
  }

  /** Stop reading: the fast path never touches the fd again once this returns. */
  private stopReading (): void {
    if (this.fast !== undefined) { this.fast.remove(this, this.fastSlot); this.fast = undefined } else this.tap.stop()
  }

  /** Nothing is ever buffered here: a write happens at flush or not at all. */
  bufferedBytes (): number { return 0 }

  output (buf: Buffer, off: number, len: number, op: number, vid: number, hdrOff: number): void {
    this.enqueue(this.batch, buf, off, len, op, vid, hdrOff)
  }

  flush (): void {
    const b = this.batch.take()
    if (b === undefined) return
    const want = this.batch.taken
    const wrote = this.tap.write(b)
    this.batch.rewind()
    if (wrote < want) this.countRefused(want - wrote)
  }

  /** The kernel refused some frames: its queue was full (backpressure) or the link is down / gone (disconnected). */
  private countRefused (n: number): void {
    this.txFrames -= n
    const full = this.tap.txDropped()
    const queueFull = Math.min(n, full - this.txDroppedSeen)
    this.txDroppedSeen = full
    if (queueFull > 0) this.addDrops(R_BACKPRESSURE, queueFull)
    // Which frames of the batch the kernel refused is not known here, so these are counted, not in the drop log.
    if (n - queueFull > 0) this.network.countDrops(this, R_DISCONNECTED, n - queueFull)
  }

  shutdown (code: number, reason: string): void {
    // A TAP has no peer to tell: stop reading it and leave the network, as a closed WebSocket port
    // does, until switchd restarts. Left after the frame being handled (this runs inside it).
    log.warn('port_shutdown', { port: this.name, id: this.id, code, reason, note: 'the TAP stays open and idle until switchd restarts' })
    this.stopReading()
    setImmediate(() => { this.network.removePort(this) })
  }

  close (): void {
    this.stopReading()
    this.tap.close()
  }
}
