/**
 * `vxlan` (or --vxlan-listen / --vxlan): VXLAN and GENEVE listeners, each
 * with its VNIs, each VNI with its network, VLAN and remote VTEPs
 * (docs/VXLAN.md). Every (VNI, VTEP) pair becomes one port named
 * `<name>-<VTEP address>`.
 *
 * VXLAN has no authentication: the remotes are the allowlist of who may
 * send, so they must be IP addresses (a host name would make the allowlist
 * whatever a resolver answers), each once, of the listener's family. Ports
 * are bounded (256 VTEPs a VNI, 4096 ports in all). A listener beyond
 * loopback is allowed (the allowlist is the remotes), with one warning that
 * names the trust model.
 */

import * as net from 'node:net'
import type { Reader, Obj } from './reader'
import { splitList } from './reader'
import { NETWORK_NAME, DEFAULT_NETWORK, type ConfigOverrides, type SwitchdConfig, type VxlanSpec, type VniSpec, type VtepSpec } from './types'
import { NAME_PATTERN } from '../../../common/protocol'
import { VID_MAX, VID_MIN } from '../../../common/vlan'
import { isLoopback } from '../../../common/address'
import { VXLAN_PORT, GENEVE_PORT, VNI_MAX } from '../../core/encap'
import { MODE_ACCESS, type PortPolicy } from '../../core/port'
import { logger } from '../../../common/log'

const log = logger('config')

export const VXLAN_KEYS = ['listen', 'encap', 'mtu', 'sourcePorts', 'vnis']
export const VNI_KEYS = ['vni', 'network', 'vlan', 'name', 'relay', 'remotes']
/** Remote VTEPs of one VNI, and ports of every listener together. */
export const MAX_REMOTES = 256
export const MAX_VXLAN_PORTS = 4096
/** Sockets one listener may send from. */
export const MAX_SOURCE_PORTS = 64
export const DEFAULT_SOURCE_PORTS = 16
/** The underlay MTU: IPv6's minimum to the largest IP datagram. */
export const MIN_UNDERLAY_MTU = 1280
export const MAX_UNDERLAY_MTU = 65535
/** A port name prefix: leaves room for `-` and an IPv6 address within NAME_PATTERN's 64 characters. */
const PREFIX = /^[A-Za-z0-9][A-Za-z0-9._-]{0,23}$/

/** The listeners, from the flags if given (they replace the file's), else from the file. */
export function readVxlan (r: Reader, v: unknown, o: ConfigOverrides): VxlanSpec[] {
  if (o.vxlanListen !== undefined && o.vxlan === undefined) r.fail('--vxlan-listen', 'needs --vxlan VNI[=NETWORK[/VLAN]]@REMOTE[+REMOTE…] (the VNIs it carries)')
  const list: unknown[] = o.vxlan !== undefined
    ? [{ listen: o.vxlanListen, vnis: vnisFromFlag(r, o.vxlan) }]
    : v === undefined ? [] : Array.isArray(v) ? v : r.fail('vxlan', 'expected a list of {listen, encap?, mtu?, sourcePorts?, vnis}')
  const specs = list.map((e, i) => readListener(r, e, `vxlan[${i}]`))
  checkAcross(r, specs)
  for (const s of specs) {
    if (!isLoopback(s.host)) {
      log.warn('vxlan_exposed', {
        listen: hostPort(s.host, s.port),
        trust: `${s.encap.toUpperCase()} has no authentication: anyone who can send from a listed VTEP's address on the underlay can inject frames into its VNI`,
        fix: 'keep the underlay on a private link or a WireGuard tunnel (docs/VXLAN.md "Trust")'
      })
    }
  }
  return specs
}

/** `--vxlan 42@10.0.0.2+10.0.0.3,43=lab/20@10.0.0.9` as the file's `vnis`. */
function vnisFromFlag (r: Reader, flag: string): Obj[] {
  return splitList(flag).map((item, i) => {
    const m = /^(\d+)(?:=([^/@]+)(?:\/(\d+))?)?@(.+)$/.exec(item)
    if (m === null) r.fail(`--vxlan[${i}]`, `"${item}": expected VNI[=NETWORK[/VLAN]]@REMOTE[+REMOTE…], e.g. 42@10.0.0.2+10.0.0.3 or 43=lab/20@10.0.0.9`)
    const o: Obj = { vni: Number(m[1]), remotes: (m[4] as string).split('+') }
    if (m[2] !== undefined) o.network = m[2]
    if (m[3] !== undefined) o.vlan = Number(m[3])
    return o
  })
}

