/**
 * The typed contract of tapswitch's native TAP binding (native/tap.cc).
 *
 * One `Tap` wraps one non-blocking, close-on-exec file descriptor on
 * /dev/net/tun attached with TUNSETIFF(IFF_TAP | IFF_NO_PI), and optionally
 * IFF_VNET_HDR for offloads (see `setOffload`). Readiness comes from a
 * uv_poll handle on Node's own loop: no threadpool, no extra thread.
 *
 * Errors thrown by the binding are `Error`s with Node's SystemError shape:
 * `code` ('EPERM', 'ENOENT', ...), `errno` (positive), `syscall`
 * ('open', 'ioctl(TUNSETIFF)', ...), optional `path`, and `hint` (a short fix,
 * e.g. 'needs CAP_NET_ADMIN'; '' when there is none).
 */

/** Error shape of every exception the binding throws. */
export interface TapSystemError extends Error {
  code: string
  errno: number
  syscall: string
  path?: string
  hint: string
}

/**
 * Called once per readable event with the whole burst. The burst is the
 * byte range [start, end) of `slab`, holding `count` records, each
 * `[u32 big-endian length][frame bytes]` (the tapswitch batch format, see
 * docs/PROTOCOL.md), or `[u32 length][virtio-net header][frame]` while
 * `Tap#setVnetRecords(true)` is on (the length then counts both). The slab
 * is JS-owned memory the binding never writes again below `end`, so views of
 * it may be kept (e.g. queued in ws).
 */
export type OnFrames = (slab: Buffer, start: number, end: number, count: number) => void

/** Indexes into the array filled by `Tap#stats()`. */
export const STAT_RX_FRAMES: 0
export const STAT_RX_BYTES: 1
export const STAT_TX_FRAMES: 2
export const STAT_TX_BYTES: 3
/** write() refused with EAGAIN/ENOBUFS: the kernel queue was full. */
export const STAT_TX_DROPPED: 4
/** write() failed with any other errno. */
export const STAT_TX_ERRORS: 5
/** writeBatch() records whose length ran past the end of the buffer. */
export const STAT_TX_MALFORMED: 6
/**
 * read() failed with an errno other than EAGAIN/EINTR; or, on a Tap with
 * vnetHdr, a read shorter than its header, or a GSO / partial-checksum frame
 * read while records are plain (queued before offloads were turned off):
 * dropped, as a plain record must never carry one; or a read(2) that
 * claimed more bytes than asked (the burst ends there, nothing is trusted).
 */
export const STAT_RX_ERRORS: 7
export const STAT_COUNT: 8

/** Largest frame one read can return (IFF_TAP, 64 KiB + headroom), virtio-net header not included. */
export const MAX_READ: number

/** Bytes of the virtio-net header (legacy `struct virtio_net_hdr`, little-endian) on a Tap opened with vnetHdr. */
export const VNET_HDR_LEN: 10
/**
 * TUNSETOFFLOAD flags (linux/if_tun.h): what the kernel may hand over on a
 * Tap opened with vnetHdr. TUN_F_CSUM: partial checksums (the header's
 * NEEDS_CSUM); TUN_F_TSO4/6: TCP frames up to 64 KiB to be segmented (GSO);
 * TUN_F_TSO_ECN: those may carry ECN's CWR. UDP offloads (UFO/USO) are never
 * accepted: nothing downstream would segment them.
 */
export const TUN_F_CSUM: 1
export const TUN_F_TSO4: 2
export const TUN_F_TSO6: 4
export const TUN_F_TSO_ECN: 8
/** All four: what tap-agent turns on when the switch grants "offload". */
export const OFFLOAD_TSO: 15

export interface TapOpenOptions {
  netns?: string
  attach?: boolean
}

