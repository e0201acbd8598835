/**
 * Robustness: a real SwitchServer on 127.0.0.1:0 fed random and malformed
 * input over many connections (sequential lanes, bursts of concurrent ones),
 * while two well-behaved clients, one raw and one batched, exchange numbered
 * frames the whole time.
 *
 * Asserted: nothing throws out of the server (uncaughtException /
 * unhandledRejection guard), each offending connection ends the way the
 * protocol says where that is deterministic (1002, 1007, 1008, 1009, 4001,
 * 4002, HTTP 4xx), every frame between the good clients arrives in order with
 * no drop on their ports, and afterwards the switch holds exactly the two good
 * ports, no pending handshake, only the default network, and memory has not
 * run away.
 *
 * Reproducible: the input comes from a seeded PRNG (printed). Every case has
 * an id lane:k whose input depends only on the seed and the id:
 *   FUZZ_SEED=123 npx mocha test/integration/fuzz.test.ts            replay a run
 *   FUZZ_SEED=123 FUZZ_ONLY=3:41 npx mocha test/integration/fuzz.test.ts   one case
 *   FUZZ_MESSAGES=20000 ...                                          longer run
 * The run is bounded by a number of messages, not by a time: a loaded machine
 * sends them more slowly, never fewer. The times below are guards against a
 * hang only (a case, a close, the whole run), far above what any case needs.
 * The inputs that once crashed switchd or leaked (multibyte close reasons,
 * bad %-escapes, unparsable request targets) are part of the mix, and have a
 * regression test each at the end.
 */

import assert from 'node:assert/strict'
import * as net from 'node:net'
import WebSocket from 'ws'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import type { WsPort } from '../../src/switch/io/ws-port'
import { setLogSink } from '../../src/common/log'
import { SUBPROTOCOL_V1, MAX_MESSAGE_SIZE, encodeBatch, parseWelcome, type Welcome } from '../../src/common/protocol'
import { TestClient } from '../helpers/client'
import { onceWithin, waitFor, sleep } from '../helpers/net'
import { Rng, mixSeed, RawWs, encodeFrame, OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING } from '../helpers/rawws'
import { R_BACKPRESSURE, R_BAD_SOURCE, R_LOOP, R_MALFORMED, R_OVERSIZE, R_PORT_SECURITY, R_RUNT, R_VLAN } from '../../src/switch/core/reasons'

const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0
const ONLY = process.env.FUZZ_ONLY
/** Fuzz messages the run sends (at least). */
const MESSAGES = Number(process.env.FUZZ_MESSAGES ?? 2000)
/** The whole run gives up after this: a hang, not a slow machine (a loaded one needs about 30 s). */
const HANG_GUARD_MS = Number(process.env.FUZZ_MS ?? 300_000)
/** How long one case may wait for a close, a pong or a welcome before it counts as a timeout. */
const CASE_GUARD_MS = 30_000
const LANES = 8
/**
 * The server's hello deadline (limits.handshakeTimeout): what "never hello" cases wait for. Well above
 * the event-loop lag of a loaded machine, so a hello sent at once is never late.
 */
const HANDSHAKE_TIMEOUT = 5
/** Bound on the growth of this process's heap (server and all clients) over the run. */
const HEAP_GROWTH_LIMIT = 200 * 1024 * 1024
/** Bound on the growth of this process's RSS over the run. */
const RSS_GROWTH_LIMIT = 400 * 1024 * 1024

const MAC_GOOD_A = Buffer.from('02aa00000001', 'hex')
const MAC_GOOD_B = Buffer.from('02bb00000002', 'hex')
const GOOD_MAGIC = 0x474f4f44 // "GOOD"
const ETHERTYPE_TEST = 0x88b5

// ---------------------------------------------------------------------------
// Outcomes

/** How a connection ended: a close code, still open when we ended it, an HTTP status, or "any". */
type Outcome = number | 'open' | 'any' | `http ${number}` | 'timeout' | 'connect failed' | 'no welcome'

/** `error` marks a failure whatever the outcome (e.g. the server sent text in raw mode). */
interface CaseResult { expected: Outcome, got: Outcome, detail?: string, error?: string }

interface Tally {
  cases: number
  messages: number
  byCase: Map<string, number>
  failures: string[]
  /** What the server should have counted, from the cases that ended as expected. */
  badHello: number
  helloTimeout: number
  dataBeforeHello: number
  vlanRefused: number
  malformed: number
  /** Raw-mode text messages on connections that closed cleanly (so the server read them all). */
  rawTextsSeen: number
}

interface Ctx { rng: Rng, port: number, url: string, tally: Tally, id: string }

/** Resolve with `p`, or with `fallback` after `ms`; the timer never outlives the race. */
async function within<T> (p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<T>((resolve) => { timer = setTimeout(() => { resolve(fallback) }, ms) })])
  } finally {
    clearTimeout(timer)
  }
}

function matches (expected: Outcome, got: Outcome): boolean {
  return expected === 'any' ? got !== 'timeout' : expected === got
}

// ---------------------------------------------------------------------------
// Input generators

const NAME_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@-'
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
const TOKEN_CHARS = ALNUM + '_-'

function randomString (rng: Rng, alphabet: string, n: number): string {
  let s = ''
  for (let i = 0; i < n; i++) s += alphabet[rng.int(0, alphabet.length - 1)]
  return s
}

/** Valid UTF-8 text of about `n` characters: ASCII, Latin, CJK, emoji, controls. */
function randomText (rng: Rng, n: number): string {
  const parts: string[] = []
  for (let i = 0; i < n; i++) {
    const r = rng.int(0, 9)
    if (r < 5) parts.push(String.fromCharCode(rng.int(0x20, 0x7e)))
    else if (r < 6) parts.push(String.fromCharCode(rng.int(0, 0x1f)))
    else if (r < 7) parts.push(String.fromCharCode(rng.int(0xa0, 0x7ff)))
    else if (r < 8) parts.push(String.fromCharCode(rng.int(0x4e00, 0x9fff)))
    else if (r < 9) parts.push(String.fromCodePoint(rng.int(0x1f300, 0x1faff)))
    else parts.push(rng.pick(['{', '}', '"', '\\', '[', ']', ':', ',']))
  }
  return parts.join('')
}

function asciiText (rng: Rng, n: number): string { return randomString(rng, ALNUM + ' .,;-_{}[]"\'', n) }

function validName (rng: Rng): string {
  return 'fz' + randomString(rng, NAME_CHARS, rng.int(0, 62))
}

function randomMac (rng: Rng, kind: 'unicast' | 'group' | 'broadcast' | 'zero'): Buffer {
  if (kind === 'broadcast') return Buffer.alloc(6, 0xff)
  if (kind === 'zero') return Buffer.alloc(6)
  const m = rng.bytes(6)
  m[0] = kind === 'group' ? ((m[0] as number) | 1) : ((m[0] as number) & 0xfe)
  // Never a good client's MAC: a fuzz frame from it would move it in the fdb.
  if (m.equals(MAC_GOOD_A) || m.equals(MAC_GOOD_B)) m[5] = (m[5] as number) ^ 0xff
  return m
}

