/**
 * Audit (issue 12), identity and reload: a port's token is the token itself
 * (its digest), not a position in a list; a name a client gives itself is a
 * claim; a reload is applied whole or not at all, and never kills switchd.
 * Each test is named after the attack it stops.
 */

import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import * as tls from 'node:tls'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { sha256Hex } from '../../src/switch/control/auth'
import { TestClient } from '../helpers/client'
import { waitFor } from '../helpers/net'
import { makePki, type TestPki } from '../helpers/tls'
import { eth, BROADCAST, MAC_A, MAC_B, MAC_C } from '../helpers/frames'
import { setLogSink } from '../../src/common/log'
import { R_PORT_SECURITY } from '../../src/switch/core/reasons'

const T_A = 'alpha-token-0123456789abcdef'
const T_B = 'bravo-token-0123456789abcdef'
const T_W = 'watch-token-0123456789abcdef'
const T_A2 = 'alpha-rotated-0123456789abcdef'
const MAC_R = '0200000000fe'

describe('audit: identity and reload (integration)', () => {
  let servers: SwitchServer[]
  let clients: TestClient[]
  let restore: (line: string) => void
  const logs: string[] = []

  beforeEach(() => {
    logs.length = 0
    restore = setLogSink((l) => { logs.push(l) })
    servers = []; clients = []
  })
  afterEach(async () => {
    for (const c of clients) c.close()
    for (const s of servers) await s.close()
    setLogSink(restore)
  })

  async function start (raw: unknown): Promise<{ server: SwitchServer, base: string }> {
    // Client tokens without an admin token: the API must be off (exposure.ts).
    const server = new SwitchServer({ config: buildConfig({ api: false, ...(raw as object) }, 'test'), host: '127.0.0.1', port: 0, closeTimeout: 0.2 })
    servers.push(server)
    return { server, base: `ws://127.0.0.1:${(await server.listen()).port}` }
  }
  async function raw (url: string): Promise<TestClient> {
    const c = await TestClient.raw(url)
    clients.push(c)
    return c
  }
  async function batched (url: string, hello: Record<string, unknown> = {}): Promise<TestClient> {
    const c = await TestClient.batched(url, hello)
    clients.push(c)
    return c
  }
  /** `from` sends a barrier broadcast that `to` must get; resolves with what `to` got before it. */
  async function upToBarrier (from: TestClient, to: TestClient, src: string, tag: number): Promise<Buffer[]> {
    from.send([eth(BROADCAST, src, tag)])
    await waitFor(() => to.frames.some((f) => f.subarray(0, 6).toString('hex') === BROADCAST && f[14] === tag), 3000, 'barrier')
    const got = to.take()
    return got.slice(0, got.findIndex((f) => f.subarray(0, 6).toString('hex') === BROADCAST && f[14] === tag))
  }

  describe('token revocation and rotation', () => {
    it('attack: a revoked token\'s port that is parked (link silent) stays in its network until its resume grace ends', async function () {
      const { server, base } = await start({ pingInterval: 1, resumeGrace: 60, tokens: [{ token: T_A }, { token: T_W }] })
      const a = await TestClient.batched(`${base}/?token=${T_A}`, { name: 'roamer' })
      clients.push(a)
      ;(a.ws as unknown as { _socket: { pause: () => void } })._socket.pause() // the link goes silent
      await waitFor(() => logs.some((l) => l.includes('"port_parked"')), 5000, 'parked')
      assert.equal(server.ports().length, 1)
      assert.equal(server.reload(buildConfig({ api: false, pingInterval: 1, resumeGrace: 60, tokens: [{ token: T_W }] }, 'test')), true)
      assert.equal(server.ports().length, 0, 'the parked port went with its token, not 60 s later')
      assert.equal(server.switch.ports.length, 0)
    })

    it('attack: revoking token A does not move A\'s port into B\'s VLAN, nor close B', async () => {
      const { server, base } = await start({
        tokens: [{ token: T_A, vlan: 1 }, { token: T_B, vlan: 20 }, { token: T_W, vlan: 20 }]
      })
      const a = await raw(`${base}/?token=${T_A}`)
      const b = await raw(`${base}/?token=${T_B}`)
      const w = await raw(`${base}/?token=${T_W}`)
      await waitFor(() => server.ports().length === 3)
      assert.equal(server.reload(buildConfig({ api: false, tokens: [{ token: T_B, vlan: 20 }, { token: T_W, vlan: 20 }] }, 'test')), true)
      assert.equal(await a.closed(), 1008, 'A\'s token is gone: A\'s port is closed')
      // B is still up and still in VLAN 20: its broadcast reaches the VLAN 20 watcher, which is still up too.
      b.send([eth(BROADCAST, MAC_B, 7)])
      await waitFor(() => w.frames.some((f) => f[14] === 7), 3000, 'B\'s frame reaches the VLAN 20 watcher')
      assert.equal(b.closeCode, undefined)
      assert.equal(w.closeCode, undefined)
      const bp = server.ports().find((p) => p.grantDigest === sha256Hex(T_B))
      assert.deepEqual(bp?.policy.vlans, [20])
      assert.ok(logs.some((l) => l.includes('"port_shutdown"') && l.includes('token revoked')))
    })

    it('attack: rotating a token\'s sha256 under the same id does not keep the old holder connected', async () => {
      const { server, base } = await start({ tokens: [{ id: 'alice', sha256: sha256Hex(T_A) }] })
      const old = await raw(`${base}/?token=${T_A}`)
      await waitFor(() => server.ports().length === 1)
      server.reload(buildConfig({ api: false, tokens: [{ id: 'alice', sha256: sha256Hex(T_A2) }] }, 'test'))
      assert.equal(await old.closed(), 1008)
      const fresh = await raw(`${base}/?token=${T_A2}`)
      await waitFor(() => server.ports().length === 1 && server.ports()[0]?.grantId === 'alice')
      assert.equal(fresh.closeCode, undefined)
    })

    it('attack: a token whose MACs were narrowed on reload keeps sending from the old MAC', async () => {
      const { server, base } = await start({ tokens: [{ token: T_A, macs: ['02:00:00:00:00:01'] }, { token: T_W }] })
      const a = await raw(`${base}/?token=${T_A}`)
      const w = await raw(`${base}/?token=${T_W}`)
      await waitFor(() => server.ports().length === 2)
      server.reload(buildConfig({ api: false, tokens: [{ token: T_A, macs: ['02:00:00:00:00:03'] }, { token: T_W }] }, 'test'))
      a.send([eth(BROADCAST, MAC_A, 1)]) // no longer its MAC
      const before = await upToBarrier(a, w, MAC_C, 2) // its MAC now
      assert.deepEqual(before, [], 'a frame from a MAC the token no longer names is dropped')
      assert.equal(server.ports().find((p) => p.grantDigest === sha256Hex(T_A))?.drops[R_PORT_SECURITY], 1)
    })

    it('attack: a reload that moves a token to another network leaves its port in the old one', async () => {
      const { server, base } = await start({ tokens: [{ token: T_A }] })
      const a = await raw(`${base}/?token=${T_A}`)
      await waitFor(() => server.ports().length === 1)
      server.reload(buildConfig({ api: false, tokens: [{ token: T_A, network: 'lab' }] }, 'test'))
      assert.equal(await a.closed(), 1008)
    })
  })

  describe('claimed names', () => {
    const CORE = { match: 'core-uplink', mode: 'trunk', vlans: [10, 20, 30] }

    it('attack: a token that pins no name gets a profile\'s trunk VLANs by naming itself', async () => {
      const { base } = await start({ profiles: [CORE], tokens: [{ id: 'plain', token: T_A }] })
      const c = await batched(`${base}/?token=${T_A}`, { name: 'core-uplink' })
      assert.deepEqual(c.welcome?.vlan, { mode: 'access', vlan: 1 }, 'the default policy, not the profile\'s trunk')
    })

    it('attack: without tokens, anyone naming itself gets a profile that is not claimable', async () => {
      const { base } = await start({ profiles: [CORE, { match: 'lab-*', vlan: 10, claimable: true }] })
      const c = await batched(`${base}/`, { name: 'core-uplink' })
      assert.deepEqual(c.welcome?.vlan, { mode: 'access', vlan: 1 })
      const lab = await batched(`${base}/`, { name: 'lab-1' })
      assert.deepEqual(lab.welcome?.vlan, { mode: 'access', vlan: 10 }, 'a claimable profile is still claimed by name')
    })

    it('attack: a client naming itself "router" takes the router\'s static MAC', async () => {
      const { server, base } = await start({ networks: { default: { static: [{ mac: '02:00:00:00:00:fe', port: 'router' }] } } })
      const thief = await batched(`${base}/`, { name: 'router' })
      const sender = await batched(`${base}/`, { name: 'host' })
      await waitFor(() => server.ports().length === 2)
      sender.send([eth(MAC_R, MAC_A, 1)])
      const before = await upToBarrier(sender, thief, MAC_A, 2)
      assert.deepEqual(before, [], 'unicast to the static MAC does not reach a port that only claims the name')
    })

    it('attack: a hello takes a name a token pins, ahead of the token holder', async () => {
      const { base } = await start({ tokens: [{ token: T_A, name: 'router' }, { token: T_B }] })
      const thief = await batched(`${base}/?token=${T_B}`, { name: 'router' })
      assert.notEqual(thief.welcome?.name, 'router')
      const router = await batched(`${base}/?token=${T_A}`)
      assert.equal(router.welcome?.name, 'router')
    })
  })

  describe('reload safety', () => {
    it('attack: a reload withdrawing a VLAN from a port with a long allowed list kills switchd', async () => {
      const many = Array.from({ length: 100 }, (_, i) => 100 + i)
      const { server, base } = await start({ tokens: [{ token: T_A, mode: 'trunk', vlans: [30, 31] }] })
      const c = await batched(`${base}/?token=${T_A}`, { vlan: { mode: 'trunk', vlans: [30] } })
      await waitFor(() => server.ports().length === 1)
      server.reload(buildConfig({ api: false, tokens: [{ token: T_A, mode: 'trunk', vlans: many }] }, 'test'))
      assert.equal(await c.closed(), 1008)
      const again = await raw(`${base}/?token=${T_A}`) // still serving
      await waitFor(() => server.ports().length === 1)
      assert.equal(again.closeCode, undefined)
    })

    it('attack: a reload that needs a restart is half applied (token revocation without the new bridgePriority)', async () => {
      const { server, base } = await start({ tokens: [{ token: T_A }, { token: T_B }] })
      const a = await raw(`${base}/?token=${T_A}`)
      await waitFor(() => server.ports().length === 1)
      const applied = server.reload(buildConfig({ api: false, bridgePriority: 4096, tokens: [{ token: T_B }] }, 'test'))
      assert.equal(applied, false)
      assert.ok(logs.some((l) => l.includes('"config_rejected"') && l.includes('bridgePriority')), 'names the key')
      const b = await raw(`${base}/?token=${T_B}`)
      await waitFor(() => server.ports().length === 2)
      assert.equal(a.closeCode, undefined, 'nothing of the refused configuration was applied')
      assert.equal(b.closeCode, undefined)
    })
  })

  describe('TLS reload', () => {
    let pki: TestPki
    before(function () {
      pki = makePki()
    })
    after(() => { fs.rmSync(pki.dir, { recursive: true, force: true }) })

    async function serial (port: number): Promise<string> {
      return await new Promise((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(pki.ca), servername: 'localhost' }, () => { resolve(s.getPeerCertificate().serialNumber); s.end() })
        s.on('error', reject)
      })
    }

    it('attack: a SIGHUP during a certificate renewal (new cert, old key; a missing file) kills switchd', async () => {
      const { server, base } = await start({ tls: { cert: pki.cert, key: pki.key } })
      const port = Number(new URL(base).port)
      const before = await serial(port)
      assert.equal(server.reload(buildConfig({ api: false, tls: { cert: pki.cert2, key: pki.key } }, 'test')), false)
      assert.equal(server.reload(buildConfig({ api: false, tls: { cert: path.join(pki.dir, 'missing.pem'), key: pki.key } }, 'test')), false)
      assert.equal(logs.filter((l) => l.includes('"config_rejected"')).length, 2)
      assert.equal(server.reloads.rejected, 2)
      assert.equal(await serial(port), before, 'still serving the old certificate')
    })

    it('attack: adding clientCa on reload silently leaves client certificates unchecked', async () => {
      const { server } = await start({ tls: { cert: pki.cert, key: pki.key } })
      assert.equal(server.reload(buildConfig({ api: false, tls: { cert: pki.cert, key: pki.key, clientCa: pki.ca } }, 'test')), false)
      assert.ok(logs.some((l) => l.includes('"config_rejected"') && l.includes('tls.clientCa') && l.includes('restart')))
    })
  })

  describe('SIGHUP without --config', () => {
    let child: ChildProcess | undefined
    let dir: string | undefined
    afterEach(() => {
      child?.kill('SIGKILL')
      child = undefined
      if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
    })

    it('attack: switchd --tokens FILE ignores SIGHUP, so a revoked token stays connected', async function () {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-tokens-'))
      const file = path.join(dir, 'tokens.json')
      fs.writeFileSync(file, JSON.stringify([{ id: 'a', token: T_A }, { id: 'b', token: T_B }]))
      const bin = path.join(__dirname, '..', '..', 'bin', 'switchd.js')
      const proc = spawn(process.execPath, [bin, '--tokens', file, '--no-api', '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] })
      child = proc
      const out: string[] = []
      const collect = (d: Buffer): void => { out.push(...d.toString().split('\n').filter((l) => l !== '')) }
      proc.stdout?.on('data', collect)
      proc.stderr?.on('data', collect)
      await waitFor(() => out.some((l) => l.includes('"listening"')), 10_000, `switchd listening:\n${out.join('\n')}`)
      const listening = JSON.parse(out.find((l) => l.includes('"listening"')) as string) as { port: number }
      const a = await raw(`ws://127.0.0.1:${listening.port}/?token=${T_A}`)
      const b = await raw(`ws://127.0.0.1:${listening.port}/?token=${T_B}`)
      await waitFor(() => out.filter((l) => l.includes('"port_up"')).length === 2)
      fs.writeFileSync(file, JSON.stringify([{ id: 'b', token: T_B }]))
      proc.kill('SIGHUP')
      assert.equal(await a.closed(5000), 1008)
      assert.equal(b.closeCode, undefined)
    })
  })
})