export class Tap {
  /**
   * Create the TAP `name` (or attach to an existing persistent one the caller
   * may use); '' lets the kernel choose (tap%d). With `vnetHdr`, open it with
   * IFF_VNET_HDR: header size 10, little-endian, no offloads yet, and records
   * still plain (the binding strips and adds headers) until setVnetRecords.
   * Throws TapSystemError.
   *
   * `options.netns`: a network namespace file (`/run/netns/NAME`): the TAP is
   * made (or attached) in that namespace, and every call by name (MTU, up,
   * MAC, address) acts there, on a socket opened in it; the fd itself works
   * wherever the device is. `options.attach`: only an existing persistent TAP
   * will do; a name with none fails with ENODEV and no TAP is left made.
   */
  constructor (name: string, vnetHdr?: boolean, options?: TapOpenOptions)
  /** The real interface name the kernel assigned. */
  readonly name: string
  /** The file descriptor, or -1 once closed. */
  readonly fd: number
  /** Interface index at open time, in the TAP's namespace. */
  readonly ifindex: number
  /** Opened with IFF_VNET_HDR. */
  readonly vnetHdr: boolean
  /** The TUNSETOFFLOAD flags in effect (TUN_F_*), 0 at open. */
  readonly offload: number
  /** Whether records carry the virtio-net header (setVnetRecords). */
  readonly vnetRecords: boolean

  /**
   * Start polling. On each readable event the binding reads frames until
   * EAGAIN, or until `maxBurstFrames` frames or `maxBurstBytes` bytes, and
   * calls `onFrames` once. Throws if already started or closed.
   */
  start (onFrames: OnFrames, maxBurstFrames: number, maxBurstBytes: number): void
  /** Stop polling (idempotent); the fd stays open. */
  stop (): void

  /**
   * Write one frame (header and frame while vnetRecords is on): the frame's
   * bytes written, or a negative errno (-11 = EAGAIN; -22 = EINVAL for a
   * virtio-net header the kernel refuses). Never throws for I/O errors.
   */
  write (frame: Buffer): number
  /**
   * Write every `[u32 BE length][frame]` record in buf[start, end) to the TAP,
   * one write(2) each, in one native call; while vnetRecords is on, each
   * record is `[u32 length][virtio-net header][frame]` and goes as it is (a
   * GSO frame is segmented, or not, by the receiving kernel); on a vnetHdr
   * Tap with plain records a zero header goes first (writev). Returns the
   * number of frames written; failures are counted in stats (TX_DROPPED /
   * TX_ERRORS / TX_MALFORMED), never thrown. A malformed record stops the walk.
   */
  writeBatch (buf: Buffer, start: number, end: number): number

  /** SIOCSIFMTU. Throws TapSystemError. */
  setMtu (mtu: number): void
  /** SIOCSIFFLAGS IFF_UP on/off. Throws TapSystemError. */
  setUp (up: boolean): void
  /** TUNSETCARRIER: link carrier on/off (guests see link down). Linux >= 5.0; needs CAP_NET_ADMIN. Throws TapSystemError. */
  setCarrier (on: boolean): void
  /** SIOCSIFHWADDR; `mac` is 6 bytes. Throws TapSystemError. */
  setMac (mac: Buffer): void
  /** Current MAC (SIOCGIFHWADDR), 6 bytes. */
  getMac (): Buffer
  /** SIOCSIFADDR + SIOCSIFNETMASK; `address` is dotted quad. Throws TapSystemError. */
  setIPv4 (address: string, prefixLength: number): void

  /**
   * TUNSETOFFLOAD: what the kernel may hand over from now on (TUN_F_* bits;
   * 0 = only frames a wire could carry). May change at any time, e.g. to 0
   * when a switch does not grant offload. Bits other than OFFLOAD_TSO's are a
   * RangeError; anything but 0 without vnetHdr is EINVAL, and a kernel that
   * lacks an offload answers EINVAL too (TapSystemError, with a hint).
   */
  setOffload (flags: number): void
  /**
   * Whether records carry the virtio-net header (both ways): on when the
   * switch granted "offload", off otherwise. Needs vnetHdr to turn on
   * (ENOTSUP otherwise, which Linux names EOPNOTSUPP). Turn offloads off (setOffload(0)) before this goes
   * off, and on after it goes on.
   */
  setVnetRecords (on: boolean): void

  /** Fill `out` (length >= STAT_COUNT) with the counters above; read at scrape time. */
  stats (out: Float64Array): void

  /**
   * Stop polling and close the fd. Idempotent, safe from inside onFrames; a
   * non-persistent TAP disappears when its last fd closes.
   */
  close (): void
}