function macText (b: Buffer): string { return b.toString('hex').replace(/(..)(?!$)/g, '$1:') }

/** An Ethernet-ish frame: runts, normal, oversize; unicast, multicast, broadcast; good and bad sources; tagged. */
function randomFrame (rng: Rng, maxLen = 9000): Buffer {
  const r = rng.float()
  const len = r < 0.1 ? rng.int(0, 13) : r < 0.85 ? rng.int(14, 1518) : rng.int(1519, Math.max(1519, maxLen))
  const f = rng.bytes(len)
  if (len >= 14) {
    const dst = randomMac(rng, rng.pick(['unicast', 'unicast', 'group', 'broadcast'] as const))
    const src = randomMac(rng, rng.pick(['unicast', 'unicast', 'unicast', 'group', 'broadcast', 'zero'] as const))
    dst.copy(f, 0); src.copy(f, 6)
    if (rng.bool(0.15) && len >= 16) {
      f.writeUInt16BE(0x8100, 12)
      f.writeUInt16BE(rng.pick([0, 1, 1, 2, 4094, 4095, rng.int(0, 0xffff)]) & 0xffff, 14)
    } else if (rng.bool(0.5)) {
      f.writeUInt16BE(rng.pick([0x0800, 0x0806, 0x86dd, ETHERTYPE_TEST, 0x0000, 0xffff]), 12)
    }
  }
  return f
}

/** A hello the switch must accept. */
function validHello (rng: Rng): Record<string, unknown> {
  const h: Record<string, unknown> = { type: 'hello', version: 1 }
  if (rng.bool(0.7)) h.name = validName(rng)
  if (rng.bool(0.3)) h.mtu = rng.int(68, 65535)
  if (rng.bool(0.3)) h.mac = macText(randomMac(rng, 'unicast'))
  if (rng.bool(0.3)) h.capabilities = Array.from({ length: rng.int(0, 32) }, () => asciiText(rng, rng.int(0, 64)))
  if (rng.bool(0.2)) h.vlan = { mode: 'access', vlan: 1 }
  if (rng.bool(0.2)) h['x-' + randomString(rng, ALNUM, 8)] = rng.pick([null, 1, 'x', [1, 2], { a: 1 }, asciiText(rng, rng.int(0, 5000))])
  // A well-formed token no switch issued: a new port, not a resume.
  if (rng.bool(0.15)) h.resume = randomString(rng, TOKEN_CHARS, rng.int(16, 128))
  return h
}

interface TextInput { text: string | Buffer, expect: Outcome, why: string }

const INVALID_UTF8 = [Buffer.from([0xff]), Buffer.from([0xc3, 0x28]), Buffer.from([0xe2, 0x82]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80])]

/** A first text message that is not a valid hello, and how the switch must end the connection. */
function badHello (rng: Rng): TextInput {
  const base = validHello(rng)
  delete base.resume
  const big = (): string => rng.bool(0.5) ? asciiText(rng, rng.int(1000, 120_000)) : randomText(rng, rng.int(500, 40_000))
  const variant = rng.int(0, 15)
  let text: string | Buffer
  let why: string
  switch (variant) {
    case 0: {
      why = 'not JSON'
      // Anything that is not a JSON object with a valid hello in it: random text can at most be some other JSON value.
      text = rng.pick(['', '{', 'hello', '{"type":"hello",', '{"type":"hello","version":1', 'undefined', 'NaN', "{'type':'hello'}"]) +
        (rng.bool(0.5) ? randomText(rng, rng.length(3000)) : '')
      break
    }
    case 1: why = 'JSON, not an object'; text = rng.pick(['[]', '[1,2,3]', '1', '-0', '"hello"', 'null', 'true', '[{"type":"hello","version":1}]', JSON.stringify(Array(rng.int(0, 20000)).fill(0))]); break
    case 2: why = 'wrong type'; base.type = rng.pick(['welcome', 'HELLO', '', 5, null, [], {}, 'hello '] as unknown[]); if (rng.bool(0.2)) delete base.type; text = JSON.stringify(base); break
    case 3: {
      why = 'wrong version'
      // Huge version strings, multibyte ones included (their echo in the close reason once crashed switchd).
      base.version = rng.bool(0.15)
        ? (rng.bool(0.5) ? big() : asciiText(rng, rng.int(0, 100_000)))
        : rng.pick([0, 2, -1, 1.5, '1', null, true, [1], { v: 1 }, 2 ** 53, 1e308] as unknown[])
      if (rng.bool(0.2)) delete base.version
      text = JSON.stringify(base)
      break
    }
    case 4: why = 'bad name'; base.name = rng.bool(0.2) ? big() : rng.pick(['', '-a', '.a', 'a b', 'a/b', 'é', 'a'.repeat(65), 123, null, [], {}] as unknown[]); text = JSON.stringify(base); break
    case 5: why = 'bad mtu'; base.mtu = rng.pick([67, 65536, 0, -1, 1500.5, '1500', null, 1e308, []] as unknown[]); text = JSON.stringify(base); break
    case 6: why = 'bad mac'; base.mac = rng.bool(0.2) ? big() : rng.pick(['', 'zz:zz:zz:zz:zz:zz', '02:00:00:00:00', '02:00:00:00:00:01:02', 123, null] as unknown[]); text = JSON.stringify(base); break
    case 7: {
      why = 'bad capabilities'
      base.capabilities = rng.pick([Array(33).fill('x'), ['x'.repeat(65)], [1], 'x', {}, [null], Array(rng.int(33, 5000)).fill('cap')] as unknown[])
      text = JSON.stringify(base)
      break
    }
    case 8: {
      why = 'bad vlan'
      base.vlan = rng.pick([{ mode: 'x' }, { mode: 'access' }, { mode: 'access', vlan: 0 }, { mode: 'access', vlan: 4095 }, { mode: 'access', vlan: '1' },
        { mode: 'trunk', vlans: [] }, { mode: 'trunk', vlans: [0] }, { mode: 'trunk', vlans: Array(5000).fill(1) }, { mode: 'trunk', vlans: [1], native: 5000 },
        { mode: 'trunk', vlans: 'all' }, 'access', null, 7, []] as unknown[])
      text = JSON.stringify(base)
      break
    }
    case 9: why = 'bad resume'; base.resume = rng.pick(['short', 'a'.repeat(129), 'has space aaaaaaaaaaaa', 'bad+chars/aaaaaaaaaaaaa=', 12345, null, {}] as unknown[]); text = JSON.stringify(base); break
    case 10: {
      // Valid JSON (or too deep for the parser) with a bad version, or unbalanced: invalid either way.
      why = 'deeply nested'
      const depth = rng.int(1000, 60_000)
      text = `{"type":"hello","version":"one","x":${'['.repeat(depth)}${']'.repeat(rng.bool(0.5) ? depth : depth - 1)}}`
      break
    }
    case 11: return { text: Buffer.concat([Buffer.from('{"type":"hello","version":1,"name":"'), rng.pick(INVALID_UTF8), Buffer.from('"}')]), expect: 1007, why: 'invalid UTF-8' }
    case 12: return { text: asciiText(rng, rng.int(MAX_MESSAGE_SIZE + 1, MAX_MESSAGE_SIZE + 40_000)), expect: 1009, why: 'text over the message limit' }
    case 13: why = 'two bad members'; base.mtu = 'big'; base.name = ''; text = JSON.stringify(base); break
    case 14: why = 'hello as a binary-looking text'; text = rng.bytes(rng.int(0, 200)).toString('latin1'); break
    default: why = 'welcome echoed back'; text = JSON.stringify({ type: 'welcome', version: 1, port: 1, name: 'x', maxFrameSize: 1518, maxMessageSize: MAX_MESSAGE_SIZE, pingInterval: 3, capabilities: [] }); break
  }
  if (Buffer.byteLength(text) > MAX_MESSAGE_SIZE) return { text, expect: 1009, why: why + ' (over the message limit)' }
  return { text, expect: 4002, why }
}

