/**
 * tap-agent's flags: what each means (SPECS, which --help and
 * docs/CONFIGURATION.md show), and the checked plan they make: the uplink,
 * the TAP, or the TAP-less endpoint (QEMU, VDE) instead. Every refusal names
 * the flag and how to write it; nothing is opened here.
 */

import * as os from 'node:os'
import * as fs from 'node:fs'
import type { OffloadMode, TapOptions } from '../common/tap'
import { netnsPath } from './netns'
import type { UplinkOptions, UplinkTls } from '../common/uplink'
import { intOption, numberOption, hostPortOption, type Specs, type Values } from '../common/cli'
import { MAX_QEMU_VMS } from './modes'
import { parseSocketAddress, parseDgramSpec, type SocketAddress, type DgramSpec } from './qemu'
import { parseMac } from '../common/ethernet'
import { NAME_PATTERN, type VlanRequest } from '../common/protocol'
import { DEFAULT_COALESCE_USECS, MAX_COALESCE_USECS } from './native-link'
import { TapswitchError, ERR_CONFIG } from '../common/errors'

export const SPECS = {
  url: { type: 'string', env: 'TAP_AGENT_URL', arg: 'URL[,URL…]', help: 'switchd to connect to, ws://host:port/ or wss://… (required); several, comma-separated, are tried in turn' },
  token: { type: 'string', env: 'TAP_AGENT_TOKEN', arg: 'TOKEN', help: 'token switchd asks for (prefer the environment variable: flags show in ps)' },
  ca: { type: 'string', env: 'TAP_AGENT_CA', arg: 'FILE', help: 'PEM CA bundle to trust for wss:// instead of the system CAs' },
  cert: { type: 'string', env: 'TAP_AGENT_CERT', arg: 'FILE', help: 'PEM client certificate, for a switch that asks for one' },
  key: { type: 'string', env: 'TAP_AGENT_KEY', arg: 'FILE', help: 'PEM key of --cert' },
  carrier: { type: 'boolean', env: 'TAP_AGENT_CARRIER', help: 'the TAP\'s carrier follows the uplink: guests see link down while it is down (Linux >= 5.0)' },
  user: { type: 'string', env: 'TAP_AGENT_USER', arg: 'USER', help: 'after opening the TAP, drop root and run as this user (the TAP keeps working)' },
  attach: { type: 'boolean', env: 'TAP_AGENT_ATTACH', help: 'attach to an existing persistent TAP and leave its configuration alone (no privilege needed if it belongs to this user)' },
  tap: { type: 'string', env: 'TAP_AGENT_TAP', default: '', arg: 'NAME', help: 'TAP to create or attach; empty lets the kernel pick tapN' },
  netns: { type: 'string', env: 'TAP_AGENT_NETNS', arg: 'NAME', help: 'create (or --attach) the TAP inside this network namespace (ip netns add NAME) and configure it there; tap-agent itself stays where it runs' },
  name: { type: 'string', env: 'TAP_AGENT_NAME', arg: 'NAME', help: 'port name shown on the switch [default: hostname:tap]' },
  mtu: { type: 'string', env: 'TAP_AGENT_MTU', arg: 'BYTES', help: 'TAP MTU [default: follow the switch, max frame size - 18]' },
  vlan: { type: 'string', env: 'TAP_AGENT_VLAN', arg: 'VID', help: 'ask for an access port in this VLAN (the switch\'s profile must allow it)' },
  trunk: { type: 'string', env: 'TAP_AGENT_TRUNK', arg: 'VID,VID…', help: 'ask for a trunk carrying these VLANs tagged (the TAP then sees 802.1Q tags)' },
  native: { type: 'string', env: 'TAP_AGENT_NATIVE', arg: 'VID', help: 'with --trunk: the VLAN carried untagged' },
  mac: { type: 'string', env: 'TAP_AGENT_MAC', arg: 'MAC', help: 'TAP MAC address, e.g. 02:00:00:00:00:01 [default: the kernel\'s random one]' },
  address: { type: 'string', env: 'TAP_AGENT_ADDRESS', arg: 'IPv4/PREFIX', help: 'IPv4 address to give the TAP, e.g. 192.168.77.1/24' },
  down: { type: 'boolean', env: 'TAP_AGENT_DOWN', help: 'leave the TAP link down (for configuring it yourself)' },
  'qemu-listen': { type: 'string', env: 'TAP_AGENT_QEMU_LISTEN', arg: 'unix:PATH|tcp:HOST:PORT', help: 'no TAP: listen for QEMU (-netdev stream,server=off,addr.type=unix,addr.path=PATH); no privilege needed' },
  'qemu-max-vms': { type: 'string', env: 'TAP_AGENT_QEMU_MAX_VMS', default: '1', arg: 'N', help: `with --qemu-listen: VMs connected at once (1 to ${MAX_QEMU_VMS}), each a port of its own (NAME, NAME-2, …); more are refused` },
  'qemu-allow-remote': { type: 'boolean', env: 'TAP_AGENT_QEMU_ALLOW_REMOTE', help: 'let --qemu-listen tcp: listen beyond loopback: anyone who reaches it can be the VM (QEMU streams have no authentication)' },
  'qemu-connect': { type: 'string', env: 'TAP_AGENT_QEMU_CONNECT', arg: 'unix:PATH|tcp:HOST:PORT', help: 'no TAP: connect to a QEMU listening with -netdev stream,server=on (reconnects when it restarts)' },
  'qemu-dgram': { type: 'string', env: 'TAP_AGENT_QEMU_DGRAM', arg: 'local=H:P,remote=H:P', help: 'no TAP: QEMU -netdev dgram over UDP, or over Unix datagram sockets with local=unix:PATH,remote=unix:PATH (remote = QEMU\'s local address), one frame per datagram' },
  'vde-stdio': { type: 'boolean', env: 'TAP_AGENT_VDE_STDIO', help: 'no TAP: a VDE stream cable on stdin/stdout, e.g. dpipe vde_plug SWITCH = tap-agent --vde-stdio …' },
  mask: { type: 'string', env: 'TAP_AGENT_MASK', default: 'auto', arg: 'auto|always|never', help: 'WebSocket masking: auto = a zero mask (no CPU) over wss:// and loopback, random elsewhere' },
  'no-fast-path': { type: 'boolean', env: 'TAP_AGENT_NO_FAST_PATH', help: 'carry frames on the event loop (ws) only: no native thread between the TAP and a ws:// uplink (docs/LOCAL-TAPS.md)' },
  'coalesce-usecs': { type: 'string', env: 'TAP_AGENT_COALESCE_USECS', default: String(DEFAULT_COALESCE_USECS), arg: 'USEC', help: 'after the native link reads a burst of 32 frames or more from the TAP (a flood\'s; a lone frame, a ping, never makes one), read it again only USEC µs later (0 to 200, 0: at once): fewer wake-ups on the whole path, and a flood it cannot carry yields the CPU to the rest of the path (docs/LOCAL-TAPS.md)' },
  'udp-runs': { type: 'boolean', env: 'TAP_AGENT_UDP_RUNS', help: 'write a run of up to 64 UDP datagrams of one flow from the switch to the TAP as one frame the kernel segments back (USO, Linux 6.2+; off by default): less CPU a datagram, but what looks at the frame before the segmentation sees one for the run: a capture, a firewall rule\'s counter, rate limit or length match, an ICMP error sent back, a bridge\'s MTU check (docs/LOCAL-TAPS.md)' },
  'no-cpu-follow': { type: 'boolean', env: 'TAP_AGENT_NO_CPU_FOLLOW', help: 'leave the native thread\'s CPU affinity alone: by default it runs on the CPU the uplink\'s frames arrive on while its link is quiet, and off it (mostly down) or on it (mostly up) during a flood (docs/LOCAL-TAPS.md)' },
  offload: { type: 'string', env: 'TAP_AGENT_OFFLOAD', default: 'auto', arg: 'auto|on|off', help: 'TAP offloads (TSO, checksums) as 64 KiB frames: auto = when the TAP and the switch both can (off with --attach); on = fail if the TAP cannot' },
  'metrics-listen': { type: 'string', env: 'TAP_AGENT_METRICS_LISTEN', arg: 'HOST:PORT', help: 'serve Prometheus /metrics (and /healthz) here' },
  'reconnect-max': { type: 'string', env: 'TAP_AGENT_RECONNECT_MAX', default: '5', arg: 'SECONDS', help: 'longest wait between reconnect attempts' },
  'log-level': { type: 'string', env: 'TAP_AGENT_LOG_LEVEL', default: 'info', arg: 'LEVEL', help: 'debug, info, warn or error' },
  'log-format': { type: 'string', env: 'TAP_AGENT_LOG_FORMAT', default: 'auto', arg: 'auto|text|json', help: 'log lines as text for a person or JSON for a program; auto = text when stderr is a terminal (coloured unless NO_COLOR is set), JSON otherwise' },
  help: { type: 'boolean', short: 'h', help: 'show this help' }
} satisfies Specs

