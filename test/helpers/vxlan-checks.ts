/**
 * What the VXLAN e2e checks on a fabric's stations (test/e2e/vxlan.e2e.ts):
 * pings that must all come back once, the neighbour a namespace resolved, and
 * an iperf3 TCP transfer of a fixed size with its sender's retransmits.
 */

import assert from 'node:assert/strict'
import { stopChild } from '../../src/lab/lab'
import { spawnLogged, tcpListening, type Logged } from './proc'
import { sleep, MIN_WAIT_MS } from './net'
import { OVERLAY_MTU, type Station, type VxlanFabric } from './vxlan-fabric'

/**
 * Ping `to` from `from` until one answer comes back (ARP or neighbour
 * discovery and learning on the way, bounded by MIN_WAIT_MS), then `count`
 * pings that must all come back, none twice; resolves with the summary.
 */
export async function pings (f: VxlanFabric, from: Station, to: string, family: 4 | 6, opts: { count?: number, size?: number } = {}): Promise<string> {
  const args = ['ping', `-${family}`, '-n', '-q', '-W', '5', ...(opts.size === undefined ? [] : ['-M', 'do', '-s', String(opts.size)])]
  const deadline = Date.now() + MIN_WAIT_MS
  for (;;) {
    try {
      await f.exec(from.ns, [...args, '-c', '1', to], 15_000)
      break
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${from.name}: no answer from ${to} within ${MIN_WAIT_MS} ms: ${(err as Error).message}`)
      await sleep(200)
    }
  }
  const count = opts.count ?? 3
  const out = await f.exec(from.ns, [...args, '-c', String(count), '-i', '0.2', to], (count * 0.2 + 20) * 1000)
  assert.match(out, new RegExp(`${count} packets transmitted, ${count} received`), `${from.name} -> ${to}: ${out}`)
  assert.doesNotMatch(out, /duplicates/, `${from.name} -> ${to}: no frame arrives twice`)
  return out
}

/** The link-layer address `ns` resolved `ip` to (ARP or neighbour discovery), '' if none. */
export async function neighbour (f: VxlanFabric, st: Station, ip: string): Promise<string> {
  const rows = JSON.parse(await f.ip(st.ns, '-j', 'neigh', 'show', ip, 'dev', st.tap)) as Array<{ lladdr?: string }>
  return rows[0]?.lladdr ?? ''
}

interface IperfEnd { start: { tcp_mss_default?: number }, end: { sum_sent: { bytes: number, retransmits?: number } } }

/**
 * iperf3 TCP, one stream, a fixed 16 MiB (a count, not a time) from `client`
 * to `server` (or back with `reverse`): its sender's bytes, segments and
 * retransmits.
 */
export async function iperf (f: VxlanFabric, server: Station, client: Station, reverse: boolean): Promise<{ bytes: number, segments: number, retransmits: number }> {
  const port = 5201
  let srv: Logged | undefined
  try {
    srv = spawnLogged('iperf3-s', 'ip', ['netns', 'exec', server.ns, 'iperf3', '-s', '-1', '-B', server.ipv4, '-p', String(port)], (l) => { f.onLog(`iperf3 -s: ${l}`) })
    await tcpListening(server.ns, port)
    const out = await f.exec(client.ns, ['iperf3', '-c', server.ipv4, '-p', String(port), '-n', '16M', '-J', '--connect-timeout', '10000', ...(reverse ? ['-R'] : [])], 180_000)
    const r = JSON.parse(out) as IperfEnd & { error?: string }
    if (r.error !== undefined) throw new Error(`iperf3: ${r.error}`)
    const mss = r.start.tcp_mss_default ?? OVERLAY_MTU - 52
    return { bytes: r.end.sum_sent.bytes, segments: Math.ceil(r.end.sum_sent.bytes / mss), retransmits: r.end.sum_sent.retransmits ?? 0 }
  } finally {
    await stopChild(srv?.child)
  }
}
