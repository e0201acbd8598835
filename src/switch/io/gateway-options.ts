/**
 * What a gateway (io/gateway.ts, io/gateway-port.ts, io/gateway-sandbox.ts)
 * needs to know of its network's `gateway` entry. The transport declares it;
 * the configuration (control/config/gateway.ts, GatewaySpec) is one value of
 * this shape, and the daemon passes it in: a transport knows sockets,
 * children and frames, not configuration files.
 */

export interface StaticLease { mac: number, ip: number }

export interface PublishedPort {
  proto: 'tcp' | 'udp'
  hostAddress: string
  hostPort: number
  guest: number
  guestPort: number
}

/** Ports of this host the stations may reach at the gateway's address. */
export interface HostPorts { proto: 'tcp' | 'udp', from: number, to: number }

export interface GatewayOptions {
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
  /** The dynamic pool: `poolSize` addresses from dhcpStart. */
  dhcpStart: number
  poolSize: number
  /** Seconds a lease lasts. */
  leaseTime: number
  /** Addresses one port, and one client, may hold at once. */
  leasesPerPort: number
  leasesPerClient: number
  staticLeases: readonly StaticLease[]
  /** Answer DNS at `dns` by forwarding to the host's resolver. */
  dnsForward: boolean
  /** 'on': the outside and the listed host ports; 'host': only those ports; 'off': neither (QEMU restrict=on). */
  nat: 'on' | 'host' | 'off'
  publish: readonly PublishedPort[]
  hostPorts: readonly HostPorts[]
  /** Most host sockets (flows) the child may hold for stations, and for any one client. */
  maxFlows: number
  flowsPerClient: number
  /** The QEMU binary (a name on PATH or a path). */
  qemu: string
  /** Who the child runs as when switchd is root. */
  user: string
}

/** `tcp:8080` or `tcp:8000-8010`, as the configuration writes it (the gateway's messages name ranges so). */
export function formatHostPorts (h: HostPorts): string { return `${h.proto}:${h.from}${h.to === h.from ? '' : `-${h.to}`}` }
