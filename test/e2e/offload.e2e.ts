/**
 * Offload end to end: real TAPs, real tap-agents, a real switchd. Hosts a and
 * b negotiate offload (tap-agent's default, --offload auto); host c runs
 * --offload off; a raw WebSocket client (a browser VM's relay) sits on the
 * same network. The offload pair must carry TCP as large frames, and c and
 * the raw client must only ever receive frames a wire could carry: at most
 * MTU-sized, with valid checksums, while a TCP connection between a and c
 * carries its data intact.
 */

import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { Lab, run, type LabHost } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { tcpListening } from '../helpers/proc'
import { sleep, waitFor } from '../helpers/net'
import { TestClient } from '../helpers/client'
import { parsePcap } from '../helpers/pcap'
import { parseSegment } from '../helpers/tcp'

const MAX_FRAME = 1514 // MTU 1500, untagged

interface Link { rx: { packets: number, bytes: number }, tx: { packets: number, bytes: number } }
async function linkStats (h: LabHost): Promise<Link> {
  const out = JSON.parse(await run('ip', ['-n', h.ns, '-j', '-s', 'link', 'show', h.tap])) as Array<{ stats64: Link }>
  return (out[0] as { stats64: Link }).stats64
}

async function stopChild (child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  await Promise.race([exited, sleep(3000)])
  if (child.exitCode === null && child.signalCode === null) { child.kill('SIGKILL'); await exited }
}

/** iperf3 TCP from `from` to `to` for `seconds`; resolves with the bytes received. */
async function iperf (from: LabHost, to: LabHost, seconds: number, port: number, extra: string[] = []): Promise<number> {
  const server = spawn('ip', ['netns', 'exec', to.ns, 'iperf3', '-s', '-1', '-B', to.ipv4, '-p', String(port)], { stdio: 'ignore' })
  try {
    await tcpListening(to.ns, port)
    const out = JSON.parse(await run('ip', ['netns', 'exec', from.ns, 'iperf3', '-c', to.ipv4, '-p', String(port), '-t', String(seconds), '-J', '--connect-timeout', '3000', ...extra], (seconds + 20) * 1000)) as {
      end: { sum_received: { bytes: number } }
    }
    return out.end.sum_received.bytes
  } finally {
    await stopChild(server)
  }
}

/** Send `n` pattern bytes over TCP from `from` to `to`; resolves with what the receiver counted and hashed. */
async function transfer (from: LabHost, to: LabHost, n: number, port: number): Promise<{ n: number, hash: string, expected: string }> {
  const server = spawn('ip', ['netns', 'exec', to.ns, process.execPath, '-e', `
    const net = require('net'), crypto = require('crypto'); const h = crypto.createHash('sha256'); let n = 0
    const s = net.createServer(c => { c.on('data', d => { h.update(d); n += d.length })
      c.on('end', () => { console.log(JSON.stringify({ n, hash: h.digest('hex') })); s.close() }) })
    s.listen(${port}, '${to.ipv4}', () => console.log('listening'))`], { stdio: ['ignore', 'pipe', 'inherit'] })
  try {
    let out = ''
    server.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d })
    await waitFor(() => out.includes('listening'), 5000, 'the TCP server')
    await run('ip', ['netns', 'exec', from.ns, process.execPath, '-e', `
      const b = Buffer.alloc(${n}); for (let i = 0; i < ${n}; i++) b[i] = (i * 7 + (i >> 8)) & 255
      const c = require('net').connect(${port}, '${to.ipv4}', () => c.end(b)); c.on('error', e => { console.error(e.message); process.exit(1) })`], 30_000)
    await waitFor(() => out.includes('"hash"'), 20_000, 'the transfer to finish')
    const b = Buffer.alloc(n)
    for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 8)) & 255
    return { ...(JSON.parse(out.split('\n').find((l) => l.includes('"hash"')) as string) as { n: number, hash: string }), expected: createHash('sha256').update(b).digest('hex') }
  } finally {
    await stopChild(server)
  }
}

