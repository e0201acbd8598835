import assert from 'node:assert/strict'
import { Deframer, encodeStream, datagramToBatch, PREFIX_U16, PREFIX_U32, DEFAULT_MAX_LEN, BATCH_LIMIT } from '../../src/common/framing'
import { decodeBatch, MAX_FRAME_SIZE_LIMIT, MAX_MESSAGE_SIZE } from '../../src/common/protocol'

function stream (frames: Buffer[], width: number): Buffer {
  return Buffer.concat(frames.flatMap((f) => {
    const h = Buffer.alloc(width)
    if (width === 4) h.writeUInt32BE(f.length); else h.writeUInt16BE(f.length)
    return [h, f]
  }))
}

/** Run `input` through a Deframer in the given chunk sizes; collect frames and batches. */
function deframe (width: number, input: Buffer, cut: (i: number) => number, maxLen = DEFAULT_MAX_LEN): { frames: Buffer[], batches: number, ok: boolean, pending: number } {
  const frames: Buffer[] = []
  let batches = 0
  const d = new Deframer(width, (batch, count) => {
    const got = decodeBatch(batch)
    assert.equal(got.length, count)
    frames.push(...got.map((f) => Buffer.from(f)))
    batches++
  }, maxLen)
  let ok = true
  for (let off = 0, i = 0; off < input.length; i++) {
    const n = Math.max(1, cut(i))
    ok = d.push(input.subarray(off, off + n)) && ok
    off += n
  }
  return { frames, batches, ok, pending: d.buffered }
}

const FRAMES = [Buffer.alloc(60, 1), Buffer.alloc(0), Buffer.alloc(1514, 2), Buffer.alloc(14, 3), Buffer.alloc(300, 4)]

describe('framing', () => {
  it('uses the protocol\'s frame ceiling', () => {
    assert.equal(DEFAULT_MAX_LEN, MAX_FRAME_SIZE_LIMIT)
    assert.ok(BATCH_LIMIT * 2 <= MAX_MESSAGE_SIZE)
  })

  for (const width of [PREFIX_U16, PREFIX_U32]) {
    describe(`${width}-byte prefixes`, () => {
      const input = stream(FRAMES, width)

      it('reads a whole stream in one chunk, as one batch', () => {
        const r = deframe(width, input, () => input.length)
        assert.deepEqual(r.frames, FRAMES)
        assert.equal(r.batches, 1)
        assert.equal(r.pending, 0)
      })

      it('reads records split at every byte position', () => {
        for (let split = 1; split < input.length; split++) {
          const r = deframe(width, input, (i) => i === 0 ? split : input.length)
          assert.deepEqual(r.frames, FRAMES, `split at ${split}`)
        }
      })

      it('reads the stream one byte at a time', () => {
        const r = deframe(width, input, () => 1)
        assert.deepEqual(r.frames, FRAMES)
        assert.equal(r.ok, true)
      })

      it('holds a truncated record until the rest arrives', () => {
        const d = new Deframer(width, () => { assert.fail('nothing is complete') })
        assert.equal(d.push(input.subarray(0, width + 10)), true)
        assert.equal(d.buffered, width + 10)
      })

      it('fails the stream on a length over the maximum, whole or split', () => {
        const bad = Buffer.concat([stream([Buffer.alloc(10)], width), Buffer.from(width === 4 ? [0, 2, 0, 0] : [0xff, 0xff])])
        const max = width === 4 ? DEFAULT_MAX_LEN : 1000
        const whole = deframe(width, bad, () => bad.length, max)
        assert.equal(whole.ok, false)
        assert.equal(whole.frames.length, 1, 'the records before the bad length were delivered')
        for (let split = 1; split < bad.length; split++) {
          assert.equal(deframe(width, bad, (i) => i === 0 ? split : bad.length, max).ok, false, `split at ${split}`)
        }
      })

      it('cuts batches at BATCH_LIMIT bytes', () => {
        const many = Array.from({ length: 200 }, (_, i) => Buffer.alloc(1500, i))
        const r = deframe(width, stream(many, width), () => 1_000_000)
        assert.deepEqual(r.frames, many)
        assert.ok(r.batches >= Math.ceil(200 * 1504 / BATCH_LIMIT))
      })
    })
  }

  it('encodes a batch as a 2-byte stream and back (VDE), and as itself for 4 bytes (QEMU)', () => {
    const batch = stream(FRAMES, 4)
    assert.equal(encodeStream(batch, PREFIX_U32), batch)
    const vde = encodeStream(batch, PREFIX_U16)
    assert.deepEqual(vde, stream(FRAMES, 2))
    assert.deepEqual(deframe(PREFIX_U16, vde, () => vde.length).frames, FRAMES)
  })

  it('drops (and counts) frames too long for a 2-byte prefix', () => {
    const dropped = new Uint32Array(1)
    const batch = stream([Buffer.alloc(70_000), Buffer.alloc(60)], 4)
    assert.deepEqual(encodeStream(batch, PREFIX_U16, dropped), stream([Buffer.alloc(60)], 2))
    assert.equal(dropped[0], 1)
  })

  it('makes one record of one datagram, and refuses one over the maximum', () => {
    const b = datagramToBatch(Buffer.alloc(60, 7))
    assert.deepEqual(decodeBatch(b as Buffer), [Buffer.alloc(60, 7)])
    assert.deepEqual(decodeBatch(datagramToBatch(Buffer.alloc(0)) as Buffer), [Buffer.alloc(0)])
    assert.equal(datagramToBatch(Buffer.alloc(DEFAULT_MAX_LEN + 1)), undefined)
  })
})
