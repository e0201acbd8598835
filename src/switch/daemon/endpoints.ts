/**
 * The configured endpoints, one table of kinds: QEMU listeners (`qemu`),
 * TAPs switchd serves itself (`taps`), trunks we dial (`trunks`), network
 * gateways (`networks.*.gateway`), VXLAN and GENEVE listeners (`vxlan`: a
 * port per VNI and remote VTEP). switchd starts them in one loop over the
 * table, stops them in one loop, and a reload that changes any key a kind
 * reads is refused whole (reload.ts): they change only on restart.
 *
 * Each kind opens its endpoints from the configuration (the transport in
 * io/ is given the options it needs, never the configuration) and registers
 * their ports in the one registry (registry.ts). Opening may throw
 * TSW_ERR_CONFIG naming the key; then switchd does not start.
 */

import type { Switch } from '../core/switch'
import type { PortPolicy } from '../core/port'
import type { SwitchdConfig } from '../control/config'
import type { Networks } from '../control/networks'
import type { ChildPeerGuard } from '../io/child-peers'
import type { NetPort } from '../io/net-port'
import { QemuListener } from '../io/qemu-listener'
import { TapPort, loadTapBinding, type TapBinding } from '../io/tap-port'
import { FastPath, type FastPathBinding } from '../io/fast-path'
import { TrunkLink, type TrunkHost } from '../io/trunk'
import { Gateway } from '../io/gateway'
import { VxlanListener, type VxlanPortSpec } from '../io/vxlan'
import { HORIZON_FIRST_FREE } from '../core/port'
import type { SandboxHost } from '../io/gateway-sandbox'
import type { PortRegistry, Owner } from './registry'
import { TapswitchError, ERR_CONFIG } from '../../common/errors'
import { logger } from '../../common/log'
import { parseIpv4 } from '../../common/dhcp'

const log = logger('server')

interface Running {
  /** Once every endpoint has opened. */
  run?: () => void
  /** On the switch's clock (every 100 ms). */
  tick?: (nowMs: number) => void
  close: () => void | Promise<void>
}

/** One running endpoint, by kind. */
export type Endpoint = Running & ({ kind: 'qemu', listener: QemuListener } | { kind: 'tap', port: TapPort } | { kind: 'trunk', link: TrunkLink } | { kind: 'gateway', gateway: Gateway } | { kind: 'vxlan', listener: VxlanListener })

/** What a kind needs of the daemon to open its endpoints. */
export interface EndpointContext {
  readonly config: SwitchdConfig
  readonly networks: Networks
  readonly registry: PortRegistry
  readonly childPeers: ChildPeerGuard
  /** The native TAP binding (tests pass a fake); loaded when the first TAP opens if absent. */
  readonly tapBinding?: TapBinding
  /** What gateways assume of this host (tests). */
  readonly gatewaySandbox?: SandboxHost
  allocateId: () => number
  refused: (reason: string) => void
  /** switchd's own TCP ports, as bound (its listeners and QEMU's): a gateway's stations may never reach them. */
  selfPorts: () => number[]
  /** Each network's native fast path for its TAPs, made with its first TAP. */
  fastPaths: Map<Switch, FastPath>
}

export interface EndpointKind {
  readonly kind: Exclude<Owner, 'session'>
  /** The configuration keys it reads, named as a refused reload names them, in that order. */
  readonly keys: ReadonlyArray<readonly [string, (c: SwitchdConfig) => unknown]>
  /** Open each configured endpoint of the kind into `into` (as soon as it exists: switchd closes what opened if a later one fails). */
  open: (ctx: EndpointContext, into: Endpoint[]) => Promise<void>
}

/** The network an endpoint joins, and its port's policy; TSW_ERR_CONFIG naming `what` if the network cannot be. */
function placeOf (ctx: EndpointContext, network: string, name: string, what: string): [Switch, PortPolicy] {
  const sw = ctx.networks.open(network)
  if (typeof sw === 'string') throw new TapswitchError(ERR_CONFIG, `${what}: ${sw}`)
  // An endpoint's name comes from the configuration: trusted.
  return [sw, ctx.networks.policyFor(sw, { name, nameTrusted: true }, undefined, undefined) as PortPolicy]
}

