/**
 * native lookupPeerSocket / findSocketFd (native/peer.cc), against real TCP
 * sockets on 127.0.0.1: the kernel's answer for the other end of a
 * connection is the inode of the client's own socket, found among its fds.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as net from 'node:net'
import { waitFor } from '../helpers/net'

interface Native {
  lookupPeerSocket (peerAddress: string, peerPort: number, localAddress: string, localPort: number): { inode: number, uid: number } | null
  findSocketFd (pid: number, inode: number, hint: number): number
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const native = require('../../native') as Native

/** The fd of a Node socket and the inode /proc says it has. */
function fdOf (s: net.Socket): { fd: number, inode: number } {
  const fd = (s as unknown as { _handle: { fd: number } })._handle.fd
  const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`))
  assert.ok(m !== null, 'a socket fd')
  return { fd, inode: Number(m[1]) }
}

describe('peer lookup: the socket at the other end of a local connection (native, integration)', () => {
  let server: net.Server
  const accepted: net.Socket[] = []
  const clients: net.Socket[] = []

  beforeEach(async () => {
    server = net.createServer((s) => { accepted.push(s) })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  })

  afterEach(async () => {
    for (const s of [...accepted.splice(0), ...clients.splice(0)]) s.destroy()
    await new Promise<void>((resolve) => server.close(() => { resolve() }))
  })

  async function connect (): Promise<[net.Socket, net.Socket]> {
    const n = accepted.length
    const c = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
    clients.push(c)
    await new Promise<void>((resolve) => c.once('connect', resolve))
    await waitFor(() => accepted.length > n, 3000, 'accepted')
    return [c, accepted[accepted.length - 1] as net.Socket]
  }

  const lookup = (s: net.Socket): ReturnType<Native['lookupPeerSocket']> =>
    native.lookupPeerSocket(s.remoteAddress as string, s.remotePort as number, s.localAddress as string, s.localPort as number)

  it('finds the client\'s socket from the accepted one: its inode and uid, and its fd in our /proc', async () => {
    const [client, ours] = await connect()
    const want = fdOf(client)
    const got = lookup(ours)
    assert.deepEqual(got, { inode: want.inode, uid: process.getuid?.() })
    assert.notEqual(fdOf(ours).inode, want.inode, 'not our own end')
    assert.equal(native.findSocketFd(process.pid, want.inode, -1), want.fd)
    assert.equal(native.findSocketFd(process.pid, want.inode, want.fd), want.fd, 'through the hint')
    assert.equal(native.findSocketFd(process.pid, want.inode, 0), want.fd, 'a wrong hint: found by the scan')
  })

  it('an IPv4-mapped address is looked up as IPv4', async () => {
    const [client, ours] = await connect()
    const got = native.lookupPeerSocket('::ffff:127.0.0.1', ours.remotePort as number, '::ffff:127.0.0.1', ours.localPort as number)
    assert.equal(got?.inode, fdOf(client).inode)
  })

  it('answers null for a 4-tuple nobody has, and for a listener on the peer\'s address and port (not a peer)', async () => {
    const [, ours] = await connect()
    const other = net.createServer()
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve))
    try {
      const otherPort = (other.address() as net.AddressInfo).port
      assert.equal(native.lookupPeerSocket('127.0.0.1', otherPort, '127.0.0.1', ours.localPort as number), null, 'the listener is not the peer')
      assert.equal(native.lookupPeerSocket('127.0.0.3', ours.remotePort as number, '127.0.0.1', ours.localPort as number), null)
    } finally {
      other.close()
    }
  })

  it('a peer that closed its socket shows inode 0 (orphan, TIME_WAIT) or none', async () => {
    const [client, ours] = await connect()
    const tuple = [ours.remoteAddress as string, ours.remotePort as number, ours.localAddress as string, ours.localPort as number] as const
    client.destroy()
    await new Promise<void>((resolve) => ours.once('close', resolve).resume())
    const got = native.lookupPeerSocket(...tuple)
    assert.ok(got === null || got.inode === 0, JSON.stringify(got))
  })

  it('over IPv6 loopback too', async function () {
    const v6 = net.createServer((s) => { accepted.push(s) })
    try {
      await new Promise<void>((resolve, reject) => { v6.once('error', reject); v6.listen(0, '::1', resolve) })
    } catch { this.skip() }
    try {
      const n = accepted.length
      const c = net.connect((v6.address() as net.AddressInfo).port, '::1')
      clients.push(c)
      await new Promise<void>((resolve) => c.once('connect', resolve))
      await waitFor(() => accepted.length > n, 3000, 'accepted')
      assert.equal(lookup(accepted[accepted.length - 1] as net.Socket)?.inode, fdOf(c).inode)
    } finally {
      v6.close()
    }
  })

  it('refuses bad input with a TypeError; a process that is gone holds nothing', () => {
    assert.throws(() => native.lookupPeerSocket('not an address', 1, '127.0.0.1', 2), TypeError)
    assert.throws(() => native.lookupPeerSocket('127.0.0.1', 1, '::1', 2), TypeError, 'two families')
    assert.throws(() => native.lookupPeerSocket('127.0.0.1', 70000, '127.0.0.1', 2), TypeError)
    assert.equal(native.findSocketFd(0x3fffffff, 1, -1), -1)
    assert.throws(() => native.findSocketFd(-1, 1, -1), RangeError)
  })
})
