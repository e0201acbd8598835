/**
 * switchd's own TCP listeners (the main one, --metrics-listen, QEMU tcp:
 * listeners) refuse every connection that comes from a gateway's QEMU child,
 * whatever address it used (issue 21, finding 1). libslirp connects to this
 * host for stations: the filter in front of the gateway (gateway-port.ts)
 * lists destinations, and a list can miss one (255.255.255.255, an address
 * added to an interface a second ago, an AnyIP local route). This does not
 * look at addresses: it asks who is at the other end.
 *
 * On each new connection, while a gateway child runs (no child: nothing is
 * done), before any byte is read:
 *  1. the kernel is asked for the socket at the other end of exactly this
 *     4-tuple (native lookupPeerSocket: one NETLINK_SOCK_DIAG lookup). A
 *     peer on another host, or in another network namespace, has none here;
 *  2. a socket whose uid is no child's uid is not a child's (a socket keeps
 *     the uid that created it): served, at the cost of that one lookup;
 *  3. otherwise the children's fds are read (/proc/<pid>/fd, native
 *     findSocketFd) for `socket:[inode]`: found, refused.
 * Whatever cannot be told apart is refused when the peer is on this host
 * (loopback, or our own address: a local connection gets the address it
 * dialled as its source) and served otherwise: a local socket already
 * closed by its process (an orphan: it may still have sent a request; a
 * client that hung up loses nothing), one the lookup did not find, or every
 * local peer when the lookup cannot run (no addon, not Linux, AF_NETLINK
 * forbidden; this host's interface addresses count as local then too).
 * That failure is logged once with its fix.
 *
 * A refusal is a reset (RST), counted as `gateway_child` and logged
 * rate-limited. The station behind it saw its SYN answered (the kernel
 * completes the handshake before switchd accepts) and then the reset: the
 * listener never reads its bytes.
 *
 * Cost: a lookup per connection while a gateway runs; a scan of a child's
 * fds (bounded by its RLIMIT_NOFILE, gateway-sandbox.ts) only for a peer of
 * the child's uid, the fd of the last refusal tried first, as slirp reuses
 * its lowest free fd.
 */

import type * as net from 'node:net'
import * as os from 'node:os'
import { logger } from '../../common/log'
import { tryLoadNative } from '../../common/native'

const log = logger('child-peers')

/** The reason refusals are counted under (switchd_connections_rejected_total). */
export const CHILD_REJECT_REASONS = ['gateway_child'] as const

/** What this needs of the native binding (native/index.d.ts); tests may pass their own. */
export interface PeerBinding {
  lookupPeerSocket (peerAddress: string, peerPort: number, localAddress: string, localPort: number): { inode: number, uid: number } | null
  findSocketFd (pid: number, inode: number, hint: number): number
}

/** A running gateway child: its PID and the uid its sockets carry. */
export interface ChildRef { readonly pid: number, readonly uid: number }

/** Who is at the other end: the last three are refused. */
export type PeerKind = 'remote' | 'local' | 'child' | 'closed' | 'unverified'

/** The lookup's answer: the peer's socket, none (null), or the lookup could not run. */
export type Lookup = { inode: number, uid: number } | null | 'failed'

/**
 * The decision, from what is known: `owner` says whether a child holds the
 * socket (undefined: its fds could not be read), `nearby` whether the peer's
 * address is this host's.
 */
export function classifyPeer (lookup: Lookup, owner: (inode: number, uid: number) => boolean | undefined, nearby: boolean): PeerKind {
  if (lookup === 'failed') return nearby ? 'unverified' : 'remote'
  if (lookup === null) return nearby ? 'closed' : 'remote'
  if (lookup.inode === 0) return 'closed'
  const held = owner(lookup.inode, lookup.uid)
  return held === undefined ? 'unverified' : held ? 'child' : 'local'
}

/** Refused kinds. */
export function refused (kind: PeerKind): boolean { return kind === 'child' || kind === 'closed' || kind === 'unverified' }

/** `::ffff:1.2.3.4` as `1.2.3.4` (a dual-stack listener's view of an IPv4 peer), `fe80::1%eth0` as `fe80::1`. */
function plain (address: string): string {
  const a = address.replace(/%.*$/, '')
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a
}

