/**
 * A network's gateway in the configuration (`networks.NAME.gateway`, see
 * docs/GATEWAY.md): DHCP, DNS, NAT and published ports served by libslirp in
 * a QEMU child of switchd (io/gateway.ts). Validated here, with the key in
 * every message; the addresses become integers once, so the gateway port
 * compares them on the frame path without parsing.
 *
 * Published ports are where the outside reaches into the lab: a host address
 * beyond loopback opens a station's service to the host's whole network, so
 * it takes `"allowRemote": true` on that entry, as QEMU listeners do.
 */

import { isLoopback } from '../../../common/address'
import { parseMac, macAt } from '../../../common/ethernet'
import { parseIpv4, formatIpv4 } from '../../../common/dhcp'
import { formatHostPorts, type StaticLease, type PublishedPort, type HostPorts, type GatewaySpec } from '../../core/gateway-spec'

/** Reports a bad key and never returns (config.ts's Reader.fail). */
export type Fail = (key: string, expected: string) => never

export const GATEWAY_KEYS = ['subnet', 'address', 'dns', 'dhcp', 'dhcpStart', 'poolSize', 'leaseTime', 'leasesPerPort', 'leasesPerClient', 'staticLeases', 'dnsForward', 'nat', 'publish', 'qemu', 'user',
  'hostPorts', 'flowsPerClient', 'maxFlows']
/**
 * The largest dynamic pool: the default pool runs from dhcpStart to the end
 * of the subnet, up to this many addresses (a /20's worth). The lease table,
 * its file and an offer's search are bounded by it.
 */
export const MAX_POOL_SIZE = 4096
/** Lease time (`leaseTime`), seconds: default, and bounds. */
export const DEFAULT_LEASE_TIME = 3600
export const MIN_LEASE_TIME = 60
export const MAX_LEASE_TIME = 7 * 24 * 3600
/** Addresses one port may hold at once (`leasesPerPort`). */
export const DEFAULT_LEASES_PER_PORT = 4
/**
 * Addresses one client may hold at once (`leasesPerClient`), by default this
 * part of the pool: a client (a WebSocket address or IPv6 /64, as for flows)
 * may open a thousand ports, and leasesPerPort alone let one take the pool.
 */
export const DEFAULT_CLIENT_POOL_SHARE = 4
export const MAX_STATIC_LEASES = 256
export const MAX_PUBLISHED = 64
export const MAX_HOST_PORTS = 64
/** Host sockets (flows) the gateway's child may hold for the stations, and each client's share of them (issue 21). */
export const DEFAULT_MAX_FLOWS = 4096
export const DEFAULT_FLOWS_PER_CLIENT = 256
export const MAX_MAX_FLOWS = 65536
/** The port name of every gateway in its network. */
export const GATEWAY_PORT_NAME = 'gateway'

export type { StaticLease, PublishedPort, HostPorts, GatewaySpec } from '../../core/gateway-spec'
export { formatHostPorts } from '../../core/gateway-spec'

type Obj = Record<string, unknown>

function object (fail: Fail, v: unknown, key: string, allowed: readonly string[]): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(key, 'expected an object')
  for (const k of Object.keys(v)) if (!allowed.includes(k)) fail(`${key}.${k}`, `unknown key (expected one of ${allowed.join(', ')})`)
  return v as Obj
}

function bool (fail: Fail, v: unknown, key: string, def: boolean): boolean {
  if (v === undefined) return def
  if (typeof v !== 'boolean') fail(key, 'expected true or false')
  return v
}

function int (fail: Fail, v: unknown, key: string, min: number, max: number, def: number): number {
  if (v === undefined) return def
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(key, `expected an integer from ${min} to ${max}`)
  return v
}

function address (fail: Fail, v: unknown, key: string, def: number): number {
  if (v === undefined) return def
  const ip = typeof v === 'string' ? parseIpv4(v) : undefined
  if (ip === undefined) fail(key, 'expected an IPv4 address like 10.0.2.2')
  return ip
}

/** `IPv4:PORT` as [address, port]. */
function endpoint (fail: Fail, v: unknown, key: string, example: string): [string, number] {
  const m = typeof v === 'string' ? /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(v) : null
  if (m === null || parseIpv4(m[1] as string) === undefined || Number(m[2]) < 1 || Number(m[2]) > 65535) fail(key, `expected IPv4:PORT like ${example}`)
  return [m[1] as string, Number(m[2])]
}

