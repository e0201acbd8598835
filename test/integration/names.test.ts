/**
 * Names that do not exist fail at once (issue 22, item 5): every switchctl
 * command and API route that takes a network, port, VLAN or static entry
 * answers a typo with 404 TSW_ERR_NOT_FOUND naming what exists (and the near
 * miss), and switchctl prints that one line and exits 1, having done nothing:
 * no pcap header, no empty table, no flushed entry, no static entry.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { setLogSink } from '../../src/common/log'
import type { ApiErrorJson } from '../../src/common/api-types'
import { TestClient } from '../helpers/client'
import { switchctl, type CtlResult } from '../helpers/ctl'
import { waitFor } from '../helpers/net'
import { eth, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'

const TOKEN = 'test-admin-token-0123456789'
const FRAME = 'dst=broadcast,src=02:00:00:00:00:01'

describe('names that do not exist (integration)', function () {
  let server: SwitchServer
  let http: string
  let ws: string
  let labA: TestClient
  const clients: TestClient[] = []
  let restore: (line: string) => void

  before(async () => {
    restore = setLogSink(() => {})
    // web* and db* may claim their names (static entries bind to them); "guest" only claims its own.
    server = new SwitchServer({
      config: buildConfig({ adminToken: TOKEN, networks: { default: {}, lab1: {} }, profiles: [{ match: 'web*', claimable: true }, { match: 'db*', claimable: true }] }, 'test'),
      host: '127.0.0.1',
      port: 0
    })
    const port = (await server.listen()).port
    http = `http://127.0.0.1:${port}`
    ws = `ws://127.0.0.1:${port}`
    const web1 = await named('web1'); const db1 = await named('db1')
    await named('guest'); labA = await named('lab-a', '/net/lab1')
    // A port that dropped a frame and has gone: the drop log still names it.
    const gone = await named('db-gone')
    gone.send([Buffer.alloc(5)])
    web1.send([eth(BROADCAST, MAC_A)])
    await waitFor(() => db1.frames.length === 1 && server.switch.fdb.size === 1, undefined, 'web1 learned')
    gone.close()
    await waitFor(() => !server.ports().some((p) => p.name === 'db-gone'), undefined, 'db-gone left')
  })
  after(async () => {
    for (const c of clients) c.close()
    await server.close()
    setLogSink(restore)
  })

  async function named (name: string, path = '/'): Promise<TestClient> {
    const c = await TestClient.batched(ws + path, { name }); clients.push(c); return c
  }
  const env = (): Record<string, string> => ({ SWITCHCTL_URL: http, SWITCHCTL_TOKEN: TOKEN })
  const ctl = async (...args: string[]): Promise<CtlResult> => await switchctl(args, env())

  /** switchctl failed at once with one line on stderr, matching `line`, and wrote nothing on stdout. */
  function refused (r: CtlResult, line: RegExp, code = 1): void {
    assert.equal(r.code, code, r.stderr)
    assert.equal(r.stdout.length, 0, `nothing on stdout: ${r.stdout.toString()}`)
    assert.equal(r.stderr.split('\n').filter((l) => l !== '').length, 1, r.stderr)
    assert.match(r.stderr, line)
  }

  it('ports, fdb, conditions: a network that does not exist, with the near miss', async () => {
    const [ports, fdb, cond] = await Promise.all([ctl('ports', '--network', 'lab2'), ctl('fdb', '--network', 'lab2'), ctl('condition', 'show', '--network', 'lab2')])
    for (const r of [ports, fdb, cond]) refused(r, /^switchctl: no network "lab2" \(did you mean lab1\? networks: default, lab1\)\n$/)
  })

  it('capture: a port, VLAN or network that does not exist fails before any pcap header', async () => {
    // --duration 600: before, each waited its whole duration (the helper's guard fails the test first).
    const file = path.join(os.tmpdir(), `tsw-names-${process.pid}.pcap`)
    const [port, vlan, net, other] = await Promise.all([
      ctl('capture', '--port', 'wbe1', '--duration', '600', '-w', file),
      ctl('capture', '--vlan', '7', '--duration', '600', '-w', '-'),
      ctl('capture', '--network', 'lab2', '--duration', '600', '-w', '-'),
      ctl('capture', '--network', 'lab1', '--port', 'web1', '--duration', '600', '-w', '-')])
    refused(port, /^switchctl: no port "wbe1" \(did you mean web1\? ports: db1, guest, lab-a, web1\)$/m)
    refused(vlan, /^switchctl: no VLAN 7 in network default \(VLANs configured or in use: 1\)$/m)
    refused(net, /no network "lab2"/)
    refused(other, /^switchctl: no port "web1" in network lab1 \(ports: lab-a\)$/m)
    assert.equal(server.captures.size, 0)
    assert.equal(fs.existsSync(file), false, '-w FILE is not even created')
  })

  it('capture without --network captures the port\'s own network', async () => {
    const run = ctl('capture', '--port', 'lab-a', '--count', '1', '-w', '-')
    await waitFor(() => server.captures.size === 1, undefined, 'capture started')
    labA.send([eth(BROADCAST, MAC_B)])
    const r = await run
    assert.equal(r.code, 0, r.stderr)
    assert.ok(r.stdout.length > 24, 'a pcap header and the frame')
  })

  it('fdb and flush: a port or VLAN filter that does not exist; nothing is flushed', async () => {
    const [fdbPort, fdbVlan, flushPort, flushVlan] = await Promise.all([ctl('fdb', '--port', 'wbe1'), ctl('fdb', '--vlan', '7'), ctl('flush', '--port', 'wbe1'), ctl('flush', '--vlan', '7')])
    refused(fdbPort, /no port "wbe1" \(did you mean web1\?/)
    refused(fdbVlan, /^switchctl: no VLAN 7 \(VLANs configured or in use: 1\)$/m)
    refused(flushPort, /no port "wbe1" \(did you mean web1\?/)
    refused(flushVlan, /no VLAN 7 \(/)
    assert.equal(server.switch.fdb.size, 1, 'web1\'s entry is still there')
    const ok = await ctl('fdb', '--port', 'web1', '--vlan', '1')
    assert.match(ok.stdout.toString(), /02:00:00:00:00:01\s+web1/)
  })

  it('port, condition, link, trace: a port that does not exist, in the network given or any', async () => {
    const rs = await Promise.all([
      ctl('port', 'disable', 'wbe1'), ctl('port', 'enable', 'wbe1'), ctl('port', 'disconnect', 'web1', '--network', 'lab1'),
      ctl('condition', 'set', 'wbe1', '--delay', '5ms'), ctl('condition', 'clear', 'wbe1'), ctl('link', 'down', 'wbe1'),
      ctl('trace', '--in', 'wbe1', '--frame', FRAME), ctl('port', 'disable', 'web1', '--network', 'lab2')])
    for (const r of rs.slice(0, 7)) refused(r, /^switchctl: no port "(wbe1|web1)"( in network lab1)? \((did you mean web1\? )?ports: /)
    refused(rs[2], /no port "web1" in network lab1 \(ports: lab-a\)/)
    refused(rs[7], /no network "lab2"/)
    assert.ok(server.ports().every((p) => p.condIn === null && p.blocked === 0), 'nothing was changed')
  })

  it('drops: a port neither connected nor in the drop log, a network that does not exist', async () => {
    const [port, net, gone] = await Promise.all([ctl('drops', '--port', 'wbe1'), ctl('drops', '--network', 'lab2'), ctl('drops', '--port', 'db-gone')])
    refused(port, /no port "wbe1" \(did you mean web1\?/)
    refused(net, /no network "lab2"/)
    assert.equal(gone.code, 0, gone.stderr)
    assert.match(gone.stdout.toString(), /db-gone\s.*runt/, 'a port the drop log names is one to ask about')
  })

  it('leases: a network that does not exist, or has no gateway', async () => {
    const [net, none] = await Promise.all([ctl('leases', '--network', 'lab2'), ctl('leases', '--network', 'lab1')])
    refused(net, /no network "lab2"/)
    refused(none, /^switchctl: network lab1 has no gateway \(no network has one: docs\/GATEWAY\.md\)$/m)
  })

  it('static add: refuses a claimed name and a typo, takes --detached, and static del names what exists', async () => {
    const mac = '02:00:00:00:00:aa'
    const [claimed, typo, net] = await Promise.all([
      ctl('static', 'add', '--mac', mac, '--port', 'guest'),
      ctl('static', 'add', '--mac', mac, '--port', 'wbe1'),
      ctl('static', 'add', '--mac', mac, '--port', 'web1', '--network', 'lab2')])
    refused(claimed, /^switchctl: port "guest" claimed its name .*pin the name with a token, or make its profile claimable/m)
    refused(typo, /^switchctl: no port "wbe1" in network default \(did you mean web1\? ports: db1, guest, web1; if it has not connected yet: .*--detached\)$/m)
    refused(net, /no network "lab2"/)
    assert.equal(server.switch.fdb.rows().filter((r) => r.isStatic).length, 0, 'no static entry was added')
    const later = await ctl('static', 'add', '--mac', mac, '--port', 'web9', '--detached')
    assert.equal(later.code, 0, later.stderr)
    assert.match(later.stdout.toString(), /-> web9 \(network default\): detached until a port named web9 connects/)
    const [otherVlan, otherMac] = await Promise.all([ctl('static', 'del', '--mac', mac, '--vlan', '3'), ctl('static', 'del', '--mac', '02:00:00:00:00:ab')])
    refused(otherVlan, /no static entry for 02:00:00:00:00:aa in VLAN 3 of network default \(it has one in VLAN 1\)/)
    refused(otherMac, /no static entry for 02:00:00:00:00:ab in network default \(did you mean 02:00:00:00:00:aa\? static entries: 02:00:00:00:00:aa\)/)
    assert.equal((await ctl('static', 'del', '--mac', mac)).code, 0)
  })

  it('the API answers 404 TSW_ERR_NOT_FOUND with what exists, as JSON, never a pcap', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` }
    const ports = await fetch(`${http}/api/v1/ports?network=lab2`, { headers: auth })
    assert.equal(ports.status, 404)
    assert.equal(ports.headers.get('x-tapswitch'), 'switchd')
    const body = await ports.json() as ApiErrorJson
    assert.deepEqual({ ...body, error: undefined }, { error: undefined, code: 'TSW_ERR_NOT_FOUND', kind: 'network', name: 'lab2', known: ['default', 'lab1'], suggestion: 'lab1' })
    const capture = await fetch(`${http}/api/v1/capture?port=wbe1&duration=600`, { headers: auth })
    assert.equal(capture.status, 404)
    assert.equal(capture.headers.get('content-type'), 'application/json')
    assert.deepEqual(await capture.json(), { error: 'no port "wbe1" (did you mean web1? ports: db1, guest, lab-a, web1)', code: 'TSW_ERR_NOT_FOUND', kind: 'port', name: 'wbe1', known: ['db1', 'guest', 'lab-a', 'web1'], suggestion: 'web1' })
  })
})
