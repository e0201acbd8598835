/**
 * io/child-peers.ts: the decision on a listener's new connection, with a
 * fake binding and fake sockets (the real lookup is tested in
 * test/integration/peer-lookup.test.ts, the real refusal in
 * test/integration/child-peers.test.ts).
 */

import assert from 'node:assert/strict'
import type * as net from 'node:net'
import * as os from 'node:os'
import { ChildPeerGuard, classifyPeer, refused, nearbyAddress, type PeerBinding, type ChildRef } from '../../src/switch/io/child-peers'
import { setLogSink } from '../../src/common/log'

class FakeSocket {
  reset = 0
  destroyed = 0
  constructor (readonly remoteAddress: string | undefined, readonly localAddress = '127.0.0.1', readonly remotePort = 40000, readonly localPort = 8080) {}
  on (): this { return this }
  resetAndDestroy (): this { this.reset++; return this }
  destroy (): this { this.destroyed++; return this }
}

class FakeBinding implements PeerBinding {
  lookups = 0
  lastLookup: unknown[] = []
  scans: Array<[number, number, number]> = []
  constructor (public peer: { inode: number, uid: number } | null | Error, public fds: Map<number, Map<number, number>> = new Map(), public scanError?: Error) {}
  lookupPeerSocket (...args: unknown[]): { inode: number, uid: number } | null {
    this.lookups++
    this.lastLookup = args
    if (this.peer instanceof Error) throw this.peer
    return this.peer
  }

  findSocketFd (pid: number, inode: number, hint: number): number {
    this.scans.push([pid, inode, hint])
    if (this.scanError !== undefined) throw this.scanError
    for (const [fd, ino] of this.fds.get(pid) ?? []) if (ino === inode) return fd
    return -1
  }
}

