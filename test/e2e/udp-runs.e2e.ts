/**
 * Issue 24: tap-agent's native link writes a run of UDP datagrams of one flow
 * as ONE TAP write that the kernel segments back (native/udp_run.h, USO). The
 * switch is played by this test (ws): it welcomes a real tap-agent with
 * offload and sends it batches of records built here by hand, as a switch
 * would forward them from stations. A UDP socket in the TAP's namespace must
 * receive every datagram byte for byte and in order, the runs counted in
 * tap_agent_link_udp_run_frames_total; frames that must not join a run
 * (a wrong header checksum, a gap in the IPv4 identification, another length,
 * a fragment, a lying UDP length, a full checksum) are written alone and meet
 * the kernel exactly as before. The "what changes" cases show what LOCAL-TAPS.md
 * says sees a run as one frame (a length rule, an ICMP error, a SO_REUSEPORT
 * program, a bridge's MTU check). Addresses are TEST-NET-1 and 2001:db8::/32,
 * only inside the test's namespace; everything is removed after.
 */

import assert from 'node:assert/strict'
import * as path from 'node:path'
import { spawn, type ChildProcess } from 'node:child_process'
import type { AddressInfo } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'
import { run, stopChild } from '../../src/lab/lab'
import { SUBPROTOCOL_V1, MAX_MESSAGE_SIZE, CAP_OFFLOAD } from '../../src/common/protocol'
import { requireRoot } from '../helpers/root'
import { spawnLogged, waitForLine, type Logged } from '../helpers/proc'
import { onceWithin, waitFor } from '../helpers/net'
import { metricValue } from '../helpers/metrics-text'

const ROOT = path.join(__dirname, '..', '..')
const AGENT = path.join(ROOT, 'bin', 'tap-agent.js')
const PORT = 7000
const SRC_MAC = Buffer.from('020000000abc', 'hex')

/** RFC 1071's sum of 16-bit words, not folded. */
function sum16 (b: Buffer, from = 0, to = b.length): number {
  let s = 0
  for (let i = from; i + 1 < to; i += 2) s += b.readUInt16BE(i)
  if ((to - from) % 2 === 1) s += (b[to - 1] as number) << 8
  return s
}
function fold (s: number): number { while (s > 0xffff) s = (s & 0xffff) + (s >>> 16); return s }

interface Dgram {
  v6?: boolean
  sport: number
  payload: Buffer
  id?: number
  /** The frame's virtio-net header says NEEDS_CSUM (the receiver completes it); else a full checksum. */
  partial?: boolean
  /** Spoil the IPv4 header checksum (by one). */
  badIpCsum?: boolean
  /** IPv4 flags and fragment offset (DF by default). */
  frag?: number
  /** UDP length field plus this (a lie). */
  udpLenLie?: number
  /** The virtio-net header's hdr_len: past the frame's end, tun refuses the frame alone (EINVAL). */
  hdrLen?: number
  /** To the host beyond the TAP's namespace (routed on): its checksum is completed and checked there. */
  beyond?: boolean
}

