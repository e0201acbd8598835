/**
 * The configuration's shapes and the names every part of it shares: what
 * buildConfig returns (SwitchdConfig and the settings it holds), the flags
 * that override the file, and the network-name rule. A leaf: it imports
 * nothing of this folder's readers (only gateway.ts's spec, itself a leaf),
 * so the readers and index.ts import it without a circle.
 */

import type { PortPolicy } from '../../core/port'
import type { StaticEntry } from '../../core/statics'
import type { GuardSpec } from '../../core/guard'
import type { TokenGrant } from '../auth'
import type { GatewaySpec } from './gateway'
import type { FleetSpec } from '../../core/fleet-plan'

export const NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
export const DEFAULT_NETWORK = 'default'

export interface NetworkSettings {
  name: string
  maxFrameSize: number
  ageingTime: number
  fdbMax: number
  loopMoves: number
  /** ms */
  loopWindow: number
  /** s */
  loopHoldDown: number
  /** ms a MAC's port must have been quiet before another port may take the MAC (fdb.ts) */
  moveHold: number
  /** Bit X: flood 01:80:c2:00:00:0X (`forwardGroups`; core/classify.ts forwardsGroup) */
  groupFwdMask: number
  statics: readonly StaticEntry[]
  /** DHCP snooping, ARP inspection, IP source guard (`guards`, core/guard.ts); absent: off. Listed networks only. */
  guards?: GuardSpec
}


export const PORT_KEYS = ['mode', 'vlan', 'vlans', 'native', 'maxMacs', 'violation', 'storm', 'condition']

export interface Profile {
  /** The glob as written, for messages. */
  match: string
  pattern: RegExp
  network: string | undefined
  policy: PortPolicy
  /**
   * Whether a port that merely names itself (a hello name: a claim) gets it.
   * Otherwise only names switchd or the configuration gives (token pins,
   * QEMU names, names switchd makes up) do: see docs/CONFIGURATION.md "Trusted names and claims".
   */
  claimable: boolean
}

export type { TrunkSpec, ListenAddress, VxlanSpec, VniSpec, VtepSpec } from '../../core/endpoint-spec'
import type { TrunkSpec, ListenAddress, VxlanSpec } from '../../core/endpoint-spec'

/** One QEMU listener of `qemu` (or `--qemu-listen`). */
export interface QemuSpec {
  name: string
  network: string
  address: ListenAddress
  /** A tcp: address beyond loopback was asked for on purpose (`"allowRemote": true`). */
  allowRemote: boolean
  /** Mode of a unix: socket file: 0o600 (default, switchd's user only) or 0o660 (and its group). */
  socketMode: number
}

/** One TAP of `taps` (or `--tap`): switchd opens it and is its port, with no agent in between. */
export interface TapSpec {
  /** The interface name, and the port's name. */
  name: string
  network: string
  /** IFF_VNET_HDR and TSO: 'auto' when the kernel can, 'on' or fail, 'off' never (as tap-agent's --offload). */
  offload: 'auto' | 'on' | 'off'
  /** Bring the link up once opened (default true; false leaves it to whoever moves it into a namespace). */
  up: boolean
}

