/**
 * The names an admin API request gives (a network, a port, a VLAN, a static
 * entry, a gateway), looked up or refused at once. A name that does not
 * exist answers 404 with the stable code TSW_ERR_NOT_FOUND, what exists and,
 * for a near miss, "did you mean …?" (common/suggest.ts): a mistyped
 * `switchctl capture --port wbe1` fails before a pcap header is written,
 * instead of capturing nothing for a minute, and `ports --network lab` does
 * not print an empty table as if the network were idle.
 *
 * Filters name what exists now: a port that is connected (or, where the
 * answer is history, one the fdb or the drop log still names), a VLAN some
 * port of the network carries or some fdb entry is in.
 */

import type { Switch } from '../core/switch'
import type { PortHandle, SwitchdView } from './view'
import { TapswitchError, ERR_NOT_FOUND, ERR_CONFLICT } from '../../common/errors'
import { nearest, listNames, sortNames } from '../../common/suggest'
import type { ApiErrorJson } from '../../common/api-types'
import { formatMac } from '../../common/ethernet'

/** Most names a 404's body lists (its message lists fewer): a switchd may have thousands of ports. */
const MAX_KNOWN = 100

/** A refusal of a name: 404 (it does not exist) or 409 (it exists but cannot take this); api/index.ts answers its body. */
export class NameError extends TapswitchError {
  constructor (readonly status: 404 | 409, code: string, message: string, readonly details: Omit<ApiErrorJson, 'error' | 'code'> = {}) {
    super(code, message)
  }

  body (): ApiErrorJson { return { error: this.message, code: this.code, ...this.details } }
}

/**
 * 404 for `name`, a `kind` that does not exist: `what` says it ("no port "wbe1" in network
 * default"), then the near miss and what exists under `label` ("ports"), or `none` if nothing does.
 */
export function notFound (kind: NonNullable<ApiErrorJson['kind']>, name: string, what: string, known: Iterable<string>, label: string, none: string): NameError {
  // Sorted once: thousands of names cost a sort each (suggest.ts keeps the rest bounded).
  const names = sortNames(known)
  // Numbers one edit apart are not near misses (VLAN 7 is not a mistyped 1).
  const near = kind === 'vlan' ? undefined : nearest(name, names)
  const list = names.length === 0 ? none : `${label}: ${listNames(names, undefined, true)}`
  const message = `${what} (${near !== undefined ? `did you mean ${near}? ` : ''}${list})`
  return new NameError(404, ERR_NOT_FOUND, message, { kind, name, known: names.slice(0, MAX_KNOWN), ...(near !== undefined ? { suggestion: near } : {}) })
}

/** The network `name` names (default: "default"), or 404 naming the networks there are. */
export function lookupNetwork (server: SwitchdView, name: string | undefined | null): Switch {
  const want = name ?? 'default'
  const sw = server.networks.get(want)
  if (sw !== undefined) return sw
  throw notFound('network', want, `no network "${want}"`, server.networks.all().map((n) => n.name), 'networks', 'no network exists')
}

/**
 * The port `name` names, in network `network` when given (404 if that network
 * does not exist). Names are unique in a network, not across networks (every
 * gateway is `gateway`, two tokens may pin one name in two networks): a name
 * two networks have must come with its network (409), never stand for
 * whichever port was found first.
 */
export function lookupPort (server: SwitchdView, name: string, network: string | null | undefined): PortHandle {
  const sw = network === null || network === undefined ? undefined : lookupNetwork(server, network)
  const inScope = (): PortHandle[] => server.ports().filter((p) => sw === undefined || p.network === sw)
  const found = server.portsNamed?.(name, sw) ?? inScope().filter((p) => p.name === name)
  if (found.length === 0) throw portNotFound(name, sw, inScope().map((p) => p.name))
  if (found.length > 1) {
    throw new NameError(409, ERR_CONFLICT, `${found.length} ports are named "${name}" (networks ${found.map((p) => p.network.name).join(', ')}): name the network with ?network= (switchctl --network)`,
      { kind: 'port', name })
  }
  return found[0] as PortHandle
}

function portNotFound (name: string, sw: Switch | undefined, known: string[]): NameError {
  const where = sw === undefined ? '' : ` in network ${sw.name}`
  return notFound('port', name, `no port "${name}"${where}`, known, 'ports', sw === undefined ? 'no port is connected' : `network ${sw.name} has no port`)
}

/**
 * Check a port filter (fdb, flush, capture, drops): `name` must be a port of
 * `nets` now, or one `also` names (the fdb's entries, the drop log's records:
 * history that outlives the port).
 */
