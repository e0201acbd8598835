/**
 * The JSON of a port, a network, a gateway and a port's link conditions, as
 * the API answers them and the web console's snapshots carry them
 * (console.ts): built on request from the plain counter fields, never on
 * the frame path.
 */

import type { PortHandle, GatewayFacts } from '../view'
import type { Switch } from '../../core/switch'
import { MODE_TRUNK, BLOCK_LOOP, BLOCK_OPERATOR, BLOCK_STP, BLOCK_LINK, portState } from '../../core/port'
import { conditionJson, type LinkCondition } from '../../core/condition'
import { portDropDetail, networkCounters } from '../../core/drops'
import type { PortJson, NetworkJson, GatewayJson, ConditionJson, PortConditionJson } from '../../../common/api-types'

/** A port as GET /api/v1/ports shows it. */
export function portView (p: PortHandle): PortJson {
  const nowMs = p.network.nowMs
  return {
    id: p.id,
    name: p.name,
    network: p.network.name,
    kind: p.kind,
    remote: p.remote,
    connectedAt: new Date(p.connectedAt).toISOString(),
    mode: p.mode === MODE_TRUNK ? 'trunk' : 'access',
    pvid: p.pvid,
    vlans: p.policy.vlans,
    state: portState(p),
    blockedSeconds: (p.blocked & (BLOCK_OPERATOR | BLOCK_STP)) === 0 && (p.blocked & BLOCK_LOOP) !== 0 ? Math.max(0, Math.ceil((p.loopUntil - nowMs) / 1000)) : 0,
    fdbEntries: p.fdbEntries,
    maxMacs: p.maxMacs,
    offload: p.offload,
    path: p.fastPath !== null ? 'native' : 'js',
    ...(p.stp !== null ? { stp: stpView(p, p.stp) } : {}),
    counters: {
      rxFrames: p.rxFrames,
      rxBytes: p.rxBytes,
      txFrames: p.txFrames,
      txBytes: p.txBytes,
      loopBlocks: p.loopBlocks,
      securityViolations: p.securityViolations
    },
    ...(hasCondition(p) ? { condition: conditionView(p) } : {}),
    drops: portDropDetail(p)
  }
}

/** A trunk's spanning-tree state, and what it knows of the switch at its far end. */
function stpView (p: PortHandle, st: NonNullable<PortHandle['stp']>): NonNullable<PortJson['stp']> {
  return {
    role: st.role,
    forwarding: st.forwarding,
    neighbour: st.info?.bridge,
    // A trunk we dialled is named `<our name>@<its host>`; one we accepted, by the name the far switch asked for.
    peer: p.kind === 'trunk' ? p.remote : p.name,
    neighbourRoot: st.info?.root,
    neighbourCost: st.info?.cost,
    bpdusIn: st.bpdusIn,
    bpdusOut: st.bpdusOut,
    badBpdus: st.badBpdus
  }
}

/** Whether the port has a link condition, a one-way drill or a flap (the slow path's question). */
export function hasCondition (p: PortHandle): boolean {
  return p.condIn !== null || p.condOut !== null || p.flap !== undefined || (p.blocked & BLOCK_LINK) !== 0
}

function directionView (c: LinkCondition | null): ConditionJson | undefined {
  if (c === null) return undefined
  return { ...conditionJson(c.params), down: c.down, queuedFrames: c.queuedFrames, queuedBytes: c.queuedBytes } as ConditionJson
}

/** A port's link conditions, drills and flap, as GET /api/v1/conditions shows them. */
export function conditionView (p: PortHandle): PortConditionJson {
  const v: PortConditionJson = { port: p.name, network: p.network.name, framesDelayed: p.framesDelayed }
  const i = directionView(p.condIn)
  const o = directionView(p.condOut)
  if (i !== undefined) v.in = i
  if (o !== undefined) v.out = o
  if (p.flap !== undefined) v.flap = { down: p.flap.down, every: p.flap.every }
  return v
}

/** A gateway as GET /api/v1/networks shows it. */
export function gatewayView (g: GatewayFacts): GatewayJson {
  return {
    up: g.up,
    starts: g.starts,
    sandbox: g.sandbox ?? 'starting',
    ...(g.sandboxWhy !== undefined ? { sandboxWhy: g.sandboxWhy } : {}),
    fdLimit: g.fdLimit,
    flows: g.flows,
    maxFlows: g.maxFlows,
    flowsPerClient: g.flowsPerClient,
    clients: g.flowClients,
    filtered: {
      dhcp: g.filteredDhcp, dhcp_chaddr: g.filteredChaddr, dhcp_limit: g.filteredLimit, dhcp_rate: g.filteredRate, dhcp_pool: g.filteredPool, dns: g.filteredDns, outside: g.filteredOutside, switchd: g.filteredSelf, host: g.filteredHost,
      not_routable: g.filteredNotRoutable, fragment: g.filteredFragment, protocol: g.filteredProtocol, flows: g.filteredFlows,
      source: g.filteredSource, arp_rate: g.filteredArpRate
    }
  }
}

/** A network as GET /api/v1/networks shows it (with its gateway's facts, when it has one). */
export function networkView (sw: Switch, gateway?: GatewayFacts): NetworkJson {
  // First: the fast path folds what it forwarded into the counters below.
  const fastPath = sw.fastPath?.stats()
  return {
    name: sw.name,
    ports: sw.ports.length,
    maxFrameSize: sw.maxFrameSize,
    fdb: { entries: sw.fdb.size, maxEntries: sw.fdb.maxEntries, ageingTime: sw.fdb.ageingTime, ...sw.fdb.stats },
    stp: { bridge: sw.stp.bridgeId, root: sw.stp.rootId, rootCost: sw.stp.rootCost, rootPort: sw.stp.rootPort?.name, trunks: sw.stp.ports.length, topologyChanges: sw.stp.topologyChanges },
    counters: networkCounters(sw.stats),
    ...(fastPath !== undefined ? { fastPath } : {}),
    ...(gateway !== undefined ? { gateway: gatewayView(gateway) } : {})
  }
}