export interface SwitchdConfig {
  listen: string
  pingInterval: number
  portBuffer: number
  /** Whether /net/<name> not listed in `networks` is created on first use. */
  dynamicNetworks: boolean
  /** Most networks at once (bounds memory when dynamic). */
  maxNetworks: number
  /** Settings of networks not listed (dynamic ones, and the default). */
  networkDefaults: Omit<NetworkSettings, 'name' | 'statics'>
  networks: ReadonlyMap<string, NetworkSettings>
  defaultPolicy: PortPolicy
  profiles: readonly Profile[]
  /** Bearer token the admin API and /metrics require; undefined = open, allowed only on loopback without client tokens (exposure.ts). */
  adminToken: string | undefined
  /** Serve the admin API (/api) at all; false = /api answers 404. */
  api: boolean
  /** Host header names (besides IP literals and localhost) requests may carry: DNS-rebinding guard. "*" = any, ".example.org" = it and its subdomains. */
  allowedHosts: readonly string[]
  /** Origins (`scheme://host[:port]`, or "*") from which browsers may open ports and call the API; requests without Origin are not browsers. */
  allowedOrigins: readonly string[]
  /** Ranges (CIDR) of proxies whose X-Forwarded-For names the client (control/client-address.ts); empty = none, the TCP peer is the client. */
  trustedProxies: readonly string[]
  /** Serve /metrics on its own address instead of `listen`. */
  metricsListen: string | undefined
  /** Per-port metric series, and the port count beyond which they are left out. */
  perPortMetrics: boolean
  maxPortSeries: number
  /** Client tokens by SHA-256 digest; empty = no authentication. */
  tokens: ReadonlyMap<string, TokenGrant>
  /** Listen on a non-loopback address without tokens. */
  allowAnonymous: boolean
  limits: Limits
  /** TLS certificate and key (PEM files); undefined = plain ws:// and http://. */
  tls: TlsFiles | undefined
  /** Seconds a disconnected tapswitch-mode port is kept for its agent to resume; 0 = off. */
  resumeGrace: number
  /** QEMU VMs connecting straight to switchd: one listening socket (and port) each. */
  qemu: readonly QemuSpec[]
  /** TAPs on switchd's own host that switchd serves itself (no agent): one port each (docs/LOCAL-TAPS.md). */
  taps: readonly TapSpec[]
  /** Trunks this switchd dials to other switchd (`--uplink`). */
  trunks: readonly TrunkSpec[]
  /** VXLAN and GENEVE listeners (`vxlan`, --vxlan-listen, --vxlan): one port per (VNI, remote VTEP) (docs/VXLAN.md). */
  vxlan: readonly VxlanSpec[]
  /** Spanning-tree priority of this switchd: the lowest priority (then id) is the root. */
  bridgePriority: number
  /**
   * µs the event loop keeps polling after traffic from a local TAP, instead of
   * sleeping (native/busy_poll.h); 0 = off. Spins a core while traffic flows.
   */
  busyPoll: number
  /**
   * Local TAPs of a network are read by a native thread that forwards known
   * unicast between them by itself (native/fastpath.cc, docs/LOCAL-TAPS.md);
   * false: they are read on the event loop as every other port.
   */
  fastPath: boolean
  /** Gateways (DHCP, DNS, NAT, published ports) of listed networks: `networks.NAME.gateway` (docs/GATEWAY.md). */
  gateways: readonly GatewaySpec[]
  /** switchd's state directory (absolute): the gateways' leases live in `<stateDir>/leases/<network>.json`. */
  stateDir: string
  /** This replica's name (`--replica`, default the host's name): what its fleet knows it by (docs/FLEET.md). */
  replica: string
  /** Its fleet: peers, credential, mesh VLANs (`--fleet`); undefined: a lone switchd. */
  fleet: FleetSpec | undefined
}

export interface Limits {
  /** Ports on the whole switchd. */
  maxPorts: number
  /** Ports per client IP address. */
  maxPortsPerAddress: number
  /** Seconds from the upgrade to a valid hello; also the time an HTTP request has to arrive whole. */
  handshakeTimeout: number
  /** Connections not yet upgraded (nor closed) at once; beyond, new ones are closed at once. */
  maxPending: number
  /** Of them, from one client address (addressKey); below maxPending, so one address never takes the pool. */
  maxPendingPerAddress: number
  /** Live captures at once (each copies every frame of its network). */
  maxCaptures: number
  /** Seconds a port may read nothing while switchd holds more than portBuffer for it, before it is closed (4004). */
  notReadingTimeout: number
  /** Bytes all link-condition queues may hold together (core/held-queue.ts). */
  conditionBytes: number
  /** Bytes the link-condition queues of one client address's ports may hold together. */
  conditionBytesPerAddress: number
}

export interface TlsFiles {
  cert: string
  key: string
  /** CA bundle to verify client certificates against (optional mutual TLS). */
  clientCa: string | undefined
}

/** Flags that override the file. */
export interface ConfigOverrides {
  listen?: string
  maxFrameSize?: number
  ageingTime?: number
  fdbMax?: number
  portBuffer?: number
  pingInterval?: number
  adminToken?: string
  metricsListen?: string
  allowAnonymous?: boolean
  /** false = no admin API (--no-api). */
  api?: boolean
  /** Comma-separated (--allowed-hosts). */
  allowedHosts?: string
  /** Comma-separated (--allowed-origins). */
  allowedOrigins?: string
  /** Comma-separated (--trusted-proxy). */
  trustedProxies?: string
  tlsCert?: string
  tlsKey?: string
  tokensFile?: string
  /** `NAME=unix:PATH` or `NAME=tcp:HOST:PORT`, comma-separated. */
  qemuListen?: string
  /** `--tap NAME,…`: TAPs switchd opens and serves itself, in the default network (replaces the file's `taps`). */
  taps?: string
  /** Trunk URLs, comma-separated; each is one trunk (added to the file's `trunks`). */
  uplink?: string
  uplinkToken?: string
  uplinkCa?: string
  bridgePriority?: number
  /** --vxlan-listen HOST[:PORT] and --vxlan VNI[=NETWORK[/VLAN]]@REMOTE[+REMOTE…][,…]: one listener, replacing the file's `vxlan`. */
  vxlanListen?: string
  vxlan?: string
  busyPoll?: number
  fastPath?: boolean
  /** --state-dir, absolute. */
  stateDir?: string
  /** --replica, --fleet, --fleet-token-file, SWITCHD_FLEET_TOKEN, --fleet-vlans (control/config/fleet.ts). */
  replica?: string
  fleet?: string
  fleetTokenFile?: string
  fleetToken?: string
  fleetVlans?: string
}