/**
 * One AF_UNIX SOCK_DGRAM socket (native/unixdgram.cc), for QEMU's
 * `-netdev dgram,local.type=unix,…`: Node's dgram module has no Unix
 * datagrams. One datagram is one frame, both ways. Readiness comes from a
 * uv_poll handle on Node's own loop, like `Tap`.
 *
 * Counters use the STAT_* indexes above: RX_FRAMES/RX_BYTES (datagrams
 * accepted), TX_FRAMES/TX_BYTES, TX_DROPPED (EAGAIN/ENOBUFS: the peer's queue
 * is full; ECONNREFUSED/ENOENT: nobody is bound at the peer path, e.g. QEMU is
 * not running; or no peer set yet), TX_ERRORS (any other errno),
 * TX_MALFORMED (a record running past the end of a batch), RX_ERRORS
 * (datagrams from another sender than the peer, over MAX_READ bytes, or
 * recvfrom errors).
 */
export class UnixDgram {
  /**
   * Bind `localPath`. A socket file already there is removed first when
   * nothing is bound to it (left by a run that died); anything else there is
   * EADDRINUSE. Throws TapSystemError (syscall 'socket' or 'bind', `path` set).
   */
  constructor (localPath: string)
  /** The bound path. */
  readonly path: string
  /** The file descriptor, or -1 once closed. */
  readonly fd: number

  /**
   * Start polling: on each readable event, receive datagrams until EAGAIN or
   * 64 datagrams / 64 KiB, and call `onMessages` once with the accepted ones
   * as a batch (the same slab discipline as `Tap#start`). Throws if already
   * started or closed.
   */
  start (onMessages: OnFrames): void
  /**
   * Send to `remotePath` from now on, and accept only datagrams whose sender
   * is bound to exactly that path (compared as bytes: give the path as the
   * peer binds it). No connect(2): a peer that re-binds the path after a
   * restart is reached again. Throws TapSystemError ENAMETOOLONG.
   */
  connect (remotePath: string): void
  /**
   * Send every `[u32 BE length][frame]` record in buf[start, end), one
   * sendto(2) each; returns how many went out. Drops and errors are counted
   * in stats, never thrown. A malformed record stops the walk.
   */
  sendBatch (buf: Buffer, start: number, end: number): number
  /** Fill `out` (length >= STAT_COUNT) with the counters. */
  stats (out: Float64Array): void
  /** Stop polling, close the fd and unlink the socket file. Idempotent, safe from inside onMessages. */
  close (): void
}

/**
 * Bounded adaptive busy polling (native/busy_poll.h): after each burst any
 * reader (Tap, UnixDgram) hands over, or each busyPollKick(), Node's event
 * loop keeps polling every fd with a zero timeout for `usec` µs instead of
 * sleeping, so an answer arriving in that window costs no process wake-up.
 * Nothing spins once no traffic came for `usec`. 0 = off (the default); at
 * most 10 s (RangeError beyond). Main thread only.
 */
export function setBusyPoll (usec: number): void
/** Traffic seen on a path the addon does not read (a WebSocket): keep polling for the budget from now. No-op while off. */
export function busyPollKick (): void

/** Indexes into the array filled by `FastPath#portStats()`: frames the native thread forwarded. */
export const PORT_STAT_COUNT: 5
/** Indexes into `FastPath#stats()`: hits, misses, misses dropped (buffer full), flows installed. */
export const FASTPATH_STAT_COUNT: 4
/** `FastPath` onEvent kinds: a text message, a ping, a pong, a malformed batch's rest, the peer's close (or EOF: 1006), our close for a failure. */
export const FASTPATH_EVENT_TEXT: 1
export const FASTPATH_EVENT_PING: 2
export const FASTPATH_EVENT_PONG: 3
export const FASTPATH_EVENT_MALFORMED: 4
export const FASTPATH_EVENT_CLOSED: 5
export const FASTPATH_EVENT_CLOSED_LOCAL: 6

