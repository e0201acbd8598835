/**
 * Model-based fuzz test: a real SwitchServer on 127.0.0.1:0, driven by a
 * seeded random sequence of steps (joins with good and bad tokens, leaves,
 * valid frames, hostile frames, spoofed sources, offload records, BPDUs from
 * ports that are no trunk, reloads that revoke and restore a token, and admin
 * API calls), while a model of what the configuration grants each client
 * predicts what may and must happen. After every step the switch is checked
 * against invariants:
 *
 *  - no frame crosses networks or VLANs: every frame a client receives comes
 *    from a sender in its network, in a VLAN it is a member of, tagged the
 *    way its mode says;
 *  - no frame reaches a disabled port (sent after it was disabled), and a
 *    frame that must be dropped (double tag, VLAN not allowed, group or zero
 *    source, runt, oversize, a MAC the token does not name, GSO headers no
 *    kernel would send) reaches no one;
 *  - a flood reaches every member that may have it (the barrier frame that
 *    ends each step), so the checks above are not satisfied by a dead switch;
 *  - every refusal is counted: each frame that must be dropped moves a drop
 *    counter, each refused upgrade the connection-refusal counter, each
 *    revoked token closes its ports;
 *  - memory stays under a bound proportional to what is configured: ports,
 *    networks and fdb entries never exceed what the clients and limits allow;
 *  - switchd never throws out of its event handlers.
 *
 * Reproducible: MODEL_SEED=123 replays a run; MODEL_STEPS sets its length
 * (default 400 steps: about 10 s on an idle machine, 20 s with eight busy
 * loops beside it). The run is bounded by steps, not by time; MODEL_MS is a
 * guard against a hang only. The seed is printed when the run fails.
 */

import assert from 'node:assert/strict'
import WebSocket from 'ws'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import type { NetPort } from '../../src/switch/io/net-port'
import { setLogSink } from '../../src/common/log'
import { SUBPROTOCOL_V1, MAX_MESSAGE_SIZE, decodeBatch, parseWelcome, type Welcome } from '../../src/common/protocol'
import { onceWithin, waitFor } from '../helpers/net'
import { Rng } from '../helpers/rawws'
import { R_BACKPRESSURE } from '../../src/switch/core/reasons'

const SEED = process.env.MODEL_SEED !== undefined ? Number(process.env.MODEL_SEED) >>> 0 : (Date.now() ^ (process.pid << 12)) >>> 0
/** The run gives up after this: a hang, not a slow machine. */
const HANG_GUARD_MS = Number(process.env.MODEL_MS ?? 300_000)
const MAX_STEPS = Number(process.env.MODEL_STEPS ?? 400)
/** How long a step waits for what must happen (a welcome, a barrier, a close): a guard against a hang only. */
const WAIT_GUARD_MS = 30_000
const MAX_CLIENTS = 10
const ADMIN = 'model-admin-token-0123456789'
const HEAP_GROWTH_LIMIT = 150 * 1024 * 1024

const ETHERTYPE_TEST = 0x88b5
const MAGIC_VALID = 0x4d4f444c // "MODL"
const MAGIC_BARRIER = 0x42415252 // "BARR"
const MAGIC_DROP = 0x44524f50 // "DROP"
const VNET_HDR_LEN = 10

/** What a token grants, as the model understands it. */
interface Grant {
  key: string
  token: string
  network: string
  pvid: number
  vlans: readonly number[]
  trunk: boolean
  /** The only source MAC the token allows, if it names one. */
  mac?: number
  /** At most one live port (its name is pinned). */
  single?: boolean
}

