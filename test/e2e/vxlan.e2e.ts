/**
 * Issue 26's acceptance: VXLAN ports joined to what the Linux kernel and Open
 * vSwitch speak, all inside namespaces the test made (test/helpers/vxlan-fabric.ts):
 * switchd and the tap-agents that dial it run in a namespace of their own
 * whose bridge `ul` is the underlay (198.51.100.0/24, TEST-NET-2, never routed
 * in the root namespace); the kernel VTEPs, Open vSwitch and the hosts are
 * namespaces with veths into it.
 *
 *  - a Linux bridge with a kernel vxlan device (VNI 42) and a host behind it,
 *    and a host behind tap-agent: ping IPv4 and IPv6 both ways, ARP and
 *    neighbour discovery, iperf3 TCP both ways without a retransmit storm, the
 *    MTU (underlay - 50) on both sides and `underlay_mtu` counted when a host's
 *    MTU is wrong; a VTEP switchd does not list is dropped and counted;
 *  - two kernel VTEPs and a tap-agent host on one VNI: every broadcast reaches
 *    each station once, in a full mesh (split horizon) and through a hub
 *    (`"relay": true`); the fdb names the VTEP behind each MAC;
 *  - VNI-to-VLAN: a trunk on switchd sees each VNI's hosts tagged with its VLAN;
 *  - Open vSwitch's userspace datapath with a `type=vxlan` and a `type=geneve`
 *    port pings through switchd.
 *
 * Every wait is bounded; everything is stopped by PID and deleted in after(),
 * also when a test fails.
 */

import assert from 'node:assert/strict'
import { run, stopChild } from '../../src/lab/lab'
import { requireRoot } from '../helpers/root'
import { requireTools, spawnLogged, waitForLine, type Logged } from '../helpers/proc'
import { until, MIN_WAIT_MS } from '../helpers/net'
import { BroadcastCount } from '../helpers/broadcast'
import { pings, neighbour, iperf } from '../helpers/vxlan-checks'
import { VxlanFabric, UNDERLAY, SWITCHD_UNDERLAY, OVERLAY_MTU, UNDERLAY_MTU, type Station, type KernelVtep, type AgentHost } from '../helpers/vxlan-fabric'
import { OvsNetdev } from '../helpers/ovs'

const LISTEN = `${SWITCHD_UNDERLAY}:4789`
const K1 = `${UNDERLAY}.2`
const K2 = `${UNDERLAY}.3`
const OVS = `${UNDERLAY}.4`
const CLAB = `${UNDERLAY}.5`
const ROGUE = `${UNDERLAY}.9`

const TOOLS = [{ cmd: 'iperf3', pkg: 'iperf3' }, { cmd: 'curl', pkg: 'curl' }, { cmd: 'python3', pkg: 'python3' }, { cmd: 'bridge', pkg: 'iproute2' }, { cmd: 'tcpdump', pkg: 'tcpdump' }, { cmd: 'ethtool', pkg: 'ethtool' }]

/** A fabric for one describe(): made in before(), its log shown when a test fails, removed in after(). */
function useFabric (prefix: string, build: (f: VxlanFabric) => Promise<void>): VxlanFabric {
  const logs: string[] = []
  const f = new VxlanFabric(prefix, (l) => { logs.push(l); if (logs.length > 20_000) logs.splice(0, 5000) })
  before(async function () {
    requireRoot(this)
    requireTools(this, TOOLS)
    this.timeout(180_000)
    try {
      await build(f)
    } catch (err) {
      process.stderr.write(logs.slice(-60).join('\n') + '\n')
      throw err
    }
  })
  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(logs.slice(-60).join('\n') + '\n')
  })
  after(async function () {
    this.timeout(60_000)
    await f.stop()
  })
  return f
}

/** A TCP transfer with retransmits beyond this share of its segments is a storm (a lost datagram now and then is not). */
const RETRANSMIT_SHARE_MAX = 0.05

