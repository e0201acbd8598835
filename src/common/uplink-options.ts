/**
 * The uplink's options (uplink.ts is the uplink): what tap-agent's flags and
 * switchd's trunks set.
 */

import type { VlanRequest } from './protocol'
import type { UplinkSources } from './uplink-advice'

/** TLS material for wss:// (PEM contents). */
export interface UplinkTls {
  /** CAs to trust instead of the system's. */
  ca?: Buffer
  /** Client certificate and key, for switches that ask for one. */
  cert?: Buffer
  key?: Buffer
}

export interface UplinkOptions {
  /** switchd URL; with `urls`, the first of them. */
  url: string
  /** Several switches: on each reconnect the next one is tried (graceful drain, failover). */
  urls?: string[]
  /** Bearer token for switchd. */
  token?: string
  tls?: UplinkTls
  /** Port name to ask for. */
  name?: string
  mtu?: number
  mac?: string
  /** The VLAN mode to ask for; the switch grants it only within the port's profile. */
  vlan?: VlanRequest
  /** Backoff bounds, seconds. */
  reconnectMin?: number
  reconnectMax?: number
  /** Seconds for the WebSocket upgrade plus the welcome. */
  handshakeTimeout?: number
  /** Bytes ws may have queued before send() refuses (the caller counts the drop). */
  highWaterMark?: number
  /** WebSocket client masking: 'auto' (default), 'always' random, 'never' (zero mask). See maskFor(). */
  mask?: 'auto' | 'always' | 'never'
  /** Capabilities to offer in the hello (switchd dialling a trunk offers "trunk"). */
  capabilities?: string[]
  /** Ask for the old port back after a drop (default true; a trunk starts afresh). */
  resume?: boolean
  /** Where the token and CA come from, for the hints (default tap-agent's flags). */
  sources?: UplinkSources
  /** The slow retries after refusals, seconds (default REFUSED_MIN, REFUSED_MAX; tests shorten them). */
  refusedMin?: number
  refusedMax?: number
}