export function checkPortFilter (server: SwitchdView, name: string | null | undefined, nets: readonly Switch[], also: Iterable<string> = []): void {
  if (name === null || name === undefined) return
  const known = new Set(server.ports().filter((p) => nets.includes(p.network)).map((p) => p.name))
  for (const n of also) known.add(n)
  if (known.has(name)) return
  throw portNotFound(name, nets.length === 1 ? nets[0] : undefined, [...known])
}

/**
 * The VLANs of `nets`: those the configuration grants there (the default
 * port policy, profiles, tokens), those a port is a member of, and those an
 * fdb entry (a static one included) is in. A VLAN nobody is in now may still
 * be asked about (`fdb --vlan 1`: nothing learned there); one nothing grants is a typo.
 */
function vlansOf (server: SwitchdView, nets: readonly Switch[]): Set<number> {
  const config = server.config
  const names = new Set(nets.map((sw) => sw.name))
  const here = (network: string | undefined): boolean => network === undefined || names.has(network)
  const vids = new Set<number>(config.defaultPolicy.vlans)
  for (const pr of config.profiles) if (here(pr.network)) for (const v of pr.policy.vlans) vids.add(v)
  for (const t of config.tokens.values()) if (here(t.network) && t.policy !== undefined) for (const v of t.policy.vlans) vids.add(v)
  for (const p of server.ports()) if (nets.includes(p.network)) for (const v of p.policy.vlans) vids.add(v)
  for (const sw of nets) for (const r of sw.fdb.rows()) vids.add(r.vid)
  return vids
}

/** Check a VLAN filter: `vid` is one of `nets`' VLANs (vlansOf); else 404 naming them. */
export function checkVlanFilter (server: SwitchdView, vid: number | undefined, nets: readonly Switch[]): void {
  if (vid === undefined) return
  const vids = vlansOf(server, nets)
  if (vids.has(vid)) return
  const where = nets.length === 1 ? ` in network ${(nets[0] as Switch).name}` : ''
  throw notFound('vlan', String(vid), `no VLAN ${vid}${where}`, [...vids].map(String), 'VLANs configured or in use', 'none is')
}

/** The networks a filter covers: the one named (404 if none), or all. */
export function networksFor (server: SwitchdView, name: string | null | undefined): Switch[] {
  return name === null || name === undefined ? server.networks.all() : [lookupNetwork(server, name)]
}

/**
 * Whether a static entry for port `name` of `sw` starts detached. A port that
 * holds the name only by claim (a hello's --name, no claimable profile) can
 * never own it, so the entry would stay detached while it is connected: 409
 * with the fix. A name no port has is 404 (a typo), unless the request says
 * `detached: true`: a static entry may wait for its port (docs/VLANS.md).
 */
export function staticTarget (server: SwitchdView, sw: Switch, name: string, detached: boolean): boolean {
  const holder = server.ports().find((p) => p.network === sw && p.name === name)
  if (holder !== undefined) {
    if (holder.ownsName) return false
    throw new NameError(409, ERR_CONFLICT, `port "${name}" claimed its name (a hello's --name), and a static entry binds only to a name a token or the configuration gives, ` +
      'or one a "claimable": true profile covers: pin the name with a token, or make its profile claimable (docs/CONFIGURATION.md)', { kind: 'port', name })
  }
  if (detached) return true
  const err = notFound('port', name, `no port "${name}" in network ${sw.name}`, server.ports().filter((p) => p.network === sw).map((p) => p.name), 'ports', `network ${sw.name} has no port`)
  err.message = err.message.replace(/\)$/, '; if it has not connected yet: "detached": true, switchctl static add --detached)')
  throw err
}

/** 404 for a static entry that is not there: its MAC's static entries in other VLANs, or the network's static MACs. */
export function staticNotFound (sw: Switch, vid: number, mac: number): NameError {
  const statics = sw.fdb.rows().filter((r) => r.isStatic)
  const vlans = statics.filter((r) => r.mac === mac).map((r) => String(r.vid))
  if (vlans.length > 0) {
    return new NameError(404, ERR_NOT_FOUND, `no static entry for ${formatMac(mac)} in VLAN ${vid} of network ${sw.name} (it has one in VLAN ${vlans.join(', ')})`,
      { kind: 'static', name: formatMac(mac), known: vlans })
  }
  return notFound('static', formatMac(mac), `no static entry for ${formatMac(mac)} in network ${sw.name}`, statics.map((r) => formatMac(r.mac)), 'static entries', 'it has none')
}