describe('e2e: a Linux bridge with a kernel vxlan device (VNI 42) and a tap-agent host on switchd', function () {
  this.timeout(120_000)
  let k1: KernelVtep
  let t: AgentHost
  const port = `vxlan42-${K1}`
  const f = useFabric('tvxa', async (f) => {
    await f.start({ vxlan: [{ listen: LISTEN, mtu: UNDERLAY_MTU, vnis: [{ vni: 42, network: 'default', remotes: [K1] }, { vni: 44, network: 'default', remotes: [CLAB] }] }] })
    k1 = await f.addVtep({ name: 'k1', addr: K1, vni: 42, flood: [SWITCHD_UNDERLAY], host: { mac: '02:00:5e:42:00:02', ipv4: '192.0.2.2', ipv6: '2001:db8:42::2' } })
    t = await f.addAgent({ name: 'host-t', address: { mac: '02:00:5e:42:00:10', ipv4: '192.0.2.10', ipv6: '2001:db8:42::10' } })
  })

  it('the VTEP is a port of kind vxlan named after the VNI and the VTEP, its remote the VTEP', async () => {
    const p = await f.portView(port)
    assert.equal(p.kind, 'vxlan')
    assert.equal(p.network, 'default')
    assert.equal(p.remote, `${K1}:4789`)
  })

  it('ping IPv4 and IPv6 both ways, after ARP and neighbour discovery resolved each other', async () => {
    for (const st of [k1.host, t]) await f.ip(st.ns, 'neigh', 'flush', 'dev', st.tap)
    await pings(f, t, k1.host.ipv4, 4)
    await pings(f, k1.host, t.ipv4, 4)
    await pings(f, t, k1.host.ipv6, 6)
    await pings(f, k1.host, t.ipv6, 6)
    assert.equal(await neighbour(f, t, k1.host.ipv4), k1.host.mac, 'ARP on the tap-agent host')
    assert.equal(await neighbour(f, k1.host, t.ipv4), t.mac, 'ARP behind the kernel VTEP')
    assert.equal(await neighbour(f, t, k1.host.ipv6), k1.host.mac, 'neighbour discovery on the tap-agent host')
    assert.equal(await neighbour(f, k1.host, t.ipv6), t.mac, 'neighbour discovery behind the kernel VTEP')
    assert.equal(await f.fdbPort(k1.host.mac), port, 'the fdb names the VTEP\'s port')
    assert.equal(await f.fdbPort(t.mac), 'host-t')
  })

  it('iperf3 TCP both ways, with no retransmit storm', async () => {
    for (const reverse of [false, true]) {
      const r = await iperf(f, k1.host, t, reverse)
      process.stdout.write(`      TCP ${reverse ? 'kernel VTEP host -> tap-agent host' : 'tap-agent host -> kernel VTEP host'}: ${r.bytes} bytes, ${r.retransmits} retransmits of ~${r.segments} segments\n`)
      assert.ok(r.bytes >= 16 * 1024 * 1024, `iperf3 sent its 16 MiB (${r.bytes})`)
      assert.ok(r.retransmits <= RETRANSMIT_SHARE_MAX * r.segments, `${r.retransmits} retransmits of ~${r.segments} segments (at most ${RETRANSMIT_SHARE_MAX * 100} %)`)
    }
  })

  it(`the MTU is the underlay's less 50 on both sides (${OVERLAY_MTU}), and a DF ping of that size passes both ways`, async () => {
    assert.equal(await f.mtuOf(k1.ns, k1.dev), OVERLAY_MTU, 'the kernel sizes its vxlan device')
    assert.equal(await f.mtuOf(k1.host.ns, k1.host.tap), OVERLAY_MTU)
    assert.equal(await f.mtuOf(t.ns, t.tap), OVERLAY_MTU, 'tap-agent --mtu')
    const v4 = OVERLAY_MTU - 28
    const v6 = OVERLAY_MTU - 48
    await pings(f, t, k1.host.ipv4, 4, { size: v4 })
    await pings(f, k1.host, t.ipv4, 4, { size: v4 })
    await pings(f, t, k1.host.ipv6, 6, { size: v6 })
    await pings(f, k1.host, t.ipv6, 6, { size: v6 })
    await assert.rejects(f.exec(t.ns, ['ping', '-4', '-n', '-c', '1', '-W', '2', '-M', 'do', '-s', String(v4 + 1), k1.host.ipv4]), /message too long|mtu/i, 'one byte more is refused at the host')
  })

  it('a host whose MTU is wrong (the underlay\'s): its too-big frames are counted underlay_mtu on the VTEP\'s port, not cut', async () => {
    const drops = async (): Promise<number> => await f.metric('switchd_port_drops_total', { port, reason: 'underlay_mtu' })
    const before = await drops()
    await f.ip(t.ns, 'link', 'set', t.tap, 'mtu', String(UNDERLAY_MTU))
    try {
      const { out } = await f.tryExec(t.ns, ['ping', '-4', '-n', '-q', '-c', '3', '-i', '0.2', '-W', '2', '-M', 'do', '-s', String(UNDERLAY_MTU - 28), k1.host.ipv4])
      assert.match(out, /3 packets transmitted, 0 received/, 'a 1514-byte frame does not fit in a 1500-byte underlay packet')
      await until(async () => await drops() >= before + 3, MIN_WAIT_MS, 'underlay_mtu counted')
    } finally {
      await f.ip(t.ns, 'link', 'set', t.tap, 'mtu', String(OVERLAY_MTU))
    }
    await pings(f, t, k1.host.ipv4, 4, { size: OVERLAY_MTU - 28 })
  })

  it('a containerlab-style vxlan link (one remote, learning on, made on the host and moved into the node) joins the same LAN on its own VNI', async () => {
    // What containerlab's `type: vxlan` link does (docs/VXLAN.md's recipe): the device is made in the host's
    // namespace, its underlay stays there, and it is moved into the node's namespace as the node's interface.
    const hostNs = `${f.prefix}-${f.tag}-clab`
    const nodeNs = `${hostNs}n`
    await f.netns(hostNs)
    await f.netns(nodeNs)
    await f.underlayLink(hostNs, 'clab', CLAB)
    await f.ip(hostNs, 'link', 'add', 'name', 'vx44', 'type', 'vxlan', 'id', '44', 'remote', SWITCHD_UNDERLAY, 'dstport', '4789', 'dev', 'ul0')
    await f.exec(hostNs, ['ethtool', '-K', 'vx44', 'tx', 'off'])
    await f.ip(hostNs, 'link', 'set', 'vx44', 'netns', nodeNs)
    await f.ip(nodeNs, 'link', 'set', 'vx44', 'name', 'eth1')
    const node = await f.address(nodeNs, 'clab-r1', 'eth1', { mac: '02:00:5e:44:00:05', ipv4: '192.0.2.44' }, OVERLAY_MTU)
    await pings(f, t, node.ipv4, 4)
    await pings(f, node, t.ipv4, 4)
    await pings(f, node, k1.host.ipv4, 4)
    assert.equal(await f.fdbPort(node.mac), `vxlan44-${CLAB}`)
  })

  it('attack: a VTEP switchd does not list reaches nobody, and is dropped and counted unlisted_source', async () => {
    const rogue = await f.addVtep({ name: 'k9', addr: ROGUE, vni: 42, flood: [SWITCHD_UNDERLAY], host: { mac: '02:00:5e:42:00:09', ipv4: '192.0.2.9' } })
    const dropped = async (): Promise<number> => await f.metric('switchd_vxlan_dropped_total', { reason: 'unlisted_source' })
    const before = await dropped()
    const { out } = await f.tryExec(rogue.host.ns, ['ping', '-4', '-n', '-q', '-c', '3', '-i', '0.2', '-W', '2', t.ipv4])
    assert.match(out, /3 packets transmitted, 0 received/)
    await until(async () => await dropped() > before, MIN_WAIT_MS, 'unlisted_source counted')
    const fdb = await f.api<Array<{ mac: string }>>('/api/v1/fdb')
    assert.ok(!fdb.some((e) => e.mac === rogue.host.mac), 'its MAC was never learned')
    assert.ok(!(await f.ports()).some((p) => p.name.endsWith(ROGUE)), 'no port for it')
    assert.equal(await neighbour(f, t, rogue.host.ipv4), '', 'its ARP requests never reached the tap-agent host')
  })
})

