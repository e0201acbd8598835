/**
 * Endpoints switchd opens itself, as the configuration gives them
 * (control/config/endpoints.ts) and as their transports take them
 * (io/trunk.ts, io/qemu-listener.ts): one shape, here where both may import it.
 */

/** A trunk to another switchd: like an agent's uplink, for one of our networks. */
export interface TrunkSpec {
  /** ws:// or wss:// URL of the other switch's network (`/net/NAME`, or `/` for default). */
  url: string
  /** Our network it joins; by default the one the URL path names. */
  network: string
  /** Port name to ask the other switch for; default `trunk-<hostname>`. */
  name: string | undefined
  token: string | undefined
  /** PEM file of the CA to trust for wss:// instead of the system's. */
  ca: string | undefined
  /**
   * VLANs we carry on it, whatever the other switch grants (we take the
   * intersection); undefined = what our own profile for the trunk's port
   * name allows. The other switch must not choose our VLANs for us.
   */
  vlans: readonly number[] | undefined
}

/** Where a QEMU listener listens: a unix socket file, or TCP. */
export type ListenAddress = { kind: 'unix', path: string } | { kind: 'tcp', host: string, port: number }

/** A remote VTEP of a VNI: an IP address (canonical text, as a datagram's source reads) and the UDP port we send to. */
export interface VtepSpec {
  address: string
  port: number
}

/** One VNI of a VXLAN or GENEVE listener: the network and VLAN it joins, and its VTEPs (one port each). */
export interface VniSpec {
  vni: number
  network: string
  /** Its ports are access ports of this VLAN. */
  vlan: number
  /** Its ports are named `<name>-<VTEP address>` (default `vxlan<VNI>` or `geneve<VNI>`). */
  name: string
  /** Relay between its VTEPs (horizon 0, tapswitch is the hub) instead of keeping them a split-horizon group. */
  relay: boolean
  remotes: readonly VtepSpec[]
}

/** One UDP listener of `vxlan` (or --vxlan-listen / --vxlan). */
export interface VxlanSpec {
  /** An IP address to bind (IPv4 or IPv6 literal) and its port (0: the system chooses, for tests). */
  host: string
  port: number
  encap: 'vxlan' | 'geneve'
  /** The underlay's IP MTU: what one datagram, its IP and UDP headers included, may be. */
  mtu: number
  /** UDP sockets to send from, so the source port can follow the inner flow; 0 = the listening socket. */
  sourcePorts: number
  vnis: readonly VniSpec[]
}
