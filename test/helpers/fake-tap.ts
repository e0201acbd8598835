/**
 * FakeTapBinding: the native binding's contract (native/index.d.ts) in
 * memory, for integration tests without root (serialport's MockBinding
 * pattern). inject() plays frames "read from the TAP"; written holds what the
 * agent wrote to it. Opened with vnetHdr, it takes setOffload/setVnetRecords
 * as the binding does; records are then whatever payloads inject() is given
 * (header and frame), and written holds header and frame.
 */

import { EventEmitter } from 'node:events'
import type { NativeTap, OnFrames, TapBinding } from '../../src/common/tap'
import { decodeBatch, encodeBatch } from '../../src/common/protocol'

export class FakeTap implements NativeTap {
  static readonly instances: FakeTap[] = []
  static nextIndex = 1
  readonly name: string
  fd = 99
  readonly ifindex: number
  readonly vnetHdr: boolean
  offload = 0
  vnetRecords = false
  /** Every setOffload() and setVnetRecords() call, in order: 'offload:15', 'records:true'. */
  readonly offloadCalls: string[] = []
  readonly events = new EventEmitter()
  readonly written: Buffer[] = []
  mtu = 1500
  up = false
  private mac = Buffer.from('020000aa0001', 'hex')
  private onFrames: OnFrames | undefined
  private readonly counters = new Float64Array(8)

  constructor (name: string, vnetHdr = false) {
    this.ifindex = FakeTap.nextIndex++
    this.name = name === '' ? `tap${this.ifindex}` : name
    this.vnetHdr = vnetHdr
    FakeTap.instances.push(this)
  }

  /** Pretend the kernel had these frames ready: one burst, one callback. */
  inject (frames: Buffer[]): void {
    if (this.onFrames === undefined) throw new Error('not started')
    const batch = encodeBatch(frames)
    // Leave room in front, as the real slab does: the burst starts mid-slab.
    const slab = Buffer.alloc(batch.length + 100)
    batch.copy(slab, 50)
    this.counters[0] = (this.counters[0] as number) + frames.length
    this.counters[1] = (this.counters[1] as number) + frames.reduce((n, f) => n + f.length, 0)
    this.onFrames(slab, 50, 50 + batch.length, frames.length)
  }

  start (onFrames: OnFrames): void { this.onFrames = onFrames }
  stop (): void { this.onFrames = undefined }
  write (frame: Buffer): number {
    this.written.push(Buffer.from(frame))
    this.counters[2] = (this.counters[2] as number) + 1
    this.counters[3] = (this.counters[3] as number) + frame.length
    this.events.emit('frame', frame)
    return frame.length
  }

  writeBatch (buf: Buffer, start: number, end: number): number {
    const frames = decodeBatch(buf.subarray(start, end))
    for (const f of frames) this.write(f)
    return frames.length
  }

  setMtu (mtu: number): void { this.mtu = mtu }
  setUp (up: boolean): void { this.up = up }
  carrier = true
  setCarrier (on: boolean): void { this.carrier = on }
  setMac (mac: Buffer): void { this.mac = Buffer.from(mac) }
  getMac (): Buffer { return Buffer.from(this.mac) }
  setIPv4 (): void {}
  setOffload (flags: number): void {
    if (flags !== 0 && !this.vnetHdr) throw Object.assign(new Error('ioctl(TUNSETOFFLOAD) fake: EINVAL'), { code: 'EINVAL', errno: 22, syscall: 'ioctl(TUNSETOFFLOAD)', hint: '' })
    this.offload = flags
    this.offloadCalls.push(`offload:${flags}`)
  }

  setVnetRecords (on: boolean): void {
    if (on && !this.vnetHdr) throw Object.assign(new Error('ioctl(TUNSETIFF) fake: ENOTSUP'), { code: 'ENOTSUP', errno: 95, syscall: 'ioctl(TUNSETIFF)', hint: '' })
    this.vnetRecords = on
    this.offloadCalls.push(`records:${String(on)}`)
  }

  stats (out: Float64Array): void { out.set(this.counters) }
  close (): void { this.fd = -1; this.onFrames = undefined }
}

export const fakeTapBinding: TapBinding = { Tap: FakeTap, OFFLOAD_TSO: 15 }
