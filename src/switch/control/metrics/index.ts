/**
 * switchd's Prometheus metrics (docs/METRICS.md lists them all; test/unit/docs.test.ts checks the list),
 * one table per subject: ports.ts, drops.ts, networks.ts, fastpath.ts, stp.ts, mesh.ts, daemon.ts, gateway.ts, vxlan.ts
 * (define.ts says what a row is). Values are read from Port, Switch, Fdb and daemon counters at scrape
 * time; nothing on the frame path calls prom-client. The process's own series and switchd_build_info
 * come from common/metrics.ts createRegistry.
 *
 * Per-port series carry {network, port}: bounded by the ports connected, and
 * switched off entirely with perPortMetrics=false (or beyond maxPortSeries
 * ports) for very large installations; the per-network series always exist.
 */

import type { Registry } from 'prom-client'
import type { SwitchdView, PortHandle } from '../view'
import { createRegistry, packageVersion } from '../../../common/metrics'
import { register, type MetricDef, type Scrape } from './define'
import { portMetrics } from './ports'
import { dropMetrics } from './drops'
import { networkMetrics } from './networks'
import { fastPathMetrics } from './fastpath'
import { stpMetrics } from './stp'
import { daemonMetrics } from './daemon'
import { gatewayMetrics } from './gateway'
import { meshMetrics } from './mesh'
import { vxlanMetrics } from './vxlan'

export interface MetricsOptions {
  /** Per-port series (default true). */
  perPort?: boolean
  /** No per-port series at all once more ports than this are connected (default 1000). */
  maxPortSeries?: number
  /** This replica's name (switchd --replica): the label `replica` on every series, so one Prometheus tells a fleet's replicas apart. */
  replica?: string
}

/** Every subject's table, in the order /metrics shows them. */
const TABLES: ReadonlyArray<readonly MetricDef[]> = [portMetrics, dropMetrics, networkMetrics, fastPathMetrics, stpMetrics, meshMetrics, daemonMetrics, gatewayMetrics, vxlanMetrics]

export function switchdRegistry (server: SwitchdView, opts: MetricsOptions = {}): Registry {
  const reg = createRegistry('switchd', packageVersion())
  // A default label, not a label of each table: prom-client adds it to every series at exposition, the process's own included.
  if (opts.replica !== undefined) reg.setDefaultLabels({ replica: opts.replica })
  const perPort = opts.perPort ?? true
  const maxPorts = opts.maxPortSeries ?? 1000
  const scrape: Scrape = {
    server,
    networks: () => server.networks.all(),
    eachPort: (fn: (p: PortHandle, network: string) => void): void => {
      if (!perPort) return
      const ports = server.ports()
      if (ports.length > maxPorts) return
      for (const p of ports) fn(p, p.network.name)
    },
    gatewayOf: (name) => server.gateways().find((g) => g.network === name)
  }
  for (const table of TABLES) register(reg, scrape, table)
  return reg
}