/** Own framing check (not the switch's): does `buf` split exactly into records? */
function framesExactly (buf: Buffer): boolean {
  let off = 0
  while (off < buf.length) {
    if (buf.length - off < 4) return false
    off += 4 + buf.readUInt32BE(off)
  }
  return off === buf.length
}

interface DataInput { data: Buffer | string, binary: boolean, expect: 'ok' | number, why: string }

function batchOf (frames: Buffer[]): Buffer {
  const out: Buffer[] = []
  let size = 0
  for (const f of frames) {
    if (size + 4 + f.length > MAX_MESSAGE_SIZE) break
    out.push(f)
    size += 4 + f.length
  }
  return encodeBatch(out)
}

/** A message after the welcome, and what it must do: nothing visible ("ok") or close the port. */
function afterWelcome (rng: Rng): DataInput {
  const v = rng.int(0, 12)
  const classify = (data: Buffer, why: string): DataInput => ({
    data, binary: true, why, expect: data.length > MAX_MESSAGE_SIZE ? 1009 : framesExactly(data) ? 'ok' : 1002
  })
  switch (v) {
    case 0: case 1: return classify(rng.bytes(rng.length(MAX_MESSAGE_SIZE + 50_000)), 'random bytes')
    case 2: case 3: return classify(batchOf(Array.from({ length: rng.int(0, 200) }, () => randomFrame(rng))), 'batch of random frames')
    case 4: {
      const head = batchOf(Array.from({ length: rng.int(0, 20) }, () => randomFrame(rng, 1518)))
      const len = rng.int(1, 3000)
      const rec = Buffer.alloc(4); rec.writeUInt32BE(len)
      return classify(Buffer.concat([head, rec, rng.bytes(rng.int(0, len - 1))]), 'last record truncated')
    }
    case 5: {
      const rec = Buffer.alloc(4); rec.writeUInt32BE(rng.pick([0xffffffff, 0x80000000, MAX_MESSAGE_SIZE, 0x7fffffff]))
      return classify(Buffer.concat([batchOf([randomFrame(rng, 1518)]), rec, rng.bytes(rng.int(0, 100))]), 'huge record length')
    }
    case 6: return classify(Buffer.concat([batchOf(Array.from({ length: rng.int(0, 10) }, () => randomFrame(rng, 1518))), rng.bytes(rng.int(1, 3))]), 'record header cut short')
    case 7: return classify(Buffer.alloc(4 * rng.pick([1, 2, 100, rng.int(1, 65536), 65536])), 'zero-length records')
    case 8: {
      const frames = Array.from({ length: rng.int(1, 64) }, () => { const f = randomFrame(rng, 1518); if (f.length >= 12) randomMac(rng, 'group').copy(f, 6); return f })
      return classify(batchOf(frames), 'group sources')
    }
    case 9: return { data: randomText(rng, rng.length(20_000)), binary: false, expect: 'ok', why: 'text after the welcome (ignored)' }
    case 10: return { data: Buffer.concat([Buffer.from('{"type":"x","v":"'), rng.pick(INVALID_UTF8), Buffer.from('"}')]), binary: false, expect: 1007, why: 'invalid UTF-8 text' }
    case 11: return classify(Buffer.alloc(0), 'empty batch')
    default: return classify(rng.bytes(rng.int(MAX_MESSAGE_SIZE + 1, 300 * 1024)), 'oversize message')
  }
}

/** `alt`: the other answer a port may give, where the native reader (issue 24) and ws word one violation differently. */
interface Violation { frames: Buffer[], expect: number, alt?: number, why: string }

/** A WebSocket-level protocol violation (below `ws`'s client API) and the close code RFC 6455 / ws give it. */
function violation (rng: Rng): Violation {
  const payload = rng.bytes(rng.int(0, 200))
  const v = rng.int(0, 13)
  switch (v) {
    case 0: return { frames: [encodeFrame(rng.pick([OP_BINARY, OP_TEXT]), Buffer.from('abc'), { mask: false })], expect: 1002, why: 'unmasked client frame' }
    case 1: return { frames: [encodeFrame(rng.pick([3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]), payload)], expect: 1002, why: 'reserved opcode' }
    case 2: return { frames: [encodeFrame(OP_BINARY, payload, { rsv: rng.int(1, 7) })], expect: 1002, why: 'RSV bits without an extension' }
    case 3: return { frames: [encodeFrame(OP_PING, rng.bytes(rng.int(126, 1000)))], expect: 1002, why: 'control frame over 125 bytes' }
    case 4: return { frames: [encodeFrame(OP_PING, Buffer.from('x'), { fin: false })], expect: 1002, why: 'fragmented control frame' }
    case 5: return { frames: [encodeFrame(OP_CONT, payload)], expect: 1002, why: 'continuation without a message' }
    case 6: return { frames: [encodeFrame(OP_BINARY, payload, { fin: false }), encodeFrame(OP_TEXT, Buffer.from('x'))], expect: 1002, why: 'new message inside a fragmented one' }
    case 7: {
      const declared = rng.pick([BigInt(MAX_MESSAGE_SIZE + 1), 1n << 40n, (1n << 63n) + 5n, BigInt(rng.int(MAX_MESSAGE_SIZE + 1, 2 ** 31))])
      // A 64-bit length with its top bit set breaks RFC 6455 5.2: the native reader says 1002, ws says 1009 (too big).
      const alt = declared >= 1n << 63n ? 1002 : undefined
      return { frames: [encodeFrame(OP_BINARY, Buffer.alloc(0), { declaredLength: declared }), rng.bytes(rng.int(0, 100))], expect: 1009, alt, why: 'declared length over maxPayload' }
    }
    case 8: return { frames: [encodeFrame(OP_TEXT, Buffer.concat([Buffer.from('ping:'), rng.pick(INVALID_UTF8)]))], expect: 1007, why: 'invalid UTF-8 text' }
    case 9: {
      const code = Buffer.alloc(2); code.writeUInt16BE(rng.pick([0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]))
      return { frames: [encodeFrame(OP_CLOSE, code)], expect: 1002, why: 'close frame with an invalid code' }
    }
    case 10: return { frames: [encodeFrame(OP_CLOSE, Buffer.from([3]))], expect: 1002, why: 'close frame with a 1-byte body' }
    case 11: {
      const parts = [encodeFrame(OP_BINARY, rng.bytes(200_000), { fin: false }), encodeFrame(OP_CONT, rng.bytes(100_000))]
      return { frames: parts, expect: 1009, why: 'fragments adding up over maxPayload' }
    }
    case 12: {
      // ws (maxFragments 16384) refuses more fragments than that with 1008.
      const cont = encodeFrame(OP_CONT, Buffer.from([1]), { fin: false })
      return { frames: [encodeFrame(OP_BINARY, Buffer.from([1]), { fin: false }), ...Array<Buffer>(16_400).fill(cont)], expect: 1008, why: 'too many fragments' }
    }
    default: {
      const body = Buffer.alloc(2); body.writeUInt16BE(1000)
      return { frames: [encodeFrame(OP_CLOSE, Buffer.concat([body, Buffer.from('bye')]))], expect: 1000, why: 'clean close (echoed)' }
    }
  }
}

