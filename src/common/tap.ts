/**
 * TapDevice: one Linux TAP over the native binding (native/tap.cc), the one
 * wrapper both programs use: tap-agent's endpoint (agent/main.ts) and the
 * TAPs switchd serves itself (`--tap`, switch/io/tap-port.ts). The binding is
 * passed in by the caller (the serialport bindings pattern): the programs
 * pass the addon (common/native.ts loads it), the tests a fake
 * (test/helpers/fake-tap.ts).
 *
 * Configuration is slow path: open, MAC, MTU (one formula, tapMtu), address,
 * link state, carrier and offloads, each throwing a TapError that names the
 * step, the device, the errno and the fix. The frame path is the binding's
 * own start() and writeBatch(), called once per burst or batch: nothing here
 * allocates per frame.
 */

import type * as Native from '../../native'
import { TapswitchError, ERR_TAP } from './errors'
import { STAT_COUNT, STAT_TX_DROPPED, statsFrom, type NativeStats } from './native'

export type NativeTap = Native.Tap
export type OnFrames = Native.OnFrames

/** What TapDevice needs of a binding: the addon satisfies it, and so does test/helpers/fake-tap. */
export interface TapBinding {
  Tap: new (name: string, vnetHdr?: boolean, options?: Native.TapOpenOptions) => NativeTap
  /** The TUNSETOFFLOAD flags for TCP segmentation and checksum offload. */
  OFFLOAD_TSO: number
}

/** 'auto' uses offloads when the TAP and the switch both can; 'on' fails if the TAP cannot; 'off' never. */
export type OffloadMode = 'auto' | 'on' | 'off'

/** One read burst is bounded so one callback copies at most about 64 KiB (more halved throughput). */
export const MAX_BURST_FRAMES = 64
export const MAX_BURST_BYTES = 64 * 1024

/**
 * The TAP MTU that fills a port's largest frame: the Ethernet header (14) and
 * one VLAN tag (4) come on top; within what Linux takes (68..65535).
 */
export function tapMtu (maxFrameSize: number): number {
  return Math.max(68, Math.min(65535, maxFrameSize - 18))
}

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
   * switch asks for); the program itself stays where it is.
   */
  netns?: string
  /** Only an existing persistent TAP will do (--attach): a name with none fails, and no TAP is made. */
  attach?: boolean
}

export type TapStats = NativeStats

/** What a TapError was doing: each program words its message from it. */
export type TapStep = 'open' | 'set MAC' | 'set MTU' | 'set address' | 'bring up' | 'take down' | 'set carrier' | 'turn on offloads' | 'turn off offloads'

/**
 * A TapswitchError (code TSW_ERR_TAP) whose message names the step, the
 * device, the errno and the fix, e.g. `open tap0: EPERM (needs CAP_NET_ADMIN)`;
 * the native error is its `cause`, and `errno`/`syscall` are kept.
 */
export class TapError extends TapswitchError {
  constructor (readonly step: TapStep, readonly device: string, override readonly cause: Native.TapSystemError) {
    super(ERR_TAP, `${phrase(step)} ${device}: ${cause.code}${cause.hint !== '' ? ` (${cause.hint})` : ''}`, { cause })
  }

  /** The step as the message says it: `set MTU of`. */
  get action (): string { return phrase(this.step) }
  get errno (): number { return this.cause.errno }
  get syscall (): string { return this.cause.syscall }
}

function phrase (step: TapStep): string {
  return step === 'open' || step === 'bring up' || step === 'take down' ? step : `${step} of`
}

function isSystemError (err: unknown): err is Native.TapSystemError {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'string' && typeof (err as { syscall?: unknown }).syscall === 'string'
}

/** Run a binding call; turn its system error into a TapError saying what we were doing. */
function attempt<T> (step: TapStep, device: string, fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    if (isSystemError(err)) throw new TapError(step, device, err)
    throw err
  }
}

/** Open failures no retry without virtio-net headers could mend: the TAP itself cannot be had. */
const OPEN_STEPS = ['open', 'setns', 'socket', 'ioctl(TUNSETIFF)', 'ioctl(TUNGETIFF)']