/**
 * The native fast path for switchd's own TAPs (native/fastpath.cc): one
 * thread that poll()s the fds of its ports (blocking, no spinning), forwards
 * frames that match an installed exact-match flow (ingress slot, dst MAC,
 * src MAC) straight to the egress fd, and hands every other frame to
 * `onMiss` on the main thread, in `[u32 BE length][record]` records of one
 * port (the slab discipline of `Tap#start`). Only JS installs flows.
 */
export class FastPath {
  /**
   * `maxFlows` caps the table; `missBytes` caps the misses and events queued
   * for JS (full = counted drop); `onEvent` hears what a WebSocket port's
   * peer sent that JS must see (FASTPATH_EVENT_*: the payload in
   * slab[start, end), `code` a close's); `maxMessage`: the largest
   * WebSocket message either way (default 256 KiB).
   */
  constructor (onMiss: (slot: number, slab: Buffer, start: number, end: number) => void, maxFlows: number, missBytes: number,
    onEvent?: (slot: number, kind: number, slab: Buffer, start: number, end: number, code: number) => void, maxMessage?: number)
  /** Read `fd` (a non-blocking TAP fd; `vnet`: its records start with a virtio-net header); returns its slot. */
  addPort (fd: number, vnet: boolean): number
  /**
   * Carry the WebSocket connection on `fd` (switchd's side: the peer masks;
   * the fd is dup'ed, the dup the thread's until removePort): `prefill`, bytes
   * already read off it, is parsed first; past `highWaterMark` bytes queued
   * for it a batch the thread would send it is dropped (counted). Returns its slot.
   */
  addWsPort (fd: number, vnet: boolean, prefill: Buffer | null, highWaterMark: number, client?: number): number
  /** One whole message to a WebSocket slot: 0 sent, 1 queued, 2 refused (its queue full), 3 broken. A close frame stops forwarding its data. */
  sendWs (slot: number, opcode: number, buf: Buffer, start: number, end: number): number
  /** Bytes queued for a WebSocket slot (ws's bufferedAmount). */
  wsBuffered (slot: number): number
  /** Bytes the WebSocket slots' buffers hold now (tests: no growth per port). */
  wsFootprint (): number
  /**
   * Forget the slot and its flows; its fd is never read or written again once
   * this returns (it waits for a burst in flight, a few non-blocking calls).
   */
  removePort (slot: number): void
  /** Install (ingress, dst, src) -> egress for frames up to `maxFrame` bytes; returns the flow's index, or -1 (table full, or ports that cannot pair). */
  install (inSlot: number, dst: number, src: number, outSlot: number, maxFrame: number): number
  remove (flow: number): void
  flush (): void
  /** Cumulative hits of each flow index into `out`. */
  flowHits (out: Float64Array): void
  /** The slot's cumulative [rxFrames, rxBytes, txFrames, txBytes, txDropped]. */
  portStats (slot: number, out: Float64Array): void
  stats (out: Float64Array): void
  /** Stop and join the thread. Idempotent. */
  close (): void
}

/** The other end of a local TCP connection, as the kernel knows it (native/peer.cc). */
export interface PeerSocket {
  /** Its socket inode (`socket:[inode]` in /proc/<pid>/fd); 0 once its process has closed it (an orphan or TIME_WAIT). */
  inode: number
  /** The uid that created it. */
  uid: number
}

/**
 * The socket at the other end of the TCP connection peer:peerPort ->
 * local:localPort, found by one exact NETLINK_SOCK_DIAG lookup (no dump, no
 * privilege); null when this network namespace has none: the peer is
 * elsewhere, or its socket is gone. IPv4, IPv6 or IPv4-mapped IPv6 strings.
 * Throws TapSystemError when the lookup cannot run (e.g. EAFNOSUPPORT where
 * AF_NETLINK is forbidden, as systemd's RestrictAddressFamilies= can).
 */
export function lookupPeerSocket (peerAddress: string, peerPort: number, localAddress: string, localPort: number): PeerSocket | null
/**
 * The fd of process `pid` that holds socket `inode` (trying fd `hint` first;
 * -1 for none), or -1 when it holds none or is gone. Throws TapSystemError
 * when its fds cannot be read (another user's process without CAP_SYS_PTRACE).
 */
export function findSocketFd (pid: number, inode: number, hint: number): number

