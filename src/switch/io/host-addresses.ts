/**
 * This host's own IPv4 addresses, for the gateway's filter
 * (core/gateway-filter.ts): libslirp connects to a station's destination as
 * given, so a SYN to one of them reaches this host's listeners on it (a
 * service on 0.0.0.0, switchd's own listener among them). The filter refuses
 * them whatever the port; it is handed them here as integers.
 *
 * "Local" is what the kernel routes to this host: the local routes of the
 * network namespace switchd (and so its gateway children) runs in, read from
 * /proc/net/fib_trie (the `host LOCAL` entries: every interface address, and
 * prefixes such as 127/8 or an AnyIP `ip route add local 10.9.0.0/16`),
 * together with the addresses os.networkInterfaces() reports. Over-listing
 * costs nothing: these are destinations no station may reach anyway.
 *
 * They are read when a gateway starts (synchronously: no frame passes before
 * the set is filled) and then at most once a second from the switch's tick,
 * asynchronously, never per frame. An address added to the host is refused
 * from the next refresh on. A fib_trie over MAX_FIB_TRIE_BYTES (a router
 * with a full table) is not read again: interfaces alone are, once a second.
 * switchd's own listeners do not rest on this list alone: the filter refuses
 * their ports at every address that reaches this host (`switchd`).
 */

import * as fs from 'node:fs'
import * as os from 'node:os'
import { AddressSet } from '../core/gateway-filter'
import { parseIpv4 } from '../../common/dhcp'
import { logger } from '../../common/log'

const log = logger('gateway')

const FIB_TRIE = '/proc/net/fib_trie'
export const MAX_FIB_TRIE_BYTES = 1 << 20
const REFRESH_MS = 1000

export interface LocalRoutes {
  /** /32 local routes: this host's addresses. */
  hosts: number[]
  /** Shorter local routes: [network, prefix length]. */
  prefixes: Array<[number, number]>
}

/** The `host LOCAL` routes of /proc/net/fib_trie's text (an address line `|-- A.B.C.D`, then its `/LEN scope TYPE` lines). */
export function parseFibTrie (text: string): LocalRoutes {
  const hosts = new Set<number>()
  const prefixes = new Map<string, [number, number]>()
  let current: number | undefined
  for (const line of text.split('\n')) {
    const a = /^\s*\|-- (\d+\.\d+\.\d+\.\d+)\s*$/.exec(line)
    if (a !== null) { current = parseIpv4(a[1] as string); continue }
    const r = /^\s*\/(\d+)\s+\S+\s+LOCAL\b/.exec(line)
    if (r === null || current === undefined) continue
    const len = Number(r[1])
    if (len === 32) hosts.add(current)
    else if (len < 32) prefixes.set(`${current}/${len}`, [current, len])
  }
  return { hosts: [...hosts], prefixes: [...prefixes.values()] }
}

/** IPv4 addresses of this host's interfaces, as os.networkInterfaces() has them. */
export function interfaceAddresses (ifaces: ReturnType<typeof os.networkInterfaces>): number[] {
  const out: number[] = []
  for (const list of Object.values(ifaces)) {
    for (const a of list ?? []) {
      const ip = a.family === 'IPv4' ? parseIpv4(a.address) : undefined
      if (ip !== undefined) out.push(ip)
    }
  }
  return out
}

export class HostAddresses {
  readonly set = new AddressSet()
  /** Refreshes done, for tests and the curious. */
  refreshes = 0
  private last = -Infinity
  private busy = false
  private readFib = true

  constructor (private readonly fibPath = FIB_TRIE, private readonly interfaces: () => ReturnType<typeof os.networkInterfaces> = os.networkInterfaces) {}

  /** A read is under way. */
  get reading (): boolean { return this.busy }

  /** Read now and wait for it (a gateway's start). */
  refreshSync (): void {
    let text: string | undefined
    if (this.readFib) {
      try { text = fs.readFileSync(this.fibPath, 'utf8') } catch {}
    }
    this.apply(text)
  }

  /** Read again if a second has passed since the last read (the switch's tick calls this). */
  refresh (nowMs: number): void {
    if (this.busy || nowMs - this.last < REFRESH_MS) return
    this.last = nowMs
    if (!this.readFib) { this.apply(undefined); return }
    this.busy = true
    fs.readFile(this.fibPath, 'utf8', (err, text) => {
      this.busy = false
      this.apply(err === null ? text : undefined)
    })
  }

  private apply (fib: string | undefined): void {
    if (fib !== undefined && fib.length > MAX_FIB_TRIE_BYTES) {
      this.readFib = false
      log.warn('host_addresses_interfaces_only', { bytes: fib.length, note: `${this.fibPath} is over ${MAX_FIB_TRIE_BYTES} bytes: local prefixes (AnyIP) are not read again, interface addresses are` })
    }
    const routes = fib === undefined ? { hosts: [], prefixes: [] } : parseFibTrie(fib)
    let ifaces: number[] = []
    try { ifaces = interfaceAddresses(this.interfaces()) } catch {}
    this.set.set([...routes.hosts, ...ifaces], routes.prefixes)
    this.refreshes++
  }
}

/** One for the process: every gateway runs in switchd's network namespace. */
export const hostAddresses = new HostAddresses()
