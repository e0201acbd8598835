/**
 * Seeing into a running lab: a live capture taken with switchctl during a
 * real ping is read back by tcpdump; a real agent serves its metrics.
 */

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { Lab, run, type LabHost } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { waitFor, MIN_WAIT_MS } from '../helpers/net'

const ROOT = path.join(__dirname, '..', '..')

describe('e2e: observability', function () {
  this.timeout(60_000)
  const logs: string[] = []
  const lab = new Lab({
    hosts: [{ agentArgs: ['--metrics-listen', '127.0.0.1:0'] }, {}],
    onLog: (l) => { logs.push(l) }
  })
  let a: LabHost, b: LabHost
  let dir: string

  before(async function () {
    requireRoot(this)
    const tcpdump = await run('sh', ['-c', 'command -v tcpdump || true'])
    if (tcpdump.trim() === '') {
      if (process.env.CI === 'true') throw new Error('tcpdump is missing (.ci/run installs it)')
      this.skip()
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-observe-'))
    await lab.start()
    ;[a, b] = lab.hosts as [LabHost, LabHost]
  })
  after(async () => {
    await lab.stop()
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
  })

  it('capture: switchctl writes a pcap of a ping that tcpdump reads as echo request and reply', async () => {
    await lab.ping(a, b, 1)
    const file = path.join(dir, 'ping.pcap')
    const ctl = spawn(process.execPath, [path.join(ROOT, 'bin', 'switchctl.js'), '--url', `http://127.0.0.1:${lab.port}`,
      'capture', '--port', 'host-b', '--count', '20', '--duration', '120', '-w', file], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    ctl.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const exited = new Promise<number | null>((resolve) => ctl.on('exit', resolve))
    try {
      // Once switchd has the capture (switchctl takes seconds to start on a loaded machine), the pings.
      await waitFor(() => logs.some((l) => l.includes('"capture_started"')), MIN_WAIT_MS, 'the capture to start')
      await lab.ping(a, b, 3, 4, 0.1)
      await lab.ping(b, a, 3, 4, 0.1)
    } finally {
      ctl.kill('SIGTERM')
    }
    await exited
    assert.ok(fs.existsSync(file), `no capture file (${stderr})`)
    const out = await run('tcpdump', ['-nr', file])
    assert.match(out, new RegExp(`IP ${a.ipv4.replace(/\./g, '\\.')} > ${b.ipv4.replace(/\./g, '\\.')}: ICMP echo request`))
    assert.match(out, new RegExp(`IP ${b.ipv4.replace(/\./g, '\\.')} > ${a.ipv4.replace(/\./g, '\\.')}: ICMP echo reply`))
  })

  it('metrics: a real agent reports its uplink and TAP traffic', async () => {
    const line = logs.find((l) => l.startsWith('agent-a:') && l.includes('"metrics_listening"'))
    assert.ok(line, 'agent a logged where its metrics are')
    const port = (JSON.parse(line.slice(line.indexOf('{'))) as { port: number }).port
    await lab.ping(a, b, 2)
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
    assert.match(text, /^tap_agent_uplink_up 1$/m)
    const rx = /^tap_agent_tap_receive_frames_total\{tap="[^"]+"\} (\d+)$/m.exec(text)
    assert.ok(rx !== null && Number(rx[1]) >= 2, 'the agent counted the frames it read from its TAP')
    const sw = await (await fetch(`http://127.0.0.1:${lab.port}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
    assert.match(sw, /^switchd_port_receive_frames_total\{network="default",port="host-a",replica="[^"]*"\} [1-9]\d*$/m)
  })
})
