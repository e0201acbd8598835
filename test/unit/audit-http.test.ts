/**
 * Issue 12, the HTTP surface, parts that need no socket: the per-address key
 * and the exposure check that start and reload share.
 */
import assert from 'node:assert/strict'
import { addressKey } from '../../src/common/address'
import { checkExposure, hostAllowed, originAllowed } from '../../src/switch/control/exposure'
import { buildConfig } from '../../src/switch/control/config'

const ADMIN = 'unit-admin-token-0123456789'
const CLIENT = 'unit-client-token-0123456789'

describe('audit: the HTTP surface (unit)', () => {
  it('attack: one IPv6 host cannot pass maxPortsPerAddress with many addresses of its /64', () => {
    assert.equal(addressKey('2001:db8:1:2::1'), addressKey('2001:db8:1:2:ffff:ffff:ffff:fffe'))
    assert.equal(addressKey('2001:db8:1:2::1'), addressKey('2001:0db8:0001:0002:0:0:0:9'))
    assert.notEqual(addressKey('2001:db8:1:2::1'), addressKey('2001:db8:1:3::1'))
    assert.equal(addressKey('fe80::1%eth0'), addressKey('fe80::2'))
  })

  it('attack: an IPv4 client cannot double its share by also arriving as IPv4-mapped IPv6', () => {
    assert.equal(addressKey('::ffff:192.0.2.7'), addressKey('192.0.2.7'))
    assert.notEqual(addressKey('192.0.2.7'), addressKey('192.0.2.8'))
  })

  it('attack: a reload that removes the admin token while client tokens remain is refused', () => {
    const tokens = [{ id: 'c', token: CLIENT }]
    assert.doesNotThrow(() => { checkExposure(buildConfig({ adminToken: ADMIN, tokens }, 'test'), '127.0.0.1') })
    assert.throws(() => { checkExposure(buildConfig({ tokens }, 'test'), '127.0.0.1') }, { code: 'TSW_ERR_CONFIG' })
    assert.doesNotThrow(() => { checkExposure(buildConfig({ api: false, tokens }, 'test'), '127.0.0.1') })
  })

  it('attack: an open API beyond loopback is refused even with allowAnonymous', () => {
    assert.throws(() => { checkExposure(buildConfig({ allowAnonymous: true }, 'test'), '0.0.0.0') }, { code: 'TSW_ERR_CONFIG' })
    assert.doesNotThrow(() => { checkExposure(buildConfig({}, 'test'), '127.0.0.1') })
    assert.doesNotThrow(() => { checkExposure(buildConfig({ adminToken: ADMIN, allowAnonymous: true }, 'test'), '0.0.0.0') })
  })

  it('accepts IP literals, localhost and listed names as Host; nothing else', () => {
    assert.ok(hostAllowed('127.0.0.1:8080', []))
    assert.ok(hostAllowed('[::1]:8080', []))
    assert.ok(hostAllowed('LOCALHOST', []))
    assert.ok(!hostAllowed('evil.example:8080', []))
    assert.ok(!hostAllowed(undefined, []))
    assert.ok(!hostAllowed('127.0.0.1.evil.example', []))
    assert.ok(hostAllowed('a.example.org:1', ['.example.org']))
    assert.ok(hostAllowed('example.org', ['.example.org']))
    assert.ok(!hostAllowed('badexample.org', ['.example.org']))
    assert.ok(hostAllowed('anything', ['*']))
  })

  it('treats a request without Origin as a non-browser, and matches origins exactly', () => {
    assert.ok(originAllowed(undefined, []))
    assert.ok(!originAllowed('null', []))
    assert.ok(originAllowed('http://localhost:8000', ['http://localhost:8000']))
    assert.ok(!originAllowed('http://localhost:8000.evil.example', ['http://localhost:8000']))
    assert.ok(originAllowed('https://x.example', ['*']))
  })

  it('reads allowedHosts and allowedOrigins from flags over the file, and refuses malformed entries', () => {
    const c = buildConfig({ allowedHosts: ['a.example'] }, 'test', { allowedHosts: 'b.example, c.example', allowedOrigins: 'http://localhost:8000' })
    assert.deepEqual(c.allowedHosts, ['b.example', 'c.example'])
    assert.deepEqual(c.allowedOrigins, ['http://localhost:8000'])
    assert.throws(() => buildConfig({ allowedOrigins: ['http://x.example/path'] }, 'test'), { code: 'TSW_ERR_CONFIG' })
    assert.throws(() => buildConfig({ allowedHosts: ['a b'] }, 'test'), { code: 'TSW_ERR_CONFIG' })
  })
})
