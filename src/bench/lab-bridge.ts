/**
 * The Linux bridge baseline: the same two-host shape as the Lab, with the
 * kernel doing the switching. Three network namespaces of our own: one per
 * host, each with a veth `eth0` addressed 192.0.2.N/24, and a third holding a
 * bridge with the veths' peers as its ports. The root namespace gets no
 * interface, address or route: the veth pairs are created directly in their
 * namespaces, and deleting the namespaces removes everything.
 */

import { run } from '../lab/lab'

/** What the measurements need of a host: its namespace and address (a LabHost has both too). */
export interface BenchHost {
  label: string
  ns: string
  ipv4: string
}

export class BridgeLab {
  readonly hosts: BenchHost[] = []
  readonly bridgeNs: string
  private readonly created: string[] = []

  constructor (count = 2, tag = String(process.pid % 100000)) {
    this.bridgeNs = `tsb-${tag}-br`
    for (let i = 0; i < count; i++) {
      const label = String.fromCharCode(97 + i)
      this.hosts.push({ label, ns: `tsb-${tag}-${label}`, ipv4: `192.0.2.${i + 1}` })
    }
  }

  /** Create the namespaces, veths and bridge; on failure removes what it made and rethrows. */
  async start (): Promise<void> {
    try {
      for (const ns of [this.bridgeNs, ...this.hosts.map((h) => h.ns)]) {
        await run('ip', ['netns', 'add', ns])
        this.created.push(ns)
        await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
      }
      const br = ['-n', this.bridgeNs]
      await run('ip', [...br, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0'])
      for (const h of this.hosts) {
        const port = `p${h.label}`
        // Created inside the bridge's namespace, the peer straight into the host's: never in the root namespace.
        await run('ip', [...br, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns])
        await run('ip', [...br, 'link', 'set', port, 'master', 'br0'])
        await run('ip', [...br, 'link', 'set', port, 'up'])
        await run('ip', ['-n', h.ns, 'addr', 'add', `${h.ipv4}/24`, 'dev', 'eth0'])
        await run('ip', ['-n', h.ns, 'link', 'set', 'eth0', 'up'])
      }
      await run('ip', [...br, 'link', 'set', 'br0', 'up'])
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  /** Delete our namespaces (and with them the veths and the bridge). Safe to repeat. */
  async stop (): Promise<void> {
    while (this.created.length > 0) {
      const ns = this.created.pop() as string
      await run('ip', ['netns', 'del', ns]).catch(() => {})
    }
  }
}