/** Two kernel VTEPs (VNI 42) and a tap-agent host; `hub`: the VTEPs list only switchd, which relays. */
function twoVteps (hub: boolean): void {
  let k1: KernelVtep
  let k2: KernelVtep
  let t: AgentHost
  const f = useFabric(hub ? 'tvxh' : 'tvxm', async (f) => {
    await f.start({ vxlan: [{ listen: LISTEN, vnis: [{ vni: 42, network: 'default', remotes: [K1, K2], ...(hub ? { relay: true } : {}) }] }] })
    k1 = await f.addVtep({ name: 'k1', addr: K1, vni: 42, flood: hub ? [SWITCHD_UNDERLAY] : [SWITCHD_UNDERLAY, K2], host: { mac: '02:00:5e:42:00:02', ipv4: '192.0.2.2' } })
    k2 = await f.addVtep({ name: 'k2', addr: K2, vni: 42, flood: hub ? [SWITCHD_UNDERLAY] : [SWITCHD_UNDERLAY, K1], host: { mac: '02:00:5e:42:00:03', ipv4: '192.0.2.3' } })
    t = await f.addAgent({ name: 'host-t', address: { mac: '02:00:5e:42:00:10', ipv4: '192.0.2.10' } })
  })

  it('every host pings every other, no frame twice, and the fdb names the VTEP behind each MAC', async () => {
    await pings(f, t, k1.host.ipv4, 4)
    await pings(f, t, k2.host.ipv4, 4)
    await pings(f, k1.host, k2.host.ipv4, 4)
    await pings(f, k2.host, t.ipv4, 4)
    assert.equal(await f.fdbPort(k1.host.mac), `vxlan42-${K1}`)
    assert.equal(await f.fdbPort(k2.host.mac), `vxlan42-${K2}`)
    assert.equal(await f.fdbPort(t.mac), 'host-t')
  })

  it('a broadcast from each station reaches every other exactly once, never its sender', async () => {
    const all = [t, k1.host, k2.host]
    for (const from of all) {
      const counts = await BroadcastCount.run(from, all, 50)
      for (const st of all) {
        const want = st === from ? { frames: 0, duplicates: 0, missing: 50 } : { frames: 50, duplicates: 0, missing: 0 }
        assert.deepEqual(counts.get(st.name), want, `${from.name}'s broadcasts at ${st.name}`)
      }
    }
  })
}

