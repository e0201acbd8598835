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
