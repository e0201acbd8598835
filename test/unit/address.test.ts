import assert from 'node:assert/strict'
import { isLoopback, splitHostPort } from '../../src/common/address'

describe('addresses', () => {
  it('knows loopback hosts, with or without brackets, and nothing else', () => {
    for (const h of ['localhost', '127.0.0.1', '127.8.9.10', '::1', '[::1]']) assert.equal(isLoopback(h), true, h)
    for (const h of ['0.0.0.0', '10.0.0.1', '::', 'example.org', '128.0.0.1', '[::2]']) assert.equal(isLoopback(h), false, h)
  })

  it('splits HOST:PORT and [V6]:PORT', () => {
    assert.deepEqual(splitHostPort('127.0.0.1:8080'), ['127.0.0.1', 8080])
    assert.deepEqual(splitHostPort('[::1]:9'), ['::1', 9])
    assert.deepEqual(splitHostPort('switch.example.org:443'), ['switch.example.org', 443])
  })
})
