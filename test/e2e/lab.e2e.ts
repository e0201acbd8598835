/**
 * Three network namespaces, each with a real TAP from its own tap-agent,
 * joined through a real switchd: what the README's demo does, asserted.
 * The bridge selftest cases (ping, learning, flooding, ageing, hairpin_drop,
 * port_down_flush) are in bridge-selftests.e2e.ts.
 */

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { Lab, run, type LabHost } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { tcpListening } from '../helpers/proc'
import { sleep } from '../helpers/net'

describe('e2e: three namespaces through switchd', function () {
  this.timeout(60_000)
  const logs: string[] = []
  const lab = new Lab({ hosts: 3, onLog: (l) => { logs.push(l) } })
  let a: LabHost, b: LabHost, c: LabHost

  before(async function () {
    requireRoot(this)
    await lab.start()
    ;[a, b, c] = lab.hosts as [LabHost, LabHost, LabHost]
  })
  after(async () => { await lab.stop() })
  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-40).join('\n') + '\n')
  })

  it('tcp: an iperf3 stream passes between two namespaces', async function () {
    const server = spawn('ip', ['netns', 'exec', b.ns, 'iperf3', '-s', '-1', '-B', b.ipv4], { stdio: 'ignore' })
    try {
      await tcpListening(b.ns, 5201)
      const out = JSON.parse(await run('ip', ['netns', 'exec', a.ns, 'iperf3', '-c', b.ipv4, '-t', '2', '-J', '--connect-timeout', '3000'], 20_000)) as {
        end: { sum_received: { bytes: number, bits_per_second: number } }
      }
      assert.ok(out.end.sum_received.bytes > 1_000_000, `TCP carried ${out.end.sum_received.bytes} bytes`)
    } finally {
      if (server.exitCode === null) { server.kill('SIGTERM'); await Promise.race([once(server, 'exit'), sleep(3000)]) }
    }
  })

  it('reconnect: after switchd is killed and restarted, ping works again within 10 s', async () => {
    await lab.stopSwitchd()
    await assert.rejects(lab.ping(a, b, 1), 'no switch, no ping')
    await lab.startSwitchd()
    const restarted = Date.now()
    let ok = false
    while (!ok && Date.now() - restarted < 10_000) {
      ok = await lab.ping(a, b, 1).then(() => true, () => false)
    }
    const seconds = (Date.now() - restarted) / 1000
    assert.ok(ok, `ping did not recover within 10 s of the restart (${seconds} s)`)
    assert.match(await lab.ping(c, a, 2), / 2 received/, 'every agent is back')
  })
})
