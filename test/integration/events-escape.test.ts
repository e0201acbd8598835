/**
 * What a client sends reaches switchd's log (a refused Origin, in the
 * connection_rejected line's `why`), and from there `switchctl events` on the
 * operator's terminal: escaped on the way, so it cannot drive that terminal.
 */

import assert from 'node:assert/strict'
import * as net from 'node:net'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { setLogSink } from '../../src/common/log'
import { switchctl } from '../helpers/ctl'
import { waitFor } from '../helpers/net'

const TOKEN = 'events-admin-token-0123456789'

/** An upgrade whose Origin carries C1 controls (CSI, as latin1 bytes: HTTP allows obs-text) and an ESC-less colour change. */
async function upgradeWithOrigin (port: number, origin: Buffer, path = '/', extra = ''): Promise<void> {
  const sock = net.connect(port, '127.0.0.1')
  await new Promise((resolve) => sock.once('connect', resolve))
  sock.write(Buffer.concat([
    Buffer.from(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${extra}` +
      'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: '),
    origin, Buffer.from('\r\n\r\n')
  ]))
  await new Promise((resolve) => { sock.once('close', resolve); sock.once('error', resolve); sock.resume() })
}

describe('switchctl events escapes what clients sent (integration)', () => {
  let server: SwitchServer
  let restore: (line: string) => void
  const lines: string[] = []
  beforeEach(() => { lines.length = 0; restore = setLogSink((l) => { lines.push(l) }) })
  afterEach(async () => { await server?.close(); setLogSink(restore) })

  it('attack: an Origin with C1 control characters does not reach the operator\'s terminal raw', async () => {
    server = new SwitchServer({ config: buildConfig({ adminToken: TOKEN }, 'test'), host: '127.0.0.1', port: 0 })
    const port = (await server.listen()).port
    // 0x9b is CSI in C1: "\x9b2J" clears some terminals' screens, "\x9b31m" turns them red.
    const origin = Buffer.from([0x68, 0x74, 0x74, 0x70, 0x3a, 0x2f, 0x2f, 0x78, 0x9b, 0x32, 0x4a, 0x9b, 0x33, 0x31, 0x6d])
    await upgradeWithOrigin(port, origin)
    // The console's stream logs the Origin it refuses as a field of its own.
    await upgradeWithOrigin(port, origin, '/api/v1/events', 'Sec-WebSocket-Protocol: tapswitch.console\r\n')
    await waitFor(() => lines.some((l) => l.includes('"console_refused"')), 10_000, 'the refusals logged')
    const logged = lines.find((l) => l.includes('"bad_origin"')) as string
    assert.doesNotMatch(logged, /[\u0080-\u009f]/, 'switchd\'s own line is escaped')
    assert.match((JSON.parse(logged) as { why: string }).why, /http:\/\/x\u009b2J/, 'and still says what came')
    const r = await switchctl(['--url', `http://127.0.0.1:${port}`, '--token', TOKEN, 'events', '--count', '3'])
    assert.equal(r.code, 0, r.stderr)
    const out = r.stdout.toString('utf8')
    assert.doesNotMatch(out, /[\u0000-\u0009\u000b-\u001f\u0080-\u009f]/, out)
    assert.match(out, /connection_rejected .*reason=bad_origin/)
    assert.match(out, /console_refused .*origin="http:\/\/x\\u009b2J/)
    assert.match(out, /\\u009b2J/)
  })
})
