/**
 * A network's gateway as the configuration gives it (control/config/gateway.ts
 * reads it) and as its transports take it (io/gateway.ts, io/gateway-port.ts,
 * io/gateway-sandbox.ts): one shape, here where both may import it. Types
 * and one formatter only.
 */

export interface StaticLease { mac: number, ip: number }

export interface PublishedPort {
  proto: 'tcp' | 'udp'
  hostAddress: string
  hostPort: number
  guest: number
  guestPort: number
  allowRemote: boolean
}

/** A `hostPorts` entry: ports of this host the stations may reach at the gateway's address. */
export interface HostPorts { proto: 'tcp' | 'udp', from: number, to: number }

export interface GatewaySpec {
  network: string
  name: string
  /** Subnet address, prefix length and mask. */
  subnet: number
  prefix: number
  mask: number
  /** The gateway's own address: router, DHCP server, and the host's loopback for the stations. */
  address: number
  dns: number
  dhcp: boolean
  /** The dynamic pool: `poolSize` addresses from dhcpStart (the gateway, DNS and static addresses in it are never offered). */
  dhcpStart: number
  poolSize: number
  /** Seconds a lease lasts (T1 half of it, T2 seven eighths). */
  leaseTime: number
  /** Addresses (offered, bound or declined) one port, and one client (Port.clientKey), may hold at once. */
  leasesPerPort: number
  leasesPerClient: number
  staticLeases: readonly StaticLease[]
  /** Answer DNS at `dns` by forwarding to the host's resolver. */
  dnsForward: boolean
  /** 'on': stations reach the outside and the listed host ports; 'host': only those ports; 'off': neither (QEMU restrict=on). */
  nat: 'on' | 'host' | 'off'
  publish: readonly PublishedPort[]
  /** The ports of this host the stations may reach (at the gateway's address or 255.255.255.255); none by default. */
  hostPorts: readonly HostPorts[]
  /** Most host sockets (flows) the child may hold for stations, and for any one client (docs/GATEWAY.md). */
  maxFlows: number
  flowsPerClient: number
  /** The QEMU binary (a name on PATH or a path). */
  qemu: string
  /** Who the child runs as when switchd is root. */
  user: string
}

/** `tcp:8080` or `tcp:8000-8010`, as the configuration writes it. */
export function formatHostPorts (h: HostPorts): string { return `${h.proto}:${h.from}${h.to === h.from ? '' : `-${h.to}`}` }