// ---------------------------------------------------------------------------
// Connections through `ws`

class Conn {
  closeCode: number | undefined
  welcome: Welcome | undefined
  badWelcome: string | undefined
  texts = 0
  /** Text messages received, up to 100 (raw mode: only pong replies are legal). */
  readonly textsReceived: string[] = []
  binaries = 0
  constructor (readonly ws: WebSocket) {
    ws.on('error', () => {})
    ws.on('close', (code: number) => { this.closeCode = code })
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) { this.binaries++; return }
      this.texts++
      if (this.textsReceived.length < 100) this.textsReceived.push(data.toString())
      if (this.welcome === undefined) {
        try { this.welcome = parseWelcome(data.toString()) } catch (err) { this.badWelcome = (err as Error).message }
      }
    })
  }
}

async function connect (ctx: Ctx, tapswitch: boolean): Promise<Conn | undefined> {
  const ws = new WebSocket(ctx.url, tapswitch ? [SUBPROTOCOL_V1] : [], { perMessageDeflate: false, handshakeTimeout: CASE_GUARD_MS, maxPayload: 0 })
  const c = new Conn(ws)
  const ok = await new Promise<boolean>((resolve) => {
    ws.once('open', () => { resolve(true) })
    ws.once('close', () => { resolve(false) })
    ws.once('unexpected-response', (req, res) => { res.resume(); req.destroy(); resolve(false) })
  })
  return ok ? c : undefined
}

async function closedWithin (c: Conn, ms: number): Promise<Outcome> {
  const deadline = Date.now() + ms
  while (c.closeCode === undefined && Date.now() < deadline) await sleep(5)
  return c.closeCode ?? 'timeout'
}

/** Still open once the server has handled everything sent so far: our ping's pong comes back after it. */
async function probe (c: Conn, ms = CASE_GUARD_MS): Promise<Outcome> {
  if (c.closeCode !== undefined) return c.closeCode
  const pong = new Promise<void>((resolve) => { c.ws.once('pong', () => { resolve() }) })
  try { c.ws.ping() } catch { /* closing */ }
  await within(pong, ms, undefined)
  return c.closeCode ?? 'open'
}

/** End a connection we keep: cleanly (the server reads all first) or by cutting it. Returns whether it was clean. */
async function finish (ctx: Ctx, c: Conn): Promise<boolean> {
  if (c.closeCode !== undefined) return false
  if (ctx.rng.bool(0.6)) {
    c.ws.close(1000, 'fuzz done')
    return (await closedWithin(c, CASE_GUARD_MS)) === 1000
  }
  c.ws.terminate()
  return false
}

function send (ctx: Ctx, c: Conn, data: Buffer | string, binary: boolean): void {
  ctx.tally.messages++
  try { c.ws.send(data, { binary }) } catch { /* already closing */ }
}

// ---------------------------------------------------------------------------
// The cases

type Case = (ctx: Ctx) => Promise<CaseResult>

const rawFrames: Case = async (ctx) => {
  const c = await connect(ctx, false)
  if (c === undefined) return { expected: 'open', got: 'connect failed' }
  const n = ctx.rng.int(1, 8)
  for (let i = 0; i < n; i++) {
    const r = ctx.rng.float()
    send(ctx, c, r < 0.6 ? randomFrame(ctx.rng) : r < 0.7 ? Buffer.alloc(0) : ctx.rng.bytes(ctx.rng.length(MAX_MESSAGE_SIZE)), true)
  }
  const got = await probe(c)
  await finish(ctx, c)
  return { expected: 'open', got, detail: `${n} raw messages` }
}

/**
 * Raw-mode text: jor1k's `ping:X` keepalive (at most 256 bytes) is answered with `pong:X` to that client
 * only (docs/ENDPOINTS.md, jor1k); any other text is ignored and counted, never answered.
 */
const rawText: Case = async (ctx) => {
  const c = await connect(ctx, false)
  if (c === undefined) return { expected: 'open', got: 'connect failed' }
  const n = ctx.rng.int(1, 6)
  const pongs: string[] = []
  let ignored = 0
  for (let i = 0; i < n; i++) {
    const r = ctx.rng.float()
    let text: string
    if (r < 0.3) {
      text = `ping:${ctx.rng.int(0, 1e9)}`
      pongs.push('pong:' + text.slice(5))
    } else {
      text = r < 0.4 ? 'ping:' + asciiText(ctx.rng, ctx.rng.int(300, 5000)) : randomText(ctx.rng, ctx.rng.length(60_000))
      if (text.startsWith('ping:') && Buffer.byteLength(text) <= 256) { i--; continue }
      ignored++
    }
    send(ctx, c, text, false)
  }
  const got = await probe(c)
  if (got === 'open') {
    c.ws.close(1000)
    if ((await closedWithin(c, CASE_GUARD_MS)) === 1000) ctx.tally.rawTextsSeen += ignored
  }
  const error = c.textsReceived.join('\n') !== pongs.join('\n') ? `expected text replies ${JSON.stringify(pongs)}, got ${JSON.stringify(c.textsReceived).slice(0, 300)}` : undefined
  return { expected: 'open', got, error }
}

const rawOversize: Case = async (ctx) => {
  const c = await connect(ctx, false)
  if (c === undefined) return { expected: 1009, got: 'connect failed' }
  if (ctx.rng.bool(0.5)) send(ctx, c, randomFrame(ctx.rng, 1518), true)
  send(ctx, c, ctx.rng.bytes(ctx.rng.int(MAX_MESSAGE_SIZE + 1, 300 * 1024)), true)
  const got = await closedWithin(c, CASE_GUARD_MS)
  c.ws.terminate()
  return { expected: 1009, got }
}

const binaryBeforeHello: Case = async (ctx) => {
  const c = await connect(ctx, true)
  if (c === undefined) return { expected: 1002, got: 'connect failed' }
  const len = ctx.rng.bool(0.9) ? ctx.rng.length(MAX_MESSAGE_SIZE) : ctx.rng.int(MAX_MESSAGE_SIZE + 1, 300 * 1024)
  const data = ctx.rng.bool(0.5) ? ctx.rng.bytes(len) : encodeBatch([randomFrame(ctx.rng, 1518)])
  send(ctx, c, data, true)
  const expected = data.length > MAX_MESSAGE_SIZE ? 1009 : 1002
  const got = await closedWithin(c, CASE_GUARD_MS)
  c.ws.terminate()
  if (got === 1002) ctx.tally.dataBeforeHello++
  return { expected, got, detail: `${data.length} bytes` }
}

