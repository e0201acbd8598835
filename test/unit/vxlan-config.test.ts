/**
 * The `vxlan` key and the --vxlan-listen / --vxlan flags (control/config/vxlan.ts):
 * what they read, and each refusal, which names the key (TSW_ERR_CONFIG).
 */

import assert from 'node:assert/strict'
import { buildConfig, isReservedName } from '../../src/switch/control/config'
import { ERR_CONFIG } from '../../src/common/errors'
import { setLogSink } from '../../src/common/log'

const T = 'a'.repeat(32)
const listener = (vnis: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> => ({ vxlan: [{ vnis, ...extra }] })

/** buildConfig throws TSW_ERR_CONFIG with a message matching `what` (the key, and the cause). */
function refused (raw: Record<string, unknown>, what: RegExp, overrides = {}): void {
  assert.throws(() => buildConfig(raw, 'f.json', overrides), (err: Error & { code?: string }) => {
    assert.equal(err.code, ERR_CONFIG)
    assert.match(err.message, what)
    return true
  })
}

describe('vxlan configuration', () => {
  it('reads a listener with its defaults', () => {
    const c = buildConfig(listener([{ vni: 42, remotes: ['10.0.0.2', '10.0.0.3:8472'] }]), 'f.json')
    assert.equal(c.vxlan.length, 1)
    const l = c.vxlan[0]
    assert.deepEqual({ host: l?.host, port: l?.port, encap: l?.encap, mtu: l?.mtu, sourcePorts: l?.sourcePorts }, { host: '127.0.0.1', port: 4789, encap: 'vxlan', mtu: 1500, sourcePorts: 16 })
    assert.deepEqual(l?.vnis[0], { vni: 42, network: 'default', vlan: 1, name: 'vxlan42', relay: false, remotes: [{ address: '10.0.0.2', port: 4789 }, { address: '10.0.0.3', port: 8472 }] })
  })

  it('reads GENEVE (port 6081, prefix geneve<VNI>), IPv6 listeners and remotes in canonical form, and port 0', () => {
    const c = buildConfig(listener([{ vni: 7, network: 'lab', vlan: 20, relay: true, remotes: ['fd00:0::02', '[fd00::3]:6082'] }], { listen: '[::1]:0', encap: 'geneve' }), 'f.json')
    const l = c.vxlan[0]
    assert.equal(l?.host, '::1')
    assert.equal(l?.port, 0)
    assert.deepEqual(l?.vnis[0], { vni: 7, network: 'lab', vlan: 20, name: 'geneve7', relay: true, remotes: [{ address: 'fd00::2', port: 6081 }, { address: 'fd00::3', port: 6082 }] })
    assert.equal(buildConfig(listener([{ vni: 1, remotes: ['10.0.0.2'] }], { encap: 'geneve' }), 'f.json').vxlan[0]?.port, 6081)
  })

  it('reads the flags as one listener that replaces the file\'s', () => {
    const c = buildConfig(listener([{ vni: 1, remotes: ['10.9.9.9'] }]), 'f.json', { vxlanListen: '127.0.0.2:5000', vxlan: '42@10.0.0.2+10.0.0.3,43=lab/20@10.0.0.9:4790' })
    assert.equal(c.vxlan.length, 1)
    const l = c.vxlan[0]
    assert.equal(l?.host, '127.0.0.2')
    assert.equal(l?.port, 5000)
    assert.deepEqual(l?.vnis.map((v) => [v.vni, v.network, v.vlan, v.remotes.map((r) => `${r.address}:${r.port}`)]), [
      [42, 'default', 1, ['10.0.0.2:4789', '10.0.0.3:4789']],
      [43, 'lab', 20, ['10.0.0.9:4790']]
    ])
    assert.equal(buildConfig({}, 'f.json', { vxlan: '5@10.0.0.2' }).vxlan[0]?.host, '127.0.0.1')
  })

  describe('refuses, naming the key', () => {
    it('a VNI out of range, or twice in one listener', () => {
      refused(listener([{ vni: 16777216, remotes: ['10.0.0.2'] }]), /vxlan\[0\]\.vnis\[0\]\.vni: expected an integer from 0 to 16777215/)
      refused(listener([{ vni: -1, remotes: ['10.0.0.2'] }]), /vxlan\[0\]\.vnis\[0\]\.vni/)
      refused(listener([{ remotes: ['10.0.0.2'] }]), /vxlan\[0\]\.vnis\[0\]\.vni: required/)
      refused(listener([{ vni: 42, remotes: ['10.0.0.2'] }, { vni: 42, remotes: ['10.0.0.3'] }]), /vxlan\[0\]\.vnis\[1\]\.vni: VNI 42 twice/)
    })

    it('no remotes, or no VNIs', () => {
      refused(listener([{ vni: 42, remotes: [] }]), /vxlan\[0\]\.vnis\[0\]\.remotes: expected a non-empty list/)
      refused(listener([{ vni: 42 }]), /vxlan\[0\]\.vnis\[0\]\.remotes/)
      refused(listener([]), /vxlan\[0\]\.vnis: expected a non-empty list/)
    })

    it('a remote that is not an IP address (no host names)', () => {
      for (const bad of ['vtep.example.org', 'vtep.example.org:4789', '10.0.0', '10.0.0.256', '[10.0.0.2]:4789', 'fd00::2]:1', '10.0.0.2:65536', 42]) {
        refused(listener([{ vni: 42, remotes: [bad] }]), /vxlan\[0\]\.vnis\[0\]\.remotes\[0\]: .*no host names/)
      }
      refused(listener([{ vni: 42, remotes: ['10.0.0.2:0'] }]), /remotes\[0\]: 10\.0\.0\.2:0: the port must be 1-65535/)
    })

    it('a remote that is not a unicast address (unspecified, broadcast, multicast)', () => {
      for (const bad of ['0.0.0.0', '255.255.255.255', '239.1.1.1', '224.0.0.1']) refused(listener([{ vni: 42, remotes: [bad] }]), /remotes\[0\]: .* is not a unicast address/)
      for (const bad of ['::', 'ff02::1', 'FF05::2']) refused(listener([{ vni: 42, remotes: [bad] }], { listen: '::1' }), /remotes\[0\]: .* is not a unicast address/)
    })

    it('attack: an address no datagram can come from as written: IPv4-mapped, link-local (its zone lost), 0/8, 240/4; for a remote or the listen address', () => {
      // Each was taken: the port then dropped every datagram of its VTEP as unlisted_source, and every send failed.
      for (const [bad, why] of [['::ffff:10.0.0.2', /IPv4-mapped/], ['fe80::1%lo', /link-local/], ['[fe80::2%eth0]:4789', /link-local/], ['FE80::3', /link-local/]] as const) {
        refused(listener([{ vni: 42, remotes: [bad] }], { listen: '[::1]:4789' }), new RegExp(`remotes\\[0\\]: .* ${why.source}`))
      }
      for (const [bad, why] of [['0.1.2.3', /0\.0\.0\.0\/8/], ['240.0.0.1', /240\.0\.0\.0\/4/], ['254.1.1.1', /240\.0\.0\.0\/4/]] as const) {
        refused(listener([{ vni: 42, remotes: [bad] }]), new RegExp(`remotes\\[0\\]: ${bad.replace(/\./g, '\\.')} .*${why.source}`))
      }
      refused(listener([{ vni: 42, remotes: ['::1'] }], { listen: '[::ffff:127.0.0.1]:4789' }), /vxlan\[0\]\.listen: ::ffff:127\.0\.0\.1 is an IPv4-mapped address/)
      refused(listener([{ vni: 42, remotes: ['fd00::2'] }], { listen: '[fe80::1%lo]:4789' }), /vxlan\[0\]\.listen: fe80::1 is link-local/)
      // Still taken: unique-local, global, the ordinary private and documentation ranges.
      buildConfig(listener([{ vni: 42, remotes: ['fd00::2', '2001:db8::1'] }], { listen: '[::1]:4789' }), 'f.json')
      buildConfig(listener([{ vni: 42, remotes: ['10.0.0.2', '192.0.2.1', '223.255.255.254'] }]), 'f.json')
    })

    it('attack: a remote that is switchd\'s own listener (it would flood to itself, and relay to itself without end)', () => {
      refused(listener([{ vni: 42, remotes: ['10.0.0.2', '127.0.0.1:4789'] }]), /vxlan\[0\]\.vnis\[0\]\.remotes\[1\]: 127\.0\.0\.1:4789 is vxlan\[0\], switchd's own listener/)
      refused(listener([{ vni: 42, remotes: ['127.0.0.9:4789'] }], { listen: '0.0.0.0:4789' }), /remotes\[0\]: 127\.0\.0\.9:4789 is vxlan\[0\]/)
      refused({ vxlan: [{ listen: '127.0.0.1:4789', vnis: [{ vni: 1, remotes: ['127.0.0.1:4790'] }] }, { listen: '127.0.0.1:4790', vnis: [{ vni: 1, remotes: ['127.0.0.2'] }] }] },
        /vxlan\[0\]\.vnis\[0\]\.remotes\[0\]: 127\.0\.0\.1:4790 is vxlan\[1\]/)
      // Another port of this host, or another loopback address: another VTEP.
      buildConfig(listener([{ vni: 42, remotes: ['127.0.0.1:4790', '127.0.0.2:4789'] }]), 'f.json')
      buildConfig(listener([{ vni: 42, remotes: ['127.0.0.2:4789'] }], { listen: '127.0.0.1:0' }), 'f.json')
    })

    it('a remote twice, in any spelling', () => {
      refused(listener([{ vni: 42, remotes: ['10.0.0.2', '10.0.0.2:4790'] }]), /remotes\[1\]: 10\.0\.0\.2 twice in VNI 42/)
      refused(listener([{ vni: 42, remotes: ['fd00::2'] }, { vni: 43, remotes: ['fd00::2', '[fd00:0:0::2]:1'] }], { listen: '[::]:4789' }), /vnis\[1\]\.remotes\[1\]: fd00::2 twice/)
    })

    it('a remote of the other family than the listen address', () => {
      refused(listener([{ vni: 42, remotes: ['fd00::2'] }]), /remotes\[0\]: fd00::2 is IPv6, the listener IPv4/)
      refused(listener([{ vni: 42, remotes: ['10.0.0.2'] }], { listen: '::1' }), /remotes\[0\]: 10\.0\.0\.2 is IPv4, the listener IPv6/)
    })

    it('a listen address that is not an IP address, or one listener\'s address twice', () => {
      for (const bad of ['localhost:4789', 'host', '10.0.0.1:99999', '::1:4789:x', 4789]) refused(listener([{ vni: 42, remotes: ['10.0.0.2'] }], { listen: bad }), /vxlan\[0\]\.listen: .*expected HOST\[:PORT\]/)
      const one = { listen: '127.0.0.1:4789', vnis: [{ vni: 1, remotes: ['10.0.0.2'] }] }
      refused({ vxlan: [one, { ...one, vnis: [{ vni: 2, remotes: ['10.0.0.2'] }] }] }, /vxlan\[1\]\.listen: 127\.0\.0\.1:4789 twice/)
    })

    it('more than 256 remotes in a VNI, or 4096 ports in all', () => {
      const addrs = (n: number, base = 0): string[] => Array.from({ length: n }, (_, i) => `10.${base}.${Math.floor(i / 256)}.${i % 256}`)
      refused(listener([{ vni: 1, remotes: addrs(257) }]), /vxlan\[0\]\.vnis\[0\]\.remotes: 257 remotes: at most 256/)
      const vnis = Array.from({ length: 17 }, (_, i) => ({ vni: i, remotes: addrs(241, i) }))
      refused(listener(vnis), /vxlan: 4097 \(VNI, VTEP\) ports: at most 4096/)
      assert.equal(buildConfig(listener(vnis.slice(0, 16)), 'f.json').vxlan[0]?.vnis.length, 16)
    })

    it('a VLAN out of range, a bad encap, MTU or sourcePorts, an unknown key', () => {
      refused(listener([{ vni: 1, vlan: 4095, remotes: ['10.0.0.2'] }]), /vnis\[0\]\.vlan: expected an integer from 1 to 4094/)
      refused(listener([{ vni: 1, remotes: ['10.0.0.2'] }], { encap: 'nvgre' }), /vxlan\[0\]\.encap: expected "vxlan" or "geneve"/)
      refused(listener([{ vni: 1, remotes: ['10.0.0.2'] }], { mtu: 1000 }), /vxlan\[0\]\.mtu: expected an integer from 1280 to 65535/)
      refused(listener([{ vni: 1, remotes: ['10.0.0.2'] }], { sourcePorts: 65 }), /vxlan\[0\]\.sourcePorts: expected an integer from 0 to 64/)
      refused(listener([{ vni: 1, remotes: ['10.0.0.2'], group: '239.1.1.1' }]), /vxlan\[0\]\.vnis\[0\]\.group: unknown key/)
      refused({ vxlan: { vnis: [] } }, /vxlan: expected a list/)
    })

    it('two VNIs whose port names would clash in a network, or a prefix too long for a port name', () => {
      refused({ vxlan: [{ listen: '127.0.0.1:1', vnis: [{ vni: 1, remotes: ['10.0.0.2'] }] }, { listen: '127.0.0.1:2', vnis: [{ vni: 1, remotes: ['10.0.0.3'] }] }] },
        /vxlan\[1\]\.vnis\[0\]\.name: "vxlan1" is also the name of vxlan\[0\] VNI 1 in network default/)
      refused(listener([{ vni: 1, name: 'a', remotes: ['10.0.0.2'] }, { vni: 2, name: 'a', remotes: ['10.0.0.3'] }]), /vnis\[1\]\.name: "a" is also/)
      // In two networks the same prefix is two sets of ports.
      assert.equal(buildConfig(listener([{ vni: 1, name: 'a', remotes: ['10.0.0.2'] }, { vni: 2, name: 'a', network: 'lab', remotes: ['10.0.0.3'] }]), 'f.json').vxlan[0]?.vnis.length, 2)
      refused(listener([{ vni: 1, name: 'x'.repeat(25), remotes: ['10.0.0.2'] }]), /vnis\[0\]\.name: expected a port name prefix of 1-24/)
      refused(listener([{ vni: 1, name: 'bad/name', remotes: ['10.0.0.2'] }]), /vnis\[0\]\.name/)
    })

    it('a token, QEMU listener or TAP named under a VXLAN prefix', () => {
      const vx = listener([{ vni: 42, remotes: ['10.0.0.2'] }])
      refused({ ...vx, adminToken: T, tokens: [{ id: 'evil', token: T, name: 'vxlan42-10.0.0.2' }] }, /tokens\[evil\]\.name: "vxlan42-10\.0\.0\.2" starts with a VXLAN port prefix/)
      refused({ ...vx, qemu: [{ name: 'vxlan42-x', listen: 'unix:/tmp/q.sock' }] }, /qemu\[0\]\.name: "vxlan42-x"/)
      refused({ ...vx, taps: [{ name: 'vxlan42-t' }] }, /taps\[0\]\.name: "vxlan42-t"/)
    })

    it('the flags: a bad --vxlan item, or --vxlan-listen alone', () => {
      refused({}, /--vxlan\[1\]: "43=lab": expected VNI\[=NETWORK\[\/VLAN\]\]@REMOTE/, { vxlan: '42@10.0.0.2,43=lab' })
      refused({}, /--vxlan-listen: needs --vxlan/, { vxlanListen: '127.0.0.1:4789' })
      refused({}, /vxlan\[0\]\.vnis\[0\]\.remotes\[1\]: "vtep-b"/, { vxlan: '42@10.0.0.2+vtep-b' })
    })
  })

  it('reserves the prefixes: a hello may not claim a VTEP port\'s name', () => {
    const c = buildConfig(listener([{ vni: 42, remotes: ['10.0.0.2'] }]), 'f.json')
    assert.equal(isReservedName(c, 'vxlan42-10.0.0.2'), true)
    assert.equal(isReservedName(c, 'vxlan42-anything'), true)
    assert.equal(isReservedName(c, 'vxlan43-10.0.0.2'), false)
    assert.equal(isReservedName(c, 'vxlan42'), false)
  })

  it('warns vxlan_exposed once a listener is beyond loopback, and not on loopback', () => {
    const lines: string[] = []
    const restore = setLogSink((l) => { lines.push(l) })
    try {
      buildConfig(listener([{ vni: 42, remotes: ['10.0.0.2'] }]), 'f.json')
      assert.equal(lines.filter((l) => l.includes('vxlan_exposed')).length, 0)
      buildConfig(listener([{ vni: 42, remotes: ['10.0.0.2'] }], { listen: '0.0.0.0' }), 'f.json')
      assert.equal(lines.filter((l) => l.includes('vxlan_exposed')).length, 1)
    } finally { setLogSink(restore) }
  })
})
