/**
 * --trusted-proxy against a real switchd on 127.0.0.1: behind a balancer
 * every connection comes from the balancer's address, so per-address shares
 * must count the client the proxy names in X-Forwarded-For, and only a peer
 * in the allowlisted ranges may name one. The proxy here is the test itself,
 * on 127.0.0.1; the clients it names are documentation addresses (no traffic
 * goes to them: they are only strings in a header).
 */
import assert from 'node:assert/strict'
import * as http from 'node:http'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { setLogSink } from '../../src/common/log'
import { TestClient, upgradeStatus } from '../helpers/client'
import { waitFor } from '../helpers/net'

const from = (address: string): { headers: Record<string, string> } => ({ headers: { 'x-forwarded-for': address } })

describe('trusted proxy: X-Forwarded-For names the client (integration)', () => {
  let servers: SwitchServer[]
  let clients: TestClient[]
  let logs: string[]
  let restore: (line: string) => void

  beforeEach(() => {
    logs = []
    restore = setLogSink((l) => { logs.push(l) })
    servers = []; clients = []
  })
  afterEach(async () => {
    for (const c of clients) c.ws.terminate()
    for (const s of servers) await s.close()
    setLogSink(restore)
  })

  async function start (raw: Record<string, unknown>): Promise<{ server: SwitchServer, url: string }> {
    const server = new SwitchServer({ config: buildConfig(raw, 'test'), host: '127.0.0.1', port: 0, closeTimeout: 0.2 })
    servers.push(server)
    return { server, url: `ws://127.0.0.1:${(await server.listen()).port}/` }
  }

  async function join (url: string, address: string): Promise<TestClient> {
    const c = await TestClient.raw(url, from(address))
    clients.push(c)
    return c
  }

  it('attack: behind a trusted proxy, one client filling maxPortsPerAddress does not refuse another client\'s port', async () => {
    const { server, url } = await start({ trustedProxies: ['127.0.0.1'], limits: { maxPortsPerAddress: 2 } })
    await join(url, '192.0.2.1')
    await join(url, '192.0.2.1')
    assert.equal(await upgradeStatus(url, from('192.0.2.1')), 429, 'the first client is at its share')
    assert.equal(server.rejectedBy.limit_address, 1)
    // Before --trusted-proxy every one of them was the proxy's address: this port was refused 429.
    await join(url, '192.0.2.2')
    await join(url, '::ffff:192.0.2.3')
    await waitFor(() => server.ports().length === 4, 5000, 'four ports')
    assert.equal(server.portTable.portsFrom('192.0.2.1'), 2)
    assert.equal(server.portTable.portsFrom('192.0.2.2'), 1)
    assert.equal(server.portTable.portsFrom('127.0.0.1'), 0, 'nothing counts as the proxy')
    // The port's remote (the API's, switchctl ports') is the client's, the mapped address normalized.
    const remotes = server.ports().map((p) => p.remote.replace(/:\d+$/, '')).sort()
    assert.deepEqual(remotes, ['192.0.2.1', '192.0.2.1', '192.0.2.2', '192.0.2.3'])
    // And the log names the client, not the proxy.
    assert.ok(logs.some((l) => l.includes('connection_rejected') && l.includes('192.0.2.1')), 'the refusal names the client')
  })

  it('attack: X-Forwarded-For from a peer that is not a trusted proxy changes nothing (cannot dodge its share)', async () => {
    // 127.0.0.1 is not in the ranges: the header is ignored, whatever it says.
    const { server, url } = await start({ trustedProxies: ['10.0.0.0/8', '127.0.0.2'], limits: { maxPortsPerAddress: 2 } })
    await join(url, '192.0.2.1')
    await join(url, '192.0.2.2')
    assert.equal(await upgradeStatus(url, from('192.0.2.3')), 429, 'a new header value is not a new share')
    assert.equal(server.rejectedBy.limit_address, 1)
    assert.equal(server.portTable.portsFrom('127.0.0.1'), 2)
    assert.equal(server.portTable.portsFrom('192.0.2.1'), 0)
    assert.deepEqual(server.ports().map((p) => p.remote.replace(/:\d+$/, '')), ['127.0.0.1', '127.0.0.1'])
  })

  it('without --trusted-proxy (the default) the header is ignored', async () => {
    const { server, url } = await start({ limits: { maxPortsPerAddress: 1 } })
    await join(url, '192.0.2.1')
    assert.equal(await upgradeStatus(url, from('192.0.2.2')), 429)
    assert.equal(server.portTable.portsFrom('127.0.0.1'), 1)
  })

  it('a trusted proxy\'s missing or garbage header counts as the proxy, logged at warn with the fix', async () => {
    const { server, url } = await start({ trustedProxies: ['127.0.0.1'], limits: { maxPortsPerAddress: 1 } })
    clients.push(await TestClient.raw(url, from('not-an-address')))
    assert.equal(await upgradeStatus(url), 429, 'no header: the proxy\'s own share, which is full')
    assert.equal(server.portTable.portsFrom('127.0.0.1'), 1)
    const warned = logs.filter((l) => l.includes('forwarded_for_ignored'))
    assert.ok(warned.some((l) => l.includes('malformed') && l.includes('proxy_set_header X-Forwarded-For $remote_addr')), warned.join('\n'))
    assert.ok(!warned.some((l) => l.includes('absent')), 'no header is a direct request, not a proxy\'s mistake: not at warn')
  })

  it('attack: a peer in the ranges that sends no header (a fleet peer\'s poll, a probe) writes a warn per request and buries its address\'s real lines', async () => {
    const { url } = await start({ trustedProxies: ['127.0.0.1'], limits: { maxPortsPerAddress: 1 } })
    clients.push(await TestClient.raw(url))
    const base = url.replace(/^ws/, 'http')
    // A fleet peer polls /fleet/v1/state every second, Prometheus scrapes, a probe asks /readyz: 80 of them.
    for (let i = 0; i < 80; i++) {
      await new Promise<void>((resolve, reject) => { http.get(base + 'readyz', (res) => { res.resume(); res.on('end', resolve) }).on('error', reject) })
    }
    assert.equal(logs.filter((l) => l.includes('forwarded_for_ignored')).length, 0)
    assert.equal(await upgradeStatus(url), 429)
    assert.ok(logs.some((l) => l.includes('connection_rejected') && l.includes('limit_address')), 'the refusal is still logged (the address\'s budget was not spent)')
  })
})
