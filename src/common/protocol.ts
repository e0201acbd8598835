/**
 * The tapswitch wire protocol (docs/PROTOCOL.md is the normative text).
 *
 * One WebSocket endpoint, two modes chosen at the upgrade:
 *  - raw mode, no subprotocol: one Ethernet frame per binary message, both
 *    ways; the server never sends text. This is the v86 / jor1k / JSLinux
 *    relay protocol.
 *  - tapswitch mode, subprotocol `tapswitch.v1`: control messages are TEXT
 *    messages holding one JSON object; data messages are BINARY and hold a
 *    batch of records `[u32 big-endian length][frame]`. The WebSocket opcode
 *    separates control from data, so neither can be mistaken for the other.
 *
 * This module is pure: no sockets, no timers. Both switchd and tap-agent use it.
 */

import { TapswitchError, ERR_PROTOCOL } from './errors'
import { ETH_HLEN, VLAN_HLEN, parseMac } from './ethernet'
import { completeRecords, PREFIX_U32 } from './framing'

/** `Sec-WebSocket-Protocol` token of protocol version 1. */
export const SUBPROTOCOL_V1 = 'tapswitch.v1'
export const PROTOCOL_VERSION = 1

/** Each record in a batch: a u32 big-endian frame length, then the frame. */
export const RECORD_HEADER = 4
/**
 * Largest binary message in tapswitch mode, and so the WebSocket maxPayload of
 * both ends. Fixed by the protocol version so a client can set it before it
 * connects. 256 KiB holds a 64 KiB read burst plus one maximal frame.
 */
export const MAX_MESSAGE_SIZE = 256 * 1024
/** A 1500-byte MTU plus the Ethernet header and one 802.1Q tag. */
export const DEFAULT_MAX_FRAME_SIZE = 1500 + ETH_HLEN + VLAN_HLEN
/** Jumbo ceiling: the largest Linux MTU (ETH_MAX_MTU) plus header and tag. */
export const MAX_FRAME_SIZE_LIMIT = 65535 + ETH_HLEN + VLAN_HLEN
/** An agent name: what operators see as the port name. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$/

/**
 * Capability of a switchd dialling another as a trunk (`switchd --uplink`):
 * the port carries every VLAN its profile allows and takes part in the
 * spanning tree, whose BPDUs are control messages of type "bpdu".
 */
export const CAP_TRUNK = 'trunk'

/**
 * Capability of a switchd replica dialling another replica of its fleet as a
 * mesh link (docs/FLEET.md): admitted only with the fleet credential, it
 * carries VLAN 1 untagged and the fleet's VLANs tagged, runs no spanning
 * tree, and split horizon keeps a frame from one mesh link off every other.
 */
export const CAP_MESH = 'mesh'

/**
 * Capability "offload": when the hello lists it and the welcome grants it,
 * every record on that WebSocket, both ways, is
 * `[u32 length][struct virtio_net_hdr, VNET_HDR_LEN bytes][frame]`, the
 * length counting header and frame. Frames may then be GSO frames (TCP
 * segments up to 64 KiB) or carry a partial checksum, as a TAP with
 * IFF_VNET_HDR and TUNSETOFFLOAD reads them (docs/PROTOCOL.md, "Offload").
 */
export const CAP_OFFLOAD = 'offload'
/** The virtio-net header of an offload record: the legacy 10-byte layout, little-endian fields. */
export const VNET_HDR_LEN = 10

/** WebSocket close codes switchd and tap-agent use (RFC 6455 §7.4, 4000-4999 ours). */
/**
 * Close reasons must fit in 123 bytes of UTF-8 (RFC 6455 §5.5); ws throws on
 * more. Cut on a character boundary, so a multibyte character at the cut
 * cannot make the result longer (the reason may echo what a client sent).
 */