/**
 * The subnet and the addresses in it: the gateway's, DNS's and the dynamic
 * pool's. `inside` is a host address of the subnet (not its network or
 * broadcast address).
 */
interface Addressing {
  subnet: number
  prefix: number
  mask: number
  address: number
  dns: number
  dhcpStart: number
  poolSize: number
  inside: (ip: number) => boolean
}

/** Validate `networks.<network>.gateway`; `fail` throws TSW_ERR_CONFIG naming the key. */
export function readGateway (fail: Fail, v: unknown, key: string, network: string): GatewaySpec {
  const o = object(fail, v, key, GATEWAY_KEYS)
  const a = readAddressing(fail, o, key)
  const guestAddress = (ip: number, k: string): void => {
    if (!a.inside(ip) || ip === a.address || ip === a.dns) fail(k, 'must be a station address inside subnet (not address or dns)')
  }
  const staticLeases = readStaticLeases(fail, o.staticLeases, `${key}.staticLeases`, guestAddress)
  // The pool's own addresses, less those it never gives: it must have one to give.
  const inPool = (ip: number): boolean => ip >= a.dhcpStart && ip < a.dhcpStart + a.poolSize
  const reservedInPool = [a.address, a.dns, ...staticLeases.map((l) => l.ip)].filter(inPool).length
  if (a.poolSize - reservedInPool < 1) fail(`${key}.poolSize`, 'the pool holds no address to give (the gateway, DNS and static addresses in it are never offered): make it larger')

  const natRaw = o.nat ?? true
  if (natRaw !== true && natRaw !== false && natRaw !== 'host') fail(`${key}.nat`, 'expected true (the outside and this host), "host" (this host only) or false (neither)')
  const nat = natRaw === true ? 'on' : natRaw === false ? 'off' : 'host'
  const publish = readPublish(fail, o.publish, `${key}.publish`, guestAddress)
  const hostPorts = readHostPorts(fail, o.hostPorts, `${key}.hostPorts`, nat)
  const maxFlows = integer(fail, o.maxFlows, `${key}.maxFlows`, DEFAULT_MAX_FLOWS, 16, MAX_MAX_FLOWS)
  const flowsPerClient = integer(fail, o.flowsPerClient, `${key}.flowsPerClient`, Math.min(DEFAULT_FLOWS_PER_CLIENT, maxFlows), 1, maxFlows)
  const qemu = o.qemu ?? 'qemu-system-x86_64'
  if (typeof qemu !== 'string' || !/^[^\s,]+$/.test(qemu)) fail(`${key}.qemu`, 'expected the QEMU binary: a name on PATH or a path (no spaces or commas)')
  const user = o.user ?? 'nobody'
  if (typeof user !== 'string' || !/^([a-z_][a-z0-9_-]{0,31}|\d{1,10})$/.test(user)) fail(`${key}.user`, 'expected a user name or uid')
  return Object.freeze({
    network,
    name: GATEWAY_PORT_NAME,
    subnet: a.subnet,
    prefix: a.prefix,
    mask: a.mask,
    address: a.address,
    dns: a.dns,
    dhcp: bool(fail, o.dhcp, `${key}.dhcp`, true),
    dhcpStart: a.dhcpStart,
    poolSize: a.poolSize,
    leaseTime: int(fail, o.leaseTime, `${key}.leaseTime`, MIN_LEASE_TIME, MAX_LEASE_TIME, DEFAULT_LEASE_TIME),
    leasesPerPort: int(fail, o.leasesPerPort, `${key}.leasesPerPort`, 1, MAX_POOL_SIZE, DEFAULT_LEASES_PER_PORT),
    leasesPerClient: int(fail, o.leasesPerClient, `${key}.leasesPerClient`, 1, a.poolSize, Math.max(1, Math.floor(a.poolSize / DEFAULT_CLIENT_POOL_SHARE))),
    staticLeases,
    dnsForward: bool(fail, o.dnsForward, `${key}.dnsForward`, true),
    nat,
    publish,
    hostPorts,
    maxFlows,
    flowsPerClient,
    qemu,
    user
  })
}

