/**
 * The native WebSocket reader and sender (native/ws_frame.cc, ws_output.cc),
 * deterministically: fuzz/ws_frame_test.cc and ws_output_test.cc built with the system compiler,
 * AddressSanitizer and UBSan, and run. Its cases are asserted here by name,
 * so a case that stops running fails as surely as one that fails. The frames
 * and close payloads the writer must match byte for byte are written here by
 * ws's own Sender (the code a JS peer runs), and handed to the test in a file.
 */
import { strict as assert } from 'node:assert'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import WebSocket from 'ws'
import { CXX_FLAGS, gxx } from '../helpers/cxx'

interface SenderOptions {
  fin: boolean, opcode: number, mask: boolean, readOnly: boolean, rsv1: boolean
  maskBuffer?: Buffer, generateMask?: (mask: Buffer) => void
}
interface SenderLike {
  close: (code: number, data: string | Buffer, mask: boolean, cb?: () => void) => void
}
interface SenderClass {
  new (socket: unknown): SenderLike
  frame: (data: Buffer, options: SenderOptions) => Buffer[]
}
const Sender = (WebSocket as unknown as { Sender: SenderClass }).Sender

/** A frame as ws's Sender.frame writes it; `mask` null: a server's (unmasked) frame. */
function wsFrame (opcode: number, payload: Buffer, mask: number[] | null, fin = true): Buffer {
  const parts = Sender.frame(Buffer.from(payload), {
    fin,
    opcode,
    mask: mask !== null,
    readOnly: false,
    rsv1: false,
    maskBuffer: mask !== null ? Buffer.alloc(4) : undefined,
    generateMask: mask !== null ? (m: Buffer) => { Buffer.from(mask).copy(m) } : undefined
  })
  return Buffer.concat(parts)
}

/** The close payload ws's Sender.close writes for (code, reason): its frame, unmasked, less the 2-byte header. */
function wsClosePayload (code: number, reason: string): Buffer {
  const written: Buffer[] = []
  const socket = { cork () {}, uncork () {}, write (b: Buffer) { written.push(Buffer.from(b)); return true } }
  new Sender(socket).close(code, reason, false)
  const frame = Buffer.concat(written)
  assert.ok(frame.length >= 2 && frame.length < 128)
  return frame.subarray(2)
}

const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 29 + 3) & 0xff))
const hex = (b: Buffer | null): string => b === null || b.length === 0 ? '-' : b.toString('hex')

/** The lines fuzz/ws_frame_test.cc reads: frames and close payloads as ws writes them. */
function expectedFrames (): string {
  const lines: string[] = []
  const frame = (name: string, opcode: number, payload: Buffer, mask: number[] | null, fin = true): void => {
    lines.push(`frame ${name} ${opcode} ${fin ? 1 : 0} ${hex(mask === null ? null : Buffer.from(mask))} ${hex(payload)} ${hex(wsFrame(opcode, payload, mask, fin))}`)
  }
  frame('text-unmasked', 1, Buffer.from('hello'), null)
  frame('binary-125-masked', 2, bytes(125), [1, 2, 3, 4])
  frame('binary-126-masked', 2, bytes(126), [0x37, 0xfa, 0x21, 0x3d])
  frame('binary-65535-unmasked', 2, bytes(65535), null)
  frame('binary-65536-masked', 2, bytes(65536), [0xff, 0x00, 0x80, 0x7f])
  frame('binary-70001-unmasked', 2, bytes(70001), null)
  frame('ping-empty-masked', 9, Buffer.alloc(0), [9, 8, 7, 6])
  frame('pong-125-unmasked', 10, bytes(125), null)
  frame('close-masked', 8, wsClosePayload(1000, 'bye'), [5, 6, 7, 8])
  frame('text-zero-mask', 1, Buffer.from('as is'), [0, 0, 0, 0])
  frame('text-fragment-masked', 1, Buffer.from('first part'), [1, 1, 1, 1], false)
  frame('continuation-unmasked', 0, bytes(300), null, false)
  const close = (name: string, code: number, reason: string, wsReason = reason): void => {
    lines.push(`close ${name} ${code} ${hex(Buffer.from(reason))} ${hex(wsClosePayload(code, wsReason))}`)
  }
  close('code-only', 1000, '')
  close('reason', 1001, 'going away')
  close('reason-123', 4000, 'r'.repeat(123))
  // Longer than ws takes (it throws past 123 bytes): ClosePayload cuts to 123, and a UTF-8 character is never cut in two.
  close('reason-200-cut', 1011, 'x'.repeat(200), 'x'.repeat(123))
  close('reason-utf8-cut', 1008, 'é'.repeat(70), 'é'.repeat(61))
  return lines.join('\n') + '\n'
}

