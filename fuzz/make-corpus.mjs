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
// max_message class; a batch input is [off u16 BE][refuse][batch]. The batch
// seeds include records as tap-agent's uplink carries them with offloads on
// (a virtio-net header, then the frame) that form UDP runs (native/udp_run.h).
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

/** A 16-bit ones' complement sum of `b`'s big-endian words, folded (RFC 1071), not inverted. */
function sum16 (b, s = 0) {
  for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) | (i + 1 < b.length ? b[i + 1] : 0)
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000)
  return s
}

/**
 * A record of a UDP datagram as tap-agent's uplink carries it with offloads on (native/udp_run.h):
 * a virtio-net header (little-endian) asking for the UDP checksum to be completed (NEEDS_CSUM,
 * csum_start at UDP, csum_offset 6, no GSO), then the frame, its UDP check the pseudo-header's sum
 * as the sender's stack leaves it. IPv4 gets its identification `id` and a right header checksum
 * (wrong by one when `badIpSum`).
 */
function udpRecord (v6, id, payload, { badIpSum = false } = {}) {
  const l3 = v6 ? 40 : 20; const udpLen = 8 + payload.length
  const f = Buffer.alloc(14 + l3 + udpLen)
  Buffer.from([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]).copy(f, 0)
  f.writeUInt16BE(v6 ? 0x86dd : 0x0800, 12)
  let src, dst
  if (v6) {
    f.writeUInt32BE(0x60000000, 14); f.writeUInt16BE(udpLen, 18); f[20] = 17; f[21] = 64
    src = Buffer.from('fd000000000000000000000000000001', 'hex'); dst = Buffer.from('fd000000000000000000000000000002', 'hex')
    src.copy(f, 22); dst.copy(f, 38)
  } else {
    f[14] = 0x45; f.writeUInt16BE(l3 + udpLen, 16); f.writeUInt16BE(id & 0xffff, 18); f.writeUInt16BE(0x4000, 20)
    f[22] = 64; f[23] = 17
    src = Buffer.from([10, 0, 0, 1]); dst = Buffer.from([10, 0, 0, 2])
    src.copy(f, 26); dst.copy(f, 30)
    f.writeUInt16BE((~sum16(f.subarray(14, 34)) + (badIpSum ? 1 : 0)) & 0xffff, 24)
  }
  const u = 14 + l3
  f.writeUInt16BE(40000, u); f.writeUInt16BE(5001, u + 2); f.writeUInt16BE(udpLen, u + 4)
  f.writeUInt16BE(sum16(Buffer.concat([src, dst]), 17 + udpLen), u + 6)
  Buffer.from(payload).copy(f, u + 8)
  const vnet = Buffer.alloc(10)
  vnet[0] = 1; vnet.writeUInt16LE(u, 6); vnet.writeUInt16LE(6, 8)
  return Buffer.concat([vnet, f])
}

/** Batches with UDP runs (native/udp_run.h), so the fuzzer starts on the paths of a run of k > 1. */
function udpRuns () {
  const pl = (i, n = 18) => bytes(n + i).subarray(i) // the 64-byte flood's 18 bytes, a different datagram each
  return {
    udp4: batch([0, 1, 2, 3].map((i) => udpRecord(false, 0x1230 + i, pl(i)))),
    udp6: batch([0, 1, 2, 3].map((i) => udpRecord(true, 0, pl(i)))),
    // Breaks in the middle: a longer datagram, then a wrong IPv4 header checksum; the IDs count on.
    udp4Breaks: batch([0, 1, 2, 3, 4, 5, 6, 7].map((i) =>
      udpRecord(false, 0x40 + i, pl(i, i === 2 ? 30 : 18), { badIpSum: i === 5 }))),
    // More frames than a run takes (kMaxSegments, 64): a run of 64, then one of 2.
    udp4Long: batch(Array.from({ length: 66 }, (_, i) => udpRecord(false, 0x7000 + i, pl(i, 1)))),
    // The identification wraps within the run; then an IPv6 run after it.
    udpWrapMixed: batch([...[0, 1, 2].map((i) => udpRecord(false, 0xfffe + i, pl(i))),
      ...[0, 1, 2].map((i) => udpRecord(true, 0, pl(i, 100)))])
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
  for (const [name, b] of Object.entries(udpRuns())) {
    fs.writeFileSync(path.join(batches, `batch-${name}`), Buffer.concat([Buffer.from([0, 0, 0]), b])); n++
  }
  return n
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const dir = process.argv[2]
  if (dir === undefined) { console.error('usage: node fuzz/make-corpus.mjs <dir>'); process.exit(2) }
  console.log(`make-corpus: ${writeCorpus(dir)} seeds in ${dir}`)
}