/** `subnet`, `address`, `dns`, `dhcpStart` and `poolSize`: each inside the subnet, the pool within it. */
function readAddressing (fail: Fail, o: Obj, key: string): Addressing {
  const sm = typeof o.subnet === 'string' ? /^([\d.]+)\/(\d{1,2})$/.exec(o.subnet) : o.subnet === undefined ? ['', '10.0.2.0', '24'] : null
  const net = sm === null ? undefined : parseIpv4(sm[1] as string)
  const prefix = Number(sm?.[2])
  if (net === undefined || prefix < 8 || prefix > 27) fail(`${key}.subnet`, 'expected an IPv4 subnet from /8 to /27, like 10.0.2.0/24')
  const mask = (0xffffffff << (32 - prefix)) >>> 0
  if ((net & ~mask) !== 0) fail(`${key}.subnet`, `host bits are set: write its network address, ${formatIpv4((net & mask) >>> 0)}/${prefix}`)
  const broadcast = (net | ~mask) >>> 0
  const inside = (ip: number): boolean => ((ip & mask) >>> 0) === net && ip !== net && ip !== broadcast
  const gw = address(fail, o.address, `${key}.address`, net + 2)
  if (!inside(gw)) fail(`${key}.address`, 'must be a host address inside subnet')
  const dns = address(fail, o.dns, `${key}.dns`, net + 3)
  if (!inside(dns) || dns === gw) fail(`${key}.dns`, 'must be a host address inside subnet, other than address')
  const dhcpStart = address(fail, o.dhcpStart, `${key}.dhcpStart`, net + 15)
  if (!inside(dhcpStart)) fail(`${key}.dhcpStart`, 'must be a host address inside subnet')
  // Default: to the end of the subnet (never its broadcast address), at most MAX_POOL_SIZE.
  const room = broadcast - dhcpStart
  const poolSize = int(fail, o.poolSize, `${key}.poolSize`, 1, MAX_POOL_SIZE, Math.min(room, MAX_POOL_SIZE))
  if (poolSize > room) fail(`${key}.poolSize`, `${poolSize} addresses from dhcpStart ${formatIpv4(dhcpStart)} would reach past the subnet's last host address (at most ${room})`)
  return { subnet: net, prefix, mask, address: gw, dns, dhcpStart, poolSize, inside }
}

/** `staticLeases`: [{mac, ip}], each MAC and each address at most once. */
function readStaticLeases (fail: Fail, v: unknown, key: string, guestAddress: (ip: number, k: string) => void): readonly StaticLease[] {
  const leasesRaw = v ?? []
  if (!Array.isArray(leasesRaw) || leasesRaw.length > MAX_STATIC_LEASES) fail(key, `expected a list of at most ${MAX_STATIC_LEASES} {mac, ip}`)
  const macs = new Set<number>()
  const ips = new Set<number>()
  return Object.freeze((leasesRaw as unknown[]).map((e, i): StaticLease => {
    const k = `${key}[${i}]`
    const l = object(fail, e, k, ['mac', 'ip'])
    const b = typeof l.mac === 'string' ? parseMac(l.mac) : undefined
    if (b === undefined || ((b[0] as number) & 1) === 1) fail(`${k}.mac`, 'expected a station MAC like 02:00:00:00:00:01')
    const mac = macAt(b, 0)
    if (macs.has(mac)) fail(`${k}.mac`, 'this MAC has a static lease already')
    macs.add(mac)
    const ip = address(fail, l.ip, `${k}.ip`, 0)
    guestAddress(ip, `${k}.ip`)
    if (ips.has(ip)) fail(`${k}.ip`, 'this address has a static lease already')
    ips.add(ip)
    return Object.freeze({ mac, ip })
  }))
}

