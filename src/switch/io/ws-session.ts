/**
 * The transport side of a WebSocket port's life (daemon/port-table.ts keeps
 * the rest: admission, naming, the registry, parking and resume): the
 * message, pong and close handlers, the answers a peer is owed (pongs, jor1k
 * `pong:`), BPDU guard, and keepalive, which judges a peer on whether it
 * reads, not only on whether it talks.
 */

import type { WebSocket, RawData } from 'ws'
import { BatchPort, closeSocket, type WsPort } from './ws-port'
import { MODE_TRUNK, BLOCK_LINK, type PortPolicy } from '../core/port'
import {
  CAP_OFFLOAD, CLOSE_PROTOCOL_ERROR, CLOSE_NOT_READING, CLOSE_BPDU_GUARD, PROTOCOL_VERSION, MAX_MESSAGE_SIZE, parseControl, type VlanRequest, type Welcome
} from '../../common/protocol'
import { logger } from '../../common/log'

const log = logger('ports')

/** What the sessions count (read at scrape time: switchd_* metrics). */
export interface SessionCounters {
  /** Text messages received in raw mode (ignored), and jor1k pings answered. */
  textIgnored: number
  pongsSent: number
  /**
   * Replies (jor1k pongs, WebSocket pongs) not sent because the port's peer
   * had not read what it was already given: a reply is owed only to a peer
   * that reads, or a client that sends and never reads grows our memory.
   */
  repliesDropped: number
  /** Ports closed with 4004: their peer read nothing for limits.notReadingTimeout. */
  closedNotReading: number
  /** Control messages on tapswitch-mode ports that were not understood (ignored, as v1 says). */
  controlIgnored: number
  /** BPDU guard: ports closed (4005) for sending a BPDU without being a trunk. */
  bpduGuardShutdowns: number
  /** BPDUs from mesh links, dropped: no spanning tree runs over the mesh, so a peer replica can never claim root. */
  meshBpdusDropped: number
}

/** The welcome a port's hello earns (the daemon adds a resume token). */
export function welcomeOf (port: BatchPort, pingInterval: number): Welcome {
  const sw = port.network
  return {
    type: 'welcome',
    version: PROTOCOL_VERSION,
    port: port.id,
    name: port.name,
    maxFrameSize: sw.maxFrameSize,
    maxMessageSize: MAX_MESSAGE_SIZE,
    pingInterval,
    capabilities: port.capabilities,
    network: sw.name,
    vlan: describeVlan(port.policy)
  }
}

export function sendWelcome (port: BatchPort, welcome: Welcome): void {
  port.ws.send(JSON.stringify(welcome))
  // A link a drill holds down stays down across a resume: the new TAP (or the reconnected one) hears so.
  if ((port.blocked & BLOCK_LINK) !== 0) port.linkChanged(false)
}

/** The server has autoPong off: ws would queue a pong for every ping whether or not the peer reads. */
export function answerPings (ws: WebSocket, highWaterMark: number, counters: SessionCounters): void {
  ws.on('ping', (data: Buffer) => {
    if (ws.bufferedAmount > highWaterMark) { counters.repliesDropped++; return }
    ws.pong(data)
  })
}

/** The VLAN mode a policy gives, as the welcome states it. */
export function describeVlan (p: PortPolicy): VlanRequest {
  if (p.mode === MODE_TRUNK) {
    const tagged = p.vlans.filter((v) => v !== p.pvid)
    return p.pvid !== 0 ? { mode: 'trunk', vlans: tagged, native: p.pvid } : { mode: 'trunk', vlans: tagged }
  }
  return { mode: 'access', vlan: p.pvid }
}

/**
 * Grant or withdraw offload as the latest hello asks (a resumed port follows
 * its new hello): the port's records carry virtio-net headers from its
 * welcome on, and the welcome lists the capability.
 */
export function setOffload (port: BatchPort, on: boolean): void {
  port.offload = on
  const i = port.capabilities.indexOf(CAP_OFFLOAD)
  if (on && i < 0) port.capabilities.push(CAP_OFFLOAD)
  else if (!on && i >= 0) port.capabilities.splice(i, 1)
}


/**
 * Install the message, pong and close handlers on the port's current socket.
 * `closed` hears the close of that socket (not of an old one a resume replaced).
 */
export function wireSession (port: WsPort, counters: SessionCounters, closed: (code: number, reason: string) => void): void {
  const ws = port.ws
  const sw = port.network
  // Once the port is being closed (a revoked token, BPDU guard, an operator), what its peer still sends is not read.
  if (port instanceof BatchPort) {
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (ws.readyState !== ws.OPEN) return
      port.alive = true
      if (!isBinary) { onControl(port, data as Buffer, counters); return }
      if (!sw.receiveBatch(port, data as Buffer)) {
        log.client('warn', 'malformed_batch', port.address, { port: port.name, id: port.id, remote: port.remote })
        port.noResume = true
        closeSocket(ws, CLOSE_PROTOCOL_ERROR, 'malformed batch')
      }
    })
  } else {
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (ws.readyState !== ws.OPEN) return
      port.alive = true
      if (!isBinary) { onRawText(port, data as Buffer, counters); return }
      sw.receiveFrame(port, data as Buffer)
    })
  }
  ws.on('pong', () => { port.alive = true })
  ws.on('close', (code: number, reason: Buffer) => {
    if (port.ws !== ws) return // an old socket of a port that has since resumed
    closed(code, reason.toString())
  })
}

