/**
 * Metrics read at scrape time. Our counters are plain number fields on the
 * objects that own them; prom-client only sees them when Prometheus scrapes,
 * through collect(). Nothing on the frame path calls prom-client.
 *
 * Each metric's collect() resets it and writes the current values, so a
 * series exists (at 0) as soon as its object does, and disappears when the
 * object goes (a port that left). Totals that must stay monotonic across
 * ports coming and going are kept on long-lived objects (the network).
 */

import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'

export type Emit<L extends string> = (labels: Partial<Record<L, string>>, value: number) => void

/** A counter whose values come from `fill` at scrape time. */
export function scrapedCounter<L extends string> (reg: Registry, name: string, help: string, labelNames: readonly L[], fill: (emit: Emit<L>) => void): Counter<L> {
  return new Counter<L>({
    name,
    help,
    labelNames,
    registers: [reg],
    collect () {
      this.reset()
      fill((labels, value) => { this.inc(labels, value) })
    }
  })
}

/** A gauge whose values come from `fill` at scrape time. */
export function scrapedGauge<L extends string> (reg: Registry, name: string, help: string, labelNames: readonly L[], fill: (emit: Emit<L>) => void): Gauge<L> {
  return new Gauge<L>({
    name,
    help,
    labelNames,
    registers: [reg],
    collect () {
      this.reset()
      fill((labels, value) => { this.set(labels, value) })
    }
  })
}

/** A registry of our own (never the global one) with process metrics and `<prefix>_build_info`. */
export function createRegistry (prefix: string, version: string): Registry {
  const reg = new Registry()
  // The event-loop lag histogram samples with a libuv timer: prom-client's default 10 ms wakes an idle
  // process 100 times a second (about half of an idle switchd's CPU). Once a second still shows lag
  // under load, and lets an idle switchd or agent sleep (issue 14).
  collectDefaultMetrics({ register: reg, eventLoopMonitoringPrecision: 1000 })
  // prom-client names these gauges *_total, which `promtool check metrics`
  // rejects (only counters end in _total); the rest of the defaults stay.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) reg.removeSingleMetric(name)
  const info = new Gauge({ name: `${prefix}_build_info`, help: `${prefix} build: version and Node.js version (always 1)`, labelNames: ['version', 'node_version'], registers: [reg] })
  info.set({ version, node_version: process.version }, 1)
  return reg
}

/** package.json's version (slow path, once). */
export function packageVersion (): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('../../package.json') as { version: string }).version
}