export class TapDevice {
  private readonly statBuf = new Float64Array(STAT_COUNT)
  private readonly offloadFlags: number
  /**
   * The TAP can carry offloads: opened with IFF_VNET_HDR and the kernel took
   * the TSO flags when tried at open. Offloads stay off (and records plain)
   * until setOffload(true).
   */
  offloadCapable = false

  private constructor (readonly tap: NativeTap, binding: TapBinding) {
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
      if (mode !== 'auto' || !(err instanceof TapError) || OPEN_STEPS.includes(err.syscall)) throw err
      tap = attempt('open', shown, () => new binding.Tap(opts.name, false, where))
    }
    const dev = new TapDevice(tap, binding)
    try {
      const name = tap.name
      if (tap.vnetHdr) dev.probeOffload(mode)
      if (opts.mac !== undefined) { const mac = opts.mac; attempt('set MAC', name, () => { tap.setMac(mac) }) }
      if (opts.mtu !== undefined) dev.setMtu(opts.mtu)
      if (opts.ipv4 !== undefined) { const a = opts.ipv4; attempt('set address', name, () => { tap.setIPv4(a.address, a.prefixLength) }) }
      if (opts.up !== false) dev.setUp(true)
    } catch (err) {
      tap.close()
      throw err
    }
    return dev
  }

  get name (): string { return this.tap.name }
  /** The fd (switchd's fast path polls it), -1 once closed. */
  get fd (): number { return this.tap.fd }
  /** Opened with IFF_VNET_HDR. */
  get vnetHdr (): boolean { return this.tap.vnetHdr }
  /** Records carry the virtio-net header (setOffload(true)). */
  get vnetRecords (): boolean { return this.tap.vnetRecords }

  /** Does the kernel take our offload flags? Tried now so that offload 'on' fails at start, with the reason. */
  private probeOffload (mode: OffloadMode): void {
    try {
      attempt('turn on offloads', this.tap.name, () => { this.tap.setOffload(this.offloadFlags); this.tap.setOffload(0) })
      this.offloadCapable = true
    } catch (err) {
      if (mode === 'on') throw err
    }
  }

  /**
   * Carry offloads or not: records with the virtio-net header and the kernel
   * handing over GSO frames and partial checksums, or plain frames only. The
   * record format always follows `on` (the switch expects it); a kernel
   * refusing the flags is thrown after.
   */
  setOffload (on: boolean): void {
    const tap = this.tap
    if (on) tap.setVnetRecords(true)
    try {
      attempt(on ? 'turn on offloads' : 'turn off offloads', tap.name, () => { tap.setOffload(on ? this.offloadFlags : 0) })
    } finally {
      // Flags off first: the kernel then has nothing to hand over that a plain record could not carry.
      if (!on) tap.setVnetRecords(false)
    }
  }

  /** Carrier on/off (TUNSETCARRIER); throws a TapError. */
  setCarrier (on: boolean): void {
    attempt('set carrier', this.tap.name, () => { this.tap.setCarrier(on) })
  }

  /** Link up or down (IFF_UP); throws a TapError. */
  setUp (up: boolean): void {
    attempt(up ? 'bring up' : 'take down', this.tap.name, () => { this.tap.setUp(up) })
  }

  /**
   * Set the MTU; throws a TapError (ENODEV once the TAP was moved to another
   * namespace by hand: open it there with `netns` instead).
   */
  setMtu (mtu: number): void {
    attempt('set MTU', this.tap.name, () => { this.tap.setMtu(mtu) })
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

  /** Stop reading (idempotent); the TAP stays open. */
  stop (): void { this.tap.stop() }

  /** Write a batch's records in one native call; returns frames written (failures are counted in stats()). */
  write (batch: Buffer): number {
    return this.tap.writeBatch(batch, 0, batch.length)
  }

  stats (): TapStats {
    this.tap.stats(this.statBuf)
    return statsFrom(this.statBuf)
  }

  /** Writes the kernel refused so far because its queue was full; allocates nothing. */
  txDropped (): number {
    this.tap.stats(this.statBuf)
    return this.statBuf[STAT_TX_DROPPED] as number
  }

  /** Idempotent; a non-persistent TAP disappears with its last fd. */
  close (): void { this.tap.close() }
}
