/**
 * TapDevice: the agent's TAP, over a binding passed in by the caller (the
 * serialport bindings pattern): main.ts passes the native addon, the
 * integration tests a fake. Configuration is slow path; the frame path is the
 * binding's own start()/writeBatch(), called once per burst or message.
 */

import type * as Native from '../../native'
import { TapswitchError, ERR_TAP } from '../common/errors'
import { statsFrom, type Endpoint, type EndpointStats } from './endpoint'

export type NativeTap = Native.Tap
export type OnFrames = Native.OnFrames
/** What TapDevice needs of a binding: the native module satisfies it, and so does test/helpers/fake-tap. */
export interface TapBinding {
  Tap: new (name: string, vnetHdr?: boolean, options?: Native.TapOpenOptions) => NativeTap
  STAT_COUNT: number
  /** The TUNSETOFFLOAD flags for TCP segmentation and checksum offload. */
  OFFLOAD_TSO: number
}

/** --offload: 'auto' uses offloads when the TAP and the switch both can; 'on' fails if the TAP cannot; 'off' never. */
export type OffloadMode = 'auto' | 'on' | 'off'

/** One read burst is bounded so one callback copies at most about 64 KiB (more halved throughput). */
export const MAX_BURST_FRAMES = 64
export const MAX_BURST_BYTES = 64 * 1024

export interface TapOptions {
  /** Interface name; '' lets the kernel pick tapN. */
  name: string
  mtu?: number
  /** 6 bytes. */
  mac?: Buffer
  ipv4?: { address: string, prefixLength: number }
  /** Bring the link up (default true). */
  up?: boolean
  /** Open the TAP able to carry offloads (IFF_VNET_HDR, TUNSETOFFLOAD); default 'off'. */
  offload?: OffloadMode
  /**
   * A network namespace file (/run/netns/NAME): the TAP is made (or found) and
   * configured there, and so is every later change by name (the MTU the
   * switch asks for); the agent itself stays where it is.
   */
  netns?: string
  /** Only an existing persistent TAP will do (--attach): a name with none fails, and no TAP is made. */
  attach?: boolean
}

export type TapStats = EndpointStats

/**
 * A TapswitchError (code TSW_ERR_TAP) whose message names the device, the
 * errno and the fix, e.g. `open tap0: EPERM (needs CAP_NET_ADMIN)`; the
 * native error is its `cause`, and `errno`/`syscall` are kept.
 */
export class TapError extends TapswitchError {
  constructor (readonly action: string, readonly device: string, override readonly cause: Native.TapSystemError) {
    super(ERR_TAP, `${action} ${device}: ${cause.code}${cause.hint !== '' ? ` (${cause.hint})` : ''}`, { cause })
  }

  get errno (): number { return this.cause.errno }
  get syscall (): string { return this.cause.syscall }
}

function isSystemError (err: unknown): err is Native.TapSystemError {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'string' && typeof (err as { syscall?: unknown }).syscall === 'string'
}

/** Run a binding call; turn its system error into a TapError saying what we were doing. */
function attempt<T> (action: string, device: string, fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    if (isSystemError(err)) throw new TapError(action, device, err)
    throw err
  }
}

export class TapDevice implements Endpoint {
  private readonly statBuf: Float64Array
  private readonly offloadFlags: number
  /**
   * The TAP can carry offloads: opened with IFF_VNET_HDR and the kernel took
   * the TSO flags when tried at open. Offloads stay off (and records plain)
   * until setOffload(true), on a welcome that grants them.
   */
  offloadCapable = false

  private constructor (readonly tap: NativeTap, binding: TapBinding) {
    this.statBuf = new Float64Array(binding.STAT_COUNT)
    this.offloadFlags = binding.OFFLOAD_TSO
  }