function readListener (r: Reader, e: unknown, k: string): VxlanSpec {
  const o = r.object(e, k, VXLAN_KEYS)
  const encap = r.str(o.encap, `${k}.encap`, /^(vxlan|geneve)$/, 'vxlan', '"vxlan" or "geneve"') as 'vxlan' | 'geneve'
  const [host, port] = readListen(r, o.listen, `${k}.listen`, encap === 'vxlan' ? VXLAN_PORT : GENEVE_PORT)
  const mtu = r.int(o.mtu, `${k}.mtu`, MIN_UNDERLAY_MTU, MAX_UNDERLAY_MTU, 1500)
  const sourcePorts = r.int(o.sourcePorts, `${k}.sourcePorts`, 0, MAX_SOURCE_PORTS, DEFAULT_SOURCE_PORTS)
  if (!Array.isArray(o.vnis) || o.vnis.length === 0) r.fail(`${k}.vnis`, 'expected a non-empty list of {vni, network?, vlan?, name?, relay?, remotes}')
  const seen = new Set<number>()
  const vnis = (o.vnis as unknown[]).map((x, j) => {
    const vni = readVni(r, x, `${k}.vnis[${j}]`, encap, net.isIPv6(host) ? 6 : 4)
    if (seen.has(vni.vni)) r.fail(`${k}.vnis[${j}].vni`, `VNI ${vni.vni} twice in one listener: list its remotes in one entry`)
    seen.add(vni.vni)
    return vni
  })
  return Object.freeze({ host, port, encap, mtu, sourcePorts, vnis: Object.freeze(vnis) })
}

/** `HOST[:PORT]`, `[V6]:PORT` or a bare IPv6 address; HOST an IP address (it is bound); default 127.0.0.1. */
function readListen (r: Reader, v: unknown, key: string, defPort: number): [string, number] {
  if (v === undefined) return ['127.0.0.1', defPort]
  const what = 'HOST[:PORT] with HOST an IP address to bind, e.g. 127.0.0.1:4789, 0.0.0.0 or [::1]:4789'
  if (typeof v !== 'string') r.fail(key, `expected ${what}`)
  const hp = splitAddress(v)
  if (hp === undefined) r.fail(key, `"${v}": expected ${what}`)
  const odd = unusable(hp[0])
  if (odd !== undefined) r.fail(key, `${hp[0]} ${odd}`)
  return [hp[0], hp[1] ?? defPort]
}

/** An IP address with an optional port: `a.b.c.d`, `a.b.c.d:P`, `v6`, `[v6]`, `[v6]:P`; canonical text. Undefined if not one. */
function splitAddress (text: string): [string, number | undefined] | undefined {
  const m = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(text) ?? /^([^:]+):(\d{1,5})$/.exec(text)
  const host = m !== null ? m[1] as string : text
  const port = m !== null && m[2] !== undefined ? Number(m[2]) : undefined
  if (port !== undefined && port > 65535) return undefined
  const family = net.isIP(host)
  if (family === 0) return undefined
  if (m !== null && m[0].startsWith('[') !== (family === 6)) return undefined
  // As a datagram's source reads (inet_ntop): fd00:0::03 is fd00::3.
  return [new net.SocketAddress({ address: host, family: family === 6 ? 'ipv6' : 'ipv4' }).address, port]
}

