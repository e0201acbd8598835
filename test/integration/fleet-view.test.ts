/**
 * One view of a fleet: two real switchd with different replica names, their
 * metrics labelled, and `switchctl --url A,B` merging their lists; a replica
 * that is dead, hostile or slow costs its own rows only.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as http from 'node:http'
import type * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { setLogSink } from '../../src/common/log'
import { askAll } from '../../src/ctl/fleet-ask'
import { TestClient } from '../helpers/client'
import { switchctl, type CtlResult } from '../helpers/ctl'
import { freePort, waitFor } from '../helpers/net'
import { eth, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'

const TOKEN = 'fleet-view-admin-token-0123456789'

/** A server that is not a well-behaved switchd: `answer` writes each response. */
async function hostile (answer: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<{ url: string, server: http.Server }> {
  const server = http.createServer(answer)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, server }
}

async function closeServer (s: http.Server): Promise<void> {
  s.closeAllConnections()
  await new Promise<void>((resolve) => { s.close(() => { resolve() }) })
}

/** Writes `[{"name":"x"},` without end, as fast as the reader takes it, until the client goes. */
function endless (res: http.ServerResponse): void {
  const chunk = Buffer.from('{"name":"x","network":"default"},'.repeat(2000))
  res.writeHead(200, { 'content-type': 'application/json' })
  res.write('[')
  let open = true
  res.on('close', () => { open = false })
  const more = (): void => { while (open && res.write(chunk)) { /* until the socket's buffer is full */ } if (open) res.once('drain', more) }
  more()
}