export const ABOUT = `tap-agent opens a Linux TAP device and carries its Ethernet frames over a
WebSocket to switchd, and frames from switchd back into the TAP. It needs
CAP_NET_ADMIN to create the TAP. If switchd goes away it reconnects with
backoff; the TAP stays up meanwhile.`

type Options = Values<typeof SPECS>

/** A TAP-less endpoint instead of a TAP: which one and its address. */
export type EndpointPlan =
  | { mode: 'qemu-listen', address: SocketAddress, maxVms: number, allowRemote: boolean }
  | { mode: 'qemu-connect', address: SocketAddress }
  | { mode: 'qemu-dgram', spec: DgramSpec }
  | { mode: 'vde-stdio' }

/** What the flags ask for, checked. */
export interface AgentPlan {
  uplink: UplinkOptions
  tap: TapOptions
  /** The TAP-less endpoint, with its port name; undefined for a TAP. */
  endpoint: (EndpointPlan & { name: string }) | undefined
  metricsAt: { host: string, port: number } | undefined
  /** --user: the user to become once the TAP is open. */
  dropTo: string | undefined
  carrier: boolean
  attach: boolean
  /** A native thread may carry a TAP's ws:// uplink (not --no-fast-path). */
  fastPath: boolean
  /** That thread runs where the uplink's frames arrive while its link is quiet, and is placed by a flood's direction (not --no-cpu-follow). */
  cpuFollow: boolean
  /** That thread writes a run of UDP datagrams of one flow to the TAP as one (--udp-runs). */
  udpRuns: boolean
  /** That thread reads a flood's TAP again only this many µs later (--coalesce-usecs). */
  coalesceUsecs: number
  netnsName: string | undefined
}