function readVni (r: Reader, x: unknown, k: string, encap: string, family: number): VniSpec {
  const o = r.object(x, k, VNI_KEYS)
  if (o.vni === undefined) r.fail(`${k}.vni`, `required: the VNI, 0 to ${VNI_MAX}`)
  const vni = r.int(o.vni, `${k}.vni`, 0, VNI_MAX, 0)
  const network = r.str(o.network, `${k}.network`, NETWORK_NAME, DEFAULT_NETWORK, 'a network name') as string
  const vlan = r.int(o.vlan, `${k}.vlan`, VID_MIN, VID_MAX, 1)
  const name = r.str(o.name, `${k}.name`, PREFIX, `${encap}${vni}`, 'a port name prefix of 1-24 letters, digits, ".", "_" or "-"') as string
  const relay = r.bool(o.relay, `${k}.relay`, false)
  if (!Array.isArray(o.remotes) || o.remotes.length === 0) r.fail(`${k}.remotes`, 'expected a non-empty list of remote VTEP addresses, e.g. ["10.0.0.2", "10.0.0.3:4789"]')
  if (o.remotes.length > MAX_REMOTES) r.fail(`${k}.remotes`, `${o.remotes.length} remotes: at most ${MAX_REMOTES} per VNI (each is a port, and every flood one copy each)`)
  const defPort = encap === 'vxlan' ? VXLAN_PORT : GENEVE_PORT
  const seen = new Set<string>()
  const remotes = (o.remotes as unknown[]).map((t, j): VtepSpec => {
    const key = `${k}.remotes[${j}]`
    const hp = typeof t === 'string' ? splitAddress(t) : undefined
    if (hp === undefined) r.fail(key, `${JSON.stringify(t)}: expected an IP address with an optional port (10.0.0.2, 10.0.0.2:4789, [fd00::2]:4789); no host names: the remotes are the allowlist of who may send`)
    const [address, port] = hp
    if (!isUnicast(address)) r.fail(key, `${address} is not a unicast address: a VTEP is one host (switchd floods by a copy to each, not by a multicast group)`)
    const odd = unusable(address)
    if (odd !== undefined) r.fail(key, `${address} ${odd}`)
    if ((net.isIPv6(address) ? 6 : 4) !== family) r.fail(key, `${address} is IPv${family === 6 ? 4 : 6}, the listener IPv${family}: listen on an address of the remotes' family (one listener per family)`)
    if (seen.has(address)) r.fail(key, `${address} twice in VNI ${vni}: a VTEP is one port (its datagrams are matched by address alone)`)
    seen.add(address)
    if (port === 0) r.fail(key, `${address}:0: the port must be 1-65535 (or left out: ${defPort})`)
    return Object.freeze({ address, port: port ?? defPort })
  })
  const full = `${name}-${remotes[0]?.address ?? ''}`
  if (!NAME_PATTERN.test(full)) r.fail(`${k}.name`, `"${full}" is not a port name: choose a shorter prefix`)
  return Object.freeze({ vni, network, vlan, name, relay, remotes: Object.freeze(remotes) })
}

/** Across listeners: one address and port each, bounded ports, names unique in each network. */
function checkAcross (r: Reader, specs: readonly VxlanSpec[]): void {
  const listens = new Set<string>()
  const prefixes = new Map<string, string>()
  let ports = 0
  specs.forEach((s, i) => {
    const where = hostPort(s.host, s.port)
    if (s.port !== 0 && listens.has(where)) r.fail(`vxlan[${i}].listen`, `${where} twice: one listener per address and port (list the VNIs in one entry)`)
    listens.add(where)
    s.vnis.forEach((v, j) => {
      ports += v.remotes.length
      v.remotes.forEach((rem, m) => {
        const self = specs.findIndex((o) => isListener(o, rem))
        if (self >= 0) r.fail(`vxlan[${i}].vnis[${j}].remotes[${m}]`, `${hostPort(rem.address, rem.port)} is vxlan[${self}], switchd's own listener: switchd would flood to itself and learn its own stations there (a loop with "relay"). List the other VTEPs`)
      })
      const key = `${v.network}\u0000${v.name}`
      const other = prefixes.get(key)
      if (other !== undefined) r.fail(`vxlan[${i}].vnis[${j}].name`, `"${v.name}" is also the name of ${other} in network ${v.network}: port names must be unique, give one a "name"`)
      prefixes.set(key, `vxlan[${i}] VNI ${v.vni}`)
    })
  })
  if (ports > MAX_VXLAN_PORTS) r.fail('vxlan', `${ports} (VNI, VTEP) ports: at most ${MAX_VXLAN_PORTS} in all`)
}

/** Not unspecified, broadcast or multicast (the address a datagram can come from, and one host to send to). */
function isUnicast (address: string): boolean {
  if (net.isIPv6(address)) return address !== '::' && !/^ff/i.test(address)
  const first = Number(address.split('.')[0])
  return address !== '0.0.0.0' && address !== '255.255.255.255' && !(first >= 224 && first <= 239)
}

