/**
 * What switchd connects to besides WebSocket ports: QEMU VMs that dial in
 * (`qemu`, --qemu-listen: one listening socket each), TAPs on its own host
 * it serves itself (`taps`, --tap, with `busyPoll` and `fastPath`) and
 * trunks it dials to other switchd (`trunks`, --uplink).
 */

import type { Reader, Obj } from './reader'
import { splitList } from './reader'
import { NETWORK_NAME, DEFAULT_NETWORK, type ConfigOverrides, type SwitchdConfig, type TrunkSpec, type ListenAddress, type QemuSpec, type TapSpec } from './types'
import type { GatewaySpec } from './gateway'
import { isLoopback } from '../../../common/address'
import { NAME_PATTERN } from '../../../common/protocol'

const TRUNK_KEYS = ['url', 'network', 'name', 'token', 'ca', 'vlans']

/** The parts of the configuration this file reads. */
export type Endpoints = Pick<SwitchdConfig, 'qemu' | 'taps' | 'trunks' | 'busyPoll' | 'fastPath'>

/** `qemu`, `taps`, `trunks`, `busyPoll` and `fastPath`, under their flags; `gateways` for the one-name-one-port rule. */
export function readEndpoints (r: Reader, top: Obj, overrides: ConfigOverrides, gateways: readonly GatewaySpec[]): Endpoints {
  const qemu = Object.freeze(readQemu(r, top.qemu, overrides.qemuListen))
  const taps = Object.freeze(readTaps(r, top.taps, overrides.taps))
  const trunks = Object.freeze(readTrunks(r, top.trunks, overrides))
  const busyPoll = overrides.busyPoll ?? r.int(top.busyPoll, 'busyPoll', 0, MAX_BUSY_POLL, 0)
  const fastPath = overrides.fastPath ?? r.bool(top.fastPath, 'fastPath', true)
  // One name, one port: a TAP named like a QEMU listener or a gateway would make static entries and profiles ambiguous.
  taps.forEach((t, i) => {
    if (qemu.some((q) => q.name === t.name)) r.fail(`taps[${i}].name`, `"${t.name}" is also a qemu port's name`)
    if (gateways.some((g) => g.name === t.name && g.network === t.network)) r.fail(`taps[${i}].name`, `"${t.name}" is the name of network ${t.network}'s gateway port`)
  })
  return { qemu, taps, trunks, busyPoll, fastPath }
}

/**
 * One name, one port, for the gateway's too: the guards (DHCP snooping, ARP
 * inspection) trust the port named like the network's gateway, so a token
 * (for that network, or for none in particular), a QEMU listener or a trunk
 * we dial that took the name would let its station offer leases and claim
 * the gateway's address. Checked once the whole configuration is read.
 */
export function checkGatewayNames (r: Reader, config: Pick<SwitchdConfig, 'tokens' | 'gateways'> & Endpoints): void {
  const owner = (name: string | undefined, network: string | undefined): GatewaySpec | undefined =>
    config.gateways.find((g) => g.name === name && (network === undefined || g.network === network))
  const refuse = (key: string, g: GatewaySpec): never => r.fail(key, `"${g.name}" is the name of network ${g.network}'s gateway port: choose another name`)
  for (const t of config.tokens.values()) { const g = owner(t.name, t.network); if (g !== undefined) refuse(`tokens[${t.id}].name`, g) }
  config.qemu.forEach((q, i) => { const g = owner(q.name, q.network); if (g !== undefined) refuse(`qemu[${i}].name`, g) })
  config.trunks.forEach((t, i) => { const g = owner(t.name, t.network); if (g !== undefined) refuse(`trunks[${i}].name`, g) })
}

