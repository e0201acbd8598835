/**
 * Trunks this switchd dials to other switchd (`--uplink wss://b/net/lab`):
 * Ethernet's own way to grow, one switch cabled to the next.
 *
 * A trunk is a tapswitch.v1 client like tap-agent's uplink (the same class:
 * token, TLS, reconnect with backoff), that offers the "trunk" capability.
 * The other switch gives it every VLAN its profile allows and no MAC limit;
 * we carry what its welcome granted and we allow (the spec's `vlans`, else
 * our own profile for the trunk's name): the other switch must not choose
 * which of our VLANs it reaches (issue 12, finding 16). Both ends run the
 * spanning tree over it (stp.ts), which is what lets trunks form loops.
 *
 * Each connection is a new port on our side (a new id; it discards until the
 * tree lets it forward), and the port leaves the network, MACs and all, when
 * the connection drops.
 */

import * as os from 'node:os'
import { NetPort, BatchSlab } from './net-port'
import { MODE_ACCESS, MODE_TRUNK, DEFAULT_POLICY, type PortPolicy } from '../core/port'
import type { Switch } from '../core/switch'
import { TRUNK_SOURCES } from '../../common/uplink-advice'
import type { Uplink } from '../../common/uplink'
import { switchUplink, portLeft } from './switch-uplink'
import { CAP_TRUNK, CAP_OFFLOAD, CLOSE_GOING_AWAY, CLOSE_POLICY, truncateReason, type VlanRequest, type Welcome } from '../../common/protocol'
import { logger } from '../../common/log'
import type { TrunkSpec } from '../core/endpoint-spec'

const log = logger('trunk')

/** Our end of a trunk we dialled. */
export class TrunkPort extends NetPort {
  /** 'mesh': the dialling end of a mesh link to another replica (io/mesh-link.ts), set before the port joins. */
  kind: 'trunk' | 'mesh' = 'trunk'
  private readonly batch = new BatchSlab()

  constructor (id: number, name: string, remote: string, highWaterMark: number, network: Switch, private readonly uplink: Uplink) {
    super(id, name, remote, highWaterMark, network)
    this.policyFromPeer = true
  }

  bufferedBytes (): number { return this.uplink.bufferedAmount }

  output (buf: Buffer, off: number, len: number, op: number, vid: number, hdrOff: number): void {
    if (!this.uplink.isUp) { this.dropAway(buf, off, len, vid); return }
    this.enqueue(this.batch, buf, off, len, op, vid, hdrOff)
  }

  flush (): void {
    const b = this.batch.take()
    if (b !== undefined) this.uplink.send(b)
  }

  /** Dropped (counted) while the other switch is not reading, as frames are: BPDUs repeat every hello. */
  override sendControl (text: string): void {
    if (this.uplink.bufferedAmount > this.highWaterMark) { this.dropControl++; this.network.stats.controlDropped++; return }
    this.uplink.sendText(text)
  }

  /** Policy or operator: drop this connection; the link dials again. */
  shutdown (code: number, reason: string): void {
    log.warn('port_shutdown', { port: this.name, id: this.id, code, reason })
    this.uplink.drop(code, truncateReason(reason))
  }
}

/**
 * Our side's policy: the VLANs the other switch's welcome granted that we
 * `allow`, with no MAC limit of its own; a string says why none is left.
 */
export function mirrorPolicy (vlan: VlanRequest | undefined, fdbMax: number, allow: readonly number[]): PortPolicy | string {
  const base = { ...DEFAULT_POLICY, maxMacs: fdbMax }
  const access = vlan === undefined ? DEFAULT_POLICY.pvid : vlan.mode === 'access' ? vlan.vlan : undefined
  if (access !== undefined) {
    if (!allow.includes(access)) return `granted VLAN ${access}, which this switch does not allow on the trunk`
    return Object.freeze({ ...base, mode: MODE_ACCESS, pvid: access, vlans: Object.freeze([access]) })
  }
  const trunk = vlan as { vlans: number[], native?: number }
  const native = trunk.native !== undefined && allow.includes(trunk.native) ? trunk.native : 0
  const vlans = trunk.vlans.filter((v) => allow.includes(v))
  if (native !== 0 && !vlans.includes(native)) vlans.push(native)
  if (vlans.length === 0) return 'granted no VLAN this switch allows on the trunk'
  return Object.freeze({ ...base, mode: MODE_TRUNK, pvid: native, vlans: Object.freeze(vlans.sort((a, b) => a - b)) })
}