/**
 * Text from a raw client. jor1k keeps its relay alive with `ping:X` and
 * expects `pong:X`: we answer that client only, so a client that never
 * sends text (v86) never gets any. Anything else is counted and ignored.
 */
function onRawText (port: WsPort, data: Buffer, counters: SessionCounters): void {
  if (data.length <= 256 && data.toString('latin1', 0, 5) === 'ping:') {
    if (port.bufferedBytes() > port.highWaterMark) { counters.repliesDropped++; return }
    counters.pongsSent++
    port.ws.send('pong:' + data.toString('utf8', 5))
    return
  }
  counters.textIgnored++
}

/**
 * A control message after the welcome: BPDUs on trunks; anything else is
 * counted and ignored. BPDU GUARD: a BPDU on a port that is not a trunk is
 * a switch (or someone posing as one) where a station should be; that port
 * is shut (4005), as a managed switch err-disables an edge port that hears
 * one. Always on: such a port could never take part in the tree anyway.
 */
function onControl (port: BatchPort, data: Buffer, counters: SessionCounters): void {
  const text = data.toString('utf8')
  if (port.network.stp.receive(port, text)) return
  const bpdu = port.stp === null && parseControl(text)?.type === 'bpdu'
  // A mesh link is another replica of our own fleet, not a station posing as a switch: its BPDUs are dropped, not guarded.
  if (bpdu && port.mesh) { counters.meshBpdusDropped++; return }
  if (bpdu) {
    counters.bpduGuardShutdowns++
    log.client('warn', 'bpdu_guard', port.address, { port: port.name, id: port.id, network: port.network.name, remote: port.remote })
    port.shutdown(CLOSE_BPDU_GUARD, 'BPDU guard: this port is not a trunk')
    return
  }
  counters.controlIgnored++
}

/**
 * One keepalive round: terminate ports silent since the last round, ping
 * the rest. A round that runs late means switchd's own event loop is behind
 * (a flood at many ports): pongs may be waiting unread in socket buffers, so
 * that round judges no one, it only pings.
 *
 * Talking is not listening: a port whose peer keeps sending but reads
 * nothing (what we buffer for it stays above its high-water mark, without
 * shrinking and with nothing more sent, for limits.notReadingTimeout) is
 * closed with 4004 whatever it sends, and cut at the next round if it does
 * not read the close either. Its egress was already being dropped; this frees
 * the socket, as a switch err-disables a port stuck in flow control. A
 * peer that reads, however slowly, is only congested and stays.
 * Returns the time of this round (the next one's `last`).
 */
export function keepaliveRound (ports: Iterable<WsPort>, counters: SessionCounters, pingInterval: number, notReadingTimeout: number, last: number, now: number): number {
  const since = now - last
  const late = last !== 0 && since > pingInterval * 1500
  if (late) log.limited('warn', 'keepalive_late', { behind_ms: Math.round(since - pingInterval * 1000) })
  // A slow reader is congested, not dead: only a peer that read nothing for notReadingTimeout is closed.
  const rounds = Math.max(1, Math.ceil(notReadingTimeout / pingInterval))
  for (const port of ports) {
    if (port.parked) continue
    const buffered = port.bufferedBytes()
    const read = buffered < port.lastBuffered || port.txBytes !== port.lastTxBytes
    port.lastBuffered = buffered
    port.lastTxBytes = port.txBytes
    if (buffered <= port.highWaterMark) port.notReading = 0
    else {
      // Judged on its reading, not its silence; and not pinged: the pong would queue behind the rest.
      if (read && port.notReading <= rounds) port.notReading = 0
      if (port.notReading === rounds) {
        counters.closedNotReading++
        log.client('warn', 'port_not_reading', port.address, { port: port.name, id: port.id, remote: port.remote, buffered_bytes: port.bufferedBytes(), high_water_mark: port.highWaterMark })
        port.shutdown(CLOSE_NOT_READING, 'peer not reading')
      } else if (port.notReading > rounds) port.ws.terminate()
      port.notReading++
      continue
    }
    if (!port.alive && !late) {
      log.client('info', 'port_dead', port.address, { port: port.name, id: port.id, remote: port.remote, silent_seconds: pingInterval })
      port.timedOut = true
      port.ws.terminate()
      continue
    }
    port.alive = false
    port.ws.ping()
  }
  return now
}
