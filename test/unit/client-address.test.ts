import assert from 'node:assert/strict'
import { decideClient, parseTrustedProxies, normalizeAddress, MAX_FORWARDED_LENGTH } from '../../src/switch/control/client-address'
import { buildConfig } from '../../src/switch/control/config'

const trusted = parseTrustedProxies(['10.0.0.0/8', 'fd00::/8', '127.0.0.1'])
const xff = (v: string | string[]): Record<string, string | string[]> => ({ 'x-forwarded-for': v })

describe('client address (X-Forwarded-For from trusted proxies only)', () => {
  it('takes the last entry of a trusted proxy\'s header', () => {
    assert.deepEqual(decideClient('10.1.2.3', xff('198.51.100.7'), trusted), { address: '198.51.100.7', proxied: true })
    assert.deepEqual(decideClient('127.0.0.1', xff('203.0.113.1, 198.51.100.7'), trusted), { address: '198.51.100.7', proxied: true })
    assert.deepEqual(decideClient('fd00::5', xff('2001:DB8::1'), trusted), { address: '2001:db8::1', proxied: true })
  })

  it('takes the last of repeated headers (Node joins them; an array too)', () => {
    assert.equal(decideClient('10.0.0.1', xff(['192.0.2.9', '198.51.100.7']), trusted).address, '198.51.100.7')
  })

  it('normalizes IPv4-mapped IPv6, of the peer and of the header', () => {
    assert.deepEqual(decideClient('::ffff:10.0.0.1', xff('::ffff:198.51.100.7'), trusted), { address: '198.51.100.7', proxied: true })
    assert.equal(normalizeAddress('::FFFF:192.0.2.1'), '192.0.2.1')
    assert.deepEqual(decideClient('::ffff:192.0.2.1', {}, undefined), { address: '192.0.2.1', proxied: false })
  })

  it('attack: ignores a spoofed header from a peer that is not a trusted proxy', () => {
    assert.deepEqual(decideClient('192.0.2.66', xff('198.51.100.7'), trusted), { address: '192.0.2.66', proxied: false })
    assert.deepEqual(decideClient('127.0.0.2', xff('198.51.100.7'), trusted), { address: '127.0.0.2', proxied: false })
    assert.deepEqual(decideClient('2001:db8::66', xff('198.51.100.7'), trusted), { address: '2001:db8::66', proxied: false })
    // No trusted proxy at all (the default): the header never matters.
    assert.deepEqual(decideClient('10.0.0.1', xff('198.51.100.7'), undefined), { address: '10.0.0.1', proxied: false })
    assert.deepEqual(decideClient('10.0.0.1', xff('198.51.100.7'), parseTrustedProxies([])), { address: '10.0.0.1', proxied: false })
  })

  it('falls back to the proxy\'s address, saying why, on a missing, garbage or oversized header', () => {
    assert.deepEqual(decideClient('10.0.0.1', {}, trusted), { address: '10.0.0.1', proxied: false, bad: 'absent' })
    assert.deepEqual(decideClient('10.0.0.1', xff(''), trusted), { address: '10.0.0.1', proxied: false, bad: 'absent' })
    for (const garbage of ['unknown', '198.51.100.7:4000', '[2001:db8::1]', '198.51.100.7, ', 'fe80::1%eth0', '999.1.1.1', '198.51.100.7 198.51.100.8', 'a'.repeat(40)]) {
      assert.deepEqual(decideClient('10.0.0.1', xff(garbage), trusted), { address: '10.0.0.1', proxied: false, bad: 'malformed' }, garbage)
    }
    const long = Array.from({ length: 20 }, (_, i) => `198.51.100.${i}`).join(', ')
    assert.ok(long.length > MAX_FORWARDED_LENGTH)
    assert.deepEqual(decideClient('10.0.0.1', xff(long), trusted), { address: '10.0.0.1', proxied: false, bad: 'too_long' })
  })

  it('matches ranges by CIDR, IPv4 and IPv6, and refuses what is not a range', () => {
    const r = parseTrustedProxies(['192.0.2.0/25', '2001:db8:1::/48', '::ffff:203.0.113.0/120'])
    assert.equal(decideClient('::ffff:203.0.113.9', xff('198.51.100.7'), r).proxied, true)
    assert.equal(decideClient('192.0.2.127', xff('198.51.100.7'), r).proxied, true)
    assert.equal(decideClient('192.0.2.128', xff('198.51.100.7'), r).proxied, false)
    assert.equal(decideClient('2001:db8:1:ffff::1', xff('198.51.100.7'), r).proxied, true)
    assert.equal(decideClient('2001:db8:2::1', xff('198.51.100.7'), r).proxied, false)
    for (const bad of ['10.0.0.0/33', 'fd00::/129', 'nginx', '10.0.0/8', '10.0.0.0/x', '']) {
      assert.throws(() => parseTrustedProxies([bad]), /is not an address range/, bad)
    }
  })

  it('attack: an IPv6 range over ::ffff:0:0/96 (::/0, ::/64) trusts every IPv4 peer\'s header', () => {
    // Node's BlockList matches an IPv4 address against an IPv6 subnet through the mapped space.
    for (const range of ['::/0', '::/64', '::ffff:0:0/96']) {
      const r = parseTrustedProxies([range])
      assert.deepEqual(decideClient('192.0.2.66', xff('198.51.100.7'), r), { address: '192.0.2.66', proxied: false }, range)
      assert.deepEqual(decideClient('::ffff:192.0.2.66', xff('198.51.100.7'), r), { address: '192.0.2.66', proxied: false }, range)
    }
    assert.equal(decideClient('2001:db8::1', xff('198.51.100.7'), parseTrustedProxies(['::/0'])).proxied, true, 'IPv6 peers are still in it')
    assert.equal(decideClient('192.0.2.66', xff('198.51.100.7'), parseTrustedProxies(['::/0', '192.0.2.0/24'])).proxied, true, 'IPv4 ranges still hold IPv4')
  })

  it('is configured by trustedProxies (--trusted-proxy wins), empty by default, with errors naming the entry', () => {
    assert.deepEqual(buildConfig({}, 't').trustedProxies, [])
    assert.deepEqual(buildConfig({ trustedProxies: ['10.0.0.0/8'] }, 't').trustedProxies, ['10.0.0.0/8'])
    assert.deepEqual(buildConfig({ trustedProxies: ['10.0.0.0/8'] }, 't', { trustedProxies: '127.0.0.1, fd00::/8' }).trustedProxies, ['127.0.0.1', 'fd00::/8'])
    assert.throws(() => buildConfig({ trustedProxies: ['10.0.0.0/8', '10.0.0.0/40'] }, 't'), /trustedProxies\[1\].*not an address range/)
    assert.throws(() => buildConfig({}, 't', { trustedProxies: 'nginx' }), /trustedProxies\[0\]/)
  })
})