/** What a trunk asks of the daemon: its network, our VLANs for it, and to be told when its port comes and goes. */
export interface TrunkHost {
  /** The network `name`, opened if it may be; or why not. */
  open (name: string): Switch | string
  /** The VLANs our own profile for a trunk port named `name` allows in `sw` (none if it refuses the name). */
  allowedVlans (sw: Switch, name: string): readonly number[]
  /** `sw` may go if nothing holds it any more. */
  release (sw: Switch): void
  /** The trunk's port joined its network (up), or left it (undefined). */
  portChanged (link: TrunkLink, port: TrunkPort | undefined): void
}

export class TrunkLink {
  port: TrunkPort | undefined
  readonly uplink: Uplink
  private readonly name: string
  /** Welcomes refused because the other switch granted no VLAN we allow (trunk_vlans_refused). */
  vlansRefused = 0

  constructor (readonly spec: TrunkSpec, private readonly host: TrunkHost, private readonly allocateId: () => number, private readonly portBuffer: number) {
    this.name = spec.name ?? `trunk-${os.hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 50)}`
    this.uplink = switchUplink(
      { url: spec.url, name: this.name, token: spec.token, capability: CAP_TRUNK, sources: TRUNK_SOURCES, ca: spec.ca, caSetting: `trunk ${spec.url}: ca`, log, logFields: { url: spec.url } },
      { port: () => this.port, up: (welcome) => { this.onUp(welcome) }, down: () => { this.onDown() } })
    this.uplink.onControl = (text) => {
      const p = this.port
      if (p !== undefined) p.network.stp.receive(p, text)
    }
  }

  start (): void { this.uplink.start() }

  async close (): Promise<void> {
    await this.uplink.close(CLOSE_GOING_AWAY, 'switchd shutting down')
    this.onDown()
  }

  private onUp (welcome: Welcome): void {
    const sw = this.host.open(this.spec.network)
    if (typeof sw === 'string') {
      log.error('trunk_refused_locally', { url: this.spec.url, network: this.spec.network, reason: sw })
      this.uplink.drop(CLOSE_GOING_AWAY, 'no such network here')
      return
    }
    const remote = new URL(this.spec.url).host
    const name = `${this.name}@${remote}`
    // A trunk we dial is named by us: trusted.
    const allow = this.spec.vlans ?? this.host.allowedVlans(sw, name)
    const policy = mirrorPolicy(welcome.vlan, sw.fdb.maxEntries, allow)
    if (typeof policy === 'string') {
      this.vlansRefused++
      log.limited('error', 'trunk_vlans_refused', { url: this.spec.url, network: sw.name, reason: policy, granted: JSON.stringify(welcome.vlan), allowed: allow.join(',') })
      this.uplink.drop(CLOSE_POLICY, 'no VLAN in common')
      this.host.release(sw)
      return
    }
    const port = new TrunkPort(this.allocateId(), name, remote, this.portBuffer, sw, this.uplink)
    port.applyPolicy(policy)
    port.offload = welcome.capabilities.includes(CAP_OFFLOAD)
    // Without the capability the far end is an older switchd: a plain port, loops left to the flap detector.
    const stp = welcome.capabilities.includes(CAP_TRUNK)
    sw.addPort(port, stp)
    this.port = port
    this.host.portChanged(this, port)
    if (welcome.maxFrameSize !== sw.maxFrameSize) {
      log.warn('trunk_frame_size_differs', { port: port.name, ours: sw.maxFrameSize, theirs: welcome.maxFrameSize })
    }
    log.info('port_up', { port: port.name, id: port.id, network: sw.name, kind: 'trunk', remote: this.spec.url, stp, offload: port.offload, vlan: JSON.stringify(welcome.vlan) })
  }

  private onDown (): void {
    const p = this.port
    if (p === undefined) return
    this.port = undefined
    portLeft(p, this, this.host, 'trunk', log)
  }
}