  /** Create or attach the TAP and configure it; closes it again if configuring fails. */
  static open (binding: TapBinding, opts: TapOptions): TapDevice {
    const mode = opts.offload ?? 'off'
    const shown = opts.name === '' ? 'tap' : opts.name
    const where = opts.netns === undefined && opts.attach !== true ? undefined : { netns: opts.netns, attach: opts.attach }
    let tap: NativeTap
    try {
      tap = attempt('open', shown, () => new binding.Tap(opts.name, mode !== 'off', where))
    } catch (err) {
      // A kernel that cannot set up virtio-net headers still has a TAP for us: 'auto' goes without.
      if (mode !== 'auto' || !(err instanceof TapError) || ['open', 'setns', 'socket', 'ioctl(TUNSETIFF)', 'ioctl(TUNGETIFF)'].includes(err.syscall)) throw err
      tap = attempt('open', shown, () => new binding.Tap(opts.name, false, where))
    }
    const dev = new TapDevice(tap, binding)
    try {
      const name = tap.name
      if (tap.vnetHdr) dev.probeOffload(mode)
      if (opts.mac !== undefined) { const mac = opts.mac; attempt('set MAC of', name, () => { tap.setMac(mac) }) }
      if (opts.mtu !== undefined) { const mtu = opts.mtu; attempt('set MTU of', name, () => { tap.setMtu(mtu) }) }
      if (opts.ipv4 !== undefined) { const a = opts.ipv4; attempt('set address of', name, () => { tap.setIPv4(a.address, a.prefixLength) }) }
      if (opts.up !== false) attempt('bring up', name, () => { tap.setUp(true) })
    } catch (err) {
      tap.close()
      throw err
    }
    return dev
  }

  get name (): string { return this.tap.name }

  /** Does the kernel take our offload flags? Tried now so that --offload on fails at start, with the reason. */
  private probeOffload (mode: OffloadMode): void {
    try {
      attempt('turn on offloads of', this.tap.name, () => { this.tap.setOffload(this.offloadFlags); this.tap.setOffload(0) })
      this.offloadCapable = true
    } catch (err) {
      if (mode === 'on') throw err
    }
  }

  /**
   * Carry offloads or not, as the latest welcome says: records with the
   * virtio-net header and the kernel handing over GSO frames and partial
   * checksums, or plain frames only. The record format always follows `on`
   * (the switch expects it); a kernel refusing the flags is thrown after.
   */
  setOffload (on: boolean): void {
    const tap = this.tap
    if (on) tap.setVnetRecords(true)
    try {
      attempt(on ? 'turn on offloads of' : 'turn off offloads of', tap.name, () => { tap.setOffload(on ? this.offloadFlags : 0) })
    } finally {
      // Flags off first: the kernel then has nothing to hand over that a plain record could not carry.
      if (!on) tap.setVnetRecords(false)
    }
  }

  /** Carrier on/off (TUNSETCARRIER); throws a TapError. */
  setCarrier (on: boolean): void {
    attempt('set carrier of', this.tap.name, () => { this.tap.setCarrier(on) })
  }

  /**
   * Set the MTU; throws a TapError (ENODEV once the TAP was moved to another
   * namespace by hand: open it there with `netns` instead).
   */
  setMtu (mtu: number): void {
    attempt('set MTU of', this.tap.name, () => { this.tap.setMtu(mtu) })
  }

  /** The TAP's MAC, `02:00:00:00:00:01`. */
  mac (): string {
    return [...this.tap.getMac()].map((b) => b.toString(16).padStart(2, '0')).join(':')
  }

  /** Start reading: one batch per read burst, a view of the binding's slab (no copy). */
  start (onBatch: (batch: Buffer, count: number) => void): void {
    const onFrames: OnFrames = (slab, start, end, count) => { onBatch(slab.subarray(start, end), count) }
    this.tap.start(onFrames, MAX_BURST_FRAMES, MAX_BURST_BYTES)
  }

  /** Write a batch message's records in one native call; returns frames written (failures are counted in stats()). */
  write (batch: Buffer): number {
    return this.tap.writeBatch(batch, 0, batch.length)
  }

  stats (): TapStats {
    this.tap.stats(this.statBuf)
    return statsFrom(this.statBuf)
  }

  /** Idempotent; a non-persistent TAP disappears with its last fd. */
  close (): void { this.tap.close() }
}
