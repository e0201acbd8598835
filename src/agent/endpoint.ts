/**
 * What an agent carries frames for. The TAP (common/tap.ts) is one endpoint; a
 * QEMU NIC over a stream or datagram socket and a VDE cable (qemu.ts) are
 * others. Every endpoint speaks tapswitch batches ([u32 len][frame]…) both
 * ways, so the agent's glue and the uplink never look inside.
 */

import type { NativeStats } from '../common/native'

/** An endpoint's counters: what it handed us (rx) and what we handed it (tx). The native ones fill them from their stats() (common/native.ts statsFrom). */
export type EndpointStats = NativeStats

export interface Endpoint {
  /** For logs and metrics (the TAP's name, or the socket's). */
  readonly name: string
  /** Deliver what the endpoint produces, one batch per read burst. */
  start (onBatch: (batch: Buffer, count: number) => void): void
  /** Hand a batch from the switch to the endpoint; returns frames taken (the rest are counted in stats). */
  write (batch: Buffer): number
  stats (): EndpointStats
  close (): void
  /** TAP only: follow the switch's maximum frame size, and the uplink's state. */
  setMtu? (mtu: number): void
  setCarrier? (on: boolean): void
  /** TAP only: it can carry offloads (virtio-net headers, GSO frames, partial checksums). */
  readonly offloadCapable?: boolean
  /** TAP only: records with virtio-net headers and offloads on, or plain frames only. */
  setOffload? (on: boolean): void
  /** TAP only, for a native link (native-link.ts): the fd, IFF_VNET_HDR, whether records carry the header, and stopping our own reader. */
  readonly fd?: number
  readonly vnetHdr?: boolean
  readonly vnetRecords?: boolean
  stop? (): void
}