describe('ChildPeerGuard', () => {
  const logs: string[] = []
  let restore: (line: string) => void
  beforeEach(() => { logs.length = 0; restore = setLogSink((l) => { logs.push(l) }) })
  afterEach(() => { setLogSink(restore) })

  function guard (binding: PeerBinding, children: ChildRef[]): { g: ChildPeerGuard, counted: string[] } {
    const counted: string[] = []
    return { g: new ChildPeerGuard(() => children, (r) => { counted.push(r) }, binding), counted }
  }
  const refuse = (g: ChildPeerGuard, s: FakeSocket): boolean => g.refuse(s as unknown as net.Socket, 'listen')

  it('does nothing at all while no gateway child runs', () => {
    const b = new FakeBinding({ inode: 5, uid: 0 })
    const { g } = guard(b, [])
    assert.equal(refuse(g, new FakeSocket('127.0.0.1')), false)
    assert.equal(b.lookups, 0)
  })

  it('attack: refuses (resets, counts, logs) a connection whose peer socket a child holds', () => {
    const b = new FakeBinding({ inode: 77, uid: 65534 }, new Map([[400, new Map([[9, 77]])]]))
    const { g, counted } = guard(b, [{ pid: 400, uid: 65534 }])
    const s = new FakeSocket('127.0.0.1')
    assert.equal(refuse(g, s), true)
    assert.equal(s.reset, 1)
    assert.deepEqual(counted, ['gateway_child'])
    assert.equal(g.refusedBy.child, 1)
    assert.ok(logs.some((l) => l.includes('"event":"connection_rejected"') && l.includes('"reason":"gateway_child"') && l.includes('"peer":"child"')))
    // The next one tries the fd of the last refusal first.
    refuse(g, new FakeSocket('127.0.0.1'))
    assert.deepEqual(b.scans.map((x) => x[2]), [-1, 9])
  })

  it('serves a local peer of another uid without reading any child\'s fds, and one of the same uid that no child holds', () => {
    const b = new FakeBinding({ inode: 77, uid: 0 }, new Map([[400, new Map([[9, 78]])]]))
    const { g, counted } = guard(b, [{ pid: 400, uid: 65534 }])
    assert.equal(refuse(g, new FakeSocket('127.0.0.1')), false)
    assert.equal(b.scans.length, 0, 'no scan for another uid')
    b.peer = { inode: 77, uid: 65534 }
    assert.equal(refuse(g, new FakeSocket('127.0.0.1')), false)
    assert.equal(b.scans.length, 1)
    assert.deepEqual(counted, [])
  })

  it('serves a remote peer (the kernel has no socket for it); refuses a local one whose socket is gone or closed', () => {
    const b = new FakeBinding(null)
    const { g, counted } = guard(b, [{ pid: 400, uid: 1000 }])
    assert.equal(refuse(g, new FakeSocket('192.0.2.50', '192.0.2.1')), false)
    assert.equal(refuse(g, new FakeSocket('127.0.0.1')), true, 'loopback, and no socket: closed before we looked')
    assert.equal(refuse(g, new FakeSocket('192.0.2.1', '192.0.2.1')), true, 'our own address')
    assert.equal(refuse(g, new FakeSocket('::ffff:127.0.0.1', '::ffff:127.0.0.1')), true, 'IPv4-mapped loopback')
    b.peer = { inode: 0, uid: 1000 }
    assert.equal(refuse(g, new FakeSocket('10.9.9.9', '192.0.2.1')), true, 'an orphan: its process closed it')
    assert.equal(g.refusedBy.closed, 4)
    assert.equal(counted.length, 4)
  })

  it('when the lookup cannot run: refuses local peers (this host\'s addresses included), serves the others, says why once', () => {
    const err = Object.assign(new Error('socket(AF_NETLINK) NETLINK_SOCK_DIAG: EAFNOSUPPORT (AF_NETLINK is forbidden here)'), { code: 'EAFNOSUPPORT' })
    const { g } = guard(new FakeBinding(err), [{ pid: 400, uid: 1000 }])
    assert.equal(refuse(g, new FakeSocket('127.0.0.1')), true)
    assert.equal(refuse(g, new FakeSocket('::1', '::1')), true)
    assert.equal(refuse(g, new FakeSocket('203.0.113.7', '192.0.2.1')), false)
    assert.equal(g.refusedBy.unverified, 2)
    // An address of one of this host's interfaces (other than the one dialled) counts as local here.
    const mine = Object.values(os.networkInterfaces()).flat().find((a) => a !== undefined && !a.internal && a.family === 'IPv4')
    if (mine !== undefined) assert.equal(refuse(g, new FakeSocket(mine.address, '192.0.2.1')), true, mine.address)
    assert.equal(logs.filter((l) => l.includes('"event":"peer_lookup_failed"') && l.includes('EAFNOSUPPORT')).length, 1, 'once')
  })

  it('when a child\'s fds cannot be read: refuses the peers of its uid (fail closed)', () => {
    const err = Object.assign(new Error('open /proc/400/fd: EACCES'), { code: 'EACCES' })
    const { g } = guard(new FakeBinding({ inode: 5, uid: 1000 }, new Map(), err), [{ pid: 400, uid: 1000 }])
    assert.equal(refuse(g, new FakeSocket('127.0.0.1')), true)
    assert.equal(g.refusedBy.unverified, 1)
  })

  it('asks about plain addresses: IPv4-mapped as IPv4, an IPv6 scope dropped', () => {
    const b = new FakeBinding(null)
    const { g } = guard(b, [{ pid: 400, uid: 1000 }])
    refuse(g, new FakeSocket('::ffff:192.0.2.9', '::ffff:192.0.2.1', 40001, 8080))
    assert.deepEqual(b.lastLookup, ['192.0.2.9', 40001, '192.0.2.1', 8080])
    assert.equal(refuse(g, new FakeSocket('fe80::9%eth0', 'fe80::1%eth0')), false, 'another host on the link')
    assert.deepEqual(b.lastLookup.slice(0, 3), ['fe80::9', 40000, 'fe80::1'])
  })

  it('a socket already gone (no peer address) is destroyed, not counted', () => {
    const { g, counted } = guard(new FakeBinding(null), [{ pid: 400, uid: 1000 }])
    const s = new FakeSocket(undefined)
    assert.equal(refuse(g, s), true)
    assert.equal(s.destroyed, 1)
    assert.deepEqual(counted, [])
  })
})

describe('classifyPeer', () => {
  const owns = (v: boolean | undefined) => () => v
  it('decides from what is known', () => {
    const table: Array<[Parameters<typeof classifyPeer>, string]> = [
      [['failed', owns(false), true], 'unverified'],
      [['failed', owns(false), false], 'remote'],
      [[null, owns(false), true], 'closed'],
      [[null, owns(false), false], 'remote'],
      [[{ inode: 0, uid: 1 }, owns(true), false], 'closed'],
      [[{ inode: 3, uid: 1 }, owns(true), true], 'child'],
      [[{ inode: 3, uid: 1 }, owns(false), true], 'local'],
      [[{ inode: 3, uid: 1 }, owns(undefined), true], 'unverified']
    ]
    for (const [args, want] of table) assert.equal(classifyPeer(...args), want, JSON.stringify(args[0]))
    assert.deepEqual(['remote', 'local', 'child', 'closed', 'unverified'].map((k) => refused(k as never)), [false, false, true, true, true])
  })

  it('nearbyAddress: loopback and our own address; interfaces only when asked', () => {
    assert.equal(nearbyAddress('127.0.0.9', '127.0.0.1', false), true)
    assert.equal(nearbyAddress('::1', '::1', false), true)
    assert.equal(nearbyAddress('192.0.2.1', '192.0.2.1', false), true)
    assert.equal(nearbyAddress('203.0.113.9', '192.0.2.1', false), false)
    assert.equal(nearbyAddress('203.0.113.9', '192.0.2.1', true), false)
  })
})