describe('e2e: two kernel VTEPs in a full mesh with switchd (VNI 42, split horizon)', function () {
  this.timeout(120_000)
  twoVteps(false)
})

describe('e2e: two kernel VTEPs that list only switchd, which relays ("relay": true)', function () {
  this.timeout(120_000)
  twoVteps(true)
})

/**
 * Tagged ARP requests from a trunk's TAP (this kernel has no 802.1Q module for VLAN subinterfaces): `count`
 * of them, `gap` seconds apart, each "who-has TARGET tell SENDER" in VLAN `vid`, from `mac`.
 */
const TAGGED_ARP = `
import socket, struct, sys, time
iface, mac, vid, sip, tip, count, gap = sys.argv[1], bytes.fromhex(sys.argv[2].replace(':', '')), int(sys.argv[3]), socket.inet_aton(sys.argv[4]), socket.inet_aton(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
arp = struct.pack('!HHBBH', 1, 0x0800, 6, 4, 1) + mac + sip + b'\\0' * 6 + tip
frame = (b'\\xff' * 6 + mac + struct.pack('!HH', 0x8100, vid) + b'\\x08\\x06' + arp).ljust(64, b'\\0')
for i in range(count):
    s.send(frame)
    time.sleep(gap)
`

describe('e2e: VNI to VLAN: a trunk on switchd sees each VNI\'s hosts tagged with its VLAN', function () {
  this.timeout(120_000)
  let k1: KernelVtep
  let k2: KernelVtep
  let r: AgentHost
  const f = useFabric('tvxv', async (f) => {
    await f.start({
      profiles: [{ match: 'router', mode: 'trunk', vlans: [10, 20], claimable: true }],
      vxlan: [{ listen: LISTEN, vnis: [{ vni: 42, network: 'default', vlan: 10, remotes: [K1] }, { vni: 43, network: 'default', vlan: 20, remotes: [K2] }] }]
    })
    k1 = await f.addVtep({ name: 'k1', addr: K1, vni: 42, flood: [SWITCHD_UNDERLAY], host: { mac: '02:00:5e:42:00:02', ipv4: '192.0.2.2' } })
    k2 = await f.addVtep({ name: 'k2', addr: K2, vni: 43, flood: [SWITCHD_UNDERLAY], host: { mac: '02:00:5e:43:00:02', ipv4: '203.0.113.2' } })
    r = await f.addAgent({ name: 'router', address: { mac: '02:00:5e:42:00:20' }, args: ['--trunk', '10,20'] })
  })

  /** Send tagged ARP requests from the trunk (a child stopped by its PID). */
  function arpFromTrunk (vid: number, sender: string, target: string, count: number, gap: number): Logged {
    return spawnLogged(`arp-${vid}`, 'ip', ['netns', 'exec', r.ns, 'python3', '-c', TAGGED_ARP, r.tap, r.mac, String(vid), sender, target, String(count), String(gap)], (l) => { f.onLog(`arp: ${l}`) })
  }

  /** The first frame tcpdump sees on `st`'s interface matching `filter` (with its link-layer header and tag), within MIN_WAIT_MS. */
  async function firstFrame (st: Station, filter: string, send: () => Logged): Promise<string> {
    const cap = spawnLogged('tcpdump', 'ip', ['netns', 'exec', st.ns, 'timeout', '90', 'tcpdump', '-l', '-n', '-e', '-c', '1', '-i', st.tap, filter], (l) => { f.onLog(`tcpdump: ${l}`) })
    let sender: Logged | undefined
    try {
      await waitForLine(cap, 'tcpdump', (l) => l.includes('listening on'), MIN_WAIT_MS)
      sender = send()
      return await waitForLine(cap, 'tcpdump', (l) => /^\d\d:\d\d:/.test(l), MIN_WAIT_MS)
    } finally {
      await stopChild(sender?.child)
      await stopChild(cap.child)
    }
  }

  it('each VNI\'s ports are access ports of its VLAN', async () => {
    const a = await f.portView(`vxlan42-${K1}`)
    const b = await f.portView(`vxlan43-${K2}`)
    assert.deepEqual([a.mode, a.pvid, a.vlans], ['access', 10, [10]])
    assert.deepEqual([b.mode, b.pvid, b.vlans], ['access', 20, [20]])
  })

  it('a VNI\'s host answers the trunk in its VLAN, and its answer reaches the trunk tagged with that VLAN', async () => {
    for (const [vid, host, sender] of [[10, k1.host, '192.0.2.20'], [20, k2.host, '203.0.113.20']] as const) {
      const line = await firstFrame(r, `vlan ${vid} and arp and ether src ${host.mac}`, () => arpFromTrunk(vid, sender, host.ipv4, 60, 0.5))
      assert.match(line, new RegExp(`vlan ${vid},.*Reply ${host.ipv4.replace(/\./g, '\\.')} is-at ${host.mac}`), `tagged ${vid}: ${line}`)
    }
    assert.equal(await f.fdbPort(k1.host.mac), `vxlan42-${K1}`)
    assert.equal(await f.fdbPort(k2.host.mac), `vxlan43-${K2}`)
  })

  it('the VLANs stay apart: what the trunk sends in VLAN 20 never reaches the VNI 42 host', async () => {
    // First five requests in VLAN 20 for the VNI 42 host's address, then (a second later, the barrier) VLAN 10
    // ones: the first request the host sees must be a VLAN 10 one.
    const line = await firstFrame(k1.host, `arp and ether src ${r.mac}`, () => spawnLogged('arp', 'bash', ['-c',
      `ip netns exec ${r.ns} python3 -c "$0" ${r.tap} ${r.mac} 20 203.0.113.20 ${k1.host.ipv4} 5 0.1 && sleep 1 && ip netns exec ${r.ns} python3 -c "$0" ${r.tap} ${r.mac} 10 192.0.2.20 ${k1.host.ipv4} 60 0.5`,
      TAGGED_ARP], (l) => { f.onLog(`arp: ${l}`) }))
    assert.match(line, /tell 192\.0\.2\.20/, `the first request the VNI 42 host got is the VLAN 10 one: ${line}`)
  })
})