export function truncateReason (text: string): string {
  if (Buffer.byteLength(text) <= 123) return text
  let out = ''
  let bytes = 0
  for (const ch of text) {
    const n = Buffer.byteLength(ch)
    if (bytes + n > 120) break
    out += ch
    bytes += n
  }
  return out + '...'
}

export const CLOSE_NORMAL = 1000
export const CLOSE_GOING_AWAY = 1001
export const CLOSE_PROTOCOL_ERROR = 1002
export const CLOSE_UNSUPPORTED_DATA = 1003
export const CLOSE_POLICY = 1008
export const CLOSE_TOO_BIG = 1009
/** No valid hello within the handshake time. */
export const CLOSE_HELLO_TIMEOUT = 4001
/** The hello was not valid JSON of the expected shape. */
export const CLOSE_BAD_HELLO = 4002
/** The peer went silent: no pong / no ping within the keepalive window. */
export const CLOSE_DEAD_PEER = 4003
/** The peer stopped reading: what switchd had to send it stayed above the port's high-water mark for a whole keepalive round. */
export const CLOSE_NOT_READING = 4004
/** BPDU guard: a spanning-tree BPDU arrived on a port that is not a trunk. */
export const CLOSE_BPDU_GUARD = 4005
/**
 * This replica is draining (switchctl drain, SIGTERM): reconnect now, without
 * backoff. Through a balancer the next connection lands on another replica (a
 * draining one answers upgrades 503); a client with several URLs takes the next.
 */
export const CLOSE_DRAINING = 4006
/** The reason sent with CLOSE_DRAINING. */
export const DRAINING_REASON = 'this replica is draining: reconnect now'

/** A port's VLAN mode, as asked for in a hello and granted in a welcome. */
export type VlanRequest =
  | { mode: 'access', vlan: number }
  | { mode: 'trunk', vlans: number[], native?: number }

/** Agent -> switch, the first message in tapswitch mode. */
export interface Hello {
  type: 'hello'
  version: number
  /** Port name the agent asks for (see NAME_PATTERN); switchd may suffix it. */
  name?: string
  /** The agent's TAP MTU. */
  mtu?: number
  /** The agent's TAP MAC, `02:00:00:00:00:01`; informational. */
  mac?: string
  /** Optional features the agent supports; unknown ones are ignored. */
  capabilities?: string[]
  /** The VLAN mode the agent asks for; switchd grants it only within the port's profile. */
  vlan?: VlanRequest
  /** The `resume` token of an earlier welcome: asks for that port back (same name, VLANs, fdb entries). */
  resume?: string
}

/** Switch -> agent, the answer to a valid hello. */
export interface Welcome {
  type: 'welcome'
  version: number
  /** Port id, unique for the life of the switchd process. */
  port: number
  /** The name the port got. */
  name: string
  /** Frames longer than this are dropped by the switch (Ethernet header included, FCS excluded). */
  maxFrameSize: number
  /** Largest binary message either side may send. */
  maxMessageSize: number
  /** Seconds between the switch's WebSocket pings. */
  pingInterval: number
  /** Features the switch will use on this port; a subset of the hello's. */
  capabilities: string[]
  /** The network the port joined (from the URL path). */
  network?: string
  /** The VLAN mode the port got. */
  vlan?: VlanRequest
  /** Present this in the next hello, within `resumeGrace` seconds of a drop, to get this port back. */
  resume?: string
  /** Seconds the switch keeps this port after a drop for a resume. */
  resumeGrace?: number
  /** True if the hello's resume token was honoured: this is the same port as before. */
  resumed?: boolean
}

function protocolError (message: string): TapswitchError {
  return new TapswitchError(ERR_PROTOCOL, message)
}

function parseObject (text: string): Record<string, unknown> {
  let value: unknown
  try { value = JSON.parse(text) } catch { throw protocolError('control message is not JSON') }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw protocolError('control message is not a JSON object')
  return value as Record<string, unknown>
}

function isInt (v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max
}

