/** Audit (issue 12), identity in the configuration: tokens are told apart by the token, not by list position. */

import assert from 'node:assert/strict'
import * as path from 'node:path'
import { buildConfig, loadConfig, profileFor, unreachableProfiles } from '../../src/switch/control/config'
import { sha256Hex } from '../../src/switch/control/auth'
import { setLogSink } from '../../src/common/log'

const T_A = 'alpha-token-0123456789abcdef'
const T_B = 'bravo-token-0123456789abcdef'

describe('audit: identity in the configuration', () => {
  it('attack: two tokens under one id share one identity (the id is refused, naming both)', () => {
    assert.throws(() => buildConfig({ tokens: [{ id: 'ops', token: T_A }, { id: 'ops', token: T_B }] }, 'f.json'),
      (err: Error & { code?: string }) => err.code === 'TSW_ERR_CONFIG' && /tokens\[1\]\.id/.test(err.message) && /tokens\[0\]/.test(err.message))
  })

  it('attack: removing an earlier token hands its list position (and id) to the next one', () => {
    const before = buildConfig({ tokens: [{ token: T_A }, { token: T_B }] }, 'f.json')
    const after = buildConfig({ tokens: [{ token: T_B }] }, 'f.json')
    const idOf = (c: typeof before, t: string): string | undefined => c.tokens.get(sha256Hex(t))?.id
    assert.equal(idOf(after, T_B), idOf(before, T_B), 'an omitted id comes from the token, not its position')
    assert.notEqual(idOf(before, T_A), idOf(before, T_B))
    assert.equal(idOf(before, T_A), `sha256:${sha256Hex(T_A).slice(0, 12)}`)
  })

  it('attack: a claimed name gets a profile that is not claimable', () => {
    const c = buildConfig({ profiles: [{ match: 'core-*', mode: 'trunk', vlans: [10, 20] }, { match: 'lab-*', vlan: 30, claimable: true }] }, 'f.json')
    assert.equal(profileFor(c, 'core-uplink', 'default', false), c.defaultPolicy)
    assert.deepEqual(profileFor(c, 'core-uplink', 'default', true).vlans, [10, 20], 'a name the configuration gives gets it')
    assert.equal(profileFor(c, 'lab-1', 'default', false).pvid, 30)
  })

  it('warns about a profile no port can ever get, naming the fix', () => {
    const logs: string[] = []
    const restore = setLogSink((l) => { logs.push(l) })
    try {
      buildConfig({
        profiles: [{ match: 'core-*', vlan: 10 }, { match: 'pinned', vlan: 20 }, { match: 'lab-*', vlan: 30, claimable: true }],
        tokens: [{ token: T_A, name: 'pinned' }]
      }, 'f.json')
    } finally { setLogSink(restore) }
    const warned = logs.filter((l) => l.includes('"profile_unreachable"'))
    assert.equal(warned.length, 1)
    assert.ok(warned[0]?.includes('core-*') && warned[0].includes('claimable'))
  })
})

describe('deploy/switchd.example.json (audit)', () => {
  it('gives every profile to someone: trunk and router profiles by token pins, lab access ports by claim', () => {
    const c = loadConfig(path.join(__dirname, '..', '..', 'deploy', 'switchd.example.json'))
    assert.deepEqual(unreachableProfiles(c), [])
    assert.equal(profileFor(c, 'router', 'lab', false), c.defaultPolicy, 'a client naming itself router is not the router')
  })
})
