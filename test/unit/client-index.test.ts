import assert from 'node:assert/strict'
import { ClientIndex } from '../../src/switch/io/client-index'

describe('ClientIndex (the fast path\'s per-client share of its miss queue)', () => {
  it('attack: all the ports of one client share one index, however many it opens', () => {
    const c = new ClientIndex()
    const a = c.take('192.0.2.7')
    for (let i = 0; i < 50; i++) assert.equal(c.take('192.0.2.7'), a)
    const b = c.take('192.0.2.8')
    assert.notEqual(a, b)
    assert.equal(c.size, 2)
  })

  it('frees an index with the client\'s last port, and reuses it', () => {
    const c = new ClientIndex()
    const a = c.take('x')
    c.take('x')
    c.give('x')
    assert.equal(c.take('y'), 1, 'x still holds 0')
    c.give('x')
    assert.equal(c.size, 1)
    assert.equal(c.take('z'), a, 'x\'s index is reused')
    c.give('nobody')
    assert.equal(c.size, 2)
  })
})
