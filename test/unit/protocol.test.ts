import assert from 'node:assert/strict'
import {
  parseHello, parseWelcome, countRecords, encodeBatch, decodeBatch, writeRecord, RECORD_HEADER, MAX_MESSAGE_SIZE
} from '../../src/common/protocol'
import { macAt, isGroup, isBroadcast, formatMac, parseMac } from '../../src/common/ethernet'

describe('protocol', () => {
  describe('batches', () => {
    it('round-trips frames through encodeBatch / decodeBatch', () => {
      const frames = [Buffer.from('aa'.repeat(60), 'hex'), Buffer.alloc(0), Buffer.from('bb'.repeat(1514), 'hex')]
      const msg = encodeBatch(frames)
      assert.equal(msg.length, 3 * RECORD_HEADER + 60 + 1514)
      assert.equal(countRecords(msg), 3)
      assert.deepEqual(decodeBatch(msg), frames)
    })

    it('counts an empty message as zero records', () => {
      assert.equal(countRecords(Buffer.alloc(0)), 0)
    })

    it('rejects a length that runs past the end, at every truncation point', () => {
      const msg = encodeBatch([Buffer.alloc(20, 1), Buffer.alloc(30, 2)])
      for (let cut = 1; cut < msg.length; cut++) {
        const expect = cut === RECORD_HEADER + 20 ? 1 : -1
        assert.equal(countRecords(msg.subarray(0, cut)), expect, `cut at ${cut}`)
      }
      assert.throws(() => decodeBatch(msg.subarray(0, 10)), { code: 'TSW_ERR_PROTOCOL' })
    })

    it('rejects a huge length without reading past the buffer', () => {
      const msg = Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3])
      assert.equal(countRecords(msg), -1)
    })

    it('writeRecord appends a big-endian length and a copy of the frame', () => {
      const out = Buffer.alloc(16)
      const src = Buffer.from('xx0102030405yy')
      const end = writeRecord(out, 2, src, 2, 10)
      assert.equal(end, 16)
      assert.equal(out.readUInt32BE(2), 10)
      assert.equal(out.subarray(6, 16).toString(), '0102030405')
    })
  })

  describe('hello', () => {
    it('accepts a minimal and a full hello', () => {
      assert.deepEqual(parseHello('{"type":"hello","version":1}'), { type: 'hello', version: 1 })
      const h = parseHello('{"type":"hello","version":1,"name":"host-a:tap0","mtu":9000,"mac":"02:00:00:00:00:01","capabilities":["x"],"future":true}')
      assert.equal(h.name, 'host-a:tap0')
      assert.equal(h.mtu, 9000)
      assert.deepEqual(h.capabilities, ['x'])
    })

    for (const [what, text] of [
      ['not JSON', '{'],
      ['an array', '[]'],
      ['the wrong type', '{"type":"welcome","version":1}'],
      ['another version', '{"type":"hello","version":2}'],
      ['a bad name', '{"type":"hello","version":1,"name":"a b"}'],
      ['an overlong name', `{"type":"hello","version":1,"name":"${'a'.repeat(65)}"}`],
      ['a bad mtu', '{"type":"hello","version":1,"mtu":1e9}'],
      ['a bad mac', '{"type":"hello","version":1,"mac":"zz"}'],
      ['bad capabilities', '{"type":"hello","version":1,"capabilities":[1]}']
    ] as const) {
      it(`rejects ${what} with TSW_ERR_PROTOCOL`, () => {
        assert.throws(() => parseHello(text), { code: 'TSW_ERR_PROTOCOL' })
      })
    }
  })

  describe('welcome', () => {
    it('accepts what switchd sends and rejects out-of-range fields', () => {
      const w = { type: 'welcome', version: 1, port: 3, name: 'a', maxFrameSize: 1518, maxMessageSize: MAX_MESSAGE_SIZE, pingInterval: 3, capabilities: [] }
      assert.deepEqual(parseWelcome(JSON.stringify(w)), w)
      assert.throws(() => parseWelcome(JSON.stringify({ ...w, maxFrameSize: 10 })), { code: 'TSW_ERR_PROTOCOL' })
      assert.throws(() => parseWelcome(JSON.stringify({ ...w, maxMessageSize: MAX_MESSAGE_SIZE + 1 })), { code: 'TSW_ERR_PROTOCOL' })
      assert.throws(() => parseWelcome(JSON.stringify({ ...w, port: -1 })), { code: 'TSW_ERR_PROTOCOL' })
    })
  })
})

describe('ethernet', () => {
  it('reads MACs as integers and classifies addresses', () => {
    const f = Buffer.from('ffffffffffff02000000000133330000000188b5', 'hex')
    assert.equal(macAt(f, 6), 0x020000000001)
    assert.equal(isGroup(f, 0), true)
    assert.equal(isBroadcast(f, 0), true)
    assert.equal(isGroup(f, 6), false)
    assert.equal(isGroup(f, 12), true)
    assert.equal(isBroadcast(f, 12), false)
  })

  it('formats and parses MACs', () => {
    assert.equal(formatMac(0x020000000001), '02:00:00:00:00:01')
    assert.equal(formatMac(0xffffffffffff), 'ff:ff:ff:ff:ff:ff')
    assert.deepEqual(parseMac('02-00-00-00-00-0A'), Buffer.from('02000000000a', 'hex'))
    assert.equal(parseMac('02:00:00:00:00'), undefined)
  })
})
