/**
 * The uplink one switchd dials to another: a trunk (io/trunk.ts) or a mesh
 * link (io/mesh-link.ts). Both are the agent's Uplink class (token, TLS,
 * reconnect with backoff) with a switch's settings, and both hand a batch
 * from the far switch to their port the same way; only what they offer, how
 * they are named and what they do with a control message differ.
 */

import { readFileSync } from 'node:fs'
import type { NetPort } from './net-port'
import type { Switch } from '../core/switch'
import { Uplink } from '../../common/uplink'
import type { UplinkSources } from '../../common/uplink-advice'
import { CAP_OFFLOAD, CLOSE_PROTOCOL_ERROR, type Welcome } from '../../common/protocol'
import { TapswitchError, ERR_CONFIG } from '../../common/errors'
import type { Fields, Logger } from '../../common/log'

export interface SwitchUplinkSpec {
  readonly url: string
  readonly name: string
  readonly token: string | undefined
  /** CAP_TRUNK or CAP_MESH. */
  readonly capability: string
  /** What the uplink's hints name as the place to fix the URL, token or CA. */
  readonly sources: UplinkSources
  /** A CA file to trust, read now. */
  readonly ca: string | undefined
  /** How an error reading `ca` starts: the link and the setting, e.g. "trunk wss://b/net/lab: ca". */
  readonly caSetting: string
  /** The link's logger, and the fields that name the far end in its lines. */
  readonly log: Logger
  readonly logFields: Fields
}

/** The link's side: its port while up, told when the far switch welcomes us and when the connection drops. */
export interface SwitchUplinkLink {
  port (): NetPort | undefined
  up (welcome: Welcome): void
  down (): void
}

/**
 * A switch-to-switch uplink (not started): a batch that does not tile its
 * message is a protocol error of the far switch (logged, the connection
 * dropped, redialled), never walked.
 */
export function switchUplink (spec: SwitchUplinkSpec, link: SwitchUplinkLink): Uplink {
  let ca: Buffer | undefined
  if (spec.ca !== undefined) {
    try { ca = readFileSync(spec.ca) } catch (err) {
      throw new TapswitchError(ERR_CONFIG, `${spec.caSetting} ${spec.ca}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
  }
  const uplink = new Uplink({
    url: spec.url,
    name: spec.name,
    token: spec.token,
    // Offload too: 64 KiB TCP frames cross whole, as between agents.
    capabilities: [spec.capability, CAP_OFFLOAD],
    resume: false,
    // It carries a whole switch's stations: redial sooner than an agent would.
    reconnectMax: 2,
    // Its hints name switchd's settings, not tap-agent's flags.
    sources: spec.sources,
    ...(ca !== undefined ? { tls: { ca } } : {})
  })
  uplink.on('up', (welcome: Welcome) => { link.up(welcome) })
  uplink.on('down', () => { link.down() })
  uplink.onBatch = (msg) => {
    const p = link.port()
    if (p === undefined) return
    if (!p.network.receiveBatch(p, msg)) {
      spec.log.limited('warn', 'malformed_batch', { port: p.name, ...spec.logFields })
      uplink.drop(CLOSE_PROTOCOL_ERROR, 'malformed batch')
    }
  }
  return uplink
}

/** What a link's host is told when its port leaves (io/trunk.ts TrunkHost, io/mesh-link.ts MeshHost). */
export interface LinkHost<L> {
  portChanged (link: L, port: undefined): void
  release (sw: Switch): void
}

/** The connection under `p` dropped: the port leaves its network, MACs and all, the host is told, the network may go. */
export function portLeft<L> (p: NetPort, link: L, host: LinkHost<L>, kind: string, log: Logger): void {
  const flushed = p.network.removePort(p)
  host.portChanged(link, undefined)
  host.release(p.network)
  log.info('port_down', { port: p.name, id: p.id, network: p.network.name, kind, fdb_flushed: flushed, rx_frames: p.rxFrames, tx_frames: p.txFrames })
}