function isLoopback (address: string): boolean { return address === '::1' || address.startsWith('127.') }

/** Whether `peer` is on this host by its address alone; `everywhere` adds the interfaces' addresses (a snapshot). */
export function nearbyAddress (peer: string, local: string, everywhere: boolean): boolean {
  if (isLoopback(peer) || peer === local) return true
  if (!everywhere) return false
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) if (a.address === peer) return true
  return false
}

function loadBinding (): PeerBinding | undefined {
  const b = tryLoadNative() as Partial<PeerBinding> | undefined
  return b !== undefined && typeof b.lookupPeerSocket === 'function' && typeof b.findSocketFd === 'function' ? b as PeerBinding : undefined
}

export class ChildPeerGuard {
  /** Refusals, by kind (the log says which). */
  readonly refusedBy = { child: 0, closed: 0, unverified: 0 }
  /** The fd of each child's last refused socket: tried first. */
  private readonly hints = new Map<number, number>()
  private binding: PeerBinding | undefined | null = null
  private failureLogged = false

  /**
   * `children` lists the running gateway children (read on each connection);
   * `refuse` counts a refusal. `binding` defaults to the addon.
   */
  constructor (private readonly children: () => readonly ChildRef[], private readonly count: (reason: typeof CHILD_REJECT_REASONS[number]) => void, binding?: PeerBinding) {
    if (binding !== undefined) this.binding = binding
  }

  /**
   * Call first thing on a new connection of a listener (`listener` names it in
   * the log). Returns true when the connection was refused: reset, counted and
   * logged; the caller does nothing more with it.
   */
  refuse (socket: net.Socket, listener: string): boolean {
    const kids = this.children()
    if (kids.length === 0) return false
    const peer = socket.remoteAddress
    const local = socket.localAddress
    if (peer === undefined || local === undefined) { socket.destroy(); return true } // already gone: nothing to serve
    const p = plain(peer)
    const l = plain(local)
    const lookup = this.lookup(p, socket.remotePort ?? 0, l, socket.localPort ?? 0)
    const kind = classifyPeer(lookup, (inode, uid) => this.owner(kids, inode, uid), nearbyAddress(p, l, lookup === 'failed'))
    if (!refused(kind)) return false
    this.refusedBy[kind as 'child' | 'closed' | 'unverified']++
    this.count('gateway_child')
    log.limited('warn', 'connection_rejected', { remote: peer, listener, reason: 'gateway_child', peer: kind })
    socket.on('error', () => {})
    socket.resetAndDestroy()
    return true
  }

  private lookup (peer: string, peerPort: number, local: string, localPort: number): Lookup {
    if (this.binding === null) this.binding = loadBinding()
    if (this.binding === undefined) {
      this.failedOnce('the native addon did not load (run npm install in the tapswitch directory)')
      return 'failed'
    }
    try {
      return this.binding.lookupPeerSocket(peer, peerPort, local, localPort)
    } catch (err) {
      this.failedOnce((err as Error).message) // the binding's message carries the fix
      return 'failed'
    }
  }

  /** Whether a child holds socket `inode`; undefined when a child of that uid could not be read. */
  private owner (kids: readonly ChildRef[], inode: number, uid: number): boolean | undefined {
    let unknown = false
    for (const k of kids) {
      if (k.uid !== uid) continue
      try {
        const fd = (this.binding as PeerBinding).findSocketFd(k.pid, inode, this.hints.get(k.pid) ?? -1)
        if (fd >= 0) {
          if (this.hints.size > 64) this.hints.clear() // children come and go: keep it small
          this.hints.set(k.pid, fd)
          return true
        }
      } catch (err) {
        this.failedOnce((err as Error).message)
        unknown = true
      }
    }
    return unknown ? undefined : false
  }

  private failedOnce (why: string): void {
    if (this.failureLogged) return
    this.failureLogged = true
    log.error('peer_lookup_failed', {
      error: why,
      effect: 'while a gateway runs, switchd refuses every connection from this host it cannot tell apart from the gateway child\'s'
    })
  }
}
