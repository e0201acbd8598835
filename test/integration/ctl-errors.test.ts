/**
 * switchctl's errors (issue 22, item 6): each way of not reaching switchd, and
 * each command line that does not parse, is one line naming the cause and the
 * fix, as switchd's own errors are; the unknown-flag line is the same in
 * switchd and tap-agent (common/cli.ts parseFlags).
 */

import { freePort } from '../helpers/net'
import assert from 'node:assert/strict'
import * as net from 'node:net'
import * as http from 'node:http'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { spawn } from 'node:child_process'
import { WebSocketServer } from 'ws'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { setLogSink } from '../../src/common/log'
import { switchctl, type CtlResult } from '../helpers/ctl'
import { makePki, type TestPki } from '../helpers/tls'

const TOKEN = 'test-admin-token-0123456789'
const ROOT = path.join(__dirname, '..', '..')


/** Run a program's main from source with `args`: its exit code and stderr (guarded against a hang). */
async function program (file: string, args: string[]): Promise<{ code: number, stderr: string }> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-r', 'tsx/cjs', '-e', `require('./src/${file}').main(process.argv.slice(1))`, '--', ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    child.stderr.on('data', (d: Buffer) => { err += d.toString() })
    const t = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${file} ${args.join(' ')} did not exit`)) }, 60_000)
    child.on('close', (code) => { clearTimeout(t); resolve({ code: code ?? -1, stderr: err }) })
  })
}

/** One line on stderr, matching `line`, and the exit code. */
function oneLine (r: { code: number, stderr: string }, line: RegExp, code: number): void {
  assert.equal(r.code, code, r.stderr)
  assert.equal(r.stderr.split('\n').filter((l) => l !== '').length, 1, r.stderr)
  assert.match(r.stderr, line)
}

describe('switchctl errors name the cause and the fix (integration)', function () {
  let plain: SwitchServer
  let tls: SwitchServer
  let pki: TestPki
  let plainPort: number
  let tlsPort: number
  let web: http.Server
  let webPort: number
  let restore: (line: string) => void

  before(async () => {
    restore = setLogSink(() => {})
    pki = makePki()
    plain = new SwitchServer({ config: buildConfig({ adminToken: TOKEN }, 'test'), host: '127.0.0.1', port: 0 })
    plainPort = (await plain.listen()).port
    tls = new SwitchServer({ config: buildConfig({ adminToken: TOKEN }, 'test', { tlsCert: pki.cert, tlsKey: pki.key }), host: '127.0.0.1', port: 0 })
    tlsPort = (await tls.listen()).port
    // A web server that is not switchd, as `python3 -m http.server` answers: its own 404 page.
    web = http.createServer((_req, res) => { res.writeHead(404, { 'content-type': 'text/html;charset=utf-8' }).end('<html><body><h1>Error response</h1><p>Error code: 404</p><p>Message: File not found.</p></body></html>\n') })
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve))
    webPort = (web.address() as net.AddressInfo).port
  })
  after(async () => {
    await plain.close(); await tls.close()
    await new Promise<void>((resolve) => web.close(() => { resolve() }))
    fs.rmSync(pki.dir, { recursive: true, force: true })
    setLogSink(restore)
  })

  const ctl = async (args: string[], env: Record<string, string> = {}): Promise<CtlResult> => await switchctl(args, { SWITCHCTL_TOKEN: TOKEN, ...env })

  it('a ws:// URL or one without a scheme: how to write it (exit 2)', async () => {
    const [ws, wss, bare, envBare] = await Promise.all([
      ctl(['ports', '--url', `ws://127.0.0.1:${plainPort}/`]),
      ctl(['ports', '--url', `wss://127.0.0.1:${tlsPort}/`]),
      ctl(['ports', '--url', `127.0.0.1:${plainPort}`]),
      ctl(['ports'], { SWITCHCTL_URL: `localhost:${plainPort}` })])
    oneLine(ws, new RegExp(`^switchctl: --url ws://127\\.0\\.0\\.1:${plainPort}/: .*use http://127\\.0\\.0\\.1:${plainPort}/$`, 'm'), 2)
    oneLine(wss, new RegExp(`use https://127\\.0\\.0\\.1:${tlsPort}/$`, 'm'), 2)
    oneLine(bare, new RegExp(`^switchctl: --url 127\\.0\\.0\\.1:${plainPort}: no scheme: use http://127\\.0\\.0\\.1:${plainPort} `, 'm'), 2)
    oneLine(envBare, new RegExp(`^switchctl: SWITCHCTL_URL=localhost:${plainPort}: no scheme: use http://localhost:${plainPort} `, 'm'), 2)
  })

  it('nothing listening, TLS to plain HTTP, plain HTTP to TLS, an untrusted certificate', async () => {
    const closed = await freePort()
    const [refused, tlsToPlain, plainToTls, untrusted, trusted, events] = await Promise.all([
      ctl(['ports', '--url', `http://127.0.0.1:${closed}`]),
      ctl(['ports', '--url', `https://127.0.0.1:${plainPort}`]),
      ctl(['ports', '--url', `http://127.0.0.1:${tlsPort}`]),
      ctl(['ports', '--url', `https://127.0.0.1:${tlsPort}`]),
      ctl(['ports', '--url', `https://127.0.0.1:${tlsPort}`], { NODE_EXTRA_CA_CERTS: pki.ca }),
      ctl(['events', '--count', '1', '--url', `https://127.0.0.1:${plainPort}`])])
    oneLine(refused, new RegExp(`^switchctl: nothing listens at 127\\.0\\.0\\.1:${closed}: is switchd running\\? \\(start it with: switchd --listen 127\\.0\\.0\\.1:${closed}; .*SWITCHCTL_URL\\)$`, 'm'), 1)
    oneLine(tlsToPlain, new RegExp(`^switchctl: 127\\.0\\.0\\.1:${plainPort} speaks plain HTTP, not TLS: use http://127\\.0\\.0\\.1:${plainPort}$`, 'm'), 1)
    oneLine(plainToTls, new RegExp(`if switchd serves TLS there \\(--tls-cert\\), use https://127\\.0\\.0\\.1:${tlsPort}`), 1)
    oneLine(untrusted, /its TLS certificate is not trusted \(\w+\): give switchctl the CA that signed it, NODE_EXTRA_CA_CERTS=/, 1)
    assert.equal(trusted.code, 0, trusted.stderr)
    oneLine(events, /speaks plain HTTP, not TLS: use http:\/\//, 1)
  })

  it('a web server that is not switchd: says so, and does not print its page', async () => {
    const [ports, events] = await Promise.all([
      ctl(['ports', '--url', `http://127.0.0.1:${webPort}`]),
      ctl(['events', '--count', '1', '--url', `http://127.0.0.1:${webPort}`])])
    oneLine(ports, new RegExp(`^switchctl: 127\\.0\\.0\\.1:${webPort} is not switchd \\(it answered GET /api/v1/ports with 404 text/html\\): check --url or SWITCHCTL_URL$`, 'm'), 1)
    oneLine(events, new RegExp(`^switchctl: 127\\.0\\.0\\.1:${webPort} is not switchd \\(it answered GET /api/v1/events with 404 text/html\\)`, 'm'), 1)
    assert.doesNotMatch(ports.stderr, /File not found/)
  })

  describe('attack: a server switchctl is pointed at that is hostile', () => {
    let hostile: http.Server
    let hostilePort: number
    let elsewhere: http.Server
    let elsewherePort: number
    const reached: string[] = []
    before(async () => {
      elsewhere = http.createServer((req, res) => {
        reached.push(`${req.method ?? ''} ${req.url ?? ''} ${req.headers.authorization ?? 'no token'}`)
        res.writeHead(200, { 'content-type': 'application/json', 'x-tapswitch': '1' }).end('[]')
      })
      await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve))
      elsewherePort = (elsewhere.address() as net.AddressInfo).port
      hostile = http.createServer((req, res) => {
        const p = req.url ?? ''
        if (p.startsWith('/api/v1/ports')) {
          // Elsewhere: another origin (no token follows), then the same origin's other path (the token would follow).
          res.writeHead(307, { location: p.includes('network=same') ? '/api/v1/networks' : `http://127.0.0.1:${elsewherePort}/api/v1/ports` }).end()
        } else if (p.startsWith('/api/v1/fdb')) {
          res.writeHead(500, { 'content-type': 'application/json', 'x-tapswitch': '1' })
            .end(JSON.stringify({ error: 'boom \u001b]0;owned\u0007\u001b[2J\r\nswitchctl: all is well', code: 'X' }))
        } else if (p.startsWith('/api/v1/leases')) {
          // An error body without end: written until switchctl hangs up.
          res.writeHead(500, { 'content-type': 'application/json', 'x-tapswitch': '1' })
          res.write('{"error":"')
          const chunk = 'x'.repeat(64 * 1024)
          const more = (): void => { while (!res.destroyed && res.write(chunk)) { /* until the socket is full */ } if (!res.destroyed) res.once('drain', more) }
          res.on('close', () => { res.removeAllListeners('drain') })
          more()
        } else {
          res.writeHead(404).end()
        }
      })
      // Its event stream: a welcome of the wrong shape, with controls in a field, then what is not JSON.
      const wss = new WebSocketServer({ noServer: true, handleProtocols: () => 'tapswitch.console' })
      hostile.on('upgrade', (req, socket, head) => {
        wss.handleUpgrade(req, socket, head, (ws) => {
          ws.send(JSON.stringify({ type: 'welcome', log: [{ seq: 1, time: 'never', level: 'bogus', component: { a: 1 }, event: 'e', fields: { x: ['\u001b[2J'], y: null } }] }))
          ws.send('not json \u001b[2J')
        })
      })
      await new Promise<void>((resolve) => hostile.listen(0, '127.0.0.1', resolve))
      hostilePort = (hostile.address() as net.AddressInfo).port
    })
    after(async () => {
      hostile.closeAllConnections()
      await new Promise<void>((resolve) => hostile.close(() => { resolve() }))
      await new Promise<void>((resolve) => elsewhere.close(() => { resolve() }))
    })

    it('attack: a redirect is not followed, to another host or to another path of the same one', async () => {
      const url = `http://127.0.0.1:${hostilePort}`
      const [other, same] = await Promise.all([ctl(['ports', '--url', url]), ctl(['ports', '--network', 'same', '--url', url])])
      oneLine(other, new RegExp(`^switchctl: 127\\.0\\.0\\.1:${hostilePort} answered GET /api/v1/ports with a redirect \\(307 to http://127\\.0\\.0\\.1:${elsewherePort}/api/v1/ports\\); .*follows none: check --url or SWITCHCTL_URL$`, 'm'), 1)
      oneLine(same, /with a redirect \(307 to \/api\/v1\/networks\)/, 1)
      assert.deepEqual(reached, [], 'nothing went where the redirect pointed')
    })

    it('attack: terminal controls in a server\'s error are printed escaped, on one line', async () => {
      const r = await ctl(['fdb', '--url', `http://127.0.0.1:${hostilePort}`])
      oneLine(r, /^switchctl: boom \\u001b\]0;owned\\u0007\\u001b\[2J\\u000d\\u000aswitchctl: all is well$/m, 1)
      assert.doesNotMatch(r.stderr, /[\u0000-\u0009\u000b-\u001f]/)
    })

    it('attack: an event stream that is not switchd\'s: its entries printed escaped, then one line, no stack trace', async () => {
      const r = await ctl(['events', '--count', '5', '--url', `http://127.0.0.1:${hostilePort}`])
      assert.equal(r.code, 1, r.stderr)
      assert.match(r.stdout.toString(), /INFO {2}\[object Object\]: e x=".*u001b\[2J.*" y=null\n$/)
      oneLine(r, new RegExp(`^switchctl: 127\\.0\\.0\\.1:${hostilePort} sent a message on /api/v1/events that is not JSON: is it switchd\\? check --url or SWITCHCTL_URL$`, 'm'), 1)
      assert.doesNotMatch(r.stdout.toString() + r.stderr, /\u001b/)
    })

    it('attack: an error body without end: switchctl reads a bounded part and exits', async () => {
      const r = await ctl(['leases', '--url', `http://127.0.0.1:${hostilePort}`])
      oneLine(r, /^switchctl: 500 Internal Server Error$/m, 1)
    })
  })

  it('an unknown option: one line with the near miss and the command\'s help, not the usage (exit 2)', async () => {
    const url = { SWITCHCTL_URL: `http://127.0.0.1:${plainPort}` }
    const [netwrk, other, missing, help, cmd] = await Promise.all([
      ctl(['ports', '--netwrk', 'lab1'], url), ctl(['ports', '--mac', '02:00:00:00:00:01'], url), ctl(['ports', '--network'], url),
      ctl(['ports', '--help'], url), ctl(['prots'], url)])
    oneLine(netwrk, /^switchctl: unknown option --netwrk for `switchctl ports` \(did you mean --network\?\); see switchctl ports --help$/m, 2)
    oneLine(other, /^switchctl: unknown option --mac for `switchctl ports`; see switchctl ports --help$/m, 2)
    oneLine(missing, /^switchctl: option --network needs a value; see switchctl ports --help$/m, 2)
    for (const r of [netwrk, other, missing]) assert.doesNotMatch(r.stderr, /positional|Commands:/)
    assert.equal(help.code, 0)
    assert.match(help.stdout.toString(), /^ {2}ports \[--network N\]/m)
    assert.doesNotMatch(help.stdout.toString(), /^ {2}capture/m, 'only the command asked about')
    oneLine(cmd, /^switchctl: unknown command "prots" \(did you mean ports\?\); see switchctl --help$/m, 2)
  })

  it('switchd and tap-agent say an unknown option the same way', async () => {
    const [sd, agent] = await Promise.all([program('switch/main', ['--lisen', '127.0.0.1:0']), program('agent/main', ['--url', 'ws://127.0.0.1:1/', '--tapp', 'x'])])
    oneLine(sd, /^switchd: unknown option --lisen \(did you mean --listen\?\); see switchd --help$/m, 2)
    oneLine(agent, /^tap-agent: unknown option --tapp \(did you mean --tap\?\); see tap-agent --help$/m, 2)
  })
})
