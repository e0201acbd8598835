import assert from 'node:assert/strict'
import * as net from 'node:net'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { DEFAULT_DROP_LOG_SIZE } from '../../src/switch/core/droplog'
import type { TraceJson, DropsJson } from '../../src/common/api-types'
import { TestClient } from '../helpers/client'
import { switchctl } from '../helpers/ctl'
import { waitFor, MIN_WAIT_MS } from '../helpers/net'
import { eth, tagged, frame, BROADCAST, MAC_A, MAC_B, MAC_C } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'

const TOKEN = 'trace-admin-token-0123456789'

describe('frame trace, drop log and lab protocols (integration)', () => {
  let server: SwitchServer
  let http: string
  let ws: string
  let clients: TestClient[]
  let restore: (line: string) => void
  let logs: string[]

  async function start (extra: Record<string, unknown> = {}): Promise<void> {
    server = new SwitchServer({
      config: buildConfig({
        adminToken: TOKEN,
        profiles: [{ match: 'v10-*', vlan: 10, claimable: true }, { match: 'tr-*', mode: 'trunk', vlans: [10, 20], native: 1, claimable: true }, { match: '*', claimable: true }],
        ...extra
      }, 'test'),
      host: '127.0.0.1',
      port: 0
    })
    const port = (await server.listen()).port
    http = `http://127.0.0.1:${port}`
    ws = `ws://127.0.0.1:${port}`
  }

  beforeEach(async () => {
    logs = []
    restore = setLogSink((line) => { logs.push(line) })
    clients = []
    await start()
  })
  afterEach(async () => {
    for (const c of clients) c.close()
    await server.close()
    setLogSink(restore)
  })

  async function named (name: string, path = '/'): Promise<TestClient> {
    const c = await TestClient.batched(ws + path, { name }); clients.push(c); return c
  }
  const auth = { authorization: `Bearer ${TOKEN}` }
  async function api (method: string, path: string, body?: unknown, headers: Record<string, string> = auth): Promise<Response> {
    return await fetch(http + path, { method, headers: { ...headers, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
  }
  async function trace (body: unknown): Promise<TraceJson> {
    const res = await api('POST', '/api/v1/trace', body)
    assert.equal(res.status, 200, await res.clone().text())
    return await res.json() as TraceJson
  }

  describe('POST /api/v1/trace', () => {
    it('names the egress port of a known unicast, the flood set of an unknown one, the drop reason of a VLAN the port lacks', async () => {
      const a = await named('a'); const b = await named('b'); const c = await named('v10-c')
      b.send([eth(BROADCAST, MAC_B)])
      await waitFor(() => a.frames.length === 1)
      let t = await trace({ in: 'a', frame: 'dst=02:00:00:00:00:02,src=02:00:00:00:00:01' })
      assert.equal(t.action, 'forward')
      assert.deepEqual(t.egress, [{ port: 'b', vlan: 1, tagging: 'untagged' }])
      t = await trace({ in: 'a', frame: 'dst=02:00:00:00:00:09,src=02:00:00:00:00:01' })
      assert.equal(t.action, 'flood')
      assert.deepEqual(t.egress.map((e) => e.port), ['b'], 'v10-c is in VLAN 10 only')
      t = await trace({ in: 'v10-c', frame: 'dst=broadcast,src=02:00:00:00:00:03,vlan=20' })
      assert.equal(t.action, 'drop')
      assert.equal(t.dropReason, 'vlan')
      assert.ok(c.frames.length === 0)
    })

    it('changes nothing: a traced source is not learned, nothing is sent or counted', async () => {
      const a = await named('a'); const b = await named('b')
      await trace({ in: 'a', frame: 'dst=broadcast,src=02:00:00:00:00:01' })
      const fdb = await (await api('GET', '/api/v1/fdb')).json() as unknown[]
      assert.deepEqual(fdb, [])
      const ports = await (await api('GET', '/api/v1/ports')).json() as Array<{ counters: { rxFrames: number, txFrames: number } }>
      for (const p of ports) assert.deepEqual([p.counters.rxFrames, p.counters.txFrames], [0, 0])
      // Barrier: a real frame after the trace arrives, and is the only one.
      a.send([eth(BROADCAST, MAC_A, 7)])
      await waitFor(() => b.frames.length === 1)
      assert.equal(b.frames[0]?.[14], 7)
    })

    it('attack: a 1 MB frame spec is refused before it is parsed (413), a long one by the parser (400)', async () => {
      await named('a')
      let res = await api('POST', '/api/v1/trace', { in: 'a', frame: 'ab'.repeat(512 * 1024) })
      assert.equal(res.status, 413)
      res = await api('POST', '/api/v1/trace', { in: 'a', frame: 'ab'.repeat(15_000) })
      assert.equal(res.status, 400)
      assert.match((await res.json() as { error: string }).error, /frame spec/)
    })

    it('attack: malformed specs and requests get 400 or 404 with the cause, and switchd stays up', async () => {
      await named('a')
      const bad: Array<[unknown, number]> = [
        [{ in: 'a', frame: 'dst=nope,src=02:00:00:00:00:01' }, 400],
        [{ in: 'a', frame: 'src=02:00:00:00:00:01' }, 400],
        [{ in: 'a', frame: 'dst=broadcast,src=02:00:00:00:00:01,vlan=5000' }, 400],
        [{ in: 'a', frame: 'dst=broadcast,src=02:00:00:00:00:01,len=999999' }, 400],
        [{ in: 'a', frame: 'dst=broadcast,src=02:00:00:00:00:01,dst=broadcast' }, 400],
        [{ in: 'a', frame: 'zz' }, 400],
        [{ in: 'a', frame: 'abc' }, 400],
        [{ in: 'a', frame: 12 }, 400],
        [{ in: 'a', frame: { toString: 1 } }, 400],
        [{ in: 'a', frame: '' }, 400],
        [{ in: 'nobody', frame: 'dst=broadcast,src=02:00:00:00:00:01' }, 404],
        [{ network: 'nonet', in: 'a', frame: 'dst=broadcast,src=02:00:00:00:00:01' }, 404],
        [{ frame: 'dst=broadcast,src=02:00:00:00:00:01' }, 400]
      ]
      for (const [body, status] of bad) {
        const res = await api('POST', '/api/v1/trace', body)
        assert.equal(res.status, status, JSON.stringify(body))
        assert.equal(typeof (await res.json() as { error: string }).error, 'string')
      }
      // A runt given as hex is traced, not refused: the trace says what the switch would do with it.
      const t = await trace({ in: 'a', frame: 'ffffffffffff02' })
      assert.equal(t.dropReason, 'runt')
    })

    it('attack: without the admin token, or from a web page, trace and drops are refused', async () => {
      await named('a')
      const body = { in: 'a', frame: 'dst=broadcast,src=02:00:00:00:00:01' }
      assert.equal((await api('POST', '/api/v1/trace', body, {})).status, 401)
      assert.equal((await api('POST', '/api/v1/trace', body, { authorization: 'Bearer wrong' })).status, 401)
      assert.equal((await api('GET', '/api/v1/drops', undefined, {})).status, 401)
      assert.equal((await api('POST', '/api/v1/trace', body, { ...auth, origin: 'http://evil.example' })).status, 403)
      // A form post cannot be JSON: refused before the token is even looked at.
      const form = await fetch(http + '/api/v1/trace', { method: 'POST', headers: { ...auth, 'content-type': 'text/plain' }, body: JSON.stringify(body) })
      assert.notEqual(form.status, 200)
    })
  })

  describe('GET /api/v1/drops', () => {
    it('lists recent drops with time, network, port, MACs, VLAN and reason, and follows with since=', async () => {
      const a = await named('v10-a'); const b = await named('v10-b')
      a.send([tagged(BROADCAST, MAC_A, 20), eth(BROADCAST, '010000000001'), Buffer.alloc(5)])
      // Barrier: a frame sent after the drops has arrived, so they were handled.
      a.send([eth(BROADCAST, MAC_A, 9)])
      await waitFor(() => b.frames.length === 1)
      const r = await (await api('GET', '/api/v1/drops')).json() as DropsJson
      assert.equal(r.size, DEFAULT_DROP_LOG_SIZE)
      assert.deepEqual(r.drops.map((d) => d.reason), ['vlan', 'bad_source', 'runt'])
      const [vlan, bad, runt] = r.drops
      assert.deepEqual({ ...vlan, time: undefined, seq: undefined }, { time: undefined, seq: undefined, network: 'default', port: 'v10-a', src: '02:00:00:00:00:01', dst: 'ff:ff:ff:ff:ff:ff', vlan: 20, reason: 'vlan' })
      assert.equal(bad?.src, '01:00:00:00:00:01')
      assert.deepEqual([runt?.src, runt?.dst, runt?.vlan], [null, null, null])
      assert.ok(Math.abs(Date.parse(vlan?.time ?? '') - Date.now()) < 60_000, vlan?.time)
      const after = await (await api('GET', `/api/v1/drops?since=${r.last}`)).json() as DropsJson
      assert.deepEqual(after.drops, [])
      const filtered = await (await api('GET', '/api/v1/drops?reason=runt')).json() as DropsJson
      assert.deepEqual(filtered.drops.map((d) => d.reason), ['runt'])
      assert.equal((await api('GET', '/api/v1/drops?reason=nope')).status, 400)
      assert.equal((await api('GET', '/api/v1/drops?since=-1')).status, 400)
    })

    it('attack: a dropping flood keeps the log at its fixed size, and says how many a slow follower lost', async () => {
      const a = await named('a'); const b = await named('b')
      const runts = Array.from({ length: 500 }, () => Buffer.alloc(5))
      for (let i = 0; i < 6; i++) a.send(runts)
      a.send([eth(BROADCAST, MAC_A, 9)])
      await waitFor(() => b.frames.length === 1)
      const r = await (await api('GET', '/api/v1/drops?since=1')).json() as DropsJson
      assert.equal(r.last, 3000)
      assert.equal(r.drops.length, DEFAULT_DROP_LOG_SIZE)
      assert.equal(r.lost, 3000 - DEFAULT_DROP_LOG_SIZE - 1)
      assert.equal(r.drops[0]?.seq, 3000 - DEFAULT_DROP_LOG_SIZE + 1)
    })

    it('attack: followers that never read cost switchd one bounded response each, and do not hold up others', async () => {
      const a = await named('a'); const b = await named('b')
      for (let i = 0; i < 3; i++) a.send(Array.from({ length: 500 }, () => Buffer.alloc(5)))
      a.send([eth(BROADCAST, MAC_A, 9)])
      await waitFor(() => b.frames.length === 1)
      const full = await (await api('GET', '/api/v1/drops')).text()
      // The bound a response can have: the whole ring, a few hundred bytes a record.
      assert.ok(full.length < DEFAULT_DROP_LOG_SIZE * 400, `${full.length} bytes`)
      const { port } = new URL(http)
      const sockets: net.Socket[] = []
      try {
        for (let i = 0; i < 20; i++) {
          const s = net.connect(Number(port), '127.0.0.1')
          s.pause() // never reads
          s.on('error', () => {})
          s.write(`GET /api/v1/drops HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`)
          sockets.push(s)
        }
        // Answered although 20 readers are stuck (a server blocked on them would not answer: the test's guard ends it).
        const r = await (await api('GET', '/api/v1/drops?limit=1')).json() as DropsJson
        assert.equal(r.drops.length, 1)
      } finally {
        for (const s of sockets) s.destroy()
      }
    })
  })

  describe('lab protocols: networks[].forwardGroups', () => {
    const lldp = frame('0180c200000e 020000000001 88cc', 60)
    const lacp = frame('0180c2000002 020000000001 8809', 60)
    const stp = frame('0180c2000000 020000000001 0026', 60)

    it('drops LLDP and LACP by default and floods STP, as a Linux bridge without STP does', async () => {
      const a = await named('a'); const b = await named('b')
      a.send([lldp, lacp, stp, eth(BROADCAST, MAC_A, 9)])
      await waitFor(() => b.frames.some((f) => f[14] === 9))
      assert.deepEqual(b.frames.map((f) => f.subarray(0, 6).toString('hex')), ['0180c2000000', 'ffffffffffff'])
      const text = await (await fetch(http + '/metrics', { headers: auth })).text()
      assert.match(text, /^switchd_frames_dropped_total\{network="default",reason="link_local",replica="[^"]*"\} 2$/m)
    })

    it('floods the groups a network lists, and only in that network', async () => {
      await server.close()
      await start({ networks: { lab: { forwardGroups: ['lldp', 'lacp', '8021x'] } } })
      const a = await named('a', '/net/lab'); const b = await named('b', '/net/lab')
      const c = await named('c'); const d = await named('d')
      a.send([lldp, lacp, stp, eth(BROADCAST, MAC_A, 9)])
      c.send([lldp, eth(BROADCAST, MAC_C, 9)])
      await waitFor(() => b.frames.some((f) => f[14] === 9) && d.frames.some((f) => f[14] === 9))
      assert.deepEqual(b.frames.map((f) => f.subarray(0, 6).toString('hex')), ['0180c200000e', '0180c2000002', 'ffffffffffff'], 'STP not listed: dropped')
      assert.deepEqual(d.frames.map((f) => f.subarray(0, 6).toString('hex')), ['ffffffffffff'])
      const t = await trace({ network: 'lab', in: 'a', frame: 'dst=lldp,src=02:00:00:00:00:01,type=lldp' })
      assert.equal(t.action, 'flood')
      const own = await trace({ in: 'a', frame: 'dst=lldp,src=02:00:00:00:00:01,type=lldp' })
      assert.equal(own.network, 'lab', 'without --network, the port\'s own network')
      const other = await trace({ in: 'c', frame: 'dst=lldp,src=02:00:00:00:00:03,type=lldp' })
      assert.deepEqual([other.network, other.dropReason], ['default', 'link_local'])
    })

    it('refuses a bad forwardGroups naming the key', () => {
      assert.throws(() => buildConfig({ networks: { lab: { forwardGroups: ['lldp', 'bogus'] } } }, 'test'),
        (err: Error & { code?: string }) => err.code === 'TSW_ERR_CONFIG' && /networks\.lab\.forwardGroups\[1\]/.test(err.message))
      assert.throws(() => buildConfig({ network: { forwardGroups: [16] } }, 'test'), /network\.forwardGroups\[0\]/)
      assert.throws(() => buildConfig({ network: { forwardGroups: 'lldp' } }, 'test'), /network\.forwardGroups/)
    })
  })

  describe('duplicate MACs', () => {
    it('logs duplicate_mac with both port names and counts it when two ports keep sending one MAC', async function () {
      await server.close()
      // A short loop window, so the test needs little time; moveHold 0: Linux moves.
      await start({ network: { loop: { window: 0.05, moveHold: 0 } } })
      const a = await named('a'); const b = await named('b'); const c = await named('c')
      for (let i = 0; i < 8; i++) {
        (i % 2 === 0 ? a : b).send([eth(BROADCAST, MAC_A, i)])
        await waitFor(() => c.frames.length === i + 1)
        await new Promise((resolve) => setTimeout(resolve, 60))
      }
      await waitFor(() => logs.some((l) => l.includes('"duplicate_mac"')))
      const line = JSON.parse(logs.find((l) => l.includes('"duplicate_mac"')) as string) as Record<string, unknown>
      assert.equal(line.ports, 'a,b')
      assert.equal(line.mac, '02:00:00:00:00:01')
      const text = await (await fetch(http + '/metrics', { headers: auth })).text()
      assert.match(text, /^switchd_duplicate_macs_total\{network="default",replica="[^"]*"\} 1$/m, 'once per MAC a minute')
      assert.ok(!logs.some((l) => l.includes('"loop_detected"')), 'not a loop')
    })
  })

  describe('switchctl', () => {
    it('traces a frame and lists drops', async function () {
      const a = await named('a'); const b = await named('b')
      b.send([eth(BROADCAST, MAC_B)])
      await waitFor(() => a.frames.length === 1)
      const env = { SWITCHCTL_URL: http, SWITCHCTL_TOKEN: TOKEN }
      let r = await switchctl(['trace', '--in', 'a', '--frame', 'dst=02:00:00:00:00:02,src=02:00:00:00:00:01,type=arp'], env)
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout.toString(), /lookup\s+forward\s+02:00:00:00:00:02 is on b/)
      assert.match(r.stdout.toString(), /^action: forward to b \(untagged\)$/m)
      a.send([Buffer.alloc(5), eth(BROADCAST, MAC_A, 9)])
      await waitFor(() => b.frames.length === 1)
      r = await switchctl(['drops'], env)
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout.toString(), /^TIME\s+NETWORK\s+PORT\s+SRC\s+DST\s+VLAN\s+REASON$/m)
      assert.match(r.stdout.toString(), /default\s+a\s+-\s+-\s+-\s+runt$/m)
      r = await switchctl(['trace', '--in', 'a'], env)
      assert.equal(r.code, 2)
      r = await switchctl(['trace', '--in', 'a', '--frame', 'dst=x,src=02:00:00:00:00:01'], env)
      assert.equal(r.code, 1)
      assert.match(r.stderr, /400 frame spec: dst/)
    })

    it('drops --follow prints drops as they happen', async function () {
      const a = await named('a'); await named('b')
      const { spawn } = await import('node:child_process')
      const child = spawn(process.execPath, ['-r', 'tsx/cjs', '-e', "require('./src/ctl/main').main(process.argv.slice(1))", '--', 'drops', '--follow', '--interval', '0.1', '--json'], {
        cwd: `${__dirname}/../..`, env: { ...process.env, SWITCHCTL_URL: http, SWITCHCTL_TOKEN: TOKEN }, stdio: ['ignore', 'pipe', 'pipe']
      })
      let out = ''
      child.stdout.on('data', (d: Buffer) => { out += d.toString() })
      try {
        // Each poll after the first sees what was dropped since the one before.
        const deadline = Date.now() + MIN_WAIT_MS // a guard: the child takes seconds to start on a loaded machine
        while (!out.includes('"runt"') && Date.now() < deadline) {
          a.send([Buffer.alloc(5)])
          await new Promise((resolve) => setTimeout(resolve, 200))
        }
        assert.match(out, /"reason":"runt"/)
        const first = JSON.parse(out.split('\n')[0] as string) as { port: string }
        assert.equal(first.port, 'a')
      } finally {
        child.kill('SIGTERM')
      }
    })
  })
})