const invalidHello: Case = async (ctx) => {
  const c = await connect(ctx, true)
  if (c === undefined) return { expected: 4002, got: 'connect failed' }
  const h = badHello(ctx.rng)
  send(ctx, c, h.text, false)
  const got = await closedWithin(c, CASE_GUARD_MS)
  c.ws.terminate()
  if (got === 4002) ctx.tally.badHello++
  return { expected: h.expect, got, detail: `${h.why}: ${String(h.text).slice(0, 120)}`, error: c.welcome !== undefined ? 'welcomed after an invalid hello' : undefined }
}

const neverHello: Case = async (ctx) => {
  const c = await connect(ctx, true)
  if (c === undefined) return { expected: 4001, got: 'connect failed' }
  // Pings and pongs are not a hello.
  if (ctx.rng.bool(0.5)) { c.ws.ping(); ctx.tally.messages++ }
  const got = await closedWithin(c, HANDSHAKE_TIMEOUT * 1000 + CASE_GUARD_MS)
  c.ws.terminate()
  if (got === 4001) ctx.tally.helloTimeout++
  return { expected: 4001, got }
}

const helloThenGarbage: Case = async (ctx) => {
  const c = await connect(ctx, true)
  if (c === undefined) return { expected: 'open', got: 'connect failed' }
  const hello = validHello(ctx.rng)
  send(ctx, c, JSON.stringify(hello), false)
  const deadline = Date.now() + CASE_GUARD_MS
  while (c.welcome === undefined && c.badWelcome === undefined && c.closeCode === undefined && Date.now() < deadline) await sleep(2)
  if (c.welcome === undefined) { c.ws.terminate(); return { expected: 'open', got: c.closeCode ?? 'no welcome', detail: c.badWelcome ?? JSON.stringify(hello).slice(0, 200) } }
  const w = c.welcome
  if (w.resumed === true) { c.ws.terminate(); return { expected: 'open', got: 'open', error: 'an unknown resume token resumed a port' } }
  if (typeof hello.name === 'string' && !w.name.startsWith(hello.name)) { c.ws.terminate(); return { expected: 'open', got: 'open', error: `asked for name ${hello.name}, got ${w.name}` } }
  let expected: Outcome = 'open'
  let why = ''
  const n = ctx.rng.int(1, 6)
  for (let i = 0; i < n; i++) {
    const m = afterWelcome(ctx.rng)
    send(ctx, c, m.data, m.binary)
    why = m.why
    if (m.expect !== 'ok') { expected = m.expect; break }
    if (ctx.rng.bool(0.05)) await sleep(ctx.rng.int(0, 1500)) // an idle port that answers pings stays
  }
  if (expected === 'open') {
    const got = await probe(c)
    await finish(ctx, c)
    return { expected, got, detail: why }
  }
  const got = await closedWithin(c, CASE_GUARD_MS)
  c.ws.terminate()
  if (got === 1002) ctx.tally.malformed++
  return { expected, got, detail: why }
}

const vlanRefused: Case = async (ctx) => {
  const c = await connect(ctx, true)
  if (c === undefined) return { expected: 1008, got: 'connect failed' }
  const hello = validHello(ctx.rng)
  delete hello.resume
  hello.vlan = ctx.rng.bool(0.5) ? { mode: 'access', vlan: ctx.rng.int(2, 4094) } : { mode: 'trunk', vlans: [1, ctx.rng.int(2, 4094)] }
  send(ctx, c, JSON.stringify(hello), false)
  const got = await closedWithin(c, CASE_GUARD_MS)
  c.ws.terminate()
  if (got === 1008) ctx.tally.vlanRefused++
  return { expected: 1008, got, detail: JSON.stringify(hello.vlan) }
}

/** The connection dies in the middle of something: a message, a frame, the HTTP request. */
const abrupt: Case = async (ctx) => {
  const rng = ctx.rng
  const v = rng.int(0, 3)
  if (v === 0) {
    // Through ws: a big message, then the socket is destroyed at once (part of it may have left).
    const tsw = rng.bool(0.5)
    const c = await connect(ctx, tsw)
    if (c === undefined) return { expected: 'any', got: 'connect failed' }
    if (tsw) send(ctx, c, JSON.stringify(validHello(rng)), false)
    send(ctx, c, rng.bytes(rng.int(10_000, MAX_MESSAGE_SIZE)), true)
    c.ws.terminate()
    return { expected: 'any', got: 'any' }
  }
  if (v === 1) {
    // By hand: half a frame, then gone.
    const tsw = rng.bool(0.5)
    const r = await RawWs.connect(ctx.port, { protocol: tsw ? SUBPROTOCOL_V1 : undefined })
    if (r.status !== 101) { r.destroy(); return { expected: 101, got: `http ${r.status}` } }
    if (tsw && rng.bool(0.7)) r.write(encodeFrame(OP_TEXT, Buffer.from(JSON.stringify(validHello(rng)))))
    const whole = encodeFrame(rng.pick([OP_BINARY, OP_TEXT]), rng.bytes(rng.int(1, 100_000)))
    r.write(whole.subarray(0, rng.int(1, whole.length - 1)))
    ctx.tally.messages++
    await sleep(rng.int(0, 20))
    r.destroy()
    return { expected: 'any', got: 'any' }
  }
  if (v === 2) {
    // Half an HTTP upgrade request.
    const s = net.connect(ctx.port, '127.0.0.1')
    s.on('error', () => {})
    await onceWithin(s, 'connect').catch(() => {})
    const req = `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${Buffer.alloc(16).toString('base64')}\r\n\r\n`
    s.write(req.slice(0, rng.int(1, req.length - 2)))
    await sleep(rng.int(0, 20))
    s.destroy()
    return { expected: 'any', got: 'any' }
  }
  // A valid port that just vanishes (RST-like), several frames in flight.
  const c = await connect(ctx, false)
  if (c === undefined) return { expected: 'any', got: 'connect failed' }
  for (let i = rng.int(1, 20); i > 0; i--) send(ctx, c, randomFrame(rng, 1518), true)
  c.ws.terminate()
  return { expected: 'any', got: 'any' }
}

const frameViolation: Case = async (ctx) => {
  const tsw = ctx.rng.bool(0.5)
  const withHello = tsw && ctx.rng.bool(0.5)
  const v = violation(ctx.rng)
  const r = await RawWs.connect(ctx.port, { protocol: tsw ? SUBPROTOCOL_V1 : undefined })
  if (r.status !== 101) { r.destroy(); return { expected: 101, got: `http ${r.status}` } }
  if (withHello) r.write(encodeFrame(OP_TEXT, Buffer.from(JSON.stringify({ type: 'hello', version: 1 }))))
  for (const f of v.frames) r.write(f)
  ctx.tally.messages += v.frames.length > 2 ? 1 : v.frames.length // 16,400 fragments are one message
  const code = await r.closed(CASE_GUARD_MS)
  r.destroy()
  return { expected: v.alt !== undefined && code === v.alt ? v.alt : v.expect, got: code ?? (r.ended ? 'any' : 'timeout'), detail: `${v.why}${tsw ? ' (tapswitch' + (withHello ? ', after hello)' : ', before hello)') : ' (raw)'}` }
}

