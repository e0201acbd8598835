/**
 * What the native link's integration tests start from: a switchd on
 * 127.0.0.1:0, an agent on a PairTap whose link is up and reading the TAP, and
 * a batched client the switch has learned the agent's MAC (MAC_A) for, so the
 * client's unicasts to it go down the link. close() takes it all down, also
 * when start() failed half-way.
 */

import assert from 'node:assert/strict'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { Uplink } from '../../src/common/uplink'
import type { Agent } from '../../src/agent/agent'
import { PairTap } from './pair-tap'
import { TestClient } from './client'
import { waitFor } from './net'
import { eth, BROADCAST, MAC_A } from './frames'

export class NativeRig {
  server: SwitchServer | undefined
  agent: Agent | undefined
  client: TestClient | undefined

  /** `makeAgent` builds the agent on the rig's TAP and uplink (named `name`); the rig starts it. */
  async start (name: string, makeAgent: (tap: PairTap, uplink: Uplink) => Agent): Promise<PairTap> {
    this.server = new SwitchServer({ host: '127.0.0.1', port: 0 })
    const { port } = await this.server.listen()
    const tap = new PairTap(`${name}0`)
    const a = this.agent = makeAgent(tap, new Uplink({ url: `ws://127.0.0.1:${port}/`, name: `${name}-a`, mtu: 1500, reconnectMin: 0.05, reconnectMax: 0.2 }))
    a.start()
    await waitFor(() => a.uplink.isUp && !tap.reading, undefined, 'the native link up and reading the TAP')
    assert.equal(a.uplink.path.path, 'native')
    const c = this.client = await TestClient.batched(`ws://127.0.0.1:${port}/`, { name: `${name}-client` })
    tap.inject([eth(BROADCAST, MAC_A)])
    await waitFor(() => c.frames.length >= 1, undefined, 'the agent\'s broadcast at the client')
    return tap
  }

  async close (): Promise<void> {
    this.client?.close()
    this.client = undefined
    await this.agent?.stop()
    this.agent = undefined
    await this.server?.close()
    this.server = undefined
  }
}
