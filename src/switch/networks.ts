/**
 * The networks of one switchd: isolated segments selected by the URL path
 * (`/` is the network "default", `/net/<name>` the network <name>), each a
 * Switch with its own ports and fdb. No frame crosses from one to another:
 * a port belongs to exactly one Switch.
 *
 * Networks listed in the configuration always exist; others are created on
 * first use when `dynamicNetworks` allows it (bounded by `maxNetworks`) and
 * dropped when their last port leaves. Applying a new configuration keeps
 * every port whose policy is still valid and closes the others (1008).
 */

import { Switch } from './switch'
import { MODE_TRUNK, type Port, type PortPolicy } from './port'
import { DEFAULT_NETWORK, networkSettings, profileFor, grantPolicy, trunkPolicy, type SwitchdConfig, type NetworkSettings } from './config'
import { makeBridgeId } from './stp'
import type { VlanRequest } from '../common/protocol'
import { CLOSE_POLICY } from '../common/protocol'
import { logger } from '../common/log'

const log = logger('networks')

/** The network a request path names, or undefined if the path is not a network path. */
export function networkFromPath (path: string): string | undefined {
  if (path === '/' || path === '') return DEFAULT_NETWORK
  const m = /^\/net\/([^/]+)\/?$/.exec(path)
  if (m === null) return undefined
  try { return decodeURIComponent(m[1] as string) } catch { return undefined } // a bad %-escape is a bad path
}

export class Networks {
  private readonly byName = new Map<string, Switch>()
  /** This switchd's spanning-tree id, the same in every network and for the life of the process. */
  readonly bridgeId: string

  constructor (private config: SwitchdConfig, private readonly now: () => number) {
    this.bridgeId = makeBridgeId(config.bridgePriority)
    for (const settings of config.networks.values()) this.create(settings)
  }

  get (name: string): Switch | undefined { return this.byName.get(name) }

  all (): Switch[] { return [...this.byName.values()] }

  /** The network for `name`, creating a dynamic one; a string says why not. */
  open (name: string): Switch | string {
    const existing = this.byName.get(name)
    if (existing !== undefined) return existing
    const settings = networkSettings(this.config, name)
    if (settings === undefined) return `no network "${name}"`
    if (this.byName.size >= this.config.maxNetworks) return `too many networks (maxNetworks ${this.config.maxNetworks})`
    log.info('network_created', { network: name })
    return this.create(settings)
  }

  /** Drop a dynamic network once it has no ports. */
  release (sw: Switch): void {
    if (sw.ports.length === 0 && !this.config.networks.has(sw.name) && this.byName.get(sw.name) === sw) {
      this.byName.delete(sw.name)
      log.info('network_removed', { network: sw.name })
    }
  }

  /**
   * The policy a port named `name` gets on `sw` for `request`, or why it is
   * refused: its token's policy if the token has one, else its profile's.
   * A trunk from another switch gets all of it (config.trunkPolicy).
   */
  policyFor (sw: Switch, name: string, request: VlanRequest | undefined, tokenPolicy?: PortPolicy, trunk = false): PortPolicy | string {
    const allowed = tokenPolicy ?? profileFor(this.config, name, sw.name)
    return trunk ? trunkPolicy(allowed, sw.fdb.maxEntries) : grantPolicy(allowed, request)
  }

  tick (nowMs: number): void {
    for (const sw of this.byName.values()) sw.tick(nowMs)
  }

  /**
   * Apply a new configuration. Settings change in place; a port keeps its
   * place if its profile still grants what it has (limits may change), and is
   * closed with 1008 if not, or if its VLAN mode would change under it.
   */
  reload (config: SwitchdConfig, requests: (p: Port) => VlanRequest | undefined, tokenPolicy: (p: Port) => PortPolicy | undefined = () => undefined): void {
    this.config = config
    let closed = 0
    for (const sw of this.all()) {
      const settings = networkSettings(config, sw.name)
      if (settings === undefined) {
        for (const p of [...sw.ports]) { p.shutdown(CLOSE_POLICY, 'network removed by configuration'); closed++ }
        continue
      }
      this.applySettings(sw, settings)
      for (const p of [...sw.ports]) {
        if (p.policyFromPeer) continue // a trunk we dialled has what the other switch granted
        const next = this.policyFor(sw, p.name, requests(p), tokenPolicy(p), p.stp !== null)
        if (typeof next === 'string' || next.mode !== p.mode || (next.mode === MODE_TRUNK && next.pvid !== p.pvid)) {
          p.shutdown(CLOSE_POLICY, typeof next === 'string' ? `configuration changed: ${next}` : 'configuration changed the port mode; reconnect')
          closed++
          continue
        }
        const vlansChanged = next.vlans.join() !== p.policy.vlans.join()
        p.applyPolicy(next)
        if (vlansChanged) sw.fdb.deletePort(p)
      }
    }
    for (const settings of config.networks.values()) if (!this.byName.has(settings.name)) this.create(settings)
    log.info('config_reloaded', { networks: this.byName.size, ports_closed: closed })
  }

  private applySettings (sw: Switch, s: NetworkSettings): void {
    sw.maxFrameSize = s.maxFrameSize
    sw.loopHoldDown = s.loopHoldDown
    sw.fdb.loopMoves = s.loopMoves
    sw.fdb.loopWindow = s.loopWindow
    sw.fdb.moveHold = s.moveHold
    sw.setStatics(s.statics)
    if (s.ageingTime !== sw.fdb.ageingTime || s.fdbMax !== sw.fdb.maxEntries) {
      log.warn('restart_needed', { network: sw.name, reason: 'ageingTime and fdbMax apply when the network is created (restart switchd)' })
    }
  }

  private create (s: NetworkSettings): Switch {
    const sw = new Switch({
      name: s.name,
      maxFrameSize: s.maxFrameSize,
      ageingTime: s.ageingTime,
      maxEntries: s.fdbMax,
      loopMoves: s.loopMoves,
      loopWindow: s.loopWindow,
      moveHold: s.moveHold,
      loopHoldDown: s.loopHoldDown,
      bridgeId: this.bridgeId
    }, this.now())
    sw.setStatics(s.statics)
    this.byName.set(s.name, sw)
    return sw
  }
}