describe('one view of the fleet: switchctl --url A,B and the replica label (integration)', function () {
  let r1: SwitchServer
  let r2: SwitchServer
  let url1: string
  let url2: string
  let clients: TestClient[]
  let restore: (line: string) => void
  let dir: string

  before(async () => {
    restore = setLogSink(() => {})
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-fleet-view-'))
    r1 = new SwitchServer({ config: buildConfig({ adminToken: TOKEN }, 'test'), host: '127.0.0.1', port: 0, replica: 'r1' })
    r2 = new SwitchServer({ config: buildConfig({ adminToken: TOKEN }, 'test'), host: '127.0.0.1', port: 0, replica: 'r2' })
    url1 = `http://127.0.0.1:${(await r1.listen()).port}`
    url2 = `http://127.0.0.1:${(await r2.listen()).port}`
    const hello = { token: TOKEN }
    clients = [
      await TestClient.batched(url1.replace('http', 'ws') + '/', { ...hello, name: 'on-r1' }),
      await TestClient.batched(url2.replace('http', 'ws') + '/', { ...hello, name: 'on-r2' })
    ]
    // Each replica learns its port's MAC: a row in each fdb.
    ;(clients[0] as TestClient).send([eth(BROADCAST, MAC_A)])
    ;(clients[1] as TestClient).send([eth(BROADCAST, MAC_B)])
    await waitFor(() => r1.switch.fdb.size === 1 && r2.switch.fdb.size === 1, 10_000, 'each replica learns its MAC')
  })
  after(async () => {
    for (const c of clients ?? []) c.close()
    await r1?.close(); await r2?.close()
    fs.rmSync(dir, { recursive: true, force: true })
    setLogSink(restore)
  })

  const ctl = async (args: string[]): Promise<CtlResult> => await switchctl(args, { SWITCHCTL_TOKEN: TOKEN })
  const lines = (r: CtlResult): string[] => r.stdout.toString().split('\n').filter((l) => l !== '')

  it('GET /api/v1/status answers the replica\'s name, and every series of /metrics carries it as the label replica', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` }
    assert.equal(((await (await fetch(url2 + '/api/v1/status', { headers: auth })).json()) as { replica: string }).replica, 'r2')
    const text = await (await fetch(url1 + '/metrics', { headers: auth })).text()
    const samples = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'))
    assert.ok(samples.length > 100, `${samples.length} samples`)
    assert.deepEqual(samples.filter((l) => !/^[a-zA-Z_:][\w:]*\{(?:[^}]*,)?replica="r1"(?:,[^}]*)?\} \S+$/.test(l)), [], 'samples without replica="r1"')
    assert.match(text, /^switchd_ports\{network="default",replica="r1"\} 1$/m)
    assert.match(text, /^process_cpu_seconds_total\{replica="r1"\} /m, 'the process\'s own series too')
  })

  it('ports, networks and fdb from both replicas, merged with a REPLICA column', async () => {
    const [ports, nets, fdb] = await Promise.all([ctl(['--url', `${url1},${url2}`, 'ports']), ctl(['--url', `${url1},${url2}`, 'networks']), ctl(['--url', `${url1},${url2}`, 'fdb'])])
    for (const r of [ports, nets, fdb]) assert.equal(r.code, 0, r.stderr)
    assert.match(lines(ports)[0] as string, /^REPLICA\s+PORT\s+NETWORK\s+KIND/)
    assert.equal(lines(ports).length, 3)
    assert.match(lines(ports)[1] as string, /^r1\s+on-r1\s+default\s+tapswitch/)
    assert.match(lines(ports)[2] as string, /^r2\s+on-r2\s+default\s+tapswitch/)
    assert.match(lines(nets)[0] as string, /^REPLICA\s+NETWORK\s+PORTS/)
    assert.deepEqual(lines(nets).slice(1).map((l) => l.split(/\s+/).slice(0, 3)), [['r1', 'default', '1'], ['r2', 'default', '1']])
    assert.match(lines(fdb)[0] as string, /^REPLICA\s+NETWORK\s+VLAN\s+MAC/)
    assert.match(lines(fdb)[1] as string, /^r1\s+default\s+1\s+02:00:00:00:00:01\s+on-r1/)
    assert.match(lines(fdb)[2] as string, /^r2\s+default\s+1\s+02:00:00:00:00:02\s+on-r2/)
  })

  it('--json merges too: one array of {replica, ...row}; --fleet-file names the same replicas', async () => {
    const file = path.join(dir, 'fleet')
    fs.writeFileSync(file, `# the two replicas\n${url1}\n\n${url2}   # the second\n`)
    const r = await ctl(['--fleet-file', file, '--json', 'ports'])
    assert.equal(r.code, 0, r.stderr)
    const rows = JSON.parse(r.stdout.toString()) as Array<{ replica: string, name: string }>
    assert.deepEqual(rows.map((p) => [p.replica, p.name]), [['r1', 'on-r1'], ['r2', 'on-r2']])
    assert.equal(Object.keys(rows[0] as object)[0], 'replica', 'replica first')
  })

  it('a dead replica: the other\'s rows, a line naming the dead one, and exit 1', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`
    const r = await ctl(['--url', `${url1},${dead}`, 'ports'])
    assert.equal(r.code, 1)
    assert.match(lines(r)[1] as string, /^r1\s+on-r1\s/)
    assert.equal(lines(r).length, 2)
    const err = r.stderr.split('\n').filter((l) => l !== '')
    assert.equal(err.length, 2, r.stderr)
    assert.match(err[0] as string, new RegExp(`^switchctl: ${dead.replace(/[.]/g, '\\.')}: nothing listens at ${dead.slice(7).replace(/[.]/g, '\\.')}: is switchd running\\?`))
    assert.equal(err[1], 'switchctl: 1 of 2 replicas did not answer (above); the rows printed are the others\'')
  })

  it('a command that acts on one replica refuses several URLs, naming the fix, and changes nothing', async () => {
    const r = await ctl(['--url', `${url1},${url2}`, 'flush'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /^switchctl: switchctl flush acts on one replica, and 2 were given: give one URL/)
    assert.equal(r1.switch.fdb.size, 1, 'nothing flushed')
    const both = await ctl(['--url', url1, '--fleet-file', path.join(dir, 'fleet'), 'ports'])
    assert.equal(both.code, 2)
    assert.match(both.stderr, /--url and --fleet-file both name the switchd to ask: give one of them/)
  })

  it('attack: a replica answering a huge body (declared) or malformed JSON: a clear error naming it, the other\'s rows still print', async () => {
    const huge = await hostile((req, res) => {
      if (req.url === '/api/v1/status') { res.writeHead(200, { 'content-type': 'application/json' }).end('{"replica":"evil"}'); return }
      // Says 1 GiB is coming: refused on the header, before a byte of it is read.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(1024 ** 3) })
      res.write('[')
    })
    const broken = await hostile((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(req.url === '/api/v1/status' ? '{"replica":"broken"}' : '[{"name": "x", "network": ')
    })
    try {
      const r = await ctl(['--url', `${huge.url},${url1},${broken.url}`, 'ports'])
      assert.equal(r.code, 1)
      assert.equal(lines(r).length, 2)
      assert.match(lines(r)[1] as string, /^r1\s+on-r1\s/)
      assert.match(r.stderr, new RegExp(`^switchctl: evil \\(${huge.url}\\): answered GET /api/v1/ports with more than 67108864 bytes; switchctl reads no more`, 'm'))
      assert.match(r.stderr, new RegExp(`^switchctl: broken \\(${broken.url}\\): answered GET /api/v1/ports with JSON that does not parse`, 'm'))
      assert.match(r.stderr, /2 of 3 replicas did not answer/)
    } finally {
      await closeServer(huge.server); await closeServer(broken.server)
    }
  })

  it('attack: a replica streaming a body without end, or never answering, is cut off at the byte bound and the time bound', async () => {
    const flood = await hostile((req, res) => { if (req.url === '/api/v1/status') res.writeHead(404).end(); else endless(res) })
    const silent = await hostile(() => { /* never answers */ })
    try {
      const answers = await askAll([{ url: flood.url, from: 'a' }, { url: url1, from: 'b' }], TOKEN, '/api/v1/ports', { timeoutMs: 60_000, maxBytes: 1024 * 1024 })
      assert.match((answers[0] as { error: string }).error, /answered GET \/api\/v1\/ports with more than 1048576 bytes/)
      assert.equal(answers[0]?.replica, flood.url.slice(7), 'no status route: named by host:port')
      assert.equal(((answers[1] as { rows: unknown[] }).rows).length, 1)
      const slow = await askAll([{ url: silent.url, from: 'a' }], TOKEN, '/api/v1/ports', { timeoutMs: 300, maxBytes: 1024 })
      assert.match((slow[0] as { error: string }).error, /^no whole answer to GET \/api\/v1\/ports within 0.3 s/)
    } finally {
      await closeServer(flood.server); await closeServer(silent.server)
    }
  })
})