/** prctl(PR_SET_DUMPABLE): off, a process of the same user can neither read /proc/<pid>/environ or /mem nor ptrace it; no core dumps. */
export function setDumpable (on: boolean): void
export function isDumpable (): boolean
/** The kernel's Landlock ABI version (>= 1), or -errno: -38 ENOSYS (none), -95 EOPNOTSUPP (not enabled at boot). */
export function landlockAbi (): number
/** RLIMIT_NOFILE as [soft, hard] (1e15 for unlimited). */
export function nofileLimit (): [number, number]

/** Indexes into the first array `WsLink#stats()` fills: the link's own counters. */
export const LINK_STAT_COUNT: 12

/**
 * tap-agent's native data path (native/ws_link.{h,cc}): one thread that
 * carries an uplink's frames between a TAP fd and the WebSocket's socket once
 * JS opened the connection (ws_link.h's header is the design). TAP bursts
 * leave as masked binary messages of `[u32 BE length][record]` records;
 * binary messages from the switch become TAP writes (a run of UDP datagrams
 * of one flow as one, native/udp_run.h). Text, ping and pong
 * frames and the end come up to `onEvent`; JS sends its own messages with
 * `send`, so writes never interleave.
 *
 * The gate: the TAP is not read until `start()`, and after a text message
 * (the welcome) the socket is not parsed until `start()` or a close.
 */
export class WsLink {
  /**
   * `sockFd`: the connection's fd (dup'd: the link owns its copy); `tapFd`:
   * the TAP's (non-blocking; JS keeps it open until the link ended);
   * `vnetHdr`: the TAP has IFF_VNET_HDR; `zeroMask`: mask with zeros;
   * `highWater`: bytes queued before a burst is dropped (counted);
   * `prefill`: bytes read off the socket but not parsed yet.
   * `onEvent(kind, code, data)`: kind 1 text, 9 ping, 10 pong (code 0), 255
   * the end (code: the peer's close code, 1005 without one, the reader's on
   * a parse failure, 1006 without a close frame; data: the reason). Nothing
   * comes after the end, and the thread is joined before it is delivered.
   */
  constructor (sockFd: number, tapFd: number, vnetHdr: boolean, zeroMask: boolean, highWater: number, prefill: Buffer | null,
    onEvent: (kind: number, code: number, data: Buffer) => void)
  /**
   * The welcome is followed: records carry virtio-net headers or not; the TAP is read from now on.
   * `followBusy`: while at most this many frames pass in 10 ms, the thread runs on the CPU its
   * connection's frames arrive on (native/cpu_follow.h); 0 leaves its affinity alone.
   * `udpRuns` (default false): a run of UDP datagrams of one flow goes to the TAP as one write the
   * kernel segments back (native/udp_run.h); false writes every frame alone.
   * `coalesceUsecs` (0 to 200, default 0): after a burst of at least 32 frames from the
   * TAP, the TAP is read again only this many µs later (the socket is served meanwhile).
   */
  start (vnetRecords: boolean, followBusy: number, udpRuns?: boolean, coalesceUsecs?: number): void
  /** One message of JS's (opcode 1 text, 2 binary, 8 close, 9 ping, 10 pong): 0 sent, 1 queued, 2 refused, 3 broken. */
  send (opcode: number, data: Buffer): number
  /** Stop without a closing handshake; the end event follows. */
  terminate (): void
  /** Stop and join the thread now; no event is delivered after this. Counters stay readable. Idempotent. */
  close (): void
  /**
   * Cumulative counters: `link` (LINK_STAT_COUNT): upFrames, upBursts,
   * upBytes, droppedBackpressure, downFrames, rxMessages, rxBytes,
   * rxMalformed, cpuMoves, udpRunFrames, coalesceWaits, udpRunsRefused; `tap` (STAT_COUNT): the TAP's, in `Tap#stats()`'s layout.
   */
  stats (link: Float64Array, tap: Float64Array): void
  /** Bytes queued for the socket (ws's bufferedAmount). */
  readonly bufferedAmount: number
}

/** An AF_UNIX SOCK_SEQPACKET pair, non-blocking: a TAP-like fd (one record a read) for tests. Throws TapSystemError. */
export function socketPair (): [number, number]