/** Every case of fuzz/ws_frame_test.cc, by the name it prints. */
const CASES = [
  'attack: a close reason that is not UTF-8 fails with 1007, as ws does; a valid one is a message',
  'attack: the registered close codes ws takes (1012-1014) are a message; 1004-1006 and 1015 fail',
  'the expected frames from ws were read',
  'frames split at every byte boundary of a stream of several messages (server role, masked)',
  'frames split at every byte boundary of a stream of several messages (client role, unmasked)',
  'one byte per read hands out the same messages',
  '7-bit, 16-bit and 64-bit lengths at their edges',
  'a zero mask is a mask: the payload is taken as it is',
  'pings, pongs and a close between the fragments of a text message',
  'pings, pongs and a close between the fragments of a binary message',
  'close mid-batch: a close frame right after half a batch\'s bytes is part of the batch',
  'a close frame: empty or a valid code and reason is a message',
  'attack: a frame read one byte at a time keeps the footprint within 2 * max_message + kReadRoom',
  'attack: many small fragments keep the footprint within 2 * max_message + kReadRoom',
  'attack: a read is offered at most kReadRoom, and a port gone quiet after a big message gives it back',
  'unmasked frame to a server role fails 1002',
  'masked frame to a client role fails 1002',
  'RSV bits without an extension fail 1002',
  'unknown opcodes fail 1002',
  'a control frame over 125 bytes fails 1002',
  'a fragmented control frame fails 1002',
  'a continuation without a start fails 1002',
  'a new data frame in the middle of a fragmented message fails 1002',
  'a 16-bit length over max_message fails 1009 before its payload arrives',
  'a 64-bit length over max_message fails 1009 on the header alone',
  'a 64-bit length with the top bit set fails 1002',
  'a fragmented message over max_message fails 1009',
  'a close frame with a 1-byte payload or an invalid code fails 1002',
  'after kError, Next stays kError, nothing more is read and messages before it were handed out',
  'WriteHeader and ApplyMask write the bytes ws\'s Sender.frame writes',
  'ClosePayload writes ws\'s close payload, the reason cut to 123 bytes on a character boundary',
  'Output sends whole messages, as ws frames them, from parts',
  'Output queues a partial write and flushes it, then later messages, in order',
  'Output refuses a message over its cap with nothing written',
  'Output on a socket the peer closed is kBroken (EPIPE), never SIGPIPE, and stays broken'
]

describe('native WebSocket reader and sender (fuzz/ws_frame_test.cc under ASan and UBSan)', function () {
  this.timeout(300_000) // the build under a loaded machine; the test itself is bounded by its cases
  const results = new Map<string, string>()
  let output = ''

  before(function () {
    const v = spawnSync('g++', ['--version'], { encoding: 'utf8' })
    assert.ok(v.error === undefined && v.status === 0, 'g++ is missing: sudo scripts/install-deps.sh installs it (Debian package g++)')
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-wsframe-'))
    try {
      const bin = path.join(dir, 'ws_frame_test')
      gxx([...CXX_FLAGS, '-fsanitize=address,undefined', '-fno-sanitize-recover=all', 'fuzz/ws_frame_test.cc', 'fuzz/ws_output_test.cc',
        'native/ws_frame.cc', 'native/ws_output.cc', '-o', bin], 'fuzz/ws_frame_test.cc')
      const expected = path.join(dir, 'expected.txt')
      fs.writeFileSync(expected, expectedFrames())
      const run = spawnSync(bin, [expected], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1' } })
      output = `${run.stdout}${run.stderr}`
      // A sanitizer report or a signal: every case fails with it below.
      if (run.status !== 0 && run.status !== 1) output += `\nexited ${String(run.status)} (signal ${String(run.signal)})`
      for (const m of run.stdout.matchAll(/^(ok|not ok) - (.+?)(?:: (line .*))?$/gm)) results.set(m[2] as string, m[1] === 'ok' ? 'ok' : (m[3] ?? 'failed'))
      if (run.status !== 0 && run.status !== 1) for (const name of CASES) if (results.get(name) === 'ok') results.set(name, `the test binary crashed:\n${output.slice(-3000)}`)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  for (const name of CASES) {
    it(name, () => {
      const r = results.get(name)
      assert.ok(r !== undefined, `case not run (output:\n${output.slice(-3000)})`)
      assert.equal(r, 'ok', r)
    })
  }

  it('runs no case this file does not name', () => {
    assert.deepEqual([...results.keys()].filter((n) => !CASES.includes(n)), [])
    assert.match(output, /^0 failed$/m)
  })
})
