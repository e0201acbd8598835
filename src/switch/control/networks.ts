/**
 * The networks of one switchd: isolated segments selected by the URL path
 * (`/` is the network "default", `/net/<name>` the network <name>), each a
 * Switch with its own ports and fdb. No frame crosses from one to another:
 * a port belongs to exactly one Switch.
 *
 * Networks listed in the configuration always exist; others are created on
 * first use when `dynamicNetworks` allows it (bounded by `maxNetworks`) and
 * dropped when their last port leaves. The address that opened a dynamic
 * network holds it until it goes: one address may hold at most a sixteenth
 * of maxNetworks (networkShare), so it cannot take every network slot. Applying a new configuration keeps
 * every port whose policy is still valid and closes the others (1008).
 */

import { Switch } from '../core/switch'
import { MODE_TRUNK, type Port, type PortPolicy } from '../core/port'
import { DEFAULT_NETWORK, networkSettings, profileFor, claimableName, grantPolicy, trunkPolicy, vtepPolicy, type SwitchdConfig, type NetworkSettings } from './config'
import type { TokenGrant } from './auth'
import { makeBridgeId } from '../core/stp'
import { Guard } from '../core/guard'
import { applyConfiguredCondition } from '../core/link'
import { DropLog, DropSequence, DEFAULT_DROP_LOG_SIZE } from '../core/droplog'
import { AddressCounts } from './admission'
import { HeldBudget } from '../core/held-queue'
import type { VlanRequest } from '../../common/protocol'
import { CLOSE_POLICY } from '../../common/protocol'
import { logger } from '../../common/log'

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
  /**
   * Numbers the drop records of every network: each network keeps its own
   * last DEFAULT_DROP_LOG_SIZE drops (a client dropping frames at will pushes
   * out only its own network's), and one cursor reads them all in order.
   */
  readonly dropSequence = new DropSequence()
  /** Dynamic networks by the client address that opened each (control/admission.ts): its key, and the address for the log. */
  private readonly openedBy = new Map<Switch, { key: string, address: string }>()
  private readonly perAddress = new AddressCounts()
  /** What link-condition queues may hold, per client address and in all, across every network (limits.conditionBytes*). */
  readonly heldBudget: HeldBudget

  constructor (private config: SwitchdConfig, private readonly now: () => number) {
    this.heldBudget = new HeldBudget(config.limits.conditionBytes, config.limits.conditionBytesPerAddress)
    this.bridgeId = makeBridgeId(config.bridgePriority)
    for (const settings of config.networks.values()) this.create(settings)
  }

  get (name: string): Switch | undefined { return this.byName.get(name) }

  all (): Switch[] { return [...this.byName.values()] }

  /** The network for `name`, creating a dynamic one (held by `address`, a client's, if given); a string says why not. */
  open (name: string, address?: string): Switch | string {
    const existing = this.byName.get(name)
    if (existing !== undefined) return existing
    const settings = networkSettings(this.config, name)
    if (settings === undefined) return `no network "${name}"`
    if (this.byName.size >= this.config.maxNetworks) return `too many networks (maxNetworks ${this.config.maxNetworks})`
    const why = address === undefined ? undefined : this.addressRefusal(name, address)
    if (why !== undefined) return why
    // A client opens and drops dynamic networks at will: within its log budget.
    if (address === undefined) log.info('network_created', { network: name })
    else log.client('info', 'network_created', address, { network: name })
    const sw = this.create(settings)
    if (address !== undefined && !this.config.networks.has(name)) this.openedBy.set(sw, { key: this.perAddress.add(address), address })
    return sw
  }

  /** Dynamic networks one client address may hold at once: a sixteenth of maxNetworks, at least 1. */
  get networkShare (): number { return Math.max(1, Math.floor(this.config.maxNetworks / 16)) }

  /** Why a client at `address` may not open `name` now (its share of dynamic networks is full), or undefined. */
  addressRefusal (name: string, address: string): string | undefined {
    if (this.byName.has(name) || this.config.networks.has(name)) return undefined
    const share = this.networkShare
    return this.perAddress.of(address) >= share ? `this address holds ${share} dynamic networks already (a sixteenth of maxNetworks)` : undefined
  }

  /** Why `open(name)` would fail, without creating anything; undefined if it would succeed. */
  refusal (name: string): string | undefined {
    if (this.byName.has(name)) return undefined
    if (networkSettings(this.config, name) === undefined) return `no network "${name}"`
    if (this.byName.size >= this.config.maxNetworks) return `too many networks (maxNetworks ${this.config.maxNetworks})`
    return undefined
  }

  /** Why a port may not join `sw` now (the configuration in force no longer has it, or it went with its last port), or undefined. */
  removed (sw: Switch): string | undefined {
    if (networkSettings(this.config, sw.name) === undefined) return 'network removed by configuration'
    if (this.byName.get(sw.name) !== sw) return 'network closed meanwhile; reconnect'
    return undefined
  }

  /** Drop a dynamic network once it has no ports. */
  release (sw: Switch): void {
    if (sw.ports.length === 0 && !this.config.networks.has(sw.name) && this.byName.get(sw.name) === sw) {
      this.byName.delete(sw.name)
      const by = this.openedBy.get(sw)
      if (by !== undefined) { this.openedBy.delete(sw); this.perAddress.remove(by.key) }
      if (by === undefined) log.info('network_removed', { network: sw.name })
      else log.client('info', 'network_removed', by.address, { network: sw.name })
    }
  }

  /**
   * The policy a port gets on `sw` for `request`, or why it is refused. The
   * one place a port's policy is resolved (at join and on every reload):
   * its token's policy if the token has one, else the first profile its name
   * may have (a trusted name any, a claimed one only a claimable profile),
   * else the default. A trunk from another switch gets all of it
   * (config.trunkPolicy).
   */
  policyFor (sw: Switch, port: NamedPort, request: VlanRequest | undefined, grant: TokenGrant | undefined, trunk = false): PortPolicy | string {
    const allowed = grant?.policy ?? profileFor(this.config, port.name, sw.name, port.nameTrusted)
    // A VTEP's port (its name is the configuration's): its VNI's VLAN, whatever the profile says.
    const vtep = port.nameTrusted && grant === undefined && !trunk ? vtepPolicy(this.config, sw.name, port.name, allowed) : undefined
    if (vtep !== undefined) return vtep
    return trunk ? trunkPolicy(allowed, sw.fdb.maxEntries) : grantPolicy(allowed, request)
  }

  /** Whether the port owns its name (Port.ownsName): trusted, or claimed under a claimable profile. */
  ownsName (sw: Switch, port: NamedPort): boolean {
    return port.nameTrusted || claimableName(this.config, port.name, sw.name)
  }

  /**
   * Keys of `next` that only a restart can change for the networks that
   * exist (empty if none): a reload that has any is refused whole.
   */
  restartNeeded (next: SwitchdConfig): string[] {
    const keys: string[] = []
    for (const sw of this.byName.values()) {
      const s = networkSettings(next, sw.name)
      if (s === undefined) continue
      const where = next.networks.has(sw.name) ? `networks.${sw.name}` : 'network'
      if (s.ageingTime !== sw.fdb.ageingTime) keys.push(`${where}.ageingTime`)
      if (s.fdbMax !== sw.fdb.maxEntries) keys.push(`${where}.fdbMax`)
      if (JSON.stringify(s.guards) !== JSON.stringify(sw.guard?.spec)) keys.push(`${where}.guards`)
    }
    return [...new Set(keys)]
  }

  tick (nowMs: number): void {
    for (const sw of this.byName.values()) sw.tick(nowMs)
  }

  /**
   * Apply a new configuration, already checked (restartNeeded). Settings
   * change in place; a port keeps its place if its token or profile still
   * grants what it has (limits may change), and is closed with 1008 if not,
   * or if its VLAN mode would change under it. Ports in `closing` are on
   * their way out (their token was revoked) and are left alone.
   */
  reload (config: SwitchdConfig, requests: (p: Port) => VlanRequest | undefined, grantOf: (p: Port) => TokenGrant | undefined = () => undefined,
    closing: ReadonlySet<Port> = new Set()): void {
    this.config = config
    // Lower limits refuse growth from now on; what queues hold already leaves as it is due.
    this.heldBudget.total = config.limits.conditionBytes
    this.heldBudget.perClient = config.limits.conditionBytesPerAddress
    let closed = 0
    for (const sw of this.all()) {
      const settings = networkSettings(config, sw.name)
      if (settings === undefined) {
        for (const p of [...sw.ports]) { p.shutdown(CLOSE_POLICY, 'network removed by configuration'); closed++ }
        continue
      }
      // Before the static entries are bound again: the profiles that make a claimed name its own may have changed.
      for (const p of sw.ports) if (isNamed(p)) p.ownsName = this.ownsName(sw, p)
      this.applySettings(sw, settings)
      for (const p of [...sw.ports]) {
        if (p.policyFromPeer || closing.has(p) || !isNamed(p)) continue // a trunk we dialled has what the other switch granted
        const next = this.policyFor(sw, p, requests(p), grantOf(p), p.stp !== null)
        if (typeof next === 'string' || next.mode !== p.mode || (next.mode === MODE_TRUNK && next.pvid !== p.pvid)) {
          p.shutdown(CLOSE_POLICY, typeof next === 'string' ? `configuration changed: ${next}` : 'configuration changed the port mode; reconnect')
          closed++
          continue
        }
        // A trunk allowed by its profile (no token) keeps its place only while the profile still says `trunk: true`.
        if (p.stp !== null && config.tokens.size === 0) {
          if (next.trunk !== true) { p.shutdown(CLOSE_POLICY, 'configuration changed: this port may no longer be a trunk'); closed++; continue }
          p.stp.rootGuard = next.rootGuard === true
        }
        const vlansChanged = next.vlans.join() !== p.policy.vlans.join()
        // Only a changed `condition` replaces the port's: one an operator set at run time survives other edits.
        const conditionChanged = JSON.stringify(next.condition) !== JSON.stringify(p.policy.condition)
        p.applyPolicy(next)
        sw.invalidate()
        if (conditionChanged) applyConfiguredCondition(sw, p)
        if (vlansChanged) sw.fdb.deletePort(p)
      }
    }
    for (const settings of config.networks.values()) if (!this.byName.has(settings.name)) this.create(settings)
    log.info('config_reloaded', { networks: this.byName.size, ports_closed: closed + closing.size })
  }

  private applySettings (sw: Switch, s: NetworkSettings): void {
    sw.maxFrameSize = s.maxFrameSize
    sw.loopHoldDown = s.loopHoldDown
    sw.fdb.loopMoves = s.loopMoves
    sw.fdb.loopWindow = s.loopWindow
    sw.fdb.moveHold = s.moveHold
    sw.groupFwdMask = s.groupFwdMask
    sw.setStatics(s.statics)
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
      groupFwdMask: s.groupFwdMask,
      dropLog: new DropLog(DEFAULT_DROP_LOG_SIZE, this.dropSequence),
      heldBudget: this.heldBudget,
      bridgeId: this.bridgeId
    }, this.now())
    sw.setStatics(s.statics)
    // The guards (core/guard.ts); a gateway gives them its leases as the binding table when it starts.
    if (s.guards !== undefined) sw.guard = new Guard(s.guards)
    this.byName.set(s.name, sw)
    return sw
  }
}

/** What policy resolution needs of a port: its name, and whether switchd or the configuration gave it. */
export interface NamedPort { name: string, nameTrusted: boolean }

function isNamed (p: Port): p is Port & NamedPort {
  return typeof (p as Partial<NamedPort>).nameTrusted === 'boolean'
}
