/**
 * The model-based fuzz of the gateway (test/helpers/gateway-fuzz): a real
 * switchd on 127.0.0.1 whose network "lab" has a gateway (a real QEMU child,
 * nat off, so nothing can leave the machine), stations of four kinds (raw
 * WebSocket and agent from three loopback addresses, one client to switchd; VMs behind a
 * Unix and a TCP QEMU listener) driven by a seeded random sequence of steps:
 * DHCP in their own and in made-up names, forged chaddrs, another station's
 * RELEASE, spoofed ARP, rogue DHCP servers and redirects, floods of flows at
 * every class of address (switchd's own ports among them), link conditions
 * and drills on random ports, restarts of the gateway's child. After every
 * step: no station reaches switchd, no address is given twice, nothing the
 * guards stop reaches another station, every refused frame is counted, the
 * link conditions hold no more than their bounds, switchd never throws.
 *
 * MODEL_SEED=123 replays a run; MODEL_STEPS sets its length (default 150);
 * MODEL_MS is a guard against a hang only. The seed and a tally are printed
 * when the run fails.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { requireTools } from '../helpers/proc'
import { runGatewayFuzz } from '../helpers/gateway-fuzz/run'

const SEED = process.env.MODEL_SEED !== undefined ? Number(process.env.MODEL_SEED) >>> 0 : (Date.now() ^ (process.pid << 12)) >>> 0
const STEPS = Number(process.env.MODEL_STEPS ?? 150)
const HANG_GUARD_MS = Number(process.env.MODEL_MS ?? 600_000)

describe('model-based fuzz of the gateway: invariants after every step (integration)', function () {
  this.timeout(HANG_GUARD_MS + 60_000)
  let dir: string

  before(function () { requireTools(this, [{ cmd: 'qemu-system-x86_64', pkg: 'qemu-system-x86' }, { cmd: 'setpriv', pkg: 'util-linux' }]) })
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-gwfuzz-')) })
  afterEach(() => { fs.rmSync(dir, { recursive: true, force: true }) })

  it('holds every invariant through stations that lie about their addresses, flood flows, and links that go bad', async () => {
    const r = await runGatewayFuzz({
      seed: SEED, steps: STEPS, hangGuardMs: HANG_GUARD_MS, nat: 'off', listen: '127.0.0.1', stateDir: dir,
      clientAddresses: ['127.0.0.1', '127.0.0.2', '127.0.0.3']
    })
    const tally = Object.entries(r.tally).map(([k, v]) => `${k} ${v}`).join(', ')
    if (!r.ok) assert.fail(r.failure)
    process.stdout.write(`      gateway model fuzz seed ${r.seed}: ${r.steps} steps in ${r.ms} ms; ${r.offers} offers, ${r.acks} acks; memory grew at most ${Math.round(r.memoryPeak / 1048576)} MiB; ${tally}\n`)
    assert.equal(r.steps, STEPS, `only ${r.steps} of ${STEPS} steps`)
    // The run must have exercised what it claims to check.
    for (const what of ['dhcp ack seen', 'flood frames', 'arp spoofed', 'dhcp forged chaddr', 'condition set']) {
      assert.ok((r.tally[what] ?? 0) > 0, `the run never did "${what}" (seed ${r.seed}): ${tally}`)
    }
  })
})