const GRANTS: readonly Grant[] = [
  { key: 'acc1', token: 'model-acc1-0123456789abcdef', network: 'default', pvid: 1, vlans: [1], trunk: false },
  { key: 'acc10', token: 'model-acc10-0123456789abcdef', network: 'default', pvid: 10, vlans: [10], trunk: false },
  { key: 'trunk', token: 'model-trunk-0123456789abcdef', network: 'default', pvid: 1, vlans: [1, 10, 20], trunk: true },
  { key: 'lab', token: 'model-lab-0123456789abcdef', network: 'lab', pvid: 1, vlans: [1], trunk: false },
  { key: 'pinned', token: 'model-pinned-0123456789abcdef', network: 'default', pvid: 20, vlans: [20], trunk: false, mac: 0x020000009901, single: true }
]

function tokenEntry (g: Grant): Record<string, unknown> {
  const e: Record<string, unknown> = { id: g.key, token: g.token, network: g.network }
  if (g.trunk) Object.assign(e, { mode: 'trunk', vlans: g.vlans.filter((v) => v !== g.pvid), native: g.pvid })
  else if (g.pvid !== 1) Object.assign(e, { mode: 'access', vlan: g.pvid })
  if (g.mac !== undefined) Object.assign(e, { name: 'pinned-host', macs: [macText(g.mac)] })
  return e
}

function configFor (revoked: ReadonlySet<string>): unknown {
  return {
    listen: '127.0.0.1:0',
    adminToken: ADMIN,
    dynamicNetworks: false,
    networks: { default: {}, lab: {} },
    resumeGrace: 0,
    tokens: GRANTS.filter((g) => !revoked.has(g.key)).map(tokenEntry)
  }
}

function macText (mac: number): string {
  return mac.toString(16).padStart(12, '0').replace(/(..)(?!$)/g, '$1:')
}

function writeMac (buf: Buffer, off: number, mac: number): void { buf.writeUIntBE(mac, off, 6) }

/** A test frame: dst, src, an optional 802.1Q tag, EtherType 0x88b5, then magic, sender, VLAN and step. */
function modelFrame (dst: number, src: number, tag: number, magic: number, sender: number, vid: number, step: number): Buffer {
  const f = Buffer.alloc(tag >= 0 ? 64 : 60)
  writeMac(f, 0, dst)
  writeMac(f, 6, src)
  let off = 12
  if (tag >= 0) { f.writeUInt16BE(0x8100, off); f.writeUInt16BE(tag, off + 2); off += 4 }
  f.writeUInt16BE(ETHERTYPE_TEST, off)
  f.writeUInt32BE(magic, off + 2)
  f.writeUInt32BE(sender, off + 6)
  f.writeUInt16BE(vid, off + 10)
  f.writeUInt32BE(step, off + 12)
  return f
}

/** A client as the model sees it, and what it has received. */
interface Client {
  id: number
  grant: Grant
  mac: number
  ws: WebSocket
  batched: boolean
  offload: boolean
  welcome: Welcome | undefined
  closeCode: number | undefined
  /** Frames received since the last check. */
  inbox: Buffer[]
  /** The step at which the admin API disabled its port (frames sent after it must not reach it). */
  disabledAt: number | undefined
  /** Its port is expected to be closed by the switch (token revoked, BPDU guard). */
  expectClose: boolean
  /** The server-side port (found after the join). */
  port: NetPort | undefined
}