describe('e2e: offload between agents, and the fallback for ports without it', function () {
  this.timeout(120_000)
  const logs: string[] = []
  const lab = new Lab({
    hosts: [
      { agentArgs: ['--metrics-listen', '127.0.0.1:0'] },
      {},
      { agentArgs: ['--offload', 'off', '--metrics-listen', '127.0.0.1:0'] }
    ],
    onLog: (l) => { logs.push(l) }
  })
  let a: LabHost, b: LabHost, c: LabHost
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-offload-'))

  /** The agent's /metrics text (the port it logged in metrics_listening). */
  async function agentMetrics (h: LabHost): Promise<string> {
    const line = logs.find((l) => l.startsWith(`agent-${h.label}: `) && l.includes('"metrics_listening"'))
    assert.ok(line, `agent-${h.label} serves metrics`)
    const port = (JSON.parse(line.slice(line.indexOf('{'))) as { port: number }).port
    return await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
  }

  before(async function () {
    requireRoot(this)
    await lab.start()
    ;[a, b, c] = lab.hosts as [LabHost, LabHost, LabHost]
    // ARP and the fdb warm.
    await lab.ping(a, b, 1)
    await lab.ping(a, c, 1)
  })
  after(async () => {
    await lab.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  })
  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-40).join('\n') + '\n')
  })

  it('negotiates offload with the agents that can, and not with --offload off (log, API, metrics)', async () => {
    const connected = (h: LabHost): Record<string, unknown> => {
      const line = logs.find((l) => l.startsWith(`agent-${h.label}: `) && l.includes('"uplink_connected"')) as string
      return JSON.parse(line.slice(line.indexOf('{'))) as Record<string, unknown>
    }
    assert.equal(connected(a).offload, true)
    assert.equal(connected(b).offload, true)
    assert.equal(connected(c).offload, false)
    const ports = await lab.api<Array<{ name: string, offload: boolean }>>('/api/v1/ports')
    assert.deepEqual(ports.map((p) => [p.name, p.offload]).sort(), [['host-a', true], ['host-b', true], ['host-c', false]])
    assert.match(await agentMetrics(a), /^tap_agent_offload\{tap="[^"]+"\} 1$/m)
    assert.match(await agentMetrics(c), /^tap_agent_offload\{tap="[^"]+"\} 0$/m)
  })

  it('tcp between two offload agents: iperf3 passes and the TAPs carry frames far larger than the MTU', async () => {
    const a0 = await linkStats(a)
    const b0 = await linkStats(b)
    const bytes = await iperf(a, b, 2, 5301)
    // TCP flowed (how much in 2 s is the machine's business: 6 MB with eight busy loops beside it, hundreds
    // idle); what offload changes is the size of the frames, checked below.
    process.stdout.write(`      iperf3 carried ${(bytes / 1e6).toFixed(1)} MB in 2 s\n`)
    assert.ok(bytes > 1_000_000, `iperf3 carried ${bytes} bytes`)
    const a1 = await linkStats(a)
    const b1 = await linkStats(b)
    // A TAP counts a GSO frame as one packet: bytes per packet far above 1514 means TSO frames crossed whole.
    const sent = (a1.tx.bytes - a0.tx.bytes) / (a1.tx.packets - a0.tx.packets)
    const received = (b1.rx.bytes - b0.rx.bytes) / (b1.rx.packets - b0.rx.packets)
    assert.ok(sent > 4 * MAX_FRAME, `a's TAP sent ${Math.round(sent)} bytes a frame`)
    assert.ok(received > 4 * MAX_FRAME, `b's TAP received ${Math.round(received)} bytes a frame`)
  })

  it('mixed: the --offload off host and a raw client get only frames <= the MTU with valid checksums; TCP to and from the --offload off host carries its data intact', async () => {
    const browser = await TestClient.raw(lab.url)
    const pcap = path.join(dir, 'c.pcap')
    const dump = spawn('ip', ['netns', 'exec', c.ns, 'tcpdump', '-i', c.tap, '-Q', 'in', '-s', '0', '-U', '-n', '-w', pcap, 'tcp'], { stdio: ['ignore', 'ignore', 'pipe'] })
    try {
      let dumpErr = ''
      dump.stderr?.setEncoding('utf8').on('data', (d: string) => { dumpErr += d })
      await waitFor(() => dumpErr.includes('listening on'), 5000, 'tcpdump')
      const c0 = await linkStats(c)
      // The offload pair runs while, now and then, the fdb is flushed: until a and b are learned again
      // their frames flood, segmented, to c and to the raw client too.
      const pair = iperf(a, b, 3, 5302)
      const flusher = (async () => {
        for (let i = 0; i < 20; i++) {
          await sleep(100)
          await fetch(`http://127.0.0.1:${lab.port}/api/v1/fdb/flush`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}', signal: AbortSignal.timeout(3000) })
        }
      })()
      const toC = await transfer(a, c, 8_000_000, 5303)
      const fromC = await transfer(c, a, 8_000_000, 5304)
      await flusher
      assert.ok(await pair > 1_000_000, 'the offload pair kept running')
      assert.equal(toC.n, 8_000_000)
      assert.equal(toC.hash, toC.expected, 'offload host -> --offload off host: data intact')
      assert.equal(fromC.hash, fromC.expected, '--offload off host -> offload host: data intact')
      await sleep(300)
      const c1 = await linkStats(c)
      const perFrame = (c1.rx.bytes - c0.rx.bytes) / (c1.rx.packets - c0.rx.packets)
      assert.ok(perFrame <= MAX_FRAME, `c's TAP received ${Math.round(perFrame)} bytes a frame`)

      const seen = parsePcap(fs.readFileSync(pcap)).records.map((r) => r.frame)
      assert.ok(seen.length > 5000, `tcpdump saw ${seen.length} TCP frames at c`)
      assert.ok(seen.some((f) => f.length > 1400), 'full-sized segments among them')
      for (const f of seen) {
        assert.ok(f.length <= MAX_FRAME, `a ${f.length}-byte frame reached c`)
        const s = parseSegment(f)
        assert.ok(s.ipChecksumOk && s.tcpChecksumOk, 'a frame with a bad checksum reached c')
      }
      const tcp = browser.take().filter((f) => f.length >= 54 && f.readUInt16BE(12) === 0x0800 && f[23] === 6)
      assert.ok(tcp.length > 0, 'the raw client saw flooded TCP frames')
      for (const f of tcp) {
        assert.ok(f.length <= MAX_FRAME, `a ${f.length}-byte frame reached the raw client`)
        const s = parseSegment(f)
        assert.ok(s.ipChecksumOk && s.tcpChecksumOk, 'a frame with a bad checksum reached the raw client')
      }
      const metrics = await (await fetch(`http://127.0.0.1:${lab.port}/metrics`)).text()
      const segmented = Number(/^switchd_offload_fallback_frames_total\{network="default",kind="segmented",replica="[^"]*"\} (\d+)$/m.exec(metrics)?.[1])
      assert.ok(segmented > 0, 'switchd counted its segmentations')
    } finally {
      browser.close()
      await stopChild(dump)
    }
  })
})
