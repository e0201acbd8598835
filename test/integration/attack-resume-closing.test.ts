/**
 * A port switchd closes on purpose (a reload that changed its mode, BPDU
 * guard) must not come back by a resume while its close handshake is still
 * under way (issue 24 attack review): its resume token would otherwise hand
 * the port, with the policy it had, to a new connection, and the old
 * socket's close is then ignored (the port moved on). The agent reconnects
 * instead, and gets what the configuration gives now.
 */

import assert from 'node:assert/strict'
import type * as net from 'node:net'
import { useSwitchd } from '../helpers/switchd-fixture'
import { buildConfig } from '../../src/switch/control/config'
import { MODE_TRUNK } from '../../src/switch/core/port'
import type { TestClient } from '../helpers/client'
import { waitFor } from '../helpers/net'

const CONFIG = {
  port: { mode: 'access', vlan: 1 },
  profiles: [{ match: 'flex', mode: 'trunk', vlans: [10, 20], claimable: true }]
}
const BPDU = JSON.stringify({ type: 'bpdu', root: '0000000000000001', cost: 0, bridge: '0000000000000002', port: 1, tc: [] })

describe('switchd: no resume of a port being closed on purpose (issue 24 attack review)', function () {
  this.timeout(30_000)
  const sd = useSwitchd({ start: { config: buildConfig(CONFIG, 'test') } })
  const batched = async (hello: Record<string, unknown>): Promise<TestClient> => await sd.batched(hello)
  /** The client stops reading: it never answers switchd's close frame (the close waits out its grace). */
  function deaf (c: TestClient): void { (c.ws as unknown as { _socket: net.Socket })._socket.pause() }

  it('attack: a port a reload closed for its new mode cannot be resumed with its old mode during its close', async () => {
    const first = await batched({ name: 'flex', vlan: { mode: 'trunk', vlans: [10, 20] } })
    const token = first.welcome?.resume as string
    assert.ok(token !== undefined)
    deaf(first)
    sd.switchd.reload(buildConfig({ ...CONFIG, profiles: [{ match: 'flex', mode: 'access', vlan: 10, claimable: true }] }, 'test'))
    const again = await batched({ name: 'flex', resume: token })
    assert.notEqual(again.welcome?.resumed, true, 'not resumed')
    await waitFor(() => sd.switchd.ports().filter((p) => p.name === 'flex').every((p) => p.mode !== MODE_TRUNK), 10_000, 'no trunk named flex')
  })

  it('attack: a port BPDU guard closed cannot be resumed during its close', async () => {
    const first = await batched({ name: 'station' })
    const token = first.welcome?.resume as string
    deaf(first)
    first.ws.send(BPDU)
    await waitFor(() => sd.switchd.portTable.bpduGuardShutdowns === 1, 10_000, 'BPDU guard')
    const again = await batched({ name: 'station', resume: token })
    assert.notEqual(again.welcome?.resumed, true, 'not resumed')
  })
})