/** Validate a VLAN mode object (hello.vlan / welcome.vlan); throws naming `key`. */
export function parseVlanRequest (v: unknown, key: string): VlanRequest {
  if (typeof v !== 'object' || v === null) throw protocolError(`${key} must be an object`)
  const o = v as Record<string, unknown>
  if (o.mode === 'access') {
    if (!isInt(o.vlan, 1, 4094)) throw protocolError(`${key}.vlan must be a VLAN id 1..4094`)
    return { mode: 'access', vlan: o.vlan }
  }
  if (o.mode === 'trunk') {
    if (!Array.isArray(o.vlans) || o.vlans.length === 0 || o.vlans.length > 4094 || !o.vlans.every((x) => isInt(x, 1, 4094))) {
      throw protocolError(`${key}.vlans must be a non-empty list of VLAN ids 1..4094`)
    }
    const req: VlanRequest = { mode: 'trunk', vlans: [...new Set(o.vlans)] }
    if (o.native !== undefined && o.native !== 0) {
      if (!isInt(o.native, 1, 4094)) throw protocolError(`${key}.native must be a VLAN id 1..4094`)
      req.native = o.native
    }
    return req
  }
  throw protocolError(`${key}.mode must be "access" or "trunk"`)
}

/** Validate a hello; throws TSW_ERR_PROTOCOL naming the bad field. */
export function parseHello (text: string): Hello {
  const o = parseObject(text)
  if (o.type !== 'hello') throw protocolError('expected {"type":"hello"}')
  if (o.version !== PROTOCOL_VERSION) throw protocolError(`unsupported version ${String(o.version)}, this switch speaks ${PROTOCOL_VERSION}`)
  const hello: Hello = { type: 'hello', version: PROTOCOL_VERSION }
  if (o.name !== undefined) {
    if (typeof o.name !== 'string' || !NAME_PATTERN.test(o.name)) throw protocolError('hello.name must match ' + String(NAME_PATTERN))
    hello.name = o.name
  }
  if (o.mtu !== undefined) {
    if (!isInt(o.mtu, 68, 65535)) throw protocolError('hello.mtu must be an integer 68..65535')
    hello.mtu = o.mtu
  }
  if (o.mac !== undefined) {
    if (typeof o.mac !== 'string' || parseMac(o.mac) === undefined) throw protocolError('hello.mac must look like 02:00:00:00:00:01')
    hello.mac = o.mac
  }
  if (o.capabilities !== undefined) {
    if (!Array.isArray(o.capabilities) || o.capabilities.length > 32 || !o.capabilities.every((c) => typeof c === 'string' && c.length <= 64)) {
      throw protocolError('hello.capabilities must be a list of at most 32 strings')
    }
    hello.capabilities = o.capabilities as string[]
  }
  if (o.vlan !== undefined) hello.vlan = parseVlanRequest(o.vlan, 'hello.vlan')
  if (o.resume !== undefined) {
    if (typeof o.resume !== 'string' || !/^[A-Za-z0-9_-]{16,128}$/.test(o.resume)) throw protocolError('hello.resume must be the token of an earlier welcome')
    hello.resume = o.resume
  }
  return hello
}