const qemu: EndpointKind = {
  kind: 'qemu',
  keys: [['qemu', (c) => c.qemu]],
  async open (ctx, into) {
    for (const q of ctx.config.qemu) {
      const [sw, policy] = placeOf(ctx, q.network, q.name, `qemu ${q.name}`)
      const listener = new QemuListener({ name: q.name, address: q.address, socketMode: q.socketMode }, sw, policy, ctx.allocateId(), ctx.config.portBuffer,
        (reason) => { ctx.refused(reason) }, (socket) => ctx.childPeers.refuse(socket, `qemu ${q.name}`))
      await listener.listen()
      ctx.registry.add(listener.port, 'qemu')
      into.push({ kind: 'qemu', listener, close: () => { listener.close(); ctx.registry.delete(listener.port) } })
    }
  }
}

/** The network's fast path, made on first use; undefined when it is off or the binding has none (a test's fake). */
function fastPathOf (ctx: EndpointContext, binding: TapBinding, sw: Switch): FastPath | undefined {
  if (!ctx.config.fastPath || binding.FastPath === undefined) return undefined
  let fp = ctx.fastPaths.get(sw)
  if (fp === undefined) {
    fp = new FastPath(binding as FastPathBinding, sw)
    ctx.fastPaths.set(sw, fp)
  }
  return fp
}

const taps: EndpointKind = {
  kind: 'tap',
  keys: [['taps', (c) => c.taps], ['busyPoll', (c) => c.busyPoll], ['fastPath', (c) => c.fastPath]],
  async open (ctx, into) {
    for (const t of ctx.config.taps) {
      const [sw, policy] = placeOf(ctx, t.network, t.name, `tap ${t.name}`)
      const binding = ctx.tapBinding ?? loadTapBinding()
      binding.setBusyPoll?.(ctx.config.busyPoll)
      const port = TapPort.open(binding, t, sw, policy, ctx.allocateId(), ctx.config.portBuffer)
      ctx.registry.add(port, 'tap')
      sw.addPort(port)
      port.start(fastPathOf(ctx, binding, sw))
      log.info('tap_up', { port: port.name, network: sw.name, offload: port.offload, fast_path: port.fastPath !== null })
      into.push({ kind: 'tap', port, close: () => { port.close(); port.network.removePort(port); ctx.registry.delete(port) } })
    }
    if (ctx.config.busyPoll > 0 && ctx.config.taps.length === 0) {
      log.warn('busy_poll_unused', { busy_poll_us: ctx.config.busyPoll, fix: 'busy polling follows traffic from local TAPs (taps / --tap): there are none' })
    }
  }
}

/** The daemon as a trunk sees it: our networks, our profile's VLANs, the registry. */
function trunkHost (ctx: EndpointContext): TrunkHost {
  return {
    open: (name) => ctx.networks.open(name),
    // A trunk we dial is named by us: trusted.
    allowedVlans: (sw, name) => {
      const local = ctx.networks.policyFor(sw, { name, nameTrusted: true }, undefined, undefined, true)
      return typeof local === 'string' ? [] : local.vlans
    },
    release: (sw) => { ctx.networks.release(sw) },
    portChanged: (link, port) => {
      for (const p of ctx.registry.owned<NetPort>('trunk')) if (trunkOf.get(p) === link) ctx.registry.delete(p)
      if (port !== undefined) { trunkOf.set(port, link); ctx.registry.add(port, 'trunk') }
    }
  }
}
const trunkOf = new WeakMap<NetPort, TrunkLink>()

