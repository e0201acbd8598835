import assert from 'node:assert/strict'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { TapDevice } from '../../src/common/tap'
import { Uplink } from '../../src/common/uplink'
import { Agent } from '../../src/agent/agent'
import { agentRegistry } from '../../src/agent/metrics'
import { TestClient } from '../helpers/client'
import { fakeTapBinding, type FakeTap } from '../helpers/fake-tap'
import { switchctl } from '../helpers/ctl'
import { parsePcap } from '../helpers/pcap'
import { waitFor, freePort } from '../helpers/net'
import { eth, BROADCAST, MAC_A, MAC_B } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'
import { R_DISABLED } from '../../src/switch/core/reasons'

const TOKEN = 'test-admin-token-0123456789'


describe('observability and admin (integration)', () => {
  let server: SwitchServer
  let http: string
  let ws: string
  let clients: TestClient[]
  let restore: (line: string) => void

  beforeEach(async () => {
    restore = setLogSink(() => {})
    clients = []
    // Claimable: the static entries below bind to the names these test clients claim in their hellos.
    server = new SwitchServer({ config: buildConfig({ adminToken: TOKEN, profiles: [{ match: '*', claimable: true }] }, 'test'), host: '127.0.0.1', port: 0 })
    const port = (await server.listen()).port
    http = `http://127.0.0.1:${port}`
    ws = `ws://127.0.0.1:${port}`
  })
  afterEach(async () => {
    for (const c of clients) c.close()
    await server.close()
    setLogSink(restore)
  })

  async function named (name: string): Promise<TestClient> { const c = await TestClient.batched(ws + '/', { name }); clients.push(c); return c }
  const auth = { authorization: `Bearer ${TOKEN}` }
  async function api (method: string, path: string, body?: unknown): Promise<Response> {
    return await fetch(http + path, { method, headers: { ...auth, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
  }

  describe('/metrics, /healthz, /readyz', () => {
    it('serves every series at zero before any traffic, to the admin token', async () => {
      const text = await (await fetch(http + '/metrics', { headers: auth })).text()
      assert.match(text, /^switchd_build_info\{version="[^"]+",node_version="v\d+[^"]*",replica="[^"]*"\} 1$/m)
      assert.match(text, /^switchd_frames_dropped_total\{network="default",reason="backpressure",replica="[^"]*"\} 0$/m)
      assert.match(text, /^switchd_flooded_frames_total\{network="default",kind="unknown_unicast",replica="[^"]*"\} 0$/m)
      assert.match(text, /^switchd_connections_rejected_total\{reason="vlan_refused",replica="[^"]*"\} 0$/m)
      assert.match(text, /^process_cpu_seconds_total\{replica="[^"]*"\} /m)
      assert.equal((await fetch(http + '/healthz')).status, 200)
      assert.equal((await fetch(http + '/readyz')).status, 200)
    })

    it('counts traffic per port and drops by reason, read at scrape time', async () => {
      const a = await named('a'); const b = await named('b')
      a.send([eth(BROADCAST, MAC_A), Buffer.alloc(5)])
      await waitFor(() => b.frames.length === 1)
      const text = await (await fetch(http + '/metrics', { headers: auth })).text()
      assert.match(text, /^switchd_port_receive_frames_total\{network="default",port="a",replica="[^"]*"\} 2$/m)
      assert.match(text, /^switchd_port_transmit_frames_total\{network="default",port="b",replica="[^"]*"\} 1$/m)
      assert.match(text, /^switchd_port_drops_total\{network="default",port="a",reason="runt",replica="[^"]*"\} 1$/m)
      assert.match(text, /^switchd_port_drops_total\{network="default",port="b",reason="runt",replica="[^"]*"\} 0$/m)
      assert.match(text, /^switchd_ports\{network="default",replica="[^"]*"\} 2$/m)
      assert.match(text, /^switchd_connections_accepted_total\{replica="[^"]*"\} 2$/m)
      a.close()
      await waitFor(() => server.ports().length === 1)
      const after = await (await fetch(http + '/metrics', { headers: auth })).text()
      assert.doesNotMatch(after, /port="a"/, 'a port that left has no series')
      assert.match(after, /^switchd_frames_dropped_total\{network="default",reason="runt",replica="[^"]*"\} 1$/m, 'network totals stay')
    })

    it('turns per-port series off on request', async () => {
      await server.close()
      server = new SwitchServer({ config: buildConfig({ metrics: { perPort: false } }, 'test'), host: '127.0.0.1', port: 0 })
      const port = (await server.listen()).port
      ws = `ws://127.0.0.1:${port}`
      await named('a')
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
      assert.doesNotMatch(text, /^switchd_port_/m)
      assert.match(text, /^switchd_ports\{network="default",replica="[^"]*"\} 1$/m)
    })

    it('exposes the agent\'s metrics, including uplink state and RTT', async function () {
      await server.close()
      server = new SwitchServer({ host: '127.0.0.1', port: 0, pingInterval: 1 })
      const port = (await server.listen()).port
      const dev = TapDevice.open(fakeTapBinding, { name: 'tsw-m0', mtu: 1500 })
      const agent = new Agent(dev, new Uplink({ url: `ws://127.0.0.1:${port}/`, name: 'm', reconnectMin: 0.05, reconnectMax: 0.2 }), 1500)
      agent.start()
      try {
        await waitFor(() => agent.uplink.isUp)
        ;(dev.tap as FakeTap).inject([eth(BROADCAST, MAC_A)])
        await waitFor(() => agent.uplink.stats.rttSamples > 0, 4000, 'an RTT sample')
        const text = await agentRegistry(agent).metrics()
        assert.match(text, /^tap_agent_uplink_up 1$/m)
        assert.match(text, /^tap_agent_uplink_connects_total 1$/m)
        assert.match(text, /^tap_agent_tap_receive_frames_total\{tap="tsw-m0"\} 1$/m)
        assert.match(text, /^tap_agent_frames_dropped_total\{tap="tsw-m0",reason="disconnected"\} 0$/m)
        assert.match(text, /^tap_agent_uplink_info\{network="default",port="m"\} 1$/m)
        assert.match(text, /^tap_agent_tap_receive_bytes_total\{tap="tsw-m0"\} 60$/m)
        assert.match(text, /^tap_agent_uplink_rtt_seconds \d/m)
        assert.match(text, /^tap_agent_build_info\{/m)
      } finally {
        await agent.stop()
      }
    })
  })

  describe('admin API', () => {
    it('refuses a missing or wrong token with 401 and accepts the right one', async () => {
      assert.equal((await fetch(http + '/api/v1/ports')).status, 401)
      assert.equal((await fetch(http + '/api/v1/ports', { headers: { authorization: 'Bearer nope' } })).status, 401)
      assert.equal((await fetch(http + '/api/v1/ports', { headers: auth })).status, 200)
    })

    it('flushes the fdb: all, by port, by MAC', async () => {
      const a = await named('a'); const b = await named('b')
      a.send([eth(BROADCAST, MAC_A), eth(BROADCAST, '020000000009')])
      b.send([eth(BROADCAST, MAC_B)])
      await waitFor(() => server.switch.fdb.size === 3)
      assert.deepEqual(await (await api('POST', '/api/v1/fdb/flush', { mac: '02:00:00:00:00:09' })).json(), { flushed: 1 })
      assert.deepEqual(await (await api('POST', '/api/v1/fdb/flush', { port: 'b' })).json(), { flushed: 1 })
      assert.deepEqual(await (await api('POST', '/api/v1/fdb/flush', {})).json(), { flushed: 1 })
      assert.equal(server.switch.fdb.size, 0)
      assert.equal((await api('POST', '/api/v1/fdb/flush', { mac: 'zz' })).status, 400)
    })

    it('adds and removes static entries', async () => {
      const a = await named('a'); const router = await named('router'); const c = await named('c')
      assert.equal((await api('POST', '/api/v1/fdb/static', { mac: '02:00:00:00:00:02', port: 'router' })).status, 201)
      a.send([eth(MAC_B, MAC_A)])
      await waitFor(() => router.frames.length === 1)
      // Barrier: a broadcast from a reaches c after anything the unicast could have sent it.
      a.send([eth(BROADCAST, MAC_A, 9)])
      await waitFor(() => c.frames.length >= 1, 3000, 'the barrier at c')
      assert.deepEqual(c.take().map((f) => f[14]), [9], 'forwarded by the static entry, not flooded')
      const fdb = await (await api('GET', '/api/v1/fdb?mac=02:00:00:00:00:02')).json() as Array<{ static: boolean }>
      assert.equal(fdb[0]?.static, true)
      assert.equal((await api('DELETE', '/api/v1/fdb/static?mac=02:00:00:00:00:02')).status, 200)
      assert.equal((await api('DELETE', '/api/v1/fdb/static?mac=02:00:00:00:00:02')).status, 404)
    })

    it('disables, enables and disconnects a port', async () => {
      const a = await named('a'); const b = await named('b')
      assert.equal((await api('POST', '/api/v1/ports/b/disable')).status, 200)
      a.send([eth(BROADCAST, MAC_A, 1)])
      b.send([eth(BROADCAST, MAC_B, 2)])
      const port = (name: string): ReturnType<SwitchServer['ports']>[number] | undefined => server.ports().find((p) => p.name === name)
      await waitFor(() => port('a')?.rxFrames === 1 && port('b')?.drops[R_DISABLED] === 1, 3000, 'both frames at the switch')
      const ports = await (await api('GET', '/api/v1/ports')).json() as Array<{ name: string, state: string, drops: { disabled: number } }>
      assert.equal(ports.find((p) => p.name === 'b')?.state, 'disabled')
      assert.equal(ports.find((p) => p.name === 'b')?.drops.disabled, 1)
      await api('POST', '/api/v1/ports/b/enable')
      // Barriers both ways: what crosses now arrives after anything frames 1 and 2 could have sent.
      a.send([eth(BROADCAST, MAC_A, 3)])
      b.send([eth(BROADCAST, MAC_B, 4)])
      await waitFor(() => b.frames.length >= 1 && a.frames.length >= 1, 3000, 'the barriers')
      assert.deepEqual(b.take().map((f) => f[14]), [3], 'nothing reached the disabled port')
      assert.deepEqual(a.take().map((f) => f[14]), [4], 'nothing left the disabled port')
      await api('POST', '/api/v1/ports/b/disconnect')
      assert.equal(await b.closed(), 1008)
      assert.equal((await api('POST', '/api/v1/ports/nope/disable')).status, 404)
    })

    it('streams a pcap of the frames crossing a port', async () => {
      const a = await named('a'); const b = await named('b')
      const capture = fetch(http + '/api/v1/capture?port=b&count=2', { headers: auth }).then(async (r) => Buffer.from(await r.arrayBuffer()))
      await waitFor(() => server.captures.size === 1)
      a.send([eth(BROADCAST, MAC_A, 1)])
      b.send([eth(MAC_A, MAC_B, 2)])
      const { records } = parsePcap(await capture)
      assert.deepEqual(records.map((r) => r.frame[14]), [1, 2])
      assert.equal(server.captures.size, 0)
    })
  })

  describe('switchctl', () => {
    const env = (): Record<string, string> => ({ SWITCHCTL_URL: http, SWITCHCTL_TOKEN: TOKEN })

    it('prints ports, fdb and networks as tables, and --json', async function () {
      const a = await named('web1'); const b = await named('db1')
      a.send([eth(BROADCAST, MAC_A)])
      await waitFor(() => b.frames.length === 1)
      const ports = await switchctl(['ports'], env())
      assert.equal(ports.code, 0, ports.stderr)
      assert.match(ports.stdout.toString(), /^PORT\s+NETWORK\s+KIND\s+VLAN\s+STATE/m)
      assert.match(ports.stdout.toString(), /^web1\s+default\s+tapswitch\s+access 1\s+forwarding\s+1\s+1\s+0/m)
      const fdb = await switchctl(['fdb', '--port', 'web1'], env())
      assert.match(fdb.stdout.toString(), /^default\s+1\s+02:00:00:00:00:01\s+web1\s+\d+\s+learned$/m)
      const json = await switchctl(['--json', 'networks'], env())
      assert.equal((JSON.parse(json.stdout.toString()) as Array<{ name: string }>)[0]?.name, 'default')
    })

    it('flushes, manages statics and ports', async function () {
      const a = await named('web1')
      await named('db1')
      a.send([eth(BROADCAST, MAC_A)])
      await waitFor(() => server.switch.fdb.size === 1)
      assert.match((await switchctl(['flush', '--port', 'web1'], env())).stdout.toString(), /flushed 1 fdb entry/)
      assert.equal((await switchctl(['static', 'add', '--mac', '02:00:00:00:00:aa', '--port', 'db1'], env())).code, 0)
      assert.match((await switchctl(['fdb'], env())).stdout.toString(), /02:00:00:00:00:aa\s+db1\s+0\s+static/)
      assert.equal((await switchctl(['static', 'del', '--mac', '02:00:00:00:00:aa'], env())).code, 0)
      assert.match((await switchctl(['port', 'disable', 'db1'], env())).stdout.toString(), /port db1: disabled/)
      assert.match((await switchctl(['port', 'enable', 'db1'], env())).stdout.toString(), /port db1: enabled/)
      assert.match((await switchctl(['port', 'disconnect', 'db1'], env())).stdout.toString(), /port db1: disconnected/)
    })

    it('writes a capture to a file or stdout', async function () {
      const a = await named('web1'); await named('db1')
      const run = switchctl(['capture', '--port', 'db1', '--count', '1', '-w', '-'], env())
      await waitFor(() => server.captures.size === 1, 5000, 'capture started')
      a.send([eth(BROADCAST, MAC_A, 9)])
      const r = await run
      assert.equal(r.code, 0, r.stderr)
      assert.equal(parsePcap(r.stdout).records[0]?.frame[14], 9)
    })

    it('says what is wrong: missing token, wrong URL, bad usage', async function () {
      const noToken = await switchctl(['ports'], { SWITCHCTL_URL: http })
      assert.equal(noToken.code, 1)
      assert.match(noToken.stderr, /401 admin token required .*SWITCHCTL_TOKEN/)
      const wrong = await switchctl(['ports', '--token', 'wrong-token-wrong-token'], { SWITCHCTL_URL: http })
      assert.match(wrong.stderr, /401 wrong admin token/)
      const closed = await freePort()
      const down = await switchctl(['ports', '--url', `http://127.0.0.1:${closed}`])
      assert.match(down.stderr, new RegExp(`nothing listens at 127\\.0\\.0\\.1:${closed}: is switchd running\\?`))
      const usage = await switchctl(['frobnicate'], env())
      assert.equal(usage.code, 2)
    })
  })
})
