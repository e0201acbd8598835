/**
 * What an agent carries frames for. The TAP (tap.ts) is one endpoint; a
 * QEMU NIC over a stream or datagram socket and a VDE cable (qemu.ts) are
 * others. Every endpoint speaks tapswitch batches ([u32 len][frame]…) both
 * ways, so the agent's glue and the uplink never look inside.
 */

export interface EndpointStats {
  /** Frames (and bytes) the endpoint handed us: read from the TAP, received from QEMU/VDE. */
  rxFrames: number
  rxBytes: number
  /** Frames (and bytes) we handed the endpoint. */
  txFrames: number
  txBytes: number
  /** Frames the endpoint could not take now (full queue, or nothing attached). */
  txDropped: number
  txErrors: number
  txMalformed: number
  rxErrors: number
}

/** Read the binding's counters (the STAT_* layout of native/index.d.ts, shared by Tap and UnixDgram). */
export function statsFrom (s: Float64Array): EndpointStats {
  return {
    rxFrames: s[0] as number,
    rxBytes: s[1] as number,
    txFrames: s[2] as number,
    txBytes: s[3] as number,
    txDropped: s[4] as number,
    txErrors: s[5] as number,
    txMalformed: s[6] as number,
    rxErrors: s[7] as number
  }
}

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
}
