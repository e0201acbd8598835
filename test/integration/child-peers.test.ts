/**
 * Issue 21, finding 1, by construction: switchd's own listeners (the main
 * one, --metrics-listen, a QEMU tcp: listener) refuse every connection that
 * comes from a gateway's QEMU child, whatever it dials, and serve every
 * other local process. The child here is a stand-in for QEMU, started by the
 * real gateway code through the real launcher: it is ready at once, then
 * dials the three listeners as slirp would for a station, sends a request,
 * and reports what came back over a connection to the test's own server
 * (the barrier: it comes after every attempt).
 */

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { setLogSink } from '../../src/common/log'
import { waitFor, freePort } from '../helpers/net'
import { requireTools, NOBODY } from '../helpers/proc'
import { switchctl } from '../helpers/ctl'
import { TestClient } from '../helpers/client'
import { makePki, type TestPki } from '../helpers/tls'
import * as https from 'node:https'


describe('child peers: switchd\'s listeners refuse its gateway children (integration)', function () {
  this.timeout(30_000)
  let server: SwitchServer | undefined
  let barrier: net.Server | undefined
  let dir: string
  const logs: string[] = []
  let restore: (line: string) => void
  const ports = { main: 0, metrics: 0, qemu: 0 }

  before(function () { requireTools(this, [{ cmd: 'bash', pkg: 'bash' }]) })

  beforeEach(async () => {
    logs.length = 0
    restore = setLogSink((l) => { logs.push(l) })
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-child-peers-'))
    fs.chmodSync(dir, 0o755) // the stand-in runs as nobody when the tests run as root
    ports.main = await freePort()
    ports.metrics = await freePort()
    ports.qemu = await freePort()
  })

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-30).join('\n') + '\n')
    await server?.close()
    server = undefined
    barrier?.close()
    barrier = undefined
    fs.rmSync(dir, { recursive: true, force: true })
    setLogSink(restore)
  })

  /** A switchd with the three listeners and a gateway whose "QEMU" is `script` (bash, after the QMP greeting). */
  async function start (script: string, tls?: TestPki): Promise<SwitchServer> {
    const fake = path.join(dir, 'fake-qemu')
    fs.writeFileSync(fake, `#!/bin/bash\necho '{"QMP": {}}' >&4\n${script}\nexec sleep 1000\n`, { mode: 0o755 })
    const config = buildConfig({
      metricsListen: `127.0.0.1:${ports.metrics}`,
      qemu: [{ name: 'vm1', listen: `tcp:127.0.0.1:${ports.qemu}` }],
      networks: { lab: { gateway: { nat: false, qemu: fake } } }
    }, 'test', tls === undefined ? {} : { tlsCert: tls.cert, tlsKey: tls.key })
    server = new SwitchServer({ config, host: '127.0.0.1', port: ports.main })
    await server.listen()
    return server
  }

  it('attack: a gateway child\'s connections to the main, metrics and QEMU listeners are reset before a byte is read, and counted', async () => {
    let report = ''
    barrier = net.createServer((c) => { c.on('data', (d) => { report += d.toString() }) })
    await new Promise<void>((resolve) => barrier?.listen(0, '127.0.0.1', resolve))
    const b = (barrier.address() as net.AddressInfo).port
    // Each attempt: connect (from the child itself, as slirp does: fd 5 is the child's), send a
    // request, read whatever comes back within 5 s (its first 40 bytes). A write after the reset
    // fails (EPIPE) instead of killing the stand-in, as it does not kill QEMU.
    const s = await start(`trap '' PIPE
out=""
for p in ${ports.main} ${ports.metrics} ${ports.qemu}; do
  exec 5<>/dev/tcp/127.0.0.1/$p
  printf 'GET /healthz HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&5 2>/dev/null
  r=$(timeout 5 cat <&5 2>&1 | head -c 40 | tr -d '\\r\\n')
  exec 5<&-
  out="$out$p=[$r];"
done
exec 6<>/dev/tcp/127.0.0.1/${b}
printf '%s\\n' "$out" >&6`)
    await waitFor(() => report.includes('\n'), 20_000, 'the stand-in\'s report (barrier)')
    for (const p of [ports.main, ports.metrics, ports.qemu]) {
      const got = new RegExp(`${p}=\\[([^\\]]*)\\]`).exec(report)?.[1]
      assert.ok(got !== undefined, `an attempt on ${p}: ${report}`)
      assert.doesNotMatch(got, /HTTP\//, `nothing served on ${p}`)
    }
    assert.equal(s.rejectedBy.gateway_child, 3, 'three refusals counted')
    assert.ok(!s.ports().some((p) => p.name === 'vm1'), 'the QEMU port was not taken')
    assert.equal(logs.filter((l) => l.includes('"event":"connection_rejected"') && l.includes('"reason":"gateway_child"')).length, 3)
    assert.ok(logs.some((l) => l.includes('"listener":"metrics"')) && logs.some((l) => l.includes('"listener":"qemu vm1"')))
    const metrics = await s.registry.metrics()
    assert.match(metrics, /switchd_connections_rejected_total\{reason="gateway_child",replica="[^"]*"\} 3/)
  })

  it('attack: with TLS on the main listener, the child is reset before the handshake; a local client is served', async function () {
    requireTools(this, [{ cmd: 'openssl', pkg: 'openssl' }])
    const pki = makePki()
    try {
      let report = ''
      barrier = net.createServer((c) => { c.on('data', (d) => { report += d.toString() }) })
      await new Promise<void>((resolve) => barrier?.listen(0, '127.0.0.1', resolve))
      // The start of a ClientHello: a server that read it would answer (a ServerHello or an alert).
      const s = await start(`trap '' PIPE
exec 5<>/dev/tcp/127.0.0.1/${ports.main}
printf '\\x16\\x03\\x01\\x00\\x05\\x01\\x00\\x00\\x01\\x00' >&5 2>/dev/null
r=$(timeout 3 od -An -tx1 -N4 <&5 2>/dev/null | tr -d ' \\n')
exec 6<>/dev/tcp/127.0.0.1/${(barrier.address() as net.AddressInfo).port}
printf 'tls=[%s]\\n' "$r" >&6`, pki)
      await waitFor(() => report.includes('\n'), 15_000, 'the stand-in\'s report (barrier)')
      assert.equal(report.trim(), 'tls=[]', 'nothing came back')
      assert.equal(s.rejectedBy.gateway_child, 1)
      const status = await new Promise<number | undefined>((resolve, reject) => {
        https.get({ host: '127.0.0.1', port: ports.main, path: '/healthz', ca: fs.readFileSync(pki.ca) }, (res) => { res.resume(); resolve(res.statusCode) }).on('error', reject)
      })
      assert.equal(status, 200, 'a local TLS client is served')
      assert.equal(s.rejectedBy.gateway_child, 1)
    } finally {
      fs.rmSync(pki.dir, { recursive: true, force: true })
    }
  })

  it('another local process, of the child\'s own uid, is served on all three; so are switchctl and a WebSocket client', async () => {
    const s = await start('')
    assert.match(await s.registry.metrics(), /switchd_connections_rejected_total\{reason="gateway_child",replica="[^"]*"\} 0/, 'the series exists at 0')
    await waitFor(() => s.gatewayChildren[0]?.up === true, 5000, 'the gateway up')
    const child = s.gatewayChildren[0]?.childRef()
    assert.ok(child !== undefined)
    const root = process.getuid?.() === 0
    assert.equal(child.uid, root ? NOBODY : process.getuid?.(), 'the child\'s uid')
    // Same uid as the child: the refusal cannot be by uid, only by socket.
    const code = `const net=require('net');const get=(p)=>new Promise((r)=>{const s=net.connect(p,'127.0.0.1');let d='';s.on('data',(b)=>{d+=b});s.on('error',(e)=>r('ERR '+e.code));s.on('end',()=>r(d.split('\\r\\n')[0]));s.write('GET /healthz HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n')});` +
      `(async()=>{const a=await get(${ports.main});const m=await get(${ports.metrics});const q=net.connect(${ports.qemu},'127.0.0.1');q.on('error',()=>{});await new Promise((r)=>setTimeout(r,300));console.log(JSON.stringify([a,m,q.destroyed?'closed':'open']));q.destroy()})()`
    const [cmd, args] = root ? ['setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', process.execPath, '-e', code]] : [process.execPath, ['-e', code]]
    const out = await new Promise<string>((resolve, reject) => {
      const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], cwd: '/' })
      let text = ''
      p.stdout.on('data', (d: Buffer) => { text += d.toString() })
      p.on('error', reject)
      p.on('close', () => { resolve(text.trim()) })
    })
    assert.deepEqual(JSON.parse(out), ['HTTP/1.1 200 OK', 'HTTP/1.1 404 Not Found', 'open'], 'served: /healthz, the metrics listener (404 but answered), the QEMU port')
    await waitFor(() => s.ports().some((p) => p.name === 'vm1'), 3000, 'the QEMU port joined')
    const ctl = await switchctl(['--url', `http://127.0.0.1:${ports.main}`, 'networks'])
    assert.equal(ctl.code, 0, ctl.stderr)
    assert.match(ctl.stdout.toString(), /^lab\s.*\sup landlock\s+\d+\/\d+\s*$/m, 'the gateway column')
    const ws = await TestClient.raw(`ws://127.0.0.1:${ports.main}/net/lab`)
    ws.close()
    assert.equal(s.rejectedBy.gateway_child, 0)
  })
})