/** The checked plan from parseCli's values, or a TapswitchError (ERR_CONFIG) that names the flag. */
export function agentPlan (o: Options): AgentPlan {
  const { urls, tls } = uplinkTargets(o)
  if (o.user !== undefined && !/^[a-z_][a-z0-9_-]*\$?$/i.test(o.user)) throw new TapswitchError(ERR_CONFIG, `--user ${o.user}: not a user name`)
  const mac = macOption(o.mac)
  const tapName = o.tap ?? ''
  if (tapName.length > 15) throw new TapswitchError(ERR_CONFIG, `--tap ${tapName}: interface names have at most 15 characters`)
  const mtu = o.mtu === undefined ? undefined : intOption('mtu', o.mtu, 68, 65535)
  const vlan = parseVlanFlags(o.vlan, o.trunk, o.native)
  const maskText = o.mask as string
  if (maskText !== 'auto' && maskText !== 'always' && maskText !== 'never') throw new TapswitchError(ERR_CONFIG, `--mask ${maskText}: expected auto, always or never`)
  const offloadText = o.offload as string
  if (offloadText !== 'auto' && offloadText !== 'on' && offloadText !== 'off') throw new TapswitchError(ERR_CONFIG, `--offload ${offloadText}: expected auto, on or off`)
  // --attach leaves a persistent TAP's settings alone, offloads included, unless asked.
  const offload: OffloadMode = o.attach && offloadText === 'auto' ? 'off' : offloadText
  if (o.name !== undefined && !NAME_PATTERN.test(o.name)) throw new TapswitchError(ERR_CONFIG, `--name ${o.name}: letters, digits and . _ : @ - only, at most 64`)
  if (o.attach && tapName === '') throw new TapswitchError(ERR_CONFIG, '--attach needs --tap NAME (the persistent TAP to attach to)')
  const netns = o.netns === undefined ? undefined : netnsPath(o.netns)
  const tap: TapOptions = { name: tapName, mtu, mac, up: !o.down && !o.attach, ipv4: o.address === undefined ? undefined : parseAddress(o.address), offload, netns, attach: o.attach }
  const metricsAt = o['metrics-listen'] === undefined ? undefined : hostPortOption('metrics-listen', o['metrics-listen'])
  const endpoint = endpointPlan(o)
  const uplink: UplinkOptions = { url: urls[0] as string, urls, token: o.token, tls, mask: maskText, vlan, reconnectMax: numberOption('reconnect-max', o['reconnect-max'], 0.25, 3600) }
  // A TAP-less endpoint names its port itself (NAME, NAME-2, … for several VMs); a TAP's default name waits for the TAP's.
  if (endpoint === undefined) Object.assign(uplink, { name: o.name, mtu })
  return { uplink, tap, endpoint, metricsAt, dropTo: o.user, carrier: o.carrier, attach: o.attach, netnsName: o.netns, fastPath: !o['no-fast-path'], cpuFollow: !o['no-cpu-follow'], udpRuns: o['udp-runs'] === true, coalesceUsecs: intOption('coalesce-usecs', o['coalesce-usecs'], 0, MAX_COALESCE_USECS) }
}

