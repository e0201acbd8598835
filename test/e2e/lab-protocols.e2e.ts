/**
 * Lab protocols between namespaces over real TAPs (issue 15): a network that
 * lists LLDP in forwardGroups floods it to the other host, while LACP and STP
 * (not listed) are dropped as a bridge drops them, counted as link_local.
 */

import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { Lab, emitLines, waitForLine, stopChild, type LabHost } from '../../src/lab/lab'
import type { DropsJson } from '../../src/common/api-types'
import { requireRoot } from '../helpers/root'
import { inject } from '../helpers/inject'

/** Sniff frames to 01:80:c2:00:00:0X arriving at `iface` until a broadcast from `barrier` arrives; print their destinations. */
const SNIFF = `
import json, socket, sys, time
a = json.loads(sys.argv[1])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((a['iface'], 0))
s.settimeout(0.2)
print('ready', flush=True)
barrier = bytes.fromhex(a['barrier'].replace(':', ''))
got = []
seen = False
deadline = time.monotonic() + a['seconds']
while time.monotonic() < deadline:
    try:
        data, addr = s.recvfrom(65535)
    except socket.timeout:
        continue
    if addr[2] == 4:
        continue
    if data[6:12] == barrier:
        seen = True
        break
    if data[0:5] == bytes.fromhex('0180c20000'):
        got.append(data[0:6].hex(':'))
print(json.dumps({'got': got, 'barrier': seen}), flush=True)
`

describe('e2e: lab protocols (forwardGroups)', function () {
  this.timeout(60_000)
  const lab = new Lab({ hosts: 2, config: { network: { forwardGroups: ['lldp'] } } })
  let a: LabHost, b: LabHost
  let sniffer: ChildProcess | undefined

  before(async function () {
    requireRoot(this)
    await lab.start()
    ;[a, b] = lab.hosts as [LabHost, LabHost]
  })
  after(async () => {
    await stopChild(sniffer)
    await lab.stop()
  })

  it('floods LLDP, drops LACP and STP (not listed), and the drops say link_local', async () => {
    const barrier = '02:00:5e:00:ba:01'
    sniffer = spawn('ip', ['netns', 'exec', b.ns, 'python3', '-c', SNIFF, JSON.stringify({ iface: b.tap, barrier, seconds: 20 })], { stdio: ['ignore', 'pipe', 'pipe'] })
    let last = ''
    emitLines(sniffer, 'sniff', (l) => { if (l.startsWith('sniff: {')) last = l.slice(l.indexOf('{')) })
    const closed = once(sniffer, 'close')
    await waitForLine(sniffer, 'sniff', (l) => l === 'ready', 5000)
    const before = await lab.api<DropsJson>('/api/v1/drops')
    for (const dst of ['01:80:c2:00:00:0e', '01:80:c2:00:00:02', '01:80:c2:00:00:00']) {
      assert.equal((await inject({ ns: a.ns, iface: a.tap, count: 1, dst, src: a.mac, seconds: 5 })).sent, 1)
    }
    // The barrier: sent after the others, so when it has arrived, anything flooded before it has too.
    await inject({ ns: a.ns, iface: a.tap, count: 1, src: barrier, seconds: 5 })
    await closed
    const out = JSON.parse(last === '' ? '{}' : last) as { got?: string[], barrier?: boolean }
    assert.equal(out.barrier, true, 'the barrier arrived')
    assert.deepEqual(out.got, ['01:80:c2:00:00:0e'])
    const after = await lab.api<DropsJson>(`/api/v1/drops?since=${before.last}&reason=link_local`)
    assert.deepEqual(after.drops.map((d) => d.dst).sort(), ['01:80:c2:00:00:00', '01:80:c2:00:00:02'])
  })
})
