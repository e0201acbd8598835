/**
 * The daemon as the control plane sees it: read-only, and without the
 * transports. api/ and metrics/ are given a SwitchdView (daemon/switchd.ts's
 * SwitchServer implements it), never the server itself, so the control plane
 * imports nothing from io/ (test/unit/layers.test.ts checks it) and cannot
 * reach a socket, a WebSocket or a listener except through the three port
 * actions below, which are what an operator may do to a port.
 *
 * Everything here is slow path: the API builds its JSON and the registry its
 * samples from these on request.
 */

import type { Port } from '../core/port'
import type { Switch } from '../core/switch'
import type { SwitchdConfig } from './config'
import type { Networks } from './networks'
import type { CaptureHub } from './capture'
import type { AuthThrottle } from './throttle'
import type { ConditionParams } from '../core/condition'
import type { LeaseTable } from '../core/leases'
import type { DrainJson } from '../../common/api-types'

/** What the API and metrics read of a core Port: its identity, policy, state and counters; none of its methods. */
type PortFacts = 'id' | 'name' | 'mode' | 'pvid' | 'policy' | 'blocked' | 'loopUntil' | 'fdbEntries' | 'maxMacs' | 'offload' | 'stp' |
  'connectedAt' | 'condIn' | 'condOut' | 'framesDelayed' | 'rxFrames' | 'rxBytes' | 'txFrames' | 'txBytes' | 'loopBlocks' | 'securityViolations' | 'drops' | 'stormDrops' |
  'ownsName' | 'fastPath' | 'mesh'

/** A port as the API and metrics read it: facts of the core's Port plus what only its transport knows. */
export interface PortHandle extends Readonly<Pick<Port, PortFacts>> {
  readonly network: Switch
  readonly kind: 'raw' | 'tapswitch' | 'qemu' | 'trunk' | 'gateway' | 'tap' | 'mesh' | 'vxlan' | 'geneve'
  /** The peer's address (a socket path or host:port). */
  readonly remote: string
  /** A scheduled flap (`switchctl link down --flap`), if one runs. */
  readonly flap: { readonly down: number, readonly every: number } | undefined
}

/** Counters the daemon keeps outside the switches and ports, read at scrape time. */
export interface DaemonCounters {
  /** WebSocket connections that became ports. */
  accepted: number
  /** Connections refused, by reason (every reason present from the start). */
  rejectedBy: Readonly<Record<string, number>>
  reloadsApplied: number
  reloadsRejected: number
  /** Ports closed because they read nothing (4004), and by BPDU guard (4005). */
  closedNotReading: number
  bpduGuardShutdowns: number
  /** Pongs not sent because the peer was not reading. */
  repliesDropped: number
  /** Trunks we dialled and dropped: the other switch granted none of our VLANs. */
  trunkVlansRefused: number
  /** BPDUs from mesh links, dropped (no spanning tree over the mesh); fleet peers answering now. */
  meshBpdusDropped: number
  fleetPeers: number
}

/** A network's gateway (io/gateway.ts), as metrics read it. */
export interface GatewayFacts {
  readonly network: string
  /** Its QEMU child runs and is ready. */
  readonly up: boolean
  readonly starts: number
  /** DHCPACKs it gave, of them of static leases. */
  readonly leases: number
  readonly staticLeases: number
  /** Its DHCP server's lease table (undefined with dhcp false), and the leases bound now. */
  readonly leaseTable: LeaseTable | undefined
  readonly leasesHeld: number
  /** Lease-file writes that failed (retried). */
  readonly leaseFileErrors: number
  /** DHCP messages its server dropped: chaddr not the source MAC, over the port's leases, over its message rate, no address free. */
  readonly filteredChaddr: number
  readonly filteredLimit: number
  readonly filteredRate: number
  readonly filteredPool: number
  /** Frames to it dropped by its filters. */
  readonly filteredDhcp: number
  readonly filteredDns: number
  readonly filteredOutside: number
  readonly filteredSelf: number
  readonly filteredHost: number
  readonly filteredNotRoutable: number
  readonly filteredFragment: number
  readonly filteredProtocol: number
  readonly filteredFlows: number
  readonly filteredSource: number
  readonly filteredArpRate: number
  /** Host sockets its child holds for the stations now (core/gateway-flows.ts), its limits, and the clients holding them. */
  readonly flows: number
  readonly maxFlows: number
  readonly flowsPerClient: number
  readonly flowClients: number
  /** How its child is confined (io/gateway-sandbox.ts): Landlock, or weak (why, naming the missing kernel feature); its fd limit. */
  readonly sandbox: 'landlock' | 'weak' | undefined
  readonly sandboxWhy: string | undefined
  readonly fdLimit: number
}

export interface SwitchdView {
  /** This replica's name (switchd --replica; the host's name by default). */
  readonly replica: string
  /** The configuration in force (it changes on reload: read it on each request). */
  readonly config: SwitchdConfig
  readonly networks: Networks
  readonly captures: CaptureHub
  /** The admin API's token, if one is configured. */
  readonly adminToken: string | undefined
  /** Whether the admin surface is open without a token here (exposure.ts adminOpen). */
  readonly adminOpen: boolean
  /** Every port that has joined a network (WebSocket, QEMU, trunk). */
  ports (): readonly PortHandle[]
  /** The ports named `name`, in `network` if given (the daemon's registry is keyed so); absent in a fake, which ports() then serves. */
  portsNamed? (name: string, network?: Switch): readonly PortHandle[]
  counters (): DaemonCounters
  /** The gateways of the configured networks. */
  gateways (): readonly GatewayFacts[]
  /** The VXLAN and GENEVE listeners (docs/VXLAN.md); absent: none. */
  vxlan?: () => readonly VxlanFacts[]
  /** Wrong admin tokens per client address (throttle.ts): the API, /metrics and the console's upgrade share it. */
  readonly authThrottle: AuthThrottle
  /** Count an admin API request refused before it was served (browser checks, a wrong token, a throttled address). */
  refusedApi (reason: 'bad_origin' | 'unauthorized' | 'auth_throttled'): void
  /** Operator actions (POST /api/v1/ports/<name>/…). */
  disablePort (port: PortHandle): void
  enablePort (port: PortHandle): void
  /** Close the port with 1008 and `reason`; its agent may reconnect. */
  disconnectPort (port: PortHandle, reason: string): void
  /** Link conditions and drills (core/link.ts): one direction's condition (null clears it), a pulled cable. */
  setCondition (port: PortHandle, direction: number, params: ConditionParams | null): void
  setLinkDown (port: PortHandle, direction: number | 'both', down: boolean): void
  /** A flap needs the transport's timers: down `down` s every `every` s, until stopFlap(). */
  startFlap (port: PortHandle, down: number, every: number): void
  stopFlap (port: PortHandle): void
  /** Draining (daemon/drain.ts): not ready, port upgrades refused with 503. */
  readonly draining: boolean
  /** Drain this replica (every WebSocket port closed with 4006; resolves once they are), or with false serve again. Idempotent. */
  drain (on: boolean): Promise<DrainJson>
}

/** A VXLAN or GENEVE listener's counters (io/vxlan.ts), read at scrape time. */
export interface VxlanFacts {
  /** Its address as bound: the `listener` label. */
  listener: string
  encap: 'vxlan' | 'geneve'
  /** Its (VNI, VTEP) ports. */
  ports: number
  packetsIn: number
  packetsOut: number
  bytesIn: number
  bytesOut: number
  /** Datagrams dropped, by reason (unlisted_source, unknown_vni, bad_header, truncated, send_error). */
  dropped: Readonly<Record<string, number>>
}
