/**
 * Issue 21, attacked afresh, end to end: what a station can do to another
 * station of a network with a gateway, with a real Linux station (a
 * namespace behind a TAP and tap-agent) as the victim and a raw WebSocket
 * client as the attacker.
 *
 * The gateway runs with nat false (no NAT, nothing leaves the machine); the
 * victim's addresses are 10.0.2.0/24 inside its namespace only.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { Lab, run, type LabHost } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { requireTools } from '../helpers/proc'
import { waitFor } from '../helpers/net'
import { TestClient } from '../helpers/client'
import { ipChecksum, parseIpv4 } from '../../src/common/dhcp'

/** Lettered from y (hostOffset 24): a namespace and TAP no other e2e file's lab uses. */
const OFFSET = 24
const ATTACKER_MAC = 0x020000000099
const ATTACKER_IP = '10.0.2.50'
const VICTIM_IP = '10.0.2.16'
const FAR = '198.51.100.1'

const ip = (t: string): number => parseIpv4(t) as number

/** An ARP request for `target` from the attacker (a station with its own lease: the guards let it through). */
function arpRequest (target: string): Buffer {
  const f = Buffer.alloc(60)
  f.fill(0xff, 0, 6); f.writeUIntBE(ATTACKER_MAC, 6, 6); f.writeUInt16BE(0x0806, 12)
  f.writeUInt16BE(1, 14); f.writeUInt16BE(0x0800, 16); f[18] = 6; f[19] = 4; f.writeUInt16BE(1, 20)
  f.writeUIntBE(ATTACKER_MAC, 22, 6); f.writeUInt32BE(ip(ATTACKER_IP), 28); f.writeUInt32BE(ip(target), 38)
  return f
}

/**
 * An ICMP redirect (type 5, code 1: host) "from" `from` to the victim: send
 * what goes to FAR through the attacker. It quotes an echo reply of the
 * victim's, which Linux acts on without a socket (icmp_err -> ipv4_redirect).
 */
function redirect (victimMac: number, from: string): Buffer {
  const f = Buffer.alloc(14 + 20 + 8 + 28)
  f.writeUIntBE(victimMac, 0, 6); f.writeUIntBE(ATTACKER_MAC, 6, 6); f.writeUInt16BE(0x0800, 12)
  f[14] = 0x45; f.writeUInt16BE(20 + 8 + 28, 16); f[22] = 64; f[23] = 1
  f.writeUInt32BE(ip(from), 26); f.writeUInt32BE(ip(VICTIM_IP), 30)
  f.writeUInt16BE(ipChecksum(f, 14, 34), 24)
  const icmp = 34
  f[icmp] = 5; f[icmp + 1] = 1; f.writeUInt32BE(ip(ATTACKER_IP), icmp + 4)
  const q = icmp + 8 // the quoted datagram: the victim's echo reply to FAR
  f[q] = 0x45; f.writeUInt16BE(28, q + 2); f[q + 8] = 64; f[q + 9] = 1
  f.writeUInt32BE(ip(VICTIM_IP), q + 12); f.writeUInt32BE(ip(FAR), q + 16)
  f.writeUInt16BE(ipChecksum(f, q, q + 20), q + 10)
  f.writeUInt16BE(ipChecksum(f, icmp, f.length), icmp + 2)
  return f
}

describe('e2e: gateway attacked afresh (a station against another)', function () {
  this.timeout(60_000)
  const logs: string[] = []
  let dir: string
  let lab: Lab
  let victim: LabHost
  let attacker: TestClient | undefined

  before(async function () {
    requireRoot(this)
    requireTools(this, [{ cmd: 'qemu-system-x86_64', pkg: 'qemu-system-x86' }, { cmd: 'setpriv', pkg: 'util-linux' }])
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-gw-attack-e2e-'))
    lab = new Lab({
      hostOffset: OFFSET,
      switchdArgs: ['--state-dir', path.join(dir, 'state')],
      hosts: [{ noAddress: true }],
      onLog: (l) => { logs.push(l) },
      config: {
        networks: {
          default: {
            gateway: {
              nat: false,
              // Both stations hold their addresses by right: the guards bind them.
              staticLeases: [{ mac: '02:00:5e:00:00:19', ip: VICTIM_IP }, { mac: '02:00:00:00:00:99', ip: ATTACKER_IP }]
            }
          }
        }
      }
    })
    await lab.start()
    victim = lab.hosts[0] as LabHost
    assert.equal(victim.mac, '02:00:5e:00:00:19')
    await run('ip', ['-n', victim.ns, 'addr', 'add', `${VICTIM_IP}/24`, 'dev', victim.tap])
    await run('ip', ['-n', victim.ns, 'route', 'add', 'default', 'via', '10.0.2.2'])
  })

  after(async () => {
    attacker?.close()
    await lab?.stop()
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
  })

  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-40).join('\n') + '\n')
  })

  it('attack: a station\'s ICMP redirect "from the gateway" does not reroute another station\'s traffic through it', async () => {
    const route = async (): Promise<string> => await run('ip', ['-n', victim.ns, 'route', 'get', FAR])
    assert.match(await route(), /via 10\.0\.2\.2 /)
    const a = await TestClient.raw(`${lab.url}`)
    attacker = a
    const victimMac = parseInt(victim.mac.replace(/:/g, ''), 16)
    const isReply = (f: Buffer): boolean => f.readUInt16BE(12) === 0x0806 && f.readUInt16BE(20) === 2 && f.readUInt32BE(28) === ip(VICTIM_IP)
    // The victim learns the attacker's MAC (Linux takes a redirect only to a neighbour it knows), then gets the redirect;
    // its answer to a second ARP is the barrier that it read the redirect before it.
    a.send([arpRequest(VICTIM_IP)])
    await waitFor(() => a.frames.some(isReply), 10_000, 'the victim\'s ARP reply')
    a.take()
    a.send([redirect(victimMac, '10.0.2.2'), arpRequest(VICTIM_IP)])
    await waitFor(() => a.frames.some(isReply), 10_000, 'the victim\'s ARP reply (barrier)')
    const after = await route()
    assert.doesNotMatch(after, /via 10\.0\.2\.50/, `the victim routes ${FAR} through the attacker: ${after}`)
    assert.match(after, /via 10\.0\.2\.2 /)
    const ports = await lab.api<Array<{ name: string, drops: Record<string, number> }>>('/api/v1/ports')
    const mine = ports.find((p) => p.name.startsWith('raw-'))
    assert.equal(mine?.drops.ipSourceGuard, 1, JSON.stringify(mine?.drops))
  })
})