/** Requests that never become ports: refused upgrades, plain HTTP, garbage. */
const httpLevel: Case = async (ctx) => {
  const rng = ctx.rng
  const key = Buffer.alloc(16, 7).toString('base64')
  const upgrade = (path: string, extra: string[] = [], version = '13', withKey = true): string =>
    [`GET ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Version: ${version}`,
      ...(withKey ? [`Sec-WebSocket-Key: ${key}`] : []), ...extra, '', ''].join('\r\n')
  const cases: Array<[string, Outcome, string]> = [
    ['unsupported subprotocol', 'http 400', upgrade('/', ['Sec-WebSocket-Protocol: chat, superchat'])],
    ['bad path', 'http 404', upgrade(rng.pick(['/nope', '/net', '/net/a/b', '/api/v1/ports', '/net//']))],
    ['network name too long', 'http 404', upgrade('/net/' + 'a'.repeat(65))],
    ['network name with bad characters', 'http 404', upgrade('/net/a%2Fb')],
    ['wrong WebSocket version', 'http 400', upgrade('/', [], '99')],
    ['no Sec-WebSocket-Key', 'http 400', upgrade('/', [], '13', false)],
    ['plain GET of a network\'s path', 'http 426', 'GET /net/lab HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'],
    ['plain GET of / (a person: sent to the console)', 'http 302', 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'],
    ['unknown API path', 'http 404', 'GET /api/v1/nothing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'],
    ['a Host naming another site (DNS rebinding)', 'http 421', 'GET /api/v1/ports HTTP/1.1\r\nHost: evil.example\r\n\r\n'],
    ['headers over 16 KiB', 'http 431', upgrade('/', [`X-Big: ${'a'.repeat(20_000)}`])],
    ['garbage', 'any', rng.bytes(rng.int(1, 3000)).toString('latin1') + '\r\n\r\n']
  ]
  cases.push(['malformed percent-encoding in the network (once a crash)', 'http 404', upgrade('/net/%E0%A4%A')])
  cases.push(['unparsable request-target on an upgrade (once a crash)', 'http 400', upgrade('http://[')])
  cases.push(['unparsable request-target on a plain request (once a crash)', 'http 400', 'GET http://[ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'])
  const [why, expected, request] = rng.pick(cases)
  const r = await RawWs.connect(ctx.port, { rawRequest: request, timeoutMs: CASE_GUARD_MS })
  ctx.tally.messages++
  const got: Outcome = r.status !== 0 ? `http ${r.status}` : r.ended ? 'any' : 'timeout'
  r.destroy()
  return { expected, got: expected === 'any' && got === 'timeout' ? 'any' : got, detail: why }
}

const CASES: Array<[string, Case, number]> = [
  ['raw frames', rawFrames, 10],
  ['raw text', rawText, 4],
  ['raw oversize', rawOversize, 3],
  ['binary before hello', binaryBeforeHello, 5],
  ['invalid hello', invalidHello, 12],
  ['never hello', neverHello, 1],
  ['hello then garbage', helloThenGarbage, 14],
  ['vlan refused', vlanRefused, 2],
  ['abrupt', abrupt, 6],
  ['frame violation', frameViolation, 8],
  ['http', httpLevel, 5]
]
const TOTAL_WEIGHT = CASES.reduce((n, [, , w]) => n + w, 0)

function pickCase (rng: Rng): [string, Case] {
  let r = rng.int(0, TOTAL_WEIGHT - 1)
  for (const [name, fn, w] of CASES) {
    if (r < w) return [name, fn]
    r -= w
  }
  throw new Error('unreachable')
}

/** Run case lane:k. Its input depends only on SEED, lane and k. */
async function runCase (lane: number, k: number, port: number, url: string, tally: Tally): Promise<void> {
  const rng = new Rng(mixSeed(SEED, lane, k))
  const id = `${lane}:${k}`
  const ctx: Ctx = { rng, port, url, tally, id }
  // One case in 25 is a burst: several cases opened at once.
  if (rng.bool(0.04) && lane >= 0) {
    const n = rng.int(3, 16)
    await Promise.all(Array.from({ length: n }, async (_, i) => { await runCase(-1 - lane, k * 100 + i, port, url, tally) }))
    return
  }
  const [name, fn] = pickCase(rng)
  tally.cases++
  tally.byCase.set(name, (tally.byCase.get(name) ?? 0) + 1)
  let result: CaseResult
  try {
    result = await within(fn(ctx), 2 * CASE_GUARD_MS + HANDSHAKE_TIMEOUT * 1000, { expected: 'any', got: 'timeout', detail: 'case did not finish: a hang' })
  } catch (err) {
    result = { expected: 'any', got: 'timeout', detail: `the test's own code threw: ${(err as Error).stack ?? String(err)}` }
  }
  if (!matches(result.expected, result.got) || result.error !== undefined) {
    tally.failures.push(`case ${id} (${name}): expected ${String(result.expected)}, got ${String(result.got)}` +
      `${result.error !== undefined ? ' — ' + result.error : ''}${result.detail !== undefined ? ' — ' + result.detail : ''}`)
  }
}

// ---------------------------------------------------------------------------
// The good clients

function goodFrame (dst: Buffer, src: Buffer, seq: number): Buffer {
  const f = Buffer.alloc(64)
  dst.copy(f, 0); src.copy(f, 6)
  f.writeUInt16BE(ETHERTYPE_TEST, 12)
  f.writeUInt32BE(GOOD_MAGIC, 14)
  f.writeUInt32BE(seq, 18)
  return f
}

/** How many good frames from `src` are in `frames`. */
function goodFrom (frames: Buffer[], src: Buffer): number {
  const seqs: number[] = []
  goodSeqs(frames, src, seqs)
  return seqs.length
}

/** Sequence numbers of the good frames from `src` in `frames`; everything else is fuzz flooded to us. */
function goodSeqs (frames: Buffer[], src: Buffer, into: number[]): void {
  for (const f of frames) {
    if (f.length === 64 && f.readUInt16BE(12) === ETHERTYPE_TEST && f.readUInt32BE(14) === GOOD_MAGIC && f.subarray(6, 12).equals(src)) into.push(f.readUInt32BE(18))
  }
}

function assertInOrder (seqs: number[], sent: number, who: string): void {
  assert.equal(seqs.length, sent, `${who}: ${seqs.length} of ${sent} frames arrived`)
  for (let i = 0; i < seqs.length; i++) {
    if (seqs[i] !== i) assert.fail(`${who}: frame ${i} is seq ${String(seqs[i])} (lost, duplicated or reordered)`)
  }
}

// ---------------------------------------------------------------------------

describe('fuzz: malformed input never hurts the switch or its good ports (integration)', function () {
  this.timeout(HANG_GUARD_MS + 120_000)
  let server: SwitchServer
  let port: number
  let url: string
  let restoreLog: (line: string) => void
  const logTail: string[] = []
  const events = new Map<string, number>()
  const uncaught: string[] = []
  const onUncaught = (err: unknown): void => { uncaught.push(err instanceof Error ? (err.stack ?? err.message) : String(err)) }

  before(async () => {
    restoreLog = setLogSink((line) => {
      logTail.push(line)
      if (logTail.length > 300) logTail.shift()
      const m = /"event":"([a-z_]+)"/.exec(line)
      if (m !== null) events.set(m[1] as string, (events.get(m[1] as string) ?? 0) + 1)
    })
    process.on('uncaughtException', onUncaught)
    process.on('unhandledRejection', onUncaught)
    server = new SwitchServer({
      // Pings every 5 s: a port that answers them is never parked, however loaded the machine (the client is this process).
      config: buildConfig({ pingInterval: 5, limits: { handshakeTimeout: HANDSHAKE_TIMEOUT, maxPortsPerAddress: 1000 } }, 'test'),
      host: '127.0.0.1',
      port: 0
    })
    port = (await server.listen()).port
    url = `ws://127.0.0.1:${port}/`
    process.stdout.write(`      fuzz seed ${SEED} (replay: FUZZ_SEED=${SEED})\n`)
  })

  after(async () => {
    process.off('uncaughtException', onUncaught)
    process.off('unhandledRejection', onUncaught)
    // Bounded: after an exception inside the server a socket may never close.
    await within(server.close(), 5000, undefined)
    setLogSink(restoreLog)
  })

  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(`fuzz seed ${SEED}; last switch log lines:\n${logTail.slice(-30).join('\n')}\n`)
  })

  it('survives thousands of malformed messages while two good clients lose nothing', async () => {
    const a = await TestClient.raw(url)
    await waitFor(() => server.ports().length === 1, CASE_GUARD_MS, 'port a')
    const portA = server.ports()[0] as WsPort
    const b = await TestClient.batched(url, { name: 'good-b' })
    const portB = server.ports().find((p) => p.name === 'good-b') as WsPort
    assert.ok(portB)
    const stats0 = { ...server.switch.stats, drops: server.switch.stats.drops.slice() as typeof server.switch.stats.drops }
    const rejected0 = { ...server.rejectedBy }
    const textIgnored0 = server.textIgnored

    // The good traffic: a -> b one frame per tick, b -> a a batch of 1-3 per tick, from before the fuzz to after it.
    let sentAB = 0
    let sentBA = 0
    const gotAtB: number[] = []
    const gotAtA: number[] = []
    let goodTicks = 0
    const drain = (): void => { goodSeqs(a.take(), MAC_GOOD_B, gotAtA); goodSeqs(b.take(), MAC_GOOD_A, gotAtB) }
    let sending = true
    const timer = setInterval(() => {
      drain()
      if (!sending) return
      goodTicks++
      a.send([goodFrame(MAC_GOOD_B, MAC_GOOD_A, sentAB++)])
      const n = 1 + (goodTicks % 3)
      const batch: Buffer[] = []
      for (let i = 0; i < n; i++) batch.push(goodFrame(MAC_GOOD_A, MAC_GOOD_B, sentBA++))
      b.send(batch)
    }, 4)

    const mem0 = process.memoryUsage()
    const tally: Tally = { cases: 0, messages: 0, byCase: new Map(), failures: [], badHello: 0, helloTimeout: 0, dataBeforeHello: 0, vlanRefused: 0, malformed: 0, rawTextsSeen: 0 }
    const started = Date.now()
    let memPeak = mem0.rss
    const memTimer = setInterval(() => { memPeak = Math.max(memPeak, process.memoryUsage().rss) }, 200)
    try {
      if (ONLY !== undefined) {
        const [lane, k] = ONLY.split(':').map(Number) as [number, number]
        await runCase(lane, k, port, url, tally)
      } else {
        await Promise.all(Array.from({ length: LANES }, async (_, lane) => {
          for (let k = 0; tally.messages < MESSAGES && Date.now() - started < HANG_GUARD_MS; k++) await runCase(lane, k, port, url, tally)
        }))
      }
    } finally {
      clearInterval(memTimer)
      sending = false
    }
    const fuzzSeconds = (Date.now() - started) / 1000

    // Everything the good clients sent arrives, in order.
    try {
      await waitFor(() => { drain(); return gotAtB.length >= sentAB && gotAtA.length >= sentBA }, CASE_GUARD_MS, 'the good frames in flight')
    } catch { /* the assertions below say what is missing */ }
    clearInterval(timer)
    drain()

    process.stdout.write(`      ${tally.cases} cases, ${tally.messages} messages in ${fuzzSeconds.toFixed(1)} s: ` +
      [...tally.byCase].map(([n, c]) => `${n} ${c}`).join(', ') + '\n')
    process.stdout.write(`      good traffic: a->b ${sentAB} frames, b->a ${sentBA} frames\n`)

    assert.deepEqual(uncaught, [], 'nothing was thrown out of the server')
    if (tally.failures.length > 0) {
      assert.fail(`${tally.failures.length} of ${tally.cases} cases did not end as expected (seed ${SEED}, replay one with FUZZ_ONLY=lane:k):\n  ` +
        tally.failures.slice(0, 15).join('\n  '))
    }
    if (ONLY === undefined) assert.ok(tally.messages >= MESSAGES, `only ${tally.messages} of ${MESSAGES} fuzz messages were sent in ${HANG_GUARD_MS / 1000} s: the server or a case hung`)

    assert.equal(a.closeCode, undefined, 'good client a is still connected')
    assert.equal(b.closeCode, undefined, 'good client b is still connected')
    assertInOrder(gotAtB, sentAB, 'a -> b (raw to batched)')
    assertInOrder(gotAtA, sentBA, 'b -> a (batched to raw)')
    assert.equal(portA.drops[R_BACKPRESSURE], 0, 'no backpressure drop towards a')
    assert.equal(portB.drops[R_BACKPRESSURE], 0, 'no backpressure drop towards b')
    assert.equal(portA.drops[R_LOOP] + portB.drops[R_LOOP] + portA.drops[R_PORT_SECURITY] + portB.drops[R_PORT_SECURITY], 0, 'the good ports were never blocked')

    // The switch is back to exactly the two good ports.
    await waitFor(() => server.ports().length === 2 && server.portTable.pending.size === 0, CASE_GUARD_MS, 'the fuzz ports to go').catch(() => {})
    assert.deepEqual(server.ports().map((p) => p.name).sort(), [portA.name, 'good-b'].sort(), 'only the good ports are left')
    assert.ok(server.ports().includes(portA) && server.ports().includes(portB), 'the good ports are the same ports as before')
    assert.equal(server.portTable.pending.size, 0, 'no handshake is pending')
    assert.equal(server.portTable.countFrom('127.0.0.1'), 2, 'the per-address count is back to 2')
    assert.deepEqual(server.networks.all().map((n) => n.name), ['default'], 'only the default network exists')
    assert.equal(events.get('port_parked') ?? 0, 0, 'no fuzz port was parked (all of them answered pings)')

    // The server counted what it was sent.
    const rejected = (reason: string): number => (server.rejectedBy[reason] ?? 0) - (rejected0[reason] ?? 0)
    assert.equal(rejected('bad_hello'), tally.badHello, 'bad_hello counted once per invalid hello')
    assert.equal(rejected('hello_timeout'), tally.helloTimeout, 'hello_timeout counted once per silent connection')
    assert.equal(rejected('data_before_hello'), tally.dataBeforeHello, 'data_before_hello counted')
    assert.equal(rejected('vlan_refused'), tally.vlanRefused, 'vlan_refused counted')
    assert.ok(server.switch.stats.drops[R_MALFORMED] - stats0.drops[R_MALFORMED] >= tally.malformed, 'malformed batches counted')
    assert.ok(server.textIgnored - textIgnored0 >= tally.rawTextsSeen, `raw-mode texts counted (${server.textIgnored - textIgnored0} >= ${tally.rawTextsSeen})`)
    const s = server.switch.stats
    process.stdout.write(`      switch drops: runt ${s.drops[R_RUNT] - stats0.drops[R_RUNT]}, oversize ${s.drops[R_OVERSIZE] - stats0.drops[R_OVERSIZE]}, ` +
      `bad source ${s.drops[R_BAD_SOURCE] - stats0.drops[R_BAD_SOURCE]}, vlan ${s.drops[R_VLAN] - stats0.drops[R_VLAN]}, malformed ${s.drops[R_MALFORMED] - stats0.drops[R_MALFORMED]}, ` +
      `port security ${s.drops[R_PORT_SECURITY] - stats0.drops[R_PORT_SECURITY]}; refused: ${Object.entries(server.rejectedBy).filter(([, n]) => n > 0).map(([r, n]) => `${r} ${n}`).join(', ')}\n`)

    a.close()
    b.close()
    await waitFor(() => server.ports().length === 0, CASE_GUARD_MS, 'good ports to go')
    global.gc?.()
    await sleep(200)
    const mem1 = process.memoryUsage()
    const mb = (n: number): string => `${(n / 1048576).toFixed(1)} MB`
    process.stdout.write(`      memory (this process: server and clients): rss ${mb(mem0.rss)} -> ${mb(mem1.rss)} (peak ${mb(memPeak)}), ` +
      `heapUsed ${mb(mem0.heapUsed)} -> ${mb(mem1.heapUsed)}, external ${mb(mem0.external)} -> ${mb(mem1.external)}\n`)
    assert.ok(mem1.heapUsed - mem0.heapUsed < HEAP_GROWTH_LIMIT, `heap grew by ${mb(mem1.heapUsed - mem0.heapUsed)} (limit ${mb(HEAP_GROWTH_LIMIT)})`)
    assert.ok(mem1.rss - mem0.rss < RSS_GROWTH_LIMIT, `rss grew by ${mb(mem1.rss - mem0.rss)} (limit ${mb(RSS_GROWTH_LIMIT)})`)
  })

  it('still switches after the fuzz: a new pair of clients exchanges frames', async () => {
    // MACs of their own: the good clients' would be another port's (port security) if the run above failed before closing them.
    const macX = Buffer.from('02cc00000003', 'hex')
    const macY = Buffer.from('02dd00000004', 'hex')
    const x = await TestClient.batched(url, { name: 'after-x' })
    const y = await TestClient.raw(url)
    try {
      x.send([goodFrame(Buffer.alloc(6, 0xff), macX, 1)])
      await waitFor(() => goodFrom(y.frames, macX) >= 1, CASE_GUARD_MS, 'broadcast x -> y')
      y.send([goodFrame(macX, macY, 2)])
      await waitFor(() => goodFrom(x.frames, macY) >= 1, CASE_GUARD_MS, 'unicast y -> x')
    } finally {
      x.close(); y.close()
    }
    assert.deepEqual(uncaught, [])
  })
})