/** `unix:/path`, a bare absolute path, or `tcp:HOST:PORT`. */
function readListenAddress (r: Reader, v: unknown, key: string): ListenAddress {
  if (typeof v !== 'string') r.fail(key, 'expected unix:/path/to.sock or tcp:HOST:PORT')
  if (v.startsWith('unix:') && v.length > 5) return { kind: 'unix', path: v.slice(5) }
  if (v.startsWith('/')) return { kind: 'unix', path: v }
  const m = /^tcp:(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(v)
  if (m === null || Number(m[3]) > 65535) r.fail(key, 'expected unix:/path/to.sock or tcp:HOST:PORT')
  return { kind: 'tcp', host: (m[1] ?? m[2]) as string, port: Number(m[3]) }
}

/** Largest busyPoll, µs: longer than any idle gap worth bridging by spinning. */
export const MAX_BUSY_POLL = 100_000

/**
 * A Linux interface name (IFNAMSIZ: 15 bytes), that is also a port name: no
 * '/', ':', '%' (the kernel's tap%d template) or white space, not '.' or '..'.
 */
export const TAP_NAME = /^(?!\.\.?$)[A-Za-z0-9][A-Za-z0-9._-]{0,14}$/

export function readTaps (r: Reader, v: unknown, flag: string | undefined): TapSpec[] {
  const list: unknown[] = flag !== undefined
    ? splitList(flag).map((name) => ({ name }))
    : v === undefined ? [] : Array.isArray(v) ? v : r.fail('taps', 'expected a list of {name, network?, offload?, up?}')
  const names = new Set<string>()
  return list.map((e, i) => {
    const k = `taps[${i}]`
    const o = r.object(e, k, ['name', 'network', 'offload', 'up'])
    const name = r.str(o.name, `${k}.name`, TAP_NAME, undefined,
      'an interface name of 1-15 letters, digits, ".", "_" or "-" (--tap NAME,…)') ?? r.fail(`${k}.name`, 'required')
    if (names.has(name)) r.fail(`${k}.name`, `"${name}" twice`)
    names.add(name)
    const offload = r.str(o.offload, `${k}.offload`, /^(auto|on|off)$/, 'auto', '"auto", "on" or "off"') as TapSpec['offload']
    return { name, network: r.str(o.network, `${k}.network`, NETWORK_NAME, DEFAULT_NETWORK, 'a network name') as string, offload, up: r.bool(o.up, `${k}.up`, true) }
  })
}

export function readQemu (r: Reader, v: unknown, overrides: string | undefined): QemuSpec[] {
  const list: unknown[] = overrides !== undefined
    ? overrides.split(',').filter((x) => x !== '').map((x) => { const i = x.indexOf('='); return { name: x.slice(0, i), listen: x.slice(i + 1) } })
    : v === undefined ? [] : Array.isArray(v) ? v : r.fail('qemu', 'expected a list of {name, listen, network?}')
  const names = new Set<string>()
  return list.map((e, i) => {
    const k = `qemu[${i}]`
    const o = r.object(e, k, ['name', 'listen', 'network', 'allowRemote', 'socketMode'])
    const name = r.str(o.name, `${k}.name`, NAME_PATTERN, undefined, 'the port name (NAME=unix:/path with --qemu-listen)') ?? r.fail(`${k}.name`, 'required')
    if (names.has(name)) r.fail(`${k}.name`, `"${name}" twice`)
    names.add(name)
    const address = readListenAddress(r, o.listen, `${k}.listen`)
    const allowRemote = r.bool(o.allowRemote, `${k}.allowRemote`, false)
    // QEMU's -netdev stream has no authentication: whoever connects first is
    // the VM. Beyond loopback that is anyone who can reach the port, so it
    // takes an explicit opt-in, as listening without tokens does.
    if (address.kind === 'tcp' && !isLoopback(address.host) && !allowRemote) {
      r.fail(`${k}.listen`, `tcp:${address.host} is beyond loopback, and QEMU's stream has no authentication: anyone who reaches it ` +
        'could become this VM. Listen on 127.0.0.1 or a unix: socket, or set "allowRemote": true on this entry (config file)')
    }
    // Like a TAP's /dev/net/tun (0600) or libvirt's sockets: the socket file's
    // mode is who may be the VM. Never "other".
    const mode = r.str(o.socketMode, `${k}.socketMode`, /^0?6[06]0$/, '0600', '"0600" (owner only) or "0660" (owner and group)') as string
    return { name, network: r.str(o.network, `${k}.network`, NETWORK_NAME, DEFAULT_NETWORK, 'a network name') as string, address, allowRemote, socketMode: parseInt(mode, 8) }
  })
}

export function readTrunks (r: Reader, v: unknown, o: ConfigOverrides): TrunkSpec[] {
  const list: unknown[] = v === undefined ? [] : Array.isArray(v) ? [...v] : r.fail('trunks', 'expected a list of {url, network?, name?, token?, ca?, vlans?}')
  for (const url of splitList(o.uplink ?? '')) {
    list.push({ url, ...(o.uplinkToken !== undefined ? { token: o.uplinkToken } : {}), ...(o.uplinkCa !== undefined ? { ca: o.uplinkCa } : {}) })
  }
  return list.map((e, i) => {
    const k = `trunks[${i}]`
    const t = r.object(e, k, TRUNK_KEYS)
    if (typeof t.url !== 'string') r.fail(`${k}.url`, 'required: ws://HOST:PORT/net/NAME or wss://…')
    let u: URL
    try { u = new URL(t.url) } catch { r.fail(`${k}.url`, `not a URL: ${t.url}`) }
    if (u.protocol !== 'ws:' && u.protocol !== 'wss:') r.fail(`${k}.url`, `expected ws:// or wss://, not ${u.protocol}`)
    const m = /^\/(?:net\/([^/]+)\/?)?$/.exec(u.pathname)
    if (m === null) r.fail(`${k}.url`, `the path must be / or /net/NAME, not ${u.pathname}`)
    const network = r.str(t.network, `${k}.network`, NETWORK_NAME, m[1] ?? DEFAULT_NETWORK, 'a network name') as string
    if (!NETWORK_NAME.test(network)) r.fail(`${k}.url`, `"${network}" is not a network name`)
    return Object.freeze({
      url: t.url,
      network,
      name: r.str(t.name, `${k}.name`, NAME_PATTERN, undefined, 'a port name'),
      token: r.str(t.token, `${k}.token`, /^\S+$/, undefined, 'a token without spaces'),
      ca: r.str(t.ca, `${k}.ca`, /^.+$/, undefined, 'a PEM file'),
      vlans: t.vlans === undefined ? undefined : Object.freeze(r.vids(t.vlans, `${k}.vlans`))
    })
  })
}
