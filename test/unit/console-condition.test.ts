/** The web console's link-condition text and editor form (src/ui/condition.ts), against the API's own JSON. */
import assert from 'node:assert/strict'
import { conditionBody, conditionText, directionText, formFrom, held, linkIsDown, msText, rateText } from '../../src/ui/condition'
import { conditionJson, readCondition } from '../../src/switch/core/condition'
import type { ConditionJson, PortConditionJson } from '../../src/common/api-types'

/** A direction as the API sends it: what readCondition makes of `raw`, plus the live fields. */
function dir (raw: Record<string, unknown>, live: Partial<ConditionJson> = {}): ConditionJson {
  return { ...conditionJson(readCondition(raw, 'condition')), down: false, queuedFrames: 0, queuedBytes: 0, ...live } as ConditionJson
}

function port (c: Partial<PortConditionJson>): PortConditionJson {
  return { port: 'p1', network: 'default', framesDelayed: 0, ...c }
}

describe('console condition', () => {
  it('writes rates exactly, in the units the API reads (it multiplies as we check)', () => {
    assert.equal(rateText(10e6), '10mbit')
    assert.equal(rateText(512e3), '512kbit')
    assert.equal(rateText(1.5e6), '1.5mbit')
    assert.equal(rateText(1e9), '1gbit')
    assert.equal(rateText(8000), '8kbit')
    assert.equal(rateText(1234567), '1234.567kbit')
    assert.equal(rateText(12345), '12.345kbit')
    // Where the unit would not read back exactly (8.001 * 1000 is 8000.999… in floating point), plain bits.
    assert.equal(rateText(8001), '8001bit')
  })

  it('writes times in ms, and whole seconds from a second up', () => {
    assert.equal(msText(0), '0ms')
    assert.equal(msText(20), '20ms')
    assert.equal(msText(999.5), '999.5ms')
    assert.equal(msText(1000), '1s')
    assert.equal(msText(30000), '30s')
  })

  it('describes a direction in a few words', () => {
    assert.equal(directionText(dir({ delay: '20ms', jitter: '5ms', loss: '1%', rate: '10mbit' })), '20ms ±5ms, 1% loss, 10mbit')
    assert.equal(directionText(dir({ jitter: 3 })), '0ms ±3ms')
    assert.equal(directionText(dir({ delay: '1.5s', jitter: '500us' })), '1.5s ±0.5ms')
    assert.equal(directionText(dir({ burst: { p: 1, r: 30 }, duplicate: 2, corrupt: 0.1, reorder: 25, delay: 10 })), '10ms, burst loss 1%/30%, 2% dup, 0.1% corrupt, 25% reorder')
    assert.equal(directionText(dir({})), 'none')
    assert.equal(directionText(dir({ delay: 20 }, { down: true })), 'down')
  })

  it('describes a port: one direction, both alike, each different, a flap', () => {
    const out = dir({ delay: '20ms', jitter: '5ms', loss: '1%', rate: '10mbit' })
    assert.equal(conditionText(undefined), '')
    assert.equal(conditionText(port({ out })), 'out: 20ms ±5ms, 1% loss, 10mbit')
    assert.equal(conditionText(port({ in: dir({ delay: 40 }), out: dir({ delay: 40 }) })), 'both: 40ms')
    assert.equal(conditionText(port({ in: dir({ rate: '1mbit' }), out: dir({ rate: '16mbit', delay: 10 }) })), 'in: 1mbit; out: 10ms, 16mbit')
    assert.equal(conditionText(port({ in: dir({}, { down: true }) })), 'in: down')
    assert.equal(conditionText(port({ flap: { down: 2, every: 8 } })), 'flap 2s/8s')
    assert.equal(conditionText(port({})), '')
  })

  it('adds up what both directions hold', () => {
    assert.deepEqual(held(undefined), { frames: 0, bytes: 0 })
    assert.deepEqual(held(port({ in: dir({ delay: 5 }, { queuedFrames: 2, queuedBytes: 128 }), out: dir({ delay: 5 }, { queuedFrames: 3, queuedBytes: 1500 }) })), { frames: 5, bytes: 1628 })
  })

  it('offers "link up" only when something is down', () => {
    assert.equal(linkIsDown('forwarding', undefined), false)
    assert.equal(linkIsDown('forwarding', port({ out: dir({ delay: 20 }) })), false)
    assert.equal(linkIsDown('down', port({})), true)
    assert.equal(linkIsDown('forwarding', port({ in: dir({}, { down: true }) })), true)
    assert.equal(linkIsDown('forwarding', port({ flap: { down: 2, every: 8 } })), true)
    // Disabled hides a pulled cable in the state: an entry with no direction is the drill.
    assert.equal(linkIsDown('disabled', port({})), true)
    assert.equal(linkIsDown('disabled', undefined), false)
  })

  it('sends what was typed, empty fields left out', () => {
    assert.deepEqual(conditionBody({ direction: 'out', delay: ' 20ms ', jitter: '', loss: '1%', rate: '' }), { direction: 'out', delay: '20ms', loss: '1%' })
    assert.deepEqual(conditionBody({ direction: 'both', delay: '', jitter: '', loss: '', rate: '' }), { direction: 'both' })
  })

  it('fills the editor with what the port has, and that reads back the same', () => {
    assert.deepEqual(formFrom(undefined), { direction: 'both', delay: '', jitter: '', loss: '', rate: '' })
    for (const raw of [{ delay: '20ms', jitter: '5ms', loss: '1%', rate: '10mbit' }, { delay: 1.5, rate: 1234567 }, { loss: 0.25 }, { rate: '100gbit' }]) {
      const c = port({ out: dir(raw) })
      const f = formFrom(c)
      assert.equal(f.direction, 'out')
      const { direction: _d, ...body } = conditionBody(f)
      assert.deepEqual(conditionJson(readCondition(body, 'condition')), conditionJson(readCondition(raw, 'condition')), JSON.stringify(raw))
    }
    assert.equal(formFrom(port({ in: dir({ delay: 40 }), out: dir({ delay: 40 }) })).direction, 'both')
    assert.equal(formFrom(port({ in: dir({ delay: 40 }) })).direction, 'in')
  })
})