describe('e2e: Open vSwitch (userspace datapath) with a VXLAN and a GENEVE tunnel port through switchd', function () {
  this.timeout(120_000)
  let ovs: OvsNetdev | undefined
  let t1: AgentHost
  let t2: AgentHost
  let o1: Station
  let o2: Station
  before(function () {
    requireTools(this, [{ cmd: 'ovs-vswitchd', pkg: 'openvswitch-switch' }, { cmd: 'ovsdb-server', pkg: 'openvswitch-common' }, { cmd: 'ovs-vsctl', pkg: 'openvswitch-switch' }])
  })
  // Before the fabric's own after(): OVS stops while its namespace is still there.
  after(async () => { await ovs?.stop() })
  const f = useFabric('tvxo', async (f) => {
    await f.start({
      vxlan: [{ listen: LISTEN, vnis: [{ vni: 42, network: 'default', remotes: [OVS] }] },
        { listen: `${SWITCHD_UNDERLAY}:6081`, encap: 'geneve', vnis: [{ vni: 43, network: 'gen', remotes: [OVS] }] }]
    })
    // switchd's datagrams leave with their UDP checksum whole: OVS reads the veth with AF_PACKET and
    // does not finish a checksum the kernel left to a NIC (datapath_drop_tunnel_pop_error otherwise).
    await f.exec(f.sw, ['ethtool', '-K', 'ul', 'tx', 'off'])
    const ns = `tvxo-${f.tag}-ovs`
    await f.netns(ns)
    await f.underlayLink(ns, 'ovs')
    ovs = new OvsNetdev(ns, f.onLog)
    await ovs.start()
    // The underlay address is on a bridge OVS owns (its tunnels route and resolve through it).
    await ovs.vsctl('add-br', 'br-ul', '--', 'set', 'bridge', 'br-ul', 'datapath_type=netdev')
    await ovs.vsctl('add-port', 'br-ul', 'ul0')
    await f.ip(ns, 'addr', 'add', `${OVS}/24`, 'dev', 'br-ul')
    await f.ip(ns, 'link', 'set', 'br-ul', 'up')
    const mac = (JSON.parse(await f.ip(f.sw, '-j', 'link', 'show', 'ul')) as Array<{ address: string }>)[0]?.address ?? ''
    await ovs.appctl('tnl/arp/set', 'br-ul', SWITCHD_UNDERLAY, mac)
    const hosts: Station[] = []
    for (const [br, type, key, ip] of [['br-vx', 'vxlan', 42, '192.0.2.4'], ['br-gv', 'geneve', 43, '192.0.2.5']] as const) {
      await ovs.vsctl('add-br', br, '--', 'set', 'bridge', br, 'datapath_type=netdev')
      await ovs.vsctl('add-port', br, `${type}0`, '--', 'set', 'interface', `${type}0`, `type=${type}`, `options:remote_ip=${SWITCHD_UNDERLAY}`, `options:key=${key}`)
      const hostNs = `${ns}-${type}`
      await f.netns(hostNs)
      await run('ip', ['link', 'add', 'name', `p-${type}`, 'netns', ns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', hostNs])
      await f.ip(ns, 'link', 'set', `p-${type}`, 'up')
      await ovs.vsctl('add-port', br, `p-${type}`)
      // The same for the host's own frames, which OVS reads from its veth.
      await f.exec(hostNs, ['ethtool', '-K', 'eth0', 'tx', 'off'])
      hosts.push(await f.address(hostNs, `ovs-${type}`, 'eth0', { mac: `02:00:5e:${key}:00:04`, ipv4: ip }, OVERLAY_MTU))
    }
    ;[o1, o2] = hosts as [Station, Station]
    t1 = await f.addAgent({ name: 'host-t1', address: { mac: '02:00:5e:42:00:10', ipv4: '192.0.2.10' } })
    t2 = await f.addAgent({ name: 'host-t2', path: '/net/gen', address: { mac: '02:00:5e:43:00:10', ipv4: '192.0.2.11' } })
  })
  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(`ovs-vswitchd.log:\n${ovs?.log().split('\n').slice(-30).join('\n') ?? ''}\n`)
  })

  it('a host behind OVS\'s type=vxlan port (key 42) and a tap-agent host ping each other both ways', async () => {
    await pings(f, t1, o1.ipv4, 4)
    await pings(f, o1, t1.ipv4, 4)
    await pings(f, t1, o1.ipv4, 4, { size: OVERLAY_MTU - 28 })
    assert.equal(await f.fdbPort(o1.mac), `vxlan42-${OVS}`)
    assert.equal((await f.portView(`vxlan42-${OVS}`)).kind, 'vxlan')
  })

  it('a host behind OVS\'s type=geneve port (key 43) and a tap-agent host ping each other both ways', async () => {
    await pings(f, t2, o2.ipv4, 4)
    await pings(f, o2, t2.ipv4, 4)
    await pings(f, t2, o2.ipv4, 4, { size: OVERLAY_MTU - 28 })
    assert.equal(await f.fdbPort(o2.mac), `geneve43-${OVS}`)
    assert.equal((await f.portView(`geneve43-${OVS}`)).kind, 'geneve')
  })
})