/** One record of the offload format: a virtio-net header and the frame. */
function datagram (dstMac: Buffer, d: Dgram): Buffer {
  const v6 = d.v6 === true
  const l3 = v6 ? 40 : 20
  const udpLen = 8 + d.payload.length
  const f = Buffer.alloc(14 + l3 + udpLen)
  dstMac.copy(f, 0)
  SRC_MAC.copy(f, 6)
  f.writeUInt16BE(v6 ? 0x86dd : 0x0800, 12)
  const ip = 14
  let pseudo: number
  if (v6) {
    f.writeUInt32BE(0x60000000, ip)
    f.writeUInt16BE(udpLen, ip + 4)
    f[ip + 6] = 17
    f[ip + 7] = 64
    Buffer.from('20010db8000000000000000000000001', 'hex').copy(f, ip + 8)
    Buffer.from(d.beyond === true ? '20010db8000100000000000000000002' : '20010db8000000000000000000000002', 'hex').copy(f, ip + 24)
    pseudo = sum16(f, ip + 8, ip + 40) + 17 + udpLen
  } else {
    f[ip] = 0x45
    f.writeUInt16BE(l3 + udpLen, ip + 2)
    f.writeUInt16BE(d.id ?? 0, ip + 4)
    f.writeUInt16BE(d.frag ?? 0x4000, ip + 6)
    f[ip + 8] = 64
    f[ip + 9] = 17
    Buffer.from(d.beyond === true ? [192, 0, 2, 1, 198, 51, 100, 2] : [192, 0, 2, 1, 192, 0, 2, 2]).copy(f, ip + 12)
    f.writeUInt16BE((~fold(sum16(f, ip, ip + 20)) & 0xffff) + (d.badIpCsum === true ? 1 : 0), ip + 10)
    pseudo = sum16(f, ip + 12, ip + 20) + 17 + udpLen
  }
  const u = ip + l3
  f.writeUInt16BE(d.sport, u)
  f.writeUInt16BE(PORT, u + 2)
  f.writeUInt16BE(udpLen + (d.udpLenLie ?? 0), u + 4)
  d.payload.copy(f, u + 8)
  const vnet = Buffer.alloc(10)
  if (d.partial !== false) {
    // As a sender's stack hands a TAP a partial checksum: the pseudo-header's sum, not complemented.
    f.writeUInt16BE(fold(pseudo), u + 6)
    vnet[0] = 1
    vnet.writeUInt16LE(d.hdrLen ?? 0, 2)
    vnet.writeUInt16LE(u, 6)
    vnet.writeUInt16LE(6, 8)
  } else {
    const c = ~fold(pseudo + sum16(f, u, f.length)) & 0xffff
    f.writeUInt16BE(c === 0 ? 0xffff : c, u + 6)
  }
  return Buffer.concat([vnet, f])
}

/** A batch: [u32 BE length][record]... */
function batch (records: Buffer[]): Buffer {
  return Buffer.concat(records.flatMap((r) => { const h = Buffer.alloc(4); h.writeUInt32BE(r.length); return [h, r] }))
}

/** `n` datagrams of one flow: payloads `tag-i` padded to `size`, IPv4 identifications from `id`. */
function flow (tag: string, n: number, size: number, o: Partial<Dgram> & { sport: number }): Dgram[] {
  return Array.from({ length: n }, (_, i) => ({ ...o, id: ((o.id ?? 1000) + i) & 0xffff, payload: Buffer.from(`${tag}-${i}`.padEnd(size, '.')) }))
}