/** Validate a welcome; throws TSW_ERR_PROTOCOL naming the bad field. */
export function parseWelcome (text: string): Welcome {
  const o = parseObject(text)
  if (o.type !== 'welcome') throw protocolError('expected {"type":"welcome"}')
  if (o.version !== PROTOCOL_VERSION) throw protocolError(`unsupported version ${String(o.version)}`)
  if (!isInt(o.port, 0, Number.MAX_SAFE_INTEGER)) throw protocolError('welcome.port must be an integer')
  if (typeof o.name !== 'string') throw protocolError('welcome.name must be a string')
  if (!isInt(o.maxFrameSize, ETH_HLEN, MAX_FRAME_SIZE_LIMIT)) throw protocolError('welcome.maxFrameSize out of range')
  if (!isInt(o.maxMessageSize, RECORD_HEADER + ETH_HLEN, MAX_MESSAGE_SIZE)) throw protocolError('welcome.maxMessageSize out of range')
  if (!isInt(o.pingInterval, 1, 3600)) throw protocolError('welcome.pingInterval out of range')
  const caps = Array.isArray(o.capabilities) ? o.capabilities.filter((c): c is string => typeof c === 'string') : []
  const extra: Partial<Welcome> = {}
  if (typeof o.network === 'string') extra.network = o.network
  if (o.vlan !== undefined) extra.vlan = parseVlanRequest(o.vlan, 'welcome.vlan')
  if (typeof o.resume === 'string') extra.resume = o.resume
  if (typeof o.resumeGrace === 'number') extra.resumeGrace = o.resumeGrace
  if (o.resumed === true) extra.resumed = true
  return {
    ...extra,
    type: 'welcome',
    version: PROTOCOL_VERSION,
    port: o.port,
    name: o.name,
    maxFrameSize: o.maxFrameSize,
    maxMessageSize: o.maxMessageSize,
    pingInterval: o.pingInterval,
    capabilities: caps
  }
}

/**
 * Number of records in a batch, or -1 if a record's length runs past the end
 * (a framing error: the rest of the message cannot be trusted). An empty
 * message is a batch of zero records.
 */
const COUNTS = new Uint32Array(1)

export function countRecords (buf: Buffer): number {
  // Any length framing allows; the switch judges each frame's size itself.
  const end = completeRecords(buf, 0, buf.length, PREFIX_U32, 0xffffffff, COUNTS)
  return end === buf.length ? (COUNTS[0] as number) : -1
}

/** Append one record to `out` at `off`; returns the offset after it. The caller ensures room. */
export function writeRecord (out: Buffer, off: number, frame: Buffer, start: number, len: number): number {
  out.writeUInt32BE(len, off)
  frame.copy(out, off + RECORD_HEADER, start, start + len)
  return off + RECORD_HEADER + len
}

/** Slow path (tests, tools): frames to one batch message. */
export function encodeBatch (frames: readonly Buffer[]): Buffer {
  let size = 0
  for (const f of frames) size += RECORD_HEADER + f.length
  const out = Buffer.allocUnsafe(size)
  let off = 0
  for (const f of frames) off = writeRecord(out, off, f, 0, f.length)
  return out
}

/** Slow path (tests, tools): one batch message to frame views; throws on a framing error. */
export function decodeBatch (buf: Buffer): Buffer[] {
  if (countRecords(buf) < 0) throw protocolError('batch record length runs past the end of the message')
  const frames: Buffer[] = []
  let off = 0
  while (off < buf.length) {
    const len = buf.readUInt32BE(off)
    frames.push(buf.subarray(off + RECORD_HEADER, off + RECORD_HEADER + len))
    off += RECORD_HEADER + len
  }
  return frames
}

/**
 * `{"type":"link","up":false}`, switch to agent: a failure drill took this
 * port's link down (or `true`: up again). The agent sets its TAP's carrier to
 * match (TUNSETCARRIER), so the host sees NO-CARRIER as with a pulled cable.
 * Sent after the welcome too while the link stays down. An agent that does
 * not know it ignores it, as v1 says of unknown control messages.
 */
export interface LinkMessage { type: 'link', up: boolean }

export function linkMessage (up: boolean): LinkMessage { return { type: 'link', up } }

/**
 * A control message after the welcome (a BPDU between trunked switches), or
 * undefined if the text is not a JSON object with a string `type`: the
 * caller counts it and carries on, as v1 says unknown control messages are
 * ignored.
 */
export function parseControl (text: string): Record<string, unknown> & { type: string } | undefined {
  if (text.length > 4096) return undefined
  let o: unknown
  try { o = JSON.parse(text) } catch { return undefined }
  if (typeof o !== 'object' || o === null || Array.isArray(o) || typeof (o as { type?: unknown }).type !== 'string') return undefined
  return o as Record<string, unknown> & { type: string }
}
