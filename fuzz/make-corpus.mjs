// The seed corpus of the fuzz targets (scripts/fuzz.sh runs this into a
// directory of its own at run time; nothing binary is committed): WebSocket
// frames as `ws` itself writes them (Sender.frame, the code a tapswitch peer
// runs), so the fuzzer starts from real traffic and mutates from there.
//
//   node fuzz/make-corpus.mjs <dir>     # writes <dir>/ws_reader/* and <dir>/batch/*
//
// A ws_reader input is [flags][cap][splits][split offsets: u16 BE each][stream]
// (fuzz/ws_reader_fuzz.cc reads it the same way): flags bit 0 is the reader's
// role (0 server: the peer masks; 1 client: it does not), bits 1-2 its
// max_message class; a batch input is [off u16 BE][refuse][batch].
import fs from 'node:fs'
import path from 'node:path'
import { Sender } from 'ws'

const TEXT = 1; const BINARY = 2; const CLOSE = 8; const PING = 9; const PONG = 10; const CONT = 0

/** One frame's bytes as ws's Sender writes them; `mask` is 4 bytes (a client's frame) or null (a server's). */
export function frame (opcode, payload, { fin = true, mask = null, rsv1 = false } = {}) {
  const data = Buffer.from(payload) // Sender.frame masks in place: keep the caller's bytes
  const parts = Sender.frame(data, {
    fin,
    opcode,
    rsv1,
    mask: mask !== null,
    readOnly: false,
    maskBuffer: mask !== null ? Buffer.alloc(4) : undefined,
    generateMask: mask !== null ? (m) => { Buffer.from(mask).copy(m) } : undefined
  })
  return Buffer.concat(parts)
}

/** A close frame's payload as ws's Sender.close writes it: the code, then the reason. */
export function closePayload (code, reason = '') {
  const b = Buffer.alloc(2 + Buffer.byteLength(reason))
  b.writeUInt16BE(code, 0)
  b.write(reason, 2)
  return b
}

/** A batch: [u32 BE length][frame] records back to back (docs/PROTOCOL.md). */
export function batch (frames) {
  return Buffer.concat(frames.flatMap((f) => { const h = Buffer.alloc(4); h.writeUInt32BE(f.length); return [h, f] }))
}

const ethernet = (n, fill) => Buffer.alloc(n, fill)
const bytes = (n) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 131 + 7) & 0xff))

/** Streams of frames, each written once masked (for a server reader) and once not (for a client reader). */
function streams (mask) {
  const f = (op, p, o = {}) => frame(op, p, { mask, ...o })
  const aBatch = batch([ethernet(60, 1), ethernet(1514, 2), ethernet(64, 3)])
  const half = f(BINARY, aBatch)
  return {
    text: f(TEXT, 'hello'),
    binary: f(BINARY, bytes(100)),
    empty: Buffer.concat([f(TEXT, ''), f(BINARY, Buffer.alloc(0)), f(PING, '')]),
    controls: Buffer.concat([f(PING, 'ping'), f(PONG, 'pong'), f(CLOSE, closePayload(1000, 'bye'))]),
    len125: f(BINARY, bytes(125)),
    len126: f(BINARY, bytes(126)),
    len16: f(TEXT, 'x'.repeat(300)),
    len65535: f(BINARY, bytes(65535)),
    len64: f(BINARY, bytes(65536)),
    control125: f(PING, bytes(125)),
    fragText: Buffer.concat([f(TEXT, 'hel', { fin: false }), f(PING, 'a'), f(CONT, 'lo', { fin: false }), f(PONG, 'b'), f(CONT, '!')]),
    fragBinary: Buffer.concat([f(BINARY, bytes(40), { fin: false }), f(PONG, ''), f(CONT, bytes(200), { fin: false }), f(CLOSE, closePayload(1001)), f(CONT, bytes(3))]),
    batches: Buffer.concat([f(BINARY, aBatch), f(BINARY, batch([ethernet(42, 9)])), f(TEXT, '{"type":"hello"}')]),
    closeMidBatch: Buffer.concat([half.subarray(0, half.length >> 1), f(CLOSE, closePayload(1000))]),
    rsv1: f(TEXT, 'deflated?', { rsv1: true }),
    contAlone: f(CONT, 'orphan'),
    newDataMidFragments: Buffer.concat([f(TEXT, 'a', { fin: false }), f(BINARY, 'b')]),
    fragmentedPing: f(PING, 'p', { fin: false }),
    closeBadCode: f(CLOSE, closePayload(999)),
    closeOneByte: f(CLOSE, Buffer.from([3]))
  }
}

function input (flags, cap, splits, stream) {
  const head = Buffer.alloc(3 + 2 * splits.length)
  head[0] = flags; head[1] = cap; head[2] = splits.length
  splits.forEach((s, i) => head.writeUInt16BE(s & 0xffff, 3 + 2 * i))
  return Buffer.concat([head, stream])
}

export function writeCorpus (dir) {
  const reader = path.join(dir, 'ws_reader'); const batches = path.join(dir, 'batch')
  fs.mkdirSync(reader, { recursive: true }); fs.mkdirSync(batches, { recursive: true })
  let n = 0
  const masks = { masked: [0x37, 0xfa, 0x21, 0x3d], zeromask: [0, 0, 0, 0] }
  for (const [mname, mask] of Object.entries(masks)) {
    for (const [name, s] of Object.entries(streams(mask))) {
      // Server role (the peer masks), a cap class per stream, split near the middle and at a header's end.
      for (const cls of [0, 1, 2, 3]) {
        fs.writeFileSync(path.join(reader, `server-${mname}-${name}-c${cls}`), input(cls << 1, 200, [2, s.length >> 1], s)); n++
      }
    }
  }
  for (const [name, s] of Object.entries(streams(null))) {
    for (const cls of [0, 1, 2, 3]) {
      fs.writeFileSync(path.join(reader, `client-${name}-c${cls}`), input(1 | (cls << 1), 200, [1, 7, s.length - 1], s)); n++
    }
  }
  // The wrong side's frames: masked to a client, unmasked to a server.
  fs.writeFileSync(path.join(reader, 'client-masked'), input(1, 0, [], streams(masks.masked).text)); n++
  fs.writeFileSync(path.join(reader, 'server-unmasked'), input(0, 0, [], streams(null).text)); n++
  const recs = [batch([ethernet(60, 1), ethernet(1514, 2)]), batch([]), batch([ethernet(0, 0), ethernet(4, 4)]),
    Buffer.concat([batch([ethernet(60, 1)]), Buffer.from([0, 0, 1])]), Buffer.from([0xff, 0xff, 0xff, 0xff, 1])]
  recs.forEach((b, i) => { fs.writeFileSync(path.join(batches, `batch-${i}`), Buffer.concat([Buffer.from([0, 0, 0]), b])); n++ })
  return n
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const dir = process.argv[2]
  if (dir === undefined) { console.error('usage: node fuzz/make-corpus.mjs <dir>'); process.exit(2) }
  console.log(`make-corpus: ${writeCorpus(dir)} seeds in ${dir}`)
}
