/**
 * SIGHUP reload on a real switchd: a bad file is rejected and the switch keeps
 * running on the old one; a good file applies new limits to the ports it
 * keeps, and closes (1008) the port it no longer allows, whose agent comes
 * back on the new terms.
 */

import assert from 'node:assert/strict'
import { Lab, type LabHost } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { waitFor } from '../helpers/net'

interface PortView { id: number, name: string, pvid: number, maxMacs: number }

const BASE = { profiles: [{ match: 'host-*', mode: 'access', vlan: 1, maxMacs: 50, claimable: true }] }

describe('e2e: configuration reload (SIGHUP)', function () {
  this.timeout(60_000)
  const logs: string[] = []
  const lab = new Lab({ hosts: 3, config: BASE, onLog: (l) => { logs.push(l) } })
  let a: LabHost, b: LabHost

  before(async function () {
    requireRoot(this)
    await lab.start()
    ;[a, b] = lab.hosts as [LabHost, LabHost]
  })
  after(async () => { await lab.stop() })

  const ports = async (): Promise<Map<string, PortView>> => new Map((await lab.api<PortView[]>('/api/v1/ports')).map((p) => [p.name, p]))

  it('rejects a bad file and keeps running on the old configuration', async () => {
    const before = await ports()
    await lab.reconfigure({ profiles: [{ match: 'host-*', mode: 'trunk', claimable: true }] })
    assert.ok(logs.some((l) => l.includes('"config_rejected"') && l.includes('profiles[0].vlans')), 'the rejection names the key')
    const after = await ports()
    assert.equal(after.get('host-a')?.id, before.get('host-a')?.id, 'no port was dropped')
    assert.match(await lab.ping(a, b, 2), / 2 received/)
  })

  it('applies new limits in place, and closes only the port it no longer allows', async () => {
    const before = await ports()
    await lab.reconfigure({ profiles: [{ match: 'host-c', mode: 'access', vlan: 20, claimable: true }, { match: 'host-*', mode: 'access', vlan: 1, maxMacs: 7, claimable: true }] })
    assert.ok(logs.some((l) => l.includes('"config_reloaded"')))
    const after = await ports()
    assert.equal(after.get('host-a')?.id, before.get('host-a')?.id, 'host-a kept its port')
    assert.equal(after.get('host-a')?.maxMacs, 7, 'and got the new limit')
    // host-c's VLAN changed: same access mode, so it keeps its port in its new VLAN.
    assert.equal(after.get('host-c')?.pvid, 20)
    assert.match(await lab.ping(a, b, 2), / 2 received/)
    // A mode change closes the port with 1008; the agent reconnects on the new terms.
    await lab.reconfigure({ profiles: [{ match: 'host-c', mode: 'trunk', vlans: [20], claimable: true }, { match: 'host-*', mode: 'access', vlan: 1, maxMacs: 7, claimable: true }] })
    await waitFor(() => logs.some((l) => l.includes('"port_down"') && l.includes('host-c') && l.includes('1008')), 5000, 'host-c closed with 1008')
    let c: PortView | undefined
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      c = (await ports()).get('host-c')
      if (c !== undefined && c.id !== before.get('host-c')?.id) break
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    assert.ok(c !== undefined && c.id !== before.get('host-c')?.id, 'host-c came back as a new port')
    const view = (await lab.api<Array<PortView & { mode: string }>>('/api/v1/ports')).find((p) => p.name === 'host-c')
    assert.equal(view?.mode, 'trunk')
  })
})
