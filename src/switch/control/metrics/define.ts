/**
 * The shape of a metric of switchd's: a row of a subject's table (ports.ts,
 * networks.ts, drops.ts, …), as prom-client's own lib/metrics/*.js each
 * export what they register and how they collect. A row names the metric,
 * its help and labels, and how its values are read at scrape time from a
 * Scrape (the daemon's view); index.ts registers every table.
 */

import type { Registry } from 'prom-client'
import type { Switch } from '../../core/switch'
import type { SwitchdView, PortHandle, GatewayFacts } from '../view'
import { scrapedCounter, scrapedGauge, type Emit } from '../../../common/metrics'

/** What a collect reads, at scrape time. */
export interface Scrape {
  readonly server: SwitchdView
  /** The networks (each scrape asks again: a reload adds and removes them). */
  networks (): readonly Switch[]
  /** Each port that has per-port series (perPortMetrics on, at most maxPortSeries ports connected). */
  eachPort (fn: (p: PortHandle, network: string) => void): void
  /** The gateway of the network named `network`, if it has one. */
  gatewayOf (network: string): GatewayFacts | undefined
}

export type Collect<L extends string> = (emit: Emit<L>, s: Scrape) => void

export interface MetricDef {
  readonly kind: 'counter' | 'gauge'
  readonly name: string
  readonly help: string
  readonly labels: readonly string[]
  readonly collect: Collect<string>
}

export function counter<L extends string> (name: string, help: string, labels: readonly L[], collect: Collect<L>): MetricDef {
  return { kind: 'counter', name, help, labels, collect }
}

export function gauge<L extends string> (name: string, help: string, labels: readonly L[], collect: Collect<L>): MetricDef {
  return { kind: 'gauge', name, help, labels, collect }
}

/** One series a port, {network, port}: `value` of each port with per-port series. */
export function perPort (kind: MetricDef['kind'], name: string, help: string, value: (p: PortHandle) => number): MetricDef {
  return { kind, name, help, labels: ['network', 'port'], collect: (emit, s) => { s.eachPort((p, network) => { emit({ network, port: p.name }, value(p)) }) } }
}

/** One series a network, {network}: `value` of each network. */
export function perNetwork (kind: MetricDef['kind'], name: string, help: string, value: (sw: Switch, s: Scrape) => number): MetricDef {
  return { kind, name, help, labels: ['network'], collect: (emit, s) => { for (const sw of s.networks()) emit({ network: sw.name }, value(sw, s)) } }
}

/** Register `defs` in `reg`, each collecting from `s` when Prometheus scrapes. */
export function register (reg: Registry, s: Scrape, defs: readonly MetricDef[]): void {
  for (const d of defs) {
    const make = d.kind === 'counter' ? scrapedCounter : scrapedGauge
    make(reg, d.name, d.help, d.labels, (emit) => { d.collect(emit, s) })
  }
}
