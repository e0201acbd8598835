/**
 * common/tap.ts, the one TAP wrapper tap-agent and switchd's own TAPs use,
 * over the fake binding: the MTU formula, the offload probe, and errors that
 * name the step, the device and the fix.
 */
import assert from 'node:assert/strict'
import { TapDevice, TapError, tapMtu, type TapBinding } from '../../src/common/tap'
import { ERR_TAP } from '../../src/common/errors'
import { FakeTap, fakeTapBinding } from '../helpers/fake-tap'

/** A binding whose open fails as the kernel's would, with the binding's error shape. */
function refusing (code: string, errno: number, syscall: string, hint: string, onlyVnet = false): TapBinding {
  class Refused extends FakeTap {
    constructor (name: string, vnetHdr = false) {
      super(name, vnetHdr)
      if (!onlyVnet || vnetHdr) throw Object.assign(new Error(`${syscall}: ${code}`), { code, errno, syscall, hint })
    }
  }
  return { ...fakeTapBinding, Tap: Refused }
}

describe('common/tap.ts: the one TAP wrapper', () => {
  it('gives the MTU that fills a largest frame, less the header and one tag, within 68..65535', () => {
    assert.equal(tapMtu(1518), 1500)
    assert.equal(tapMtu(9018), 9000)
    assert.equal(tapMtu(64), 68)
    assert.equal(tapMtu(65535 + 18 + 100), 65535)
  })

  it('opens, configures and probes offloads, leaving records plain until setOffload(true)', () => {
    const dev = TapDevice.open(fakeTapBinding, { name: 'tsw-u0', mtu: tapMtu(1518), offload: 'auto', mac: Buffer.from('020000000009', 'hex') })
    const t = dev.tap as FakeTap
    assert.equal(t.mtu, 1500)
    assert.equal(t.up, true)
    assert.equal(dev.mac(), '02:00:00:00:00:09')
    assert.equal(dev.offloadCapable, true)
    assert.deepEqual(t.offloadCalls, ['offload:15', 'offload:0'])
    assert.equal(dev.vnetRecords, false)
    dev.setOffload(true)
    assert.equal(dev.vnetRecords, true)
    assert.equal(t.offload, 15)
    dev.setOffload(false)
    assert.deepEqual(t.offloadCalls.slice(2), ['records:true', 'offload:15', 'offload:0', 'records:false'])
    dev.close()
    assert.equal(dev.fd, -1)
  })

  it('counts refused writes without allocating a stats object (txDropped)', () => {
    const dev = TapDevice.open(fakeTapBinding, { name: 'tsw-u1' })
    const t = dev.tap as FakeTap
    t.stats = (out) => { out.fill(0); out[4] = 7 }
    assert.equal(dev.txDropped(), 7)
    assert.equal(dev.stats().txDropped, 7)
    dev.close()
  })

  it('names the step, the device, the errno and the hint in a TapError (TSW_ERR_TAP)', () => {
    assert.throws(() => TapDevice.open(refusing('EPERM', 1, 'ioctl(TUNSETIFF)', 'needs CAP_NET_ADMIN'), { name: 'tsw-u2' }),
      (err: unknown) => err instanceof TapError && err.code === ERR_TAP && err.step === 'open' && err.syscall === 'ioctl(TUNSETIFF)' &&
        err.message === 'open tsw-u2: EPERM (needs CAP_NET_ADMIN)')
  })

  it("offload 'auto' opens without virtio-net headers when the kernel cannot set them up; 'on' fails", () => {
    const b = refusing('EINVAL', 22, 'ioctl(TUNSETVNETHDRSZ)', '', true)
    const dev = TapDevice.open(b, { name: 'tsw-u3', offload: 'auto' })
    assert.equal(dev.vnetHdr, false)
    assert.equal(dev.offloadCapable, false)
    dev.close()
    assert.throws(() => TapDevice.open(b, { name: 'tsw-u4', offload: 'on' }), (err: unknown) => err instanceof TapError && err.errno === 22)
  })
})