describe('e2e: UDP runs through the native link (real TAP, offload, a switch played by the test)', function () {
  this.timeout(120_000)
  const ns = `tswur${process.pid % 100000}`
  const ns2 = `tswurb${process.pid % 100000}`
  const log: string[] = []
  let wss: WebSocketServer
  let agent: Logged | undefined
  const receivers: ChildProcess[] = []
  let sock: WebSocket | undefined
  let metricsPort = 0
  let tapMac = Buffer.alloc(6)
  let rx = ''

  /** Fail (never skip) without a tool the test needs, naming the package scripts/install-deps.sh installs. */
  async function needs (cmd: string, pkg: string): Promise<void> {
    try { await run(cmd, ['--version']) } catch { assert.fail(`${cmd} is missing: sudo scripts/install-deps.sh installs it (Debian package ${pkg})`) }
  }

  /** tap-agent on tsw0 in `ns` (192.0.2.2/24, 2001:db8::2/64), welcomed by the switch played here, with `extra` flags. */
  async function startAgent (extra: string[]): Promise<void> {
    sock = undefined
    const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`
    agent = spawnLogged('agent', process.execPath, [AGENT, '--url', url, '--tap', 'tsw0', '--netns', ns, '--address', '192.0.2.2/24',
      '--name', 'runs', '--offload', 'on', '--metrics-listen', '127.0.0.1:0', ...extra], (l) => { log.push(l) })
    const up = await waitForLine(agent, 'agent', (l) => l.includes('"event":"uplink_connected"'), 30_000)
    assert.match(up, /"path":"native"/)
    assert.match(up, /"offload":true/)
    metricsPort = Number(/"port":(\d+)/.exec(await waitForLine(agent, 'agent', (l) => l.includes('"event":"metrics_listening"')))?.[1])
    await run('ip', ['-n', ns, 'addr', 'add', '2001:db8::2/64', 'dev', 'tsw0', 'nodad'])
    const link = JSON.parse(await run('ip', ['-n', ns, '-j', 'link', 'show', 'tsw0'])) as Array<{ address: string }>
    tapMac = Buffer.from((link[0]?.address ?? '').replace(/:/g, ''), 'hex')
    await waitFor(() => sock !== undefined, 10_000, 'the welcome')
  }

  before(async function () {
    requireRoot(this)
    await run('ip', ['netns', 'add', ns])
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: MAX_MESSAGE_SIZE, handleProtocols: () => SUBPROTOCOL_V1 })
    await onceWithin(wss, 'listening')
    wss.on('connection', (ws) => {
      ws.on('error', () => {})
      ws.once('message', () => {
        ws.send(JSON.stringify({ type: 'welcome', version: 1, port: 1, name: 'played', maxFrameSize: 1518, maxMessageSize: MAX_MESSAGE_SIZE, pingInterval: 30, capabilities: [CAP_OFFLOAD] }))
        sock = ws
      })
    })
    await startAgent(['--udp-runs'])
    // The host beyond: a router's other side (TEST-NET-2, 2001:db8:1::/64). The TAP's namespace routes
    // to it with transmit checksum offload off, so the kernel completes each segment's UDP checksum
    // there in software, and the host beyond drops any that is wrong (UdpInCsumErrors).
    await run('ip', ['netns', 'add', ns2])
    await run('ip', ['link', 'add', 'tswur0', 'netns', ns, 'type', 'veth', 'peer', 'name', 'tswur1', 'netns', ns2])
    for (const [n, dev, v4, v6] of [[ns, 'tswur0', '198.51.100.1/24', '2001:db8:1::1/64'], [ns2, 'tswur1', '198.51.100.2/24', '2001:db8:1::2/64']] as const) {
      await run('ip', ['-n', n, 'addr', 'add', v4, 'dev', dev])
      await run('ip', ['-n', n, 'addr', 'add', v6, 'dev', dev, 'nodad'])
      await run('ip', ['-n', n, 'link', 'set', dev, 'up'])
    }
    await run('ip', ['-n', ns2, 'route', 'add', 'default', 'via', '198.51.100.1'])
    await run('ip', ['-n', ns2, '-6', 'route', 'add', 'default', 'via', '2001:db8:1::1'])
    await run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1'])
    await run('ip', ['netns', 'exec', ns, 'ethtool', '-K', 'tswur0', 'tx', 'off'])
    // The receivers: both families on PORT, each datagram as "[beyond ]family sport hex"; "BARRIER" ends a delivery.
    for (const [n, v4, v6, tag] of [[ns, '192.0.2.2', '2001:db8::2', ''], [ns2, '198.51.100.2', '2001:db8:1::2', 'beyond ']] as const) {
      const r = spawn('ip', ['netns', 'exec', n, process.execPath, '-e', `
        const dgram = require('dgram')
        for (const [type, addr] of [['udp4', '${v4}'], ['udp6', '${v6}']]) {
          const s = dgram.createSocket({ type, recvBufferSize: 8 << 20 })
          s.on('message', (m, r) => {
            if (m.toString() === 'BARRIER') { console.log('${tag}' + type + ' barrier'); return }
            console.log('${tag}' + type + ' ' + r.port + ' ' + m.toString('hex'))
          })
          s.bind(${PORT}, addr, () => { console.log('${tag}' + type + ' listening') })
        }`], { stdio: ['ignore', 'pipe', 'inherit'] })
      r.stdout?.setEncoding('utf8').on('data', (d: string) => { rx += d })
      receivers.push(r)
    }
    await waitFor(() => (rx.match(/listening/g) ?? []).length === 4, 10_000, 'the receivers')
  })

  after(async () => {
    for (const r of receivers) r.kill('SIGKILL')
    await stopChild(agent?.child)
    for (const c of wss?.clients ?? []) c.terminate()
    await new Promise<void>((resolve) => { if (wss === undefined) resolve(); else wss.close(() => { resolve() }) })
    for (const n of [ns, ns2]) await run('ip', ['netns', 'del', n]).catch(() => {})
  })

  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(log.slice(-30).join('\n') + '\n' + rx.slice(-3000) + '\n')
  })

  async function runFrames (): Promise<number> {
    return metricValue(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text(), 'tap_agent_link_udp_run_frames_total', { tap: 'tsw0' })
  }

  async function writeErrors (): Promise<number> {
    return metricValue(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text(), 'tap_agent_tap_write_errors_total', { tap: 'tsw0', kind: 'error' })
  }

  /** Send the datagrams in one batch (then a barrier per receiver and family), and what the receivers got. */
  async function deliver (ds: Dgram[]): Promise<string[]> {
    rx = rx.split('\n').filter((l) => l.endsWith('listening')).join('\n') + '\n'
    const barriers = [false, true].flatMap((beyond) => [false, true].map((v6) => datagram(tapMac, { v6, beyond, sport: 9, payload: Buffer.from('BARRIER'), partial: false })))
    sock?.send(batch([...ds.map((d) => datagram(tapMac, d)), ...barriers]))
    await waitFor(() => (rx.match(/barrier/g) ?? []).length === 4, 20_000, 'every barrier')
    return byReceiver(rx.split('\n').filter((l) => l !== '' && !l.endsWith('listening') && !l.endsWith('barrier')))
  }

  /** Lines grouped by receiver and family, each group in its order (the four sockets' lines interleave as they are read). */
  const GROUPS = ['udp4', 'udp6', 'beyond udp4', 'beyond udp6']
  const byReceiver = (lines: string[]): string[] => GROUPS.flatMap((g) => lines.filter((l) => l.startsWith(`${g} `)))
  const expect = (ds: Dgram[]): string[] => byReceiver(ds.map((d) => `${d.beyond === true ? 'beyond ' : ''}${d.v6 === true ? 'udp6' : 'udp4'} ${d.sport} ${d.payload.toString('hex')}`))

  it('a run of IPv4 and one of IPv6 datagrams arrive byte for byte, in order, each written as one', async () => {
    const before = await runFrames()
    const ds = [...flow('v4', 40, 64, { sport: 4000 }), ...flow('v6', 30, 100, { v6: true, sport: 4001 })]
    assert.deepEqual(await deliver(ds), expect(ds))
    assert.equal(await runFrames() - before, 70)
  })

  it('runs routed on get the same UDP checksums as the frames alone: the host beyond checks them and takes every datagram', async () => {
    const before = await runFrames()
    const errors = async (): Promise<number> => {
      const text = await run('ip', ['netns', 'exec', ns2, 'nstat', '-az', 'UdpInCsumErrors', 'Udp6InCsumErrors'])
      const counts = [...text.matchAll(/Udp6?InCsumErrors\s+(\d+)/g)].map((m) => Number(m[1]))
      assert.equal(counts.length, 2, text)
      return counts[0] as number + (counts[1] as number)
    }
    const ds = [...flow('r4', 33, 200, { sport: 4011, beyond: true }), ...flow('r6', 17, 61, { v6: true, sport: 4012, beyond: true })]
    const got = await deliver(ds)
    assert.equal(await errors(), 0, 'a datagram with a wrong UDP checksum reached the host beyond')
    assert.deepEqual(got, expect(ds))
    assert.equal(await runFrames() - before, 50)
  })

  it('a run longer than 64 frames is cut into runs; a short last one is written alone', async () => {
    const before = await runFrames()
    const ds = flow('long', 129, 32, { sport: 4002 })
    assert.deepEqual(await deliver(ds), expect(ds))
    assert.equal(await runFrames() - before, 128)
  })

  it('two flows interleaved frame by frame, and frames of other lengths, make no run and all arrive', async () => {
    const before = await runFrames()
    const a = flow('a', 10, 64, { sport: 4003 })
    const b = flow('b', 10, 64, { sport: 4004, id: 5000 })
    const ds = a.flatMap((d, i) => [d, b[i] as Dgram])
    const sizes = [10, 11, 12, 13].map((n, i) => ({ sport: 4005, id: 7000 + i, payload: Buffer.alloc(n, 0x41 + i) }))
    assert.deepEqual(await deliver([...ds, ...sizes]), expect([...ds, ...sizes]))
    assert.equal(await runFrames() - before, 0)
  })

  it('attack: a frame with a wrong IPv4 header checksum inside a run is dropped by the kernel alone; the rest arrive', async () => {
    const before = await runFrames()
    const ds = flow('csum', 20, 64, { sport: 4006 })
    ;(ds[10] as Dgram).badIpCsum = true
    const got = await deliver(ds)
    assert.deepEqual(got, expect(ds.filter((_, i) => i !== 10)))
    assert.equal(await runFrames() - before, 19)
  })

  it('attack: a gap in the IPv4 identification splits the run (the kernel numbers segments by one); every frame arrives', async () => {
    const before = await runFrames()
    const ds = flow('gap', 20, 64, { sport: 4007 })
    ;(ds[7] as Dgram).id = 60000
    assert.deepEqual(await deliver(ds), expect(ds))
    // 0-6 one run, 7 alone (its successor's identification does not follow it), 8-19 one run.
    assert.equal(await runFrames() - before, 19)
  })

  it('attack: fragments, a lying UDP length, an hdr_len past the frame and full checksums never join a run, and meet the kernel as before', async () => {
    const before = await runFrames()
    const errorsBefore = await writeErrors()
    const frags = flow('mf', 6, 64, { sport: 4008, frag: 0x2000 }) // MF: the first fragment of datagrams never completed
    const lies = flow('lie', 6, 64, { sport: 4009, udpLenLie: 8 }) // UDP says 8 bytes more than the frame holds
    const past = flow('hdr', 6, 64, { sport: 4013, hdrLen: 2000 }) // tun refuses each alone
    const full = flow('full', 6, 64, { sport: 4010, partial: false })
    const got = await deliver([...frags, ...lies, ...past, ...full])
    // The kernel holds the fragments for reassembly and drops the lying datagrams, as it does alone.
    assert.deepEqual(got, expect(full))
    assert.equal(await runFrames() - before, 0)
    assert.equal(await writeErrors() - errorsBefore, past.length, 'each frame with hdr_len past its end refused alone')
  })

  it('attack: an IPv4 identification that wraps stays one run; a run stops before 65,535 bytes of IP length', async () => {
    let before = await runFrames()
    const wrap = flow('wrap', 40, 64, { sport: 4014, id: 0xfff0, frag: 0 }) // the kernel's 16-bit count wraps too
    assert.deepEqual(await deliver(wrap), expect(wrap))
    assert.equal(await runFrames() - before, 40)
    before = await runFrames()
    // 4 x 16,000 + 28 and 4 x 16,376 + 8 fit 65,535; a fifth does not: 4 in a run, the fifth alone, each family.
    const v4 = flow('big', 5, 16_000, { sport: 4015 })
    const v6 = flow('big6', 5, 16_376, { sport: 4016, v6: true })
    assert.deepEqual(await deliver([...v4, ...v6]), expect([...v4, ...v6]))
    assert.equal(await runFrames() - before, 8)
  })

  /** `ds` as records to `dst` (IPv4 address and MAC): the IPv4 header checksum and the partial UDP checksum follow it. */
  function to (dst: number[], mac: Buffer, ds: Dgram[], port = PORT): Buffer[] {
    return ds.map((d) => {
      const b = datagram(mac, d)
      const ip = 10 + 14
      const u = ip + 20
      Buffer.from(dst).copy(b, ip + 16)
      b.writeUInt16BE(0, ip + 10)
      b.writeUInt16BE(~fold(sum16(b, ip, ip + 20)) & 0xffff, ip + 10)
      b.writeUInt16BE(port, u + 2)
      b.writeUInt16BE(fold(sum16(b, ip + 12, ip + 20) + 17 + b.readUInt16BE(u + 4)), u + 6)
      return b
    })
  }
  /** `n` datagrams of one flow; `alone`: identifications two apart, so none joins a run. */
  const pair = (tag: string, n: number, size: number, sport: number, alone: boolean): Dgram[] =>
    flow(tag, n, size, { sport }).map((d, i) => ({ ...d, id: alone ? 100 + 2 * i : 100 + i }))
  const pause = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

  it('attack: frames to a group (broadcast or multicast MAC, an IPv4 multicast group) never join a run, and all arrive', async () => {
    // Runs to a group would be measured whole by IPv4 multicast routing (ipmr_prepare_xmit drops a
    // DF packet over the next link's MTU, where each datagram alone fits), so they go alone.
    let out = ''
    const r = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', `
      const s = require('dgram').createSocket({ type: 'udp4', reuseAddr: true })
      s.on('message', (m) => { console.log('got ' + m.toString().replace(/\\.+$/, '')) })
      s.bind(7002, () => { s.setBroadcast(true); s.addMembership('239.1.2.3', '192.0.2.2'); console.log('listening') })`], { stdio: ['ignore', 'pipe', 'inherit'] })
    r.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d })
    try {
      await waitFor(() => out.includes('listening'), 10_000, 'the group receiver')
      for (const [mac, ip, tag] of [['ffffffffffff', [255, 255, 255, 255], 'bcast'], ['01005e010203', [239, 1, 2, 3], 'mcast'], ['', [239, 1, 2, 3], 'mcastip']] as const) {
        out = ''
        const before = await runFrames()
        sock?.send(batch(to([...ip], mac === '' ? tapMac : Buffer.from(mac, 'hex'), flow(tag, 8, 64, { sport: 4505 }), 7002)))
        await waitFor(() => (out.match(/^got /gm) ?? []).length === 8, 5_000, `the ${tag} datagrams`)
        assert.deepEqual(out.match(/^got .*$/gm), Array.from({ length: 8 }, (_, i) => `got ${tag}-${i}`), tag)
        assert.equal(await runFrames() - before, 0, `${tag}: no run`)
      }
    } finally {
      r.kill('SIGKILL')
    }
  })

  it('what changes (LOCAL-TAPS.md): a length rule in the namespace judges the run, not each datagram', async function () {
    await needs('nft', 'nftables')
    await run('ip', ['netns', 'exec', ns, 'nft', 'add table inet tswur; add chain inet tswur in { type filter hook input priority 0; }; ' +
      'add rule inet tswur in udp sport 4500 ip length < 200 drop; add rule inet tswur in udp sport 4501 ip length > 1000 drop'])
    try {
      for (const alone of [true, false]) {
        const small = pair('s', 20, 64, 4500, alone) // 92-byte datagrams: under 200
        const other = pair('o', 20, 64, 4501, alone)
        const got = await deliver([...small, ...other])
        // Alone: "< 200" drops each small one, "> 1000" none. A run is 1,308 bytes: the other way round.
        assert.deepEqual(got, expect(alone ? other : small), alone ? 'alone' : 'in runs')
      }
    } finally {
      await run('ip', ['netns', 'exec', ns, 'nft', 'delete table inet tswur'])
    }
  })

  it('what changes (LOCAL-TAPS.md): a closed port\'s ICMP error is one for the run, quoting the run\'s lengths', async () => {
    const up: Buffer[] = []
    const onUp = (m: Buffer): void => { up.push(m) }
    sock?.on('message', onUp)
    await run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.icmp_ratelimit=0'])
    await run('ip', ['-n', ns, 'neigh', 'replace', '192.0.2.1', 'lladdr', SRC_MAC.toString('hex').replace(/(..)(?!$)/g, '$1:'), 'dev', 'tsw0'])
    /** The port unreachables that went up, as "quoted IP length/UDP length". */
    const unreachables = (): string[] => up.flatMap((m) => {
      const out: string[] = []
      for (let o = 0; o + 4 <= m.length; o += 4 + m.readUInt32BE(o)) {
        const f = m.subarray(o + 4 + 10, o + 4 + m.readUInt32BE(o))
        if (f.readUInt16BE(12) === 0x0800 && f[23] === 1 && f[34] === 3 && f[35] === 3) out.push(`${f.readUInt16BE(42 + 2)}/${f.readUInt16BE(62 + 4)}`)
      }
      return out
    })
    try {
      for (const alone of [true, false]) {
        up.length = 0
        sock?.send(batch(to([192, 0, 2, 2], tapMac, pair('icmp', 10, 64, 4502, alone), 7999)))
        await waitFor(() => unreachables().length >= (alone ? 10 : 1), 5_000, 'the port unreachables')
        await pause(300)
        assert.deepEqual(unreachables(), alone ? Array(10).fill('92/72') : ['668/648'], alone ? 'alone' : 'in a run')
      }
    } finally {
      sock?.off('message', onUp)
      await run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.icmp_ratelimit=1000'])
    }
  })

  it('what changes (LOCAL-TAPS.md): a SO_REUSEPORT program that picks a socket by the payload sees the run\'s first datagram', async function () {
    await needs('python3', 'python3')
    // Two sockets on one port; a classic BPF program picks socket (first payload byte & 1), as a QUIC
    // server's picks a worker by connection ID. Python: the filter is a struct of pointers.
    const script = `
import socket, ctypes, select
class F(ctypes.Structure): _fields_ = [('code', ctypes.c_ushort), ('jt', ctypes.c_ubyte), ('jf', ctypes.c_ubyte), ('k', ctypes.c_uint)]
class P(ctypes.Structure): _fields_ = [('len', ctypes.c_ushort), ('filter', ctypes.POINTER(F))]
prog = (F * 3)(F(0x30, 0, 0, 0), F(0x54, 0, 0, 1), F(0x16, 0, 0, 0))  # A = payload[0]; A &= 1; return A
fprog = P(3, prog)
socks = []
for i in range(2):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(('192.0.2.2', 7004))
    socks.append(s)
socks[0].setsockopt(socket.SOL_SOCKET, 51, ctypes.string_at(ctypes.addressof(fprog), ctypes.sizeof(fprog)))  # SO_ATTACH_REUSEPORT_CBPF
print('listening', flush=True)
while True:
    for s in select.select(socks, [], [])[0]:
        print('%d%s' % (socks.index(s), s.recv(65536)[:1].decode()), flush=True)
`
    let out = ''
    const r = spawn('ip', ['netns', 'exec', ns, 'python3', '-u', '-c', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    r.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d })
    try {
      await waitFor(() => out.includes('listening'), 10_000, 'the reuseport group')
      for (const alone of [true, false]) {
        out = ''
        const ds = pair('rp', 8, 64, 4504, alone).map((d, i) => ({ ...d, payload: Buffer.from((i % 2 === 0 ? 'a' : 'b').padEnd(64, '.')) }))
        sock?.send(batch(to([192, 0, 2, 2], tapMac, ds, 7004)))
        await waitFor(() => (out.match(/^\d[ab]$/gm) ?? []).length === 8, 5_000, 'the 8 datagrams')
        // "a" (0x61, odd) goes to socket 1 and "b" to socket 0, alone; a run goes where its first, "a", goes.
        const got = (out.match(/^\d[ab]$/gm) ?? []).sort()
        assert.deepEqual(got, alone ? [...Array(4).fill('0b'), ...Array(4).fill('1a')] : [...Array(4).fill('1a'), ...Array(4).fill('1b')], alone ? 'alone' : 'in a run')
      }
    } finally {
      r.kill('SIGKILL')
    }
  })

  it('what changes (LOCAL-TAPS.md): a bridge forwards a run past a port whose MTU each datagram exceeds', async () => {
    const ns3 = `tswurc${process.pid % 100000}`
    await run('ip', ['netns', 'add', ns3])
    let rx3 = ''
    let r: ChildProcess | undefined
    try {
      await run('ip', ['-n', ns, 'link', 'add', 'tswbr', 'type', 'bridge'])
      await run('ip', ['link', 'add', 'tswurp0', 'netns', ns, 'type', 'veth', 'peer', 'name', 'tswurp1', 'netns', ns3])
      await run('ip', ['-n', ns, 'link', 'set', 'tswurp0', 'mtu', '1400', 'master', 'tswbr', 'up'])
      await run('ip', ['-n', ns, 'link', 'set', 'tsw0', 'master', 'tswbr'])
      await run('ip', ['-n', ns, 'link', 'set', 'tswbr', 'up'])
      await run('ip', ['-n', ns3, 'addr', 'add', '192.0.2.3/24', 'dev', 'tswurp1'])
      await run('ip', ['-n', ns3, 'link', 'set', 'tswurp1', 'up'])
      const mac = Buffer.from((JSON.parse(await run('ip', ['-n', ns3, '-j', 'link', 'show', 'tswurp1'])) as Array<{ address: string }>)[0]?.address.replace(/:/g, '') ?? '', 'hex')
      r = spawn('ip', ['netns', 'exec', ns3, process.execPath, '-e', `
        const s = require('dgram').createSocket('udp4')
        s.on('message', (m) => { console.log('got ' + m.length) })
        s.bind(${PORT}, '192.0.2.3', () => { console.log('listening') })`], { stdio: ['ignore', 'pipe', 'inherit'] })
      r.stdout?.setEncoding('utf8').on('data', (d: string) => { rx3 += d })
      await waitFor(() => rx3.includes('listening'), 10_000, 'the receiver beyond the bridge')
      await pause(1_000) // the bridge's ports forwarding
      for (const alone of [true, false]) {
        rx3 = ''
        // 1,448 bytes of IP: within the TAP's MTU (1,500), over the outgoing port's (1,400).
        sock?.send(batch(to([192, 0, 2, 3], mac, pair('br', 4, 1420, 4503, alone))))
        await pause(500)
        assert.equal((rx3.match(/got 1420/g) ?? []).length, alone ? 0 : 4, alone ? 'alone' : 'in a run')
      }
    } finally {
      r?.kill('SIGKILL')
      await run('ip', ['-n', ns, 'link', 'set', 'tsw0', 'nomaster']).catch(() => {})
      await run('ip', ['-n', ns, 'link', 'del', 'tswbr']).catch(() => {})
      await run('ip', ['netns', 'del', ns3]).catch(() => {})
    }
  })

  // Last: it replaces the agent.
  it('without --udp-runs (the default) each frame is written alone: the length rule judges each datagram again, no run is counted', async function () {
    await needs('nft', 'nftables')
    await stopChild(agent?.child)
    await startAgent([])
    await run('ip', ['netns', 'exec', ns, 'nft', 'add table inet tswur; add chain inet tswur in { type filter hook input priority 0; }; ' +
      'add rule inet tswur in udp sport 4500 ip length < 200 drop'])
    try {
      const before = await runFrames()
      const small = pair('s', 20, 64, 4500, false) // would be one run: each 92 bytes, under 200
      const other = pair('o', 20, 64, 4501, false)
      assert.deepEqual(await deliver([...small, ...other]), expect(other))
      assert.equal(await runFrames() - before, 0)
    } finally {
      await run('ip', ['netns', 'exec', ns, 'nft', 'delete table inet tswur'])
    }
  })
})