/** `publish`: [{proto, host, guest, allowRemote}], each host address and port once; beyond loopback only with allowRemote. */
function readPublish (fail: Fail, v: unknown, key: string, guestAddress: (ip: number, k: string) => void): readonly PublishedPort[] {
  const pubRaw = v ?? []
  if (!Array.isArray(pubRaw) || pubRaw.length > MAX_PUBLISHED) fail(key, `expected a list of at most ${MAX_PUBLISHED} {proto, host, guest}`)
  const seen = new Set<string>()
  return Object.freeze((pubRaw as unknown[]).map((e, i): PublishedPort => {
    const k = `${key}[${i}]`
    const p = object(fail, e, k, ['proto', 'host', 'guest', 'allowRemote'])
    const proto = p.proto ?? 'tcp'
    if (proto !== 'tcp' && proto !== 'udp') fail(`${k}.proto`, 'expected "tcp" or "udp"')
    const [hostAddress, hostPort] = endpoint(fail, p.host, `${k}.host`, '127.0.0.1:2222')
    const [guestText, guestPort] = endpoint(fail, p.guest, `${k}.guest`, '10.0.2.15:22')
    const guest = parseIpv4(guestText) as number
    guestAddress(guest, `${k}.guest`)
    const allowRemote = bool(fail, p.allowRemote, `${k}.allowRemote`, false)
    // Whoever reaches the host address reaches the station's service, unauthenticated.
    if (!isLoopback(hostAddress) && !allowRemote) {
      fail(`${k}.host`, `${hostAddress} is beyond loopback: anyone who reaches this host there would reach ${guestText}:${guestPort}. ` +
        'Publish on 127.0.0.1 (and tunnel to it), or set "allowRemote": true on this entry')
    }
    const id = `${proto}:${hostAddress}:${hostPort}`
    if (seen.has(id)) fail(`${k}.host`, `${proto} ${hostAddress}:${hostPort} is published twice`)
    seen.add(id)
    return Object.freeze({ proto, hostAddress, hostPort, guest, guestPort, allowRemote })
  }))
}

function integer (fail: Fail, v: unknown, key: string, def: number, min: number, max: number): number {
  if (v === undefined) return def
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(key, `expected a whole number from ${min} to ${max}`)
  return v
}

/**
 * `hostPorts`: ["tcp:8080", "udp:5353", "tcp:8000-8010"]. A station reaches
 * nothing of this host unless listed here (issue 21). switchd's own ports
 * are refused when the gateway starts (io/gateway.ts), once they are bound.
 */
function readHostPorts (fail: Fail, v: unknown, key: string, nat: GatewaySpec['nat']): readonly HostPorts[] {
  if (v === undefined) return Object.freeze([])
  if (!Array.isArray(v) || v.length > MAX_HOST_PORTS) fail(key, `expected a list of at most ${MAX_HOST_PORTS} ports like "tcp:8080", "udp:5353" or "tcp:8000-8010"`)
  if (v.length > 0 && nat === 'off') fail(key, 'nat is false (QEMU restrict=on): the stations reach no port of this host; set "nat": "host" to let them reach these')
  return Object.freeze((v as unknown[]).map((e, i): HostPorts => {
    const m = typeof e === 'string' ? /^(tcp|udp):(\d{1,5})(?:-(\d{1,5}))?$/.exec(e) : null
    const from = Number(m?.[2])
    const to = m?.[3] === undefined ? from : Number(m[3])
    if (m === null || from < 1 || to > 65535 || to < from) fail(`${key}[${i}]`, 'expected "tcp:PORT", "udp:PORT" or a range "tcp:FROM-TO", ports 1 to 65535')
    return Object.freeze({ proto: m[1] as 'tcp' | 'udp', from, to })
  }))
}

/**
 * No gateway's `hostPorts` may take in a port a gateway publishes where slirp
 * reaches this host (127.0.0.1, or every address): a station would reach
 * that network's station through the back door, and each of its connections
 * would cost a child two sockets (its own, and the one the published port
 * accepts) where the station's share counts one (measured: 16 flows, 32
 * descriptors).
 */
export function checkHostPortsPublished (fail: Fail, gateways: readonly GatewaySpec[]): void {
  for (const g of gateways) {
    for (const [i, h] of g.hostPorts.entries()) {
      for (const o of gateways) {
        const p = o.publish.find((x) => x.proto === h.proto && x.hostPort >= h.from && x.hostPort <= h.to && (x.hostAddress === '127.0.0.1' || x.hostAddress === '0.0.0.0'))
        if (p === undefined) continue
        fail(`networks.${g.network}.gateway.hostPorts[${i}]`, `${formatHostPorts(h)} includes ${p.proto} ${p.hostAddress}:${p.hostPort}, which networks.${o.network}.gateway publishes: ` +
          'a station would reach that station\'s service through this host, and each connection would hold two of the gateway\'s sockets where its share counts one. List other ports')
      }
    }
  }
}