describe('model-based fuzz: invariants after every step (integration)', function () {
  this.timeout(HANG_GUARD_MS + 60_000)
  let server: SwitchServer
  let url: string
  let restoreLog: (line: string) => void
  const clients: Client[] = []
  /** Every client ever joined, by id: frames from one that has since left may still be on their way. */
  const everyone = new Map<number, Client>()
  const thrown: Error[] = []
  const onThrow = (err: Error): void => { thrown.push(err) }

  before(async () => {
    restoreLog = setLogSink(() => {})
    process.on('uncaughtException', onThrow)
    process.on('unhandledRejection', onThrow)
    server = new SwitchServer({ config: buildConfig(configFor(new Set()), '(model)'), host: '127.0.0.1', port: 0 })
    url = `ws://127.0.0.1:${(await server.listen()).port}`
  })

  after(async () => {
    for (const c of clients) c.ws.terminate()
    await server.close()
    process.off('uncaughtException', onThrow)
    process.off('unhandledRejection', onThrow)
    setLogSink(restoreLog)
  })

  it('holds every invariant through a random sequence of joins, leaves, frames, BPDUs, reloads and API calls', async () => {
    const rng = new Rng(SEED)
    const revoked = new Set<string>()
    let nextId = 1
    let step = 0
    const expectedRejected = { n: 0 }
    const rejected0 = server.rejected
    const heap0 = process.memoryUsage().heapUsed
    const tally: Record<string, number> = {}
    const count = (what: string): void => { tally[what] = (tally[what] ?? 0) + 1 }
    const started = Date.now()

    function fail (what: string): never {
      throw new Error(`model fuzz (seed ${SEED}, replay: MODEL_SEED=${SEED}) step ${step}: ${what}`)
    }
    const live = (): Client[] => clients.filter((c) => c.closeCode === undefined && !c.expectClose)
    const serverPorts = (): NetPort[] => server.ports()
    const totalDrops = (): number => {
      let n = 0
      for (const sw of server.networks.all()) {
        for (let r = 0; r < sw.stats.drops.length; r++) if (r !== R_BACKPRESSURE) n += sw.stats.drops[r] as number
      }
      return n
    }
    const portDrops = (c: Client): number => {
      let n = 0
      if (c.port !== undefined) n += c.port.drops.reduce((a, b) => a + b, 0) + c.port.dropControl
      return n
    }
    const blocked = (c: Client): boolean => c.port !== undefined && c.port.blocked !== 0

    async function api (method: string, path: string, body?: unknown): Promise<number> {
      const res = await fetch(`http://127.0.0.1:${server.address().port}${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body)
      })
      await res.arrayBuffer()
      return res.status
    }

    /** Connect a client with `g`'s token; resolves with the client, or the HTTP status of a refusal. */
    async function connect (g: Grant, token: string, path: string): Promise<Client | number> {
      const batched = g.trunk || rng.bool(0.6)
      const offload = batched && rng.bool(0.3)
      const target = `${url}${path}${batched ? '' : `?token=${encodeURIComponent(token)}`}`
      const ws = batched
        ? new WebSocket(target, [SUBPROTOCOL_V1], { perMessageDeflate: false, maxPayload: MAX_MESSAGE_SIZE, headers: { authorization: `Bearer ${token}` } })
        : new WebSocket(target, { perMessageDeflate: false })
      const c: Client = {
        id: nextId++, grant: g, mac: g.mac ?? (0x02fa00000000 + nextId), ws, batched, offload, welcome: undefined, closeCode: undefined,
        inbox: [], disabledAt: undefined, expectClose: false, port: undefined
      }
      everyone.set(c.id, c)
      ws.on('error', () => {})
      ws.on('close', (code) => { c.closeCode = code })
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (!isBinary) {
          if (!batched) fail(`the switch sent text to raw client ${c.id}`)
          if (c.welcome === undefined) c.welcome = parseWelcome(data.toString())
          return
        }
        if (!batched) { c.inbox.push(Buffer.from(data)); return }
        for (const r of decodeBatch(data)) c.inbox.push(Buffer.from(offload ? r.subarray(VNET_HDR_LEN) : r))
      })
      const outcome = await Promise.race([
        onceWithin<[unknown, { statusCode: number }]>(ws, 'unexpected-response', WAIT_GUARD_MS).then(([, res]) => res.statusCode),
        onceWithin(ws, 'open', WAIT_GUARD_MS).then(() => 101)
      ])
      if (outcome !== 101) { ws.terminate(); return outcome }
      if (batched) {
        const hello: Record<string, unknown> = { type: 'hello', version: 1, name: `m${c.id}` }
        if (offload) hello.capabilities = ['offload']
        ws.send(JSON.stringify(hello))
        await waitFor(() => c.welcome !== undefined || c.closeCode !== undefined, WAIT_GUARD_MS, `welcome of client ${c.id}`)
        if (c.welcome === undefined) fail(`client ${c.id} (${g.key}) closed ${String(c.closeCode)} instead of a welcome`)
      }
      const local = (ws as unknown as { _socket: { localPort: number } })._socket.localPort
      await waitFor(() => serverPorts().some((p) => p.remote.endsWith(`:${local}`)), WAIT_GUARD_MS, `port of client ${c.id}`)
      c.port = serverPorts().find((p) => p.remote.endsWith(`:${local}`))
      return c
    }

    /** Send frames from `c` as its transport wants them (offload records get a zero virtio-net header). */
    function send (c: Client, frames: Buffer[], headers?: Buffer[]): void {
      if (!c.batched) { for (const f of frames) c.ws.send(f); return }
      const parts: Buffer[] = []
      frames.forEach((f, i) => {
        const hdr = c.offload ? (headers?.[i] ?? Buffer.alloc(VNET_HDR_LEN)) : Buffer.alloc(0)
        const len = Buffer.alloc(4)
        len.writeUInt32BE(hdr.length + f.length)
        parts.push(len, hdr, f)
      })
      c.ws.send(Buffer.concat(parts))
    }

    /** The VLAN a frame from `c` with this tag (-1 untagged) is classified into. */
    const classify = (c: Client, tag: number): number => tag <= 0 ? c.grant.pvid : tag

    /**
     * End a step: `s` broadcasts a barrier in its pvid; every member that may
     * have it must get it. Then every inbox is checked and emptied.
     */
    async function barrier (s: Client | undefined): Promise<void> {
      if (s !== undefined && s.closeCode === undefined && !s.expectClose && !blocked(s) && s.disabledAt === undefined) {
        const expect = live().filter((r) => r !== s && r.grant.network === s.grant.network && r.grant.vlans.includes(s.grant.pvid) &&
          r.disabledAt === undefined && !blocked(r))
        send(s, [modelFrame(0xffffffffffff, s.mac, -1, MAGIC_BARRIER, s.id, s.grant.pvid, step)])
        const senderDrops0 = portDrops(s)
        const got = (r: Client): boolean => r.inbox.some((f) => payloadOf(r, f)?.magic === MAGIC_BARRIER && payloadOf(r, f)?.step === step && payloadOf(r, f)?.sender === s.id)
        const arrived = (): boolean => expect.every((r) => got(r) || r.closeCode !== undefined || blocked(r) || blocked(s))
        // Until it has reached everyone, or the switch refused the barrier itself (the sender's MAC is held by
        // another port, port security: no flood owed), which its drop counter says: no waiting out a timeout.
        await waitFor(() => arrived() || portDrops(s) > senderDrops0, WAIT_GUARD_MS, 'barrier').catch(() => {})
        if (!arrived()) {
          if (portDrops(s) > senderDrops0) { count('barrier refused at ingress'); for (const r of clients) check(r); return }
          fail(`the barrier flood from client ${s.id} (${s.grant.key}) did not reach ${expect.filter((r) => !got(r)).map((r) => `${r.id} (${r.grant.key})`).join(', ')}`)
        }
      } else {
        // No flood to wait for: let the switch read what was sent.
        await new Promise((resolve) => setImmediate(resolve))
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
      for (const r of clients) check(r)
    }

    interface Payload { magic: number, sender: number, vid: number, step: number, rvid: number }
    /** The model payload of a received frame, and the VLAN it arrived in as `r` sees it. */
    function payloadOf (r: Client, f: Buffer): Payload | undefined {
      if (f.length < 14) return undefined
      let off = 12
      let rvid = r.grant.pvid
      if (f.readUInt16BE(12) === 0x8100) { rvid = f.readUInt16BE(14) & 0xfff; off = 16 }
      if (f.length < off + 16 || f.readUInt16BE(off) !== ETHERTYPE_TEST) return undefined
      return { magic: f.readUInt32BE(off + 2), sender: f.readUInt32BE(off + 6), vid: f.readUInt16BE(off + 10), step: f.readUInt32BE(off + 12), rvid }
    }

    function check (r: Client): void {
      for (const f of r.inbox.splice(0)) {
        const p = payloadOf(r, f)
        if (p === undefined || (p.magic !== MAGIC_VALID && p.magic !== MAGIC_BARRIER)) fail(`client ${r.id} (${r.grant.key}) received a frame that must be dropped: ${f.subarray(0, 40).toString('hex')}`)
        const s = everyone.get(p.sender)
        if (s === undefined) fail(`client ${r.id} received a frame from unknown sender ${p.sender}`)
        if (s.grant.network !== r.grant.network) fail(`a frame crossed networks: ${s.grant.network} -> ${r.grant.network} (client ${s.id} -> ${r.id})`)
        if (p.rvid !== p.vid) fail(`client ${r.id} (${r.grant.key}) got a VLAN ${p.vid} frame as VLAN ${p.rvid}`)
        if (!r.grant.vlans.includes(p.vid)) fail(`a frame crossed VLANs: VLAN ${p.vid} reached client ${r.id} (${r.grant.key}, VLANs ${r.grant.vlans.join(',')})`)
        const untagged = f.readUInt16BE(12) !== 0x8100
        if (untagged !== (p.vid === r.grant.pvid)) fail(`client ${r.id} (${r.grant.key}) got VLAN ${p.vid} ${untagged ? 'untagged' : 'tagged'}`)
        if (r.disabledAt !== undefined && p.step > r.disabledAt) fail(`client ${r.id} got a frame of step ${p.step} while disabled since step ${r.disabledAt}`)
        count('delivered')
      }
    }

    function checkMemory (): void {
      const open = live().length
      // Ports: no more than the clients the model holds open (closes may still be on their way).
      if (server.portTable.ports.size > clients.filter((c) => c.closeCode === undefined).length) {
        fail(`${server.portTable.ports.size} ports for ${open} open clients`)
      }
      if (server.networks.all().length > 2) fail(`${server.networks.all().length} networks with two configured and dynamic networks off`)
      for (const sw of server.networks.all()) {
        let bound = 0
        for (const p of sw.ports) bound += p.maxMacs
        const rows = sw.fdb.rows().length
        if (rows > bound + 1024) fail(`network ${sw.name}: ${rows} fdb entries for ports allowing ${bound}`)
      }
    }

    /** One hostile frame from `c` that the switch must drop, with the virtio-net header to send it with. */
    function hostile (c: Client): { frame: Buffer, hdr?: Buffer, kind: string } {
      const others = live().filter((o) => o !== c)
      const dst = others.length > 0 ? rng.pick(others).mac : 0xffffffffffff
      const kinds = ['double-tag', 'foreign-vlan', 'group-source', 'zero-source', 'runt', 'oversize', 'vid-4095']
      if (c.grant.mac !== undefined) kinds.push('wrong-mac', 'wrong-mac')
      if (c.offload) kinds.push('gso-size-1', 'gso-size-1')
      const kind = rng.pick(kinds)
      const drop = (src: number, tag: number): Buffer => modelFrame(dst, src, tag, MAGIC_DROP, c.id, classify(c, tag), step)
      switch (kind) {
        case 'double-tag': {
          // [8100 outer][8100 inner][payload]: the outer tag is the port's own VLAN (or priority 0), the inner another one.
          const outer = rng.pick([0, c.grant.pvid])
          const inner = rng.pick([10, 20, 30].filter((v) => v !== c.grant.pvid))
          const f = Buffer.alloc(68)
          writeMac(f, 0, rng.bool(0.5) ? 0xffffffffffff : dst); writeMac(f, 6, c.mac)
          f.writeUInt16BE(0x8100, 12); f.writeUInt16BE(outer, 14)
          f.writeUInt16BE(0x8100, 16); f.writeUInt16BE(inner, 18)
          f.writeUInt16BE(ETHERTYPE_TEST, 20); f.writeUInt32BE(MAGIC_DROP, 22)
          return { frame: f, kind }
        }
        case 'foreign-vlan': return { frame: drop(c.mac, rng.pick([2, 30, 4094].filter((v) => !c.grant.vlans.includes(v)))), kind }
        case 'group-source': return { frame: drop(0x030000000000 + c.id, -1), kind }
        case 'zero-source': return { frame: drop(0, -1), kind }
        case 'runt': return { frame: drop(c.mac, -1).subarray(0, rng.int(0, 13)), kind }
        case 'oversize': { const f = Buffer.alloc(rng.int(1519, 4000)); drop(c.mac, -1).copy(f); return { frame: f, kind } }
        case 'vid-4095': return { frame: drop(c.mac, 4095), kind }
        case 'wrong-mac': return { frame: drop(0x02fb00000000 + rng.int(1, 1000), -1), kind }
        default: {
          // TCPv4 GSO with gso_size 1: tens of thousands of segments for every plain port, if it were accepted.
          const f = Buffer.alloc(1400)
          writeMac(f, 0, 0xffffffffffff); writeMac(f, 6, c.mac)
          f.writeUInt16BE(0x0800, 12)
          f[14] = 0x45; f.writeUInt16BE(1400 - 14, 16); f[22] = 64; f[23] = 6
          f[14 + 20 + 12] = 0x50
          const hdr = Buffer.alloc(VNET_HDR_LEN)
          hdr[0] = 1; hdr[1] = 1; hdr.writeUInt16LE(54, 2); hdr.writeUInt16LE(1, 4); hdr.writeUInt16LE(34, 6); hdr.writeUInt16LE(16, 8)
          return { frame: f, hdr, kind }
        }
      }
    }

    while (step < MAX_STEPS && Date.now() - started < HANG_GUARD_MS) {
      step++
      if (thrown.length > 0) fail(`switchd threw: ${thrown[0]?.stack ?? ''}`)
      // Ports the switch closed on its own (revocations, BPDU guard) leave the model.
      for (let i = clients.length - 1; i >= 0; i--) if ((clients[i] as Client).closeCode !== undefined) clients.splice(i, 1)
      const current = live()
      const r = rng.float()
      const actor = current.length > 0 ? rng.pick(current) : undefined
      if (current.length < 2 || (r < 0.12 && current.length < MAX_CLIENTS)) {
        // Join: a valid token, or a refusal that must be counted.
        const variant = rng.float()
        if (variant < 0.12) {
          const status = await connect(GRANTS[0] as Grant, 'not-a-token-0123456789abcdef', '/')
          if (status !== 401) fail(`an unknown token got ${typeof status === 'number' ? status : 'a port'} instead of 401`)
          expectedRejected.n++; count('refused unknown token')
        } else if (variant < 0.2) {
          const g = GRANTS[3] as Grant // the lab token on the default network
          const status = await connect(g, g.token, '/')
          if (revoked.has(g.key) ? status !== 401 : status !== 403) fail(`a token for another network got ${typeof status === 'number' ? status : 'a port'}`)
          expectedRejected.n++; count('refused wrong network')
        } else {
          const choices = GRANTS.filter((g) => !(g.single === true && clients.some((c) => c.grant === g)))
          const g = rng.pick(choices)
          const out = await connect(g, g.token, g.network === 'default' ? '/' : `/net/${g.network}`)
          if (revoked.has(g.key)) {
            if (out !== 401) fail(`a revoked token (${g.key}) got ${typeof out === 'number' ? out : 'a port'} instead of 401`)
            expectedRejected.n++; count('refused revoked token')
          } else {
            if (typeof out === 'number') fail(`a valid token (${g.key}) was refused with ${out}`)
            clients.push(out); count('join')
            await barrier(out)
          }
        }
      } else if (r < 0.17 && actor !== undefined) {
        actor.ws.terminate()
        await waitFor(() => actor.closeCode !== undefined, WAIT_GUARD_MS, 'close')
        const port = actor.port
        await waitFor(() => port === undefined || !serverPorts().includes(port), WAIT_GUARD_MS, `port of client ${actor.id} to go`)
        count('leave')
      } else if (r < 0.5 && actor !== undefined) {
        // Valid frames: unicast to a known MAC (maybe in another VLAN), broadcast, unknown unicast; trunks tag some.
        const frames: Buffer[] = []
        for (let i = rng.int(1, 4); i > 0; i--) {
          const dsts = live().filter((o) => o !== actor).map((o) => o.mac)
          const dst = rng.float() < 0.6 && dsts.length > 0 ? rng.pick(dsts) : rng.bool(0.5) ? 0xffffffffffff : 0x02fc00000000 + rng.int(0, 99)
          const tag = actor.grant.trunk && rng.bool(0.6) ? rng.pick(actor.grant.vlans) : -1
          const sendTag = tag === actor.grant.pvid && rng.bool(0.5) ? -1 : tag
          frames.push(modelFrame(dst, actor.mac, sendTag, MAGIC_VALID, actor.id, classify(actor, sendTag), step))
        }
        send(actor, frames); count('valid frames')
        await barrier(actor)
      } else if (r < 0.68 && actor !== undefined) {
        const drops0 = totalDrops()
        const h = hostile(actor)
        send(actor, [h.frame], [h.hdr ?? Buffer.alloc(VNET_HDR_LEN)])
        count(`hostile ${h.kind}`)
        await barrier(actor)
        await waitFor(() => totalDrops() > drops0 || actor.closeCode !== undefined, WAIT_GUARD_MS, `a drop counted for a ${h.kind} frame`)
          .catch(() => fail(`a ${h.kind} frame from client ${actor.id} (${actor.grant.key}) was not counted as a drop`))
      } else if (r < 0.76 && actor !== undefined) {
        // Spoofing: another client's MAC as source. Allowed on an unsecured port, but never across VLANs or networks.
        const victims = clients.filter((o) => o !== actor)
        if (victims.length > 0) {
          const v = rng.pick(victims)
          const frames = []
          for (let i = rng.int(1, 6); i > 0; i--) frames.push(modelFrame(rng.bool(0.5) ? 0xffffffffffff : v.mac, v.mac, -1, actor.grant.mac !== undefined ? MAGIC_DROP : MAGIC_VALID, actor.id, actor.grant.pvid, step))
          send(actor, frames); count('spoof')
          await barrier(actor)
        }
      } else if (r < 0.8 && actor !== undefined && actor.batched) {
        // A BPDU from a port that is no switch trunk: BPDU guard shuts that port (4005), and nothing else.
        actor.ws.send(JSON.stringify({ type: 'bpdu', root: '0000000000000001', cost: 0, bridge: '0000000000000001', port: 1, tc: [['0000000000000001', step]] }))
        actor.expectClose = true
        count('bpdu')
        await waitFor(() => actor.closeCode !== undefined, WAIT_GUARD_MS, 'BPDU guard').catch(() => fail(`a BPDU from agent ${actor.id} did not shut its port`))
        if (actor.closeCode !== 4005) fail(`BPDU guard closed client ${actor.id} with ${String(actor.closeCode)}, not 4005`)
        const port = actor.port
        await waitFor(() => port === undefined || !serverPorts().includes(port), WAIT_GUARD_MS, `port of client ${actor.id} to go`)
      } else if (r < 0.88 && actor?.port !== undefined) {
        // Admin API: disable / enable, a flush, or a static entry for a fresh MAC pointing at a random port.
        const a = rng.float()
        if (a < 0.35 && actor.disabledAt === undefined) {
          const status = await api('POST', `/api/v1/ports/${encodeURIComponent(actor.port.name)}/disable`)
          if (status !== 200) fail(`disable of ${actor.port.name} refused with ${status}`)
          actor.disabledAt = step; count('disable')
        } else if (a < 0.6 && actor.disabledAt !== undefined) {
          const status = await api('POST', `/api/v1/ports/${encodeURIComponent(actor.port.name)}/enable`)
          if (status !== 200) fail(`enable of ${actor.port.name} refused with ${status}`)
          actor.disabledAt = undefined; count('enable')
        } else if (a < 0.75) {
          if (await api('POST', '/api/v1/fdb/flush', {}) !== 200) fail('flush refused')
          count('flush')
        } else {
          // A static entry for a fresh MAC on actor's port, then a frame to it from a member of that VLAN.
          const mac = 0x02fd00000000 + step
          const status = await api('POST', '/api/v1/fdb/static', { network: actor.grant.network, vlan: actor.grant.pvid, mac: macText(mac), port: actor.port.name })
          // A port that holds its name by claim only could never take the entry: refused (409), nothing added.
          const refused = status === 409 && !actor.port.ownsName
          if (refused) count('static_refused')
          else if (status !== 200 && status !== 201) fail(`static entry refused with ${status}`)
          else count('static')
          const senders = refused ? [] : live().filter((o) => o !== actor && o.grant.network === actor.grant.network && o.grant.pvid === actor.grant.pvid)
          if (senders.length > 0) {
            const s = rng.pick(senders)
            send(s, [modelFrame(mac, s.mac, -1, MAGIC_VALID, s.id, s.grant.pvid, step)])
            await barrier(s)
          }
        }
      } else if (r < 0.94) {
        // Reload: revoke or restore one token. Ports holding a revoked token must close; the rest stay.
        const g = rng.pick([GRANTS[1], GRANTS[3]] as Grant[])
        if (revoked.has(g.key)) revoked.delete(g.key); else revoked.add(g.key)
        server.reload(buildConfig(configFor(revoked), '(model reload)'))
        count(revoked.has(g.key) ? 'revoke' : 'restore')
        if (revoked.has(g.key)) {
          const holders = clients.filter((c) => c.grant === g)
          for (const c of holders) c.expectClose = true
          await waitFor(() => holders.every((c) => c.closeCode !== undefined), WAIT_GUARD_MS, 'revoked ports to close')
            .catch(() => fail(`revoking ${g.key} left ${holders.filter((c) => c.closeCode === undefined).length} of its ports open`))
        }
        // Nobody else was closed by the reload.
        await new Promise((resolve) => setTimeout(resolve, 20))
        const wrongly = clients.filter((c) => !c.expectClose && c.closeCode !== undefined)
        if (wrongly.length > 0) fail(`a reload closed client ${wrongly.map((c) => `${c.id} (${c.grant.key}, close ${String(c.closeCode)})`).join(', ')} whose token is still valid`)
        if (actor !== undefined && !actor.expectClose) await barrier(actor)
      } else if (actor !== undefined) {
        await barrier(actor)
      }
      checkMemory()
      if (server.rejected - rejected0 !== expectedRejected.n) fail(`${server.rejected - rejected0} refusals counted for ${expectedRejected.n} refused upgrades`)
    }
    if (thrown.length > 0) fail(`switchd threw: ${thrown[0]?.stack ?? ''}`)
    const growth = process.memoryUsage().heapUsed - heap0
    if (growth > HEAP_GROWTH_LIMIT) fail(`heap grew ${Math.round(growth / 1048576)} MiB`)
    process.stdout.write(`      model fuzz seed ${SEED}: ${step} steps in ${Date.now() - started} ms; ` +
      `${Object.entries(tally).map(([k, v]) => `${k} ${v}`).join(', ')}\n`)
    // The run must have exercised what it claims to check.
    assert.equal(step, MAX_STEPS, `only ${step} of ${MAX_STEPS} steps in ${HANG_GUARD_MS / 1000} s: switchd or a step hung`)
    assert.ok((tally.delivered ?? 0) > 0 && (tally.join ?? 0) > 0, 'the run did too little to check anything')
  })
})