/**
 * Inputs that crashed switchd or leaked a network until they were fixed
 * (found by the fuzzer above), one regression test each.
 */
describe('fuzz: inputs that once crashed switchd or leaked', function () {
  let server: SwitchServer
  let port: number
  let restoreLog: (line: string) => void
  const uncaught: string[] = []
  const onUncaught = (err: unknown): void => { uncaught.push(err instanceof Error ? err.message : String(err)) }

  beforeEach(async function () {
    uncaught.length = 0
    restoreLog = setLogSink(() => {})
    process.on('uncaughtException', onUncaught)
    server = new SwitchServer({ config: buildConfig({ limits: { handshakeTimeout: HANDSHAKE_TIMEOUT } }, 'test'), host: '127.0.0.1', port: 0 })
    port = (await server.listen()).port
  })
  afterEach(async () => {
    process.off('uncaughtException', onUncaught)
    await within(server.close(), 5000, undefined)
    setLogSink(restoreLog)
  })

  async function stillServes (): Promise<void> {
    assert.deepEqual(uncaught, [], 'nothing was thrown out of the server')
    const c = await TestClient.batched(`ws://127.0.0.1:${port}/`, { name: 'probe' })
    c.close()
  }

  it('bug 1: a hello whose close reason cuts a multibyte character closes with 4002 (ports.ts truncateReason)', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, [SUBPROTOCOL_V1])
    ws.on('error', () => {})
    await onceWithin(ws, 'open')
    // "unsupported version " is 20 bytes: 98 more put an emoji across byte 120, where the reason is cut.
    ws.send(JSON.stringify({ type: 'hello', version: 'a'.repeat(98) + '\u{1F600}'.repeat(10) }))
    const [code, reason] = await onceWithin<[number, Buffer]>(ws, 'close')
    assert.equal(code, 4002)
    assert.ok(reason.length <= 123)
    await stillServes()
  })

  for (const [n, what, request, status] of [
    [2, 'malformed percent-encoding in /net/<name> (networks.ts decodeURIComponent)', 'GET /net/%E0%A4%A HTTP/1.1', 404],
    [3, 'an unparsable request-target on an upgrade (server.ts new URL)', 'GET http://[ HTTP/1.1', 400],
    [4, 'an unparsable request-target on a plain request (api.ts new URL)', 'GET http://[ HTTP/1.1', 400]
  ] as Array<[number, string, string, number]>) {
    it(`bug ${n}: ${what} is refused, not a crash`, async () => {
      const headers = n === 4 ? ['Host: 127.0.0.1'] : ['Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Version: 13', `Sec-WebSocket-Key: ${Buffer.alloc(16).toString('base64')}`]
      const r = await RawWs.connect(port, { rawRequest: [request, ...headers, '', ''].join('\r\n') })
      r.destroy()
      assert.equal(r.status, status)
      await stillServes()
    })
  }

  it('bug 5: a bad hello or data before hello on /net/<new> does not leave the network behind (ports.ts awaitHello)', async () => {
    for (const [i, msg] of ['not json', Buffer.from([1, 2, 3])].entries()) {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/net/leak${i}`, [SUBPROTOCOL_V1])
      ws.on('error', () => {})
      await onceWithin(ws, 'open')
      ws.send(msg)
      await onceWithin(ws, 'close')
    }
    // A network left behind stays: wait (bounded) for the cleanup, which fails if it never comes.
    await waitFor(() => server.networks.all().length === 1, 3000, 'the networks of the refused handshakes to go')
    assert.deepEqual(server.networks.all().map((n) => n.name), ['default'])
  })
})
