import assert from 'node:assert/strict'
import * as path from 'node:path'
import { buildConfig, loadConfig, profileFor, grantPolicy, networkSettings } from '../../src/switch/control/config'
import { MODE_ACCESS, MODE_TRUNK } from '../../src/switch/core/port'
import { networkFromPath } from '../../src/switch/control/networks'

const LAB = {
  listen: '0.0.0.0:9000',
  network: { maxFrameSize: 9018, loop: { moves: 8, window: 2, holdDown: 10 } },
  networks: {
    default: {},
    lab: { fdbMax: 1000, static: [{ mac: '02:00:00:00:00:fe', vlan: 10, port: 'router' }] }
  },
  dynamicNetworks: false,
  port: { mode: 'access', vlan: 10, maxMacs: 64, storm: { broadcast: 500 } },
  profiles: [
    { match: 'router', mode: 'trunk', vlans: [10, 20], native: 1, maxMacs: 1024 },
    { match: 'guest-*', network: 'lab', vlan: 20, violation: 'shutdown' }
  ]
}

describe('config', () => {
  it('builds defaults that match a plain switch when there is no file', () => {
    const c = buildConfig({}, '(defaults)')
    assert.equal(c.listen, '127.0.0.1:8080')
    assert.equal(c.dynamicNetworks, true)
    const d = c.networks.get('default')
    assert.equal(d?.ageingTime, 300)
    assert.equal(d?.maxFrameSize, 1518)
    assert.equal(d?.fdbMax, 8192)
    assert.deepEqual(c.defaultPolicy.vlans, [1])
    assert.equal(c.defaultPolicy.maxMacs, 256)
  })

  it('reads networks, profiles and static entries; inherits from network and port', () => {
    const c = buildConfig(LAB, 'lab.json')
    assert.equal(c.listen, '0.0.0.0:9000')
    const lab = c.networks.get('lab')
    assert.equal(lab?.maxFrameSize, 9018)
    assert.equal(lab?.fdbMax, 1000)
    assert.equal(lab?.loopWindow, 2000)
    assert.equal(lab?.loopHoldDown, 10)
    assert.deepEqual(lab?.statics, [{ vid: 10, mac: 0x0200000000fe, port: 'router' }])
    const router = profileFor(c, 'router', 'default', true)
    assert.equal(router.mode, MODE_TRUNK)
    assert.deepEqual(router.vlans, [1, 10, 20])
    assert.equal(router.pvid, 1)
    assert.equal(router.stormBroadcast, 500, 'profiles inherit the port defaults')
    const guest = profileFor(c, 'guest-7', 'lab', true)
    assert.equal(guest.mode, MODE_ACCESS)
    assert.equal(guest.pvid, 20)
    assert.equal(guest.violation, 'shutdown')
    assert.equal(profileFor(c, 'guest-7', 'default', true).pvid, 10, 'a profile with a network applies only there')
    assert.equal(networkSettings(c, 'other'), undefined, 'dynamic networks are off')
  })

  it('lets flags override the file', () => {
    const c = buildConfig(LAB, 'lab.json', { listen: '127.0.0.1:1', maxFrameSize: 1600, portBuffer: 65536 })
    assert.equal(c.listen, '127.0.0.1:1')
    assert.equal(c.networks.get('default')?.maxFrameSize, 1600)
    assert.equal(c.portBuffer, 65536)
  })

  for (const [what, raw, key] of [
    ['an unknown top-level key', { lisen: 'x' }, /^f\.json: lisen: unknown key/],
    ['a bad frame size', { network: { maxFrameSize: 70000 } }, /^f\.json: network\.maxFrameSize: expected an integer from 64 to 65553/],
    ['a bad network name', { networks: { 'a b': {} } }, /networks\.a b: network names/],
    ['a VLAN out of range', { port: { vlan: 4095 } }, /port\.vlan: expected an integer from 1 to 4094/],
    ['vlans on an access port', { port: { mode: 'access', vlans: [1] } }, /port\.vlans: only for mode "trunk"/],
    ['a trunk without vlans', { profiles: [{ match: 'x', mode: 'trunk' }] }, /profiles\[0\]\.vlans: a trunk needs/],
    ['a profile without match', { profiles: [{ vlan: 3 }] }, /profiles\[0\]\.match: required/],
    ['a bad violation action', { port: { violation: 'explode' } }, /port\.violation: expected "drop" or "shutdown"/],
    ['a multicast static MAC', { networks: { x: { static: [{ mac: '01:00:5e:00:00:01', port: 'p' }] } } }, /networks\.x\.static\[0\]\.mac: a group/],
    ['an unknown storm key', { port: { storm: { bcast: 1 } } }, /port\.storm\.bcast: unknown key/],
    ['a trunk to an http URL', { trunks: [{ url: 'http://b:8080/' }] }, /trunks\[0\]\.url: expected ws:\/\/ or wss:\/\//],
    ['a trunk URL that names no network', { trunks: [{ url: 'ws://b:8080/api/v1' }] }, /trunks\[0\]\.url: the path must be \/ or \/net\/NAME/],
    ['a trunk without url', { trunks: [{ network: 'lab' }] }, /trunks\[0\]\.url: required/],
    ['a bridge priority out of range', { bridgePriority: 70000 }, /bridgePriority: expected an integer from 0 to 65535/],
    ['a non-boolean trunk permission', { tokens: [{ id: 't', token: '0123456789abcdef', trunk: 'yes' }] }, /tokens\[0\]\.trunk: expected true or false/],
    ['a non-boolean profile trunk permission', { profiles: [{ match: 'x', trunk: 1 }] }, /profiles\[0\]\.trunk: expected true or false/],
    ['a non-boolean root guard', { tokens: [{ id: 't', token: '0123456789abcdef', rootGuard: 'on' }] }, /tokens\[0\]\.rootGuard: expected true or false/],
    ['a trunk VLAN out of range', { trunks: [{ url: 'ws://b:8080/', vlans: [10, 4095] }] }, /trunks\[0\]\.vlans\[1\]: expected an integer from 1 to 4094/]
  ] as const) {
    it(`rejects ${what}, naming the key (TSW_ERR_CONFIG)`, () => {
      assert.throws(() => buildConfig(raw, 'f.json'), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'TSW_ERR_CONFIG')
        assert.match(err.message, key)
        return true
      })
    })
  }

  it('reads trunks from the file and from --uplink, the network from the URL path', () => {
    const c = buildConfig({ trunks: [{ url: 'wss://a:8443/net/lab', token: 'tok', ca: 'ca.pem', name: 'trunk-x' }], bridgePriority: 4096 }, 'f.json',
      { uplink: 'ws://b:8080/, ws://c:8080/net/other', uplinkToken: 'cli-token' })
    assert.deepEqual(c.trunks.map((t) => [t.url, t.network, t.name, t.token, t.ca]), [
      ['wss://a:8443/net/lab', 'lab', 'trunk-x', 'tok', 'ca.pem'],
      ['ws://b:8080/', 'default', undefined, 'cli-token', undefined],
      ['ws://c:8080/net/other', 'other', undefined, 'cli-token', undefined]
    ])
    assert.equal(c.bridgePriority, 4096)
    assert.equal(buildConfig({}, 'x').bridgePriority, 32768)
  })

  it('attack: no token, QEMU listener or trunk may take the name of its network\'s gateway port (the guards trust that name)', () => {
    const gw = { networks: { lab: { gateway: { subnet: '10.0.2.0/24' } }, other: {} } }
    const T = '0123456789abcdef-token'
    // The guards (DHCP snooping, ARP inspection) trust the port named like the gateway: a station behind such a token could offer leases and claim the gateway's address.
    assert.throws(() => buildConfig({ ...gw, tokens: [{ id: 'vm', token: T, network: 'lab', name: 'gateway' }] }, 'f.json'),
      /f\.json: tokens\[vm\]\.name: "gateway" is the name of network lab's gateway port/)
    // A token for no network in particular may join the gateway's network.
    assert.throws(() => buildConfig({ ...gw, tokens: [{ id: 'any', token: T, name: 'gateway' }] }, 'f.json'), /tokens\[any\]\.name: "gateway" is the name of network lab's gateway port/)
    assert.throws(() => buildConfig({ ...gw, qemu: [{ name: 'gateway', listen: 'unix:/tmp/q.sock', network: 'lab' }] }, 'f.json'), /qemu\[0\]\.name: "gateway"/)
    assert.throws(() => buildConfig({ ...gw, trunks: [{ url: 'ws://b:8080/net/lab', name: 'gateway' }] }, 'f.json'), /trunks\[0\]\.name: "gateway"/)
    // The name stays free where no gateway has it.
    assert.equal(buildConfig({ ...gw, tokens: [{ id: 'vm', token: T, network: 'other', name: 'gateway' }] }, 'f.json').tokens.size, 1)
    assert.equal(buildConfig({ ...gw, qemu: [{ name: 'gateway', listen: 'unix:/tmp/q.sock', network: 'other' }] }, 'f.json').qemu.length, 1)
  })

  describe('grantPolicy()', () => {
    const c = buildConfig(LAB, 'lab.json')
    const trunk = profileFor(c, 'router', 'default', true)
    const access = profileFor(c, 'host', 'default', true)

    it('gives the profile as it is when nothing is asked', () => {
      assert.equal(grantPolicy(trunk, undefined), trunk)
    })

    it('narrows a trunk profile to what the agent asks for', () => {
      const g = grantPolicy(trunk, { mode: 'trunk', vlans: [20] })
      assert.ok(typeof g !== 'string')
      assert.deepEqual(g.vlans, [20])
      assert.equal(g.pvid, 0)
      const a = grantPolicy(trunk, { mode: 'access', vlan: 10 })
      assert.ok(typeof a !== 'string')
      assert.equal(a.mode, MODE_ACCESS)
      assert.equal(a.pvid, 10)
    })

    it('refuses VLANs the profile does not allow, and a trunk on an access profile', () => {
      assert.match(grantPolicy(trunk, { mode: 'trunk', vlans: [10, 30] }) as string, /VLAN 30 not allowed/)
      assert.match(grantPolicy(access, { mode: 'access', vlan: 20 }) as string, /VLAN 20 is not allowed/)
      assert.match(grantPolicy(access, { mode: 'trunk', vlans: [10] }) as string, /may not be a trunk/)
    })
  })

  describe('networkFromPath()', () => {
    it('maps / to the default network and /net/<name> to <name>', () => {
      assert.equal(networkFromPath('/'), 'default')
      assert.equal(networkFromPath('/net/lab'), 'lab')
      assert.equal(networkFromPath('/net/lab/'), 'lab')
      assert.equal(networkFromPath('/other'), undefined)
      assert.equal(networkFromPath('/net/a/b'), undefined)
    })
  })
})

describe('deploy/switchd.example.json', () => {
  it('is a valid configuration', () => {
    const c = loadConfig(path.join(__dirname, '..', '..', 'deploy', 'switchd.example.json'))
    assert.equal(c.networks.get('lab')?.maxFrameSize, 9018)
    assert.equal(c.profiles.length, 5)
    assert.deepEqual(c.trunks.map((t) => [t.network, t.ca]), [['lab', '/etc/tapswitch/ca.pem']])
  })
})

describe('loadConfig()', () => {
  it('names the file and the problem for a missing file or bad JSON', () => {
    assert.throws(() => loadConfig('/nonexistent/switchd.json'), /\/nonexistent\/switchd\.json: ENOENT/)
    assert.throws(() => loadConfig(__filename), /config\.test\.ts: not valid JSON/)
  })
})
