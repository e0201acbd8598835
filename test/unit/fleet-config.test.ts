/**
 * The fleet's flags (control/config/fleet.ts), the admission of the fleet
 * credential (daemon/admit.ts) and of a mesh hello (daemon/mesh-admit.ts),
 * with literals: every refusal names its cause and its fix.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { buildConfig } from '../../src/switch/control/config'
import { defaultReplica, readReplica } from '../../src/switch/control/config/fleet'
import { admitUpgrade, routeRequest, type AdmissionState, type RequestFacts } from '../../src/switch/daemon/admit'
import { meshVerdict, meshPolicy } from '../../src/switch/daemon/mesh-admit'
import { MODE_ACCESS, MODE_TRUNK } from '../../src/switch/core/port'
import { SUBPROTOCOL_V1 } from '../../src/common/protocol'

const TOKEN = 'fleet-credential-0123456789abcdef-0123456789'

function fleetConfig (over: Record<string, string | undefined>): ReturnType<typeof buildConfig> {
  return buildConfig({}, 'test', { fleet: 'http://10.0.0.2:8080', fleetToken: TOKEN, ...over })
}

describe('fleet configuration', () => {
  it('reads peers, the credential and the mesh VLANs', () => {
    const c = fleetConfig({ replica: 'r1', fleet: 'http://10.0.0.2:8080/, https://b.example:8443,dns://switchd-headless:8080', fleetVlans: '20,10,20' })
    assert.equal(c.replica, 'r1')
    assert.deepEqual(c.fleet?.peers, [
      { kind: 'url', url: 'http://10.0.0.2:8080' }, { kind: 'url', url: 'https://b.example:8443' }, { kind: 'dns', name: 'switchd-headless', port: 8080 }
    ])
    assert.equal(c.fleet?.token, TOKEN)
    assert.deepEqual(c.fleet?.vlans, [10, 20])
    assert.equal(buildConfig({}, 'test').fleet, undefined)
  })

  it('reads the credential from the file\'s first line', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-'))
    try {
      const file = path.join(dir, 'token')
      fs.writeFileSync(file, TOKEN + '\nignored\n')
      assert.equal(fleetConfig({ fleetToken: undefined, fleetTokenFile: file }).fleet?.token, TOKEN)
      assert.throws(() => fleetConfig({ fleetToken: undefined, fleetTokenFile: path.join(dir, 'absent') }), /--fleet-token-file .*absent: ENOENT/)
    } finally { fs.rmSync(dir, { recursive: true }) }
  })

  it('refuses, naming the cause and the fix', () => {
    assert.throws(() => fleetConfig({ fleetToken: undefined }), /--fleet needs the fleet credential: --fleet-token-file FILE or SWITCHD_FLEET_TOKEN/)
    assert.throws(() => fleetConfig({ fleetToken: 'short' }), /5 characters, fewer than 32: make a longer one/)
    assert.throws(() => fleetConfig({ fleetToken: TOKEN + ' x' }), /printable ASCII without spaces/)
    assert.throws(() => fleetConfig({ fleet: 'ftp://a:1' }), /unsupported scheme ftp: \(use http:\/\/, https:\/\/ or dns:\/\/\)/)
    assert.throws(() => fleetConfig({ fleet: 'http://a:1/net/lab' }), /base URL only/)
    assert.throws(() => fleetConfig({ fleet: 'dns://headless' }), /dns:\/\/NAME:PORT/)
    assert.throws(() => fleetConfig({ fleet: 'not a url' }), /not a URL/)
    assert.throws(() => fleetConfig({ fleetVlans: '1' }), /--fleet-vlans "1": expected VLAN ids from 2 to 4094/)
    assert.throws(() => buildConfig({}, 'test', { fleetVlans: '10' }), /--fleet-vlans is used only with --fleet/)
    assert.throws(() => buildConfig({}, 'test', { fleetTokenFile: '/x' }), /--fleet-token-file is used only with --fleet/)
    assert.throws(() => readReplica('R1'), /a replica name is a DNS label/)
  })

  it('makes a replica name of the host\'s name', () => {
    assert.equal(defaultReplica('Switchd-0.example.org'), 'switchd-0')
    assert.equal(defaultReplica('my_host'), 'my-host')
    assert.equal(defaultReplica('---'), 'switchd')
  })
})

function state (config = fleetConfig({ replica: 'r1' })): AdmissionState {
  return { config, closing: false, draining: false, listening: true, metricsHere: true, adminOpen: true, ports: 0, portsFrom: () => 0, networkRefusal: () => undefined, addressRefusal: () => undefined }
}

function req (url: string, headers: Record<string, string> = {}, method = 'GET'): RequestFacts {
  return { method, url, headers: { host: '127.0.0.1:8080', ...headers }, remote: '127.0.0.1' }
}

describe('fleet admission', () => {
  const bearer = { authorization: `Bearer ${TOKEN}` }

  it('/fleet/v1/state: 200 with the credential, 401 without or with another, 405 but to GET, 404 without --fleet', () => {
    assert.deepEqual(routeRequest(req('/fleet/v1/state', bearer), state()), { refuse: false, to: 'fleet', status: 200 })
    assert.deepEqual(routeRequest(req('/fleet/v1/state'), state()), { refuse: false, to: 'fleet', status: 401 })
    assert.deepEqual(routeRequest(req('/fleet/v1/state', { authorization: `Bearer ${TOKEN}x` }), state()), { refuse: false, to: 'fleet', status: 401 })
    assert.deepEqual(routeRequest(req('/fleet/v1/state', bearer, 'POST'), state()), { refuse: false, to: 'fleet', status: 405 })
    assert.deepEqual(routeRequest(req('/fleet/v1/state', bearer), state(buildConfig({}, 'test'))), { refuse: false, to: 'fleet', status: 404 })
  })

  it('the credential admits a tapswitch.v1 upgrade without a client token, marked fleet; never a raw one', () => {
    const withTokens = fleetConfig({ replica: 'r1' })
    const s = state({ ...withTokens, tokens: new Map([['x', { id: 'x', digest: 'x', trunk: false, rootGuard: false }]]) } as unknown as typeof withTokens)
    assert.deepEqual(admitUpgrade(req('/net/lab', { ...bearer, 'sec-websocket-protocol': SUBPROTOCOL_V1 }), s), { refuse: false, to: 'port', network: 'lab', grant: undefined, fleet: true })
    const raw = admitUpgrade(req('/net/lab', bearer), s)
    assert.ok(raw.refuse && raw.status === 400 && raw.reason === 'mesh_refused')
    const other = admitUpgrade(req('/net/lab', { authorization: `Bearer ${TOKEN}x`, 'sec-websocket-protocol': SUBPROTOCOL_V1 }), s)
    assert.ok(other.refuse && other.status === 401, 'another token is judged as a client token')
  })

  it('a mesh hello needs the credential, the credential needs a mesh hello, and a mesh link names its replica', () => {
    const mesh = { type: 'hello' as const, version: 1, name: 'mesh-r2', capabilities: ['mesh', 'offload'] }
    assert.deepEqual(meshVerdict(mesh, true), { mesh: true, peer: 'r2' })
    assert.match((meshVerdict(mesh, false) as { refuse: string }).refuse, /needs the fleet credential/)
    assert.match((meshVerdict({ type: 'hello', version: 1, capabilities: [] }, true) as { refuse: string }).refuse, /opens only mesh links/)
    assert.deepEqual(meshVerdict({ type: 'hello', version: 1 }, false), { mesh: false })
    assert.match((meshVerdict({ ...mesh, capabilities: ['mesh', 'trunk'] }, true) as { refuse: string }).refuse, /not a trunk/)
    assert.match((meshVerdict({ ...mesh, name: 'agent' }, true) as { refuse: string }).refuse, /mesh-<replica>/)
    assert.match((meshVerdict({ ...mesh, name: 'mesh-R2' }, true) as { refuse: string }).refuse, /mesh-<replica>/)
  })

  it('a mesh port carries VLAN 1 untagged and the fleet\'s VLANs tagged', () => {
    const plain = meshPolicy([], 8192)
    assert.deepEqual([plain.mode, plain.pvid, plain.vlans, plain.maxMacs], [MODE_ACCESS, 1, [1], 8192])
    const tagged = meshPolicy([10, 20], 100)
    assert.deepEqual([tagged.mode, tagged.pvid, tagged.vlans], [MODE_TRUNK, 1, [1, 10, 20]])
  })
})