/**
 * Why an address of the right syntax can never be matched or reached, or
 * undefined. A datagram's source is compared as text: an IPv4-mapped address
 * never arrives on an IPv6-only socket (IPv4 senders are another family),
 * and a link-local one arrives with its zone (`fe80::1%eth0`) that the
 * canonical text has lost; no datagram comes from 0/8 or 240/4.
 */
function unusable (address: string): string | undefined {
  if (net.isIPv6(address)) {
    if (/^::ffff:/i.test(address)) return 'is an IPv4-mapped address: give the IPv4 address, with a listener on an IPv4 address'
    if (/^fe[89ab]/i.test(address)) return 'is link-local: its zone (%interface) cannot be kept; use a global or unique-local (fd00::/8) address'
    return undefined
  }
  const first = Number(address.split('.')[0])
  if (first === 0 && address !== '0.0.0.0') return 'is in 0.0.0.0/8 ("this network"): no datagram comes from it'
  if (first >= 240 && address !== '255.255.255.255') return 'is in 240.0.0.0/4 (reserved): no datagram comes from it'
  return undefined
}

/** Whether a listener at host:port receives what is sent to `remote` (its own address; loopback when it listens on all). */
function isListener (s: VxlanSpec, remote: VtepSpec): boolean {
  if (s.port === 0 || remote.port !== s.port) return false
  return remote.address === s.host || ((s.host === '0.0.0.0' || s.host === '::') && isLoopback(remote.address))
}

function hostPort (host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`
}

/** The port name prefixes (`vxlan42-`) the configuration reserves, in `network` (or any when undefined). */
export function vxlanPrefixes (config: Pick<SwitchdConfig, 'vxlan'>, network?: string): string[] {
  const out: string[] = []
  for (const s of config.vxlan) for (const v of s.vnis) if (network === undefined || v.network === network) out.push(`${v.name}-`)
  return out
}

/**
 * A VTEP port's policy: an access port of its VNI's VLAN, the rest
 * (maxMacs, storm, condition) from `profile`, the one its name selects; or
 * undefined when `name` is no VTEP port of `network`. At start and on every
 * reload alike (control/networks.ts policyFor): the profile alone would put
 * the port in the profile's VLAN, bridging the VNI into it.
 */
export function vtepPolicy (config: Pick<SwitchdConfig, 'vxlan'>, network: string, name: string, profile: PortPolicy): PortPolicy | undefined {
  for (const s of config.vxlan) {
    for (const v of s.vnis) {
      if (v.network !== network || !name.startsWith(`${v.name}-`)) continue
      const address = name.slice(v.name.length + 1)
      if (v.remotes.some((r) => r.address === address)) return Object.freeze({ ...profile, mode: MODE_ACCESS, pvid: v.vlan, vlans: Object.freeze([v.vlan]) })
    }
  }
  return undefined
}

/** Whether `name` starts with a reserved VXLAN prefix: a hello may not claim it (a VTEP's port is named by the configuration). */
export function isVxlanName (config: Pick<SwitchdConfig, 'vxlan'>, name: string): boolean {
  for (const s of config.vxlan) for (const v of s.vnis) if (name.startsWith(`${v.name}-`)) return true
  return false
}

/**
 * One name, one port: a token, QEMU listener or TAP may not be named like a
 * VTEP's port (`<prefix>-…`), or profiles and static entries would be
 * ambiguous. Checked once the whole configuration is read.
 */
export function checkVxlanNames (r: Reader, config: Pick<SwitchdConfig, 'vxlan' | 'tokens' | 'qemu' | 'taps'>): void {
  if (config.vxlan.length === 0) return
  const refuse = (key: string, name: string): never => r.fail(key, `"${name}" starts with a VXLAN port prefix (${vxlanPrefixes(config).join(', ')}): choose another name`)
  for (const t of config.tokens.values()) if (t.name !== undefined && isVxlanName(config, t.name)) refuse(`tokens[${t.id}].name`, t.name)
  config.qemu.forEach((q, i) => { if (isVxlanName(config, q.name)) refuse(`qemu[${i}].name`, q.name) })
  config.taps.forEach((t, i) => { if (isVxlanName(config, t.name)) refuse(`taps[${i}].name`, t.name) })
}
