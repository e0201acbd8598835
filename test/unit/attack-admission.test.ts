/**
 * Issue 21, a second look at the log budgets: what a client's frames cause
 * (loops, port-security violations) is logged within that client's budget
 * (common/log.ts), so one client cannot flood the log nor, by using up a
 * budget shared with everyone, hide another client's. Each `attack:` test
 * fails on 50e75d0 (loops were logged without a budget, violations in one
 * budget for all).
 */

import assert from 'node:assert/strict'
import { Switch } from '../../src/switch/core/switch'
import { DEFAULT_POLICY, MODE_ACCESS, type PortPolicy } from '../../src/switch/core/port'
import { FakePort } from '../helpers/fake-port'
import { eth, BROADCAST } from '../helpers/frames'
import { CLIENT_BURST, setLogSink, logger } from '../../src/common/log'
import { clientKeyOf } from '../../src/common/address'

const T0 = 1_000_000
/** A MAC as the frame helper takes it: 12 hex digits. */
const mac = (n: number): string => n.toString(16).padStart(12, '0')
/** Port.clientKey of WebSocket ports from two addresses (io/ws-port.ts). */
const ATTACKER = 'address 192.0.2.2'
const VICTIM = 'address 192.0.2.3'

describe('attack: what a client\'s frames make switchd log stays within that client\'s budget', () => {
  let sw: Switch
  let restore: (line: string) => void
  const logs: string[] = []
  let nextId = 1

  function port (name: string, client: string, policy: PortPolicy = DEFAULT_POLICY): FakePort {
    const p = new FakePort(nextId++, name)
    p.clientKey = client
    p.applyPolicy(policy)
    sw.addPort(p)
    return p
  }

  /** A station of `client` whose frame comes back through two more of its ports, over and over: a loop, blocking one of them. */
  function loop (client: string, i: number): void {
    const src = mac(0x020000100000 + i)
    const host = port(`h${i}`, client); const a = port(`a${i}`, client); const b = port(`b${i}`, client)
    sw.receiveFrame(host, eth(BROADCAST, src))
    for (let k = 0; k < 10; k++) {
      sw.receiveFrame(a, eth(BROADCAST, src))
      sw.receiveFrame(b, eth(BROADCAST, src))
    }
  }

  beforeEach(() => {
    logs.length = 0
    restore = setLogSink((l) => { logs.push(l) })
    sw = new Switch({ loopHoldDown: 30 }, T0)
  })
  afterEach(() => { setLogSink(restore) })

  it('attack: one client making loops at will writes at most its budget, and another client\'s loop is still logged', () => {
    for (let i = 0; i < 3 * CLIENT_BURST; i++) loop(ATTACKER, i)
    assert.equal(sw.stats.loopsDetected, 3 * CLIENT_BURST, 'every loop was caught and counted')
    assert.equal(logs.filter((l) => l.includes('"loop_detected"')).length, CLIENT_BURST)
    loop(VICTIM, 1000)
    const victim = logs.filter((l) => l.includes('"loop_detected"') && l.includes('"blocked":"b1000"'))
    assert.equal(victim.length, 1)
  })

  it('attack: one client\'s port-security violations do not use up a budget another client\'s violation needs', () => {
    const strict: PortPolicy = { ...DEFAULT_POLICY, mode: MODE_ACCESS, pvid: 1, vlans: [1], maxMacs: 1 }
    for (let i = 0; i < 3 * CLIENT_BURST; i++) {
      const p = port(`spoof${i}`, ATTACKER, strict)
      sw.receiveFrame(p, eth(BROADCAST, mac(0x020000200000 + 2 * i)))
      sw.receiveFrame(p, eth(BROADCAST, mac(0x020000200001 + 2 * i)))
    }
    assert.equal(logs.filter((l) => l.includes('"port_security_violation"')).length, CLIENT_BURST)
    const victim = port('victim', VICTIM, strict)
    sw.receiveFrame(victim, eth(BROADCAST, mac(0x020000300000)))
    sw.receiveFrame(victim, eth(BROADCAST, mac(0x020000300001)))
    assert.ok(logs.some((l) => l.includes('"port_security_violation"') && l.includes('"port":"victim"')), 'the other client\'s violation is logged')
  })

  it('counts what a port\'s frames cause and what its connections cause in one budget per address', () => {
    assert.equal(clientKeyOf('192.0.2.2'), ATTACKER)
    const log = logger('test')
    for (let i = 0; i < CLIENT_BURST; i++) log.client('info', 'connection_line', '192.0.2.2')
    log.forClient('warn', 'frame_line', ATTACKER)
    log.forClient('warn', 'frame_line', VICTIM)
    assert.equal(logs.filter((l) => l.includes('"frame_line"')).length, 1, 'only the other address\'s')
  })
})