const trunks: EndpointKind = {
  kind: 'trunk',
  keys: [['trunks', (c) => c.trunks]],
  async open (ctx, into) {
    const host = trunkHost(ctx)
    for (const t of ctx.config.trunks) {
      const link = new TrunkLink(t, host, () => ctx.allocateId(), ctx.config.portBuffer)
      into.push({ kind: 'trunk', link, run: () => { link.start() }, close: async () => { await link.close() } })
    }
  }
}

const gateways: EndpointKind = {
  kind: 'gateway',
  keys: [['networks.*.gateway', (c) => c.gateways]],
  async open (ctx, into) {
    // The ports bound, not those configured: `tcp:127.0.0.1:0` is the port the system chose.
    const self = ctx.selfPorts().filter((p) => p !== 0)
    // Through NAT a station's UDP to a VTEP would leave from this host's address, the one the VTEP trusts as switchd's.
    // The VXLAN listeners opened before (ENDPOINT_KINDS' order): their ports as bound.
    const udpPorts = into.flatMap((e) => e.kind === 'vxlan' ? [e.listener.boundPort] : [])
    const underlay = { udpPorts, vteps: vtepAddresses(ctx.config) }
    for (const g of ctx.config.gateways) {
      const [sw, policy] = placeOf(ctx, g.network, g.name, `networks.${g.network}.gateway`)
      const gateway = new Gateway(g, sw, policy, ctx.allocateId(), ctx.config.portBuffer, ctx.config.stateDir, ctx.gatewaySandbox)
      ctx.registry.add(gateway.port, 'gateway')
      into.push({ kind: 'gateway', gateway, tick: (now) => { gateway.tick(now) }, close: async () => { await gateway.close() } })
      await gateway.start(self, underlay)
    }
  }
}

const vxlan: EndpointKind = {
  kind: 'vxlan',
  keys: [['vxlan', (c) => c.vxlan]],
  async open (ctx, into) {
    // Each VNI's VTEPs are one split-horizon group (as one Linux vxlan device is one bridge port), unless it relays.
    let horizon = HORIZON_FIRST_FREE
    for (const [i, s] of ctx.config.vxlan.entries()) {
      const ports: VxlanPortSpec[] = []
      for (const v of s.vnis) {
        const group = v.relay ? 0 : horizon++
        for (const r of v.remotes) {
          const name = `${v.name}-${r.address}`
          // An access port of the VNI's VLAN; the rest (maxMacs, storm, condition) from the profile its name selects (config vtepPolicy).
          const [sw, policy] = placeOf(ctx, v.network, name, `vxlan[${i}] VNI ${v.vni}`)
          ports.push({ vni: v.vni, address: r.address, port: r.port, name, sw, policy, id: ctx.allocateId(), horizon: group })
        }
      }
      const listener = new VxlanListener(s, ports, ctx.config.portBuffer)
      into.push({ kind: 'vxlan', listener, close: () => { listener.close(); for (const p of listener.ports) ctx.registry.delete(p) } })
      await listener.listen()
      for (const p of listener.ports) ctx.registry.add(p, 'vxlan')
    }
  }
}

/** Every IPv4 VTEP of the configuration, as numbers (a gateway speaks IPv4 only). */
function vtepAddresses (config: SwitchdConfig): number[] {
  const out: number[] = []
  for (const s of config.vxlan) for (const v of s.vnis) for (const r of v.remotes) { const a = parseIpv4(r.address); if (a !== undefined) out.push(a) }
  return out
}

/**
 * In the order they start (a gateway refuses switchd's QEMU TCP ports and
 * VXLAN UDP ports, so those listen first) and a reload names them.
 */
export const ENDPOINT_KINDS: readonly EndpointKind[] = [qemu, taps, trunks, vxlan, gateways]

/** Open every configured endpoint, kind by kind; then let them run (trunks dial once everything else is up). */
export async function openEndpoints (ctx: EndpointContext, into: Endpoint[]): Promise<void> {
  for (const kind of ENDPOINT_KINDS) await kind.open(ctx, into)
  for (const e of into) e.run?.()
}