/** --url (one or several, comma-separated) and the PEM files of --ca, --cert and --key. */
function uplinkTargets (o: Options): { urls: string[], tls: UplinkTls } {
  if (o.url === undefined) throw new TapswitchError(ERR_CONFIG, '--url is required (or TAP_AGENT_URL), e.g. --url ws://127.0.0.1:8080/')
  const urls = o.url.split(',').map((u) => u.trim()).filter((u) => u !== '').map((u) => {
    let url: URL
    try { url = new URL(u) } catch { throw new TapswitchError(ERR_CONFIG, `--url ${u}: not a URL`) }
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new TapswitchError(ERR_CONFIG, `--url ${u}: expected ws:// or wss://`)
    return url.href
  })
  if (urls.length === 0) throw new TapswitchError(ERR_CONFIG, '--url is empty')
  if ((o.cert === undefined) !== (o.key === undefined)) throw new TapswitchError(ERR_CONFIG, '--cert and --key go together')
  const readPem = (flag: string, file: string | undefined): Buffer | undefined => {
    if (file === undefined) return undefined
    try { return fs.readFileSync(file) } catch (err) { throw new TapswitchError(ERR_CONFIG, `--${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`) }
  }
  return { urls, tls: { ca: readPem('ca', o.ca), cert: readPem('cert', o.cert), key: readPem('key', o.key) } }
}

/** --mac: a unicast MAC, or undefined for the kernel's random one. */
function macOption (text: string | undefined): Buffer | undefined {
  if (text === undefined) return undefined
  const mac = parseMac(text)
  if (mac === undefined) throw new TapswitchError(ERR_CONFIG, `--mac ${text}: expected six hex bytes, e.g. 02:00:00:00:00:01`)
  if (((mac[0] as number) & 1) === 1) throw new TapswitchError(ERR_CONFIG, `--mac ${text}: a multicast address cannot be a source; clear the lowest bit of the first byte`)
  return mac
}

/** --qemu-listen, --qemu-connect, --qemu-dgram or --vde-stdio: at most one, and without the TAP's flags. */
function endpointPlan (o: Options): (EndpointPlan & { name: string }) | undefined {
  const modes = (['qemu-listen', 'qemu-connect', 'qemu-dgram', 'vde-stdio'] as const).filter((m) => o[m] !== undefined && o[m] !== false)
  if (modes.length > 1) throw new TapswitchError(ERR_CONFIG, `--${modes.join(' and --')} exclude each other: one endpoint per agent`)
  if (o['qemu-max-vms'] !== '1' && o['qemu-listen'] === undefined) throw new TapswitchError(ERR_CONFIG, '--qemu-max-vms: only with --qemu-listen')
  if (modes.length === 0) return undefined
  const tapOnly: string[] = [
    ...(['tap', 'netns', 'mac', 'address', 'mtu', 'user'] as const).filter((f) => o[f] !== undefined && o[f] !== ''),
    ...(['down', 'carrier', 'attach'] as const).filter((f) => o[f]),
    ...(o.offload !== 'auto' ? ['offload'] : [])
  ]
  if (tapOnly.length > 0) throw new TapswitchError(ERR_CONFIG, `--${tapOnly.join(', --')}: only for a TAP, not with --${modes[0] as string}`)
  const name = o.name ?? sanitize(`${os.hostname()}:qemu`)
  if (o['qemu-listen'] !== undefined) {
    const address = parseSocketAddress('qemu-listen', o['qemu-listen'])
    return { mode: 'qemu-listen', name, address, maxVms: intOption('qemu-max-vms', o['qemu-max-vms'], 1, MAX_QEMU_VMS), allowRemote: o['qemu-allow-remote'] }
  }
  if (o['qemu-connect'] !== undefined) return { mode: 'qemu-connect', name, address: parseSocketAddress('qemu-connect', o['qemu-connect']) }
  if (o['qemu-dgram'] !== undefined) return { mode: 'qemu-dgram', name, spec: parseDgramSpec(o['qemu-dgram']) }
  return { mode: 'vde-stdio', name: o.name ?? sanitize(`${os.hostname()}:vde`) }
}

function parseAddress (text: string): { address: string, prefixLength: number } {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(text)
  if (m === null || (m[1] as string).split('.').some((o) => Number(o) > 255) || Number(m[2]) > 32) {
    throw new TapswitchError(ERR_CONFIG, `--address ${text}: expected IPv4/PREFIX, e.g. 192.168.77.1/24`)
  }
  return { address: m[1] as string, prefixLength: Number(m[2]) }
}

function parseVid (flag: string, text: string): number {
  return intOption(flag, text, 1, 4094)
}

/** --vlan N, or --trunk A,B[,…] [--native N]: the VLAN mode to ask the switch for. */
function parseVlanFlags (vlan: string | undefined, trunk: string | undefined, native: string | undefined): VlanRequest | undefined {
  if (vlan !== undefined && trunk !== undefined) throw new TapswitchError(ERR_CONFIG, '--vlan and --trunk exclude each other: an access port or a trunk')
  if (native !== undefined && trunk === undefined) throw new TapswitchError(ERR_CONFIG, '--native goes with --trunk')
  if (vlan !== undefined) return { mode: 'access', vlan: parseVid('vlan', vlan) }
  if (trunk === undefined) return undefined
  const vlans = trunk.split(',').map((v) => parseVid('trunk', v.trim()))
  return native === undefined ? { mode: 'trunk', vlans } : { mode: 'trunk', vlans, native: parseVid('native', native) }
}

/** Hostnames may hold characters a port name may not. */
export function sanitize (name: string): string {
  const s = name.replace(/[^A-Za-z0-9._:@-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64)
  return s === '' ? 'agent' : s
}
