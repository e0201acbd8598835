/**
 * What the switch does when learning refuses a source (port security, a
 * static MAC seen elsewhere) or reports a flapping MAC (a loop). Rare events:
 * they log, and may block or shut a port. Kept out of switch.ts so the frame
 * path stays on one screen.
 */

import type { Network } from './network'
import { BLOCK_LOOP, type Port } from './port'
import { formatMac } from '../../common/ethernet'
import { CLOSE_POLICY } from '../../common/protocol'
import { logger } from '../../common/log'

const log = logger('switch')

/** Port security refused a source (the frame is dropped by the caller): log the violation, and shut the port if so configured. */
export function portViolation (sw: Network, ingress: Port): void {
  if (ingress.securityViolations++ === 0 || ingress.shutdownOnViolation) {
    // Within the budget of the client that caused it: one client's violations cannot hide another's.
    log.forClient('warn', 'port_security_violation', ingress.clientKey, {
      network: sw.name, port: ingress.name, max_macs: ingress.maxMacs, action: ingress.shutdownOnViolation ? 'shutdown' : 'drop'
    })
  }
  if (ingress.shutdownOnViolation) ingress.shutdown(CLOSE_POLICY, 'port security: too many MAC addresses')
}

/** Which of the two ports a flap blocks: never the MAC's home; the newer port when neither is. */
export function loopVictim (ingress: Port, from: Port, home: Port): Port {
  return from === home ? ingress : ingress === home ? from : from.id > ingress.id ? from : ingress
}

/**
 * A MAC is flapping between `ingress` and `from`: a loop, or ports spoofing
 * it. Block `victim` (loopVictim: one of the two) for the hold-down and
 * forget its MACs. The MAC's home (fdb.ts: where it lives, which changes
 * only when it has lived elsewhere for the ageing time) is its station's
 * own port and is never the one blocked; when neither is home, the newer
 * port is blocked (the one whose arrival made the loop). The VLAN's other
 * entries are kept: flushing them would let whoever sends a MAC first after
 * the flush become its home, which is how spoofing ports got a station's own
 * port blocked (issue 12, finding 11); the fdb never moved a MAC away from a
 * port still sending it, so they are right. If the victim is the ingress,
 * the caller drops the frame.
 */
export function blockLoop (sw: Network, ingress: Port, victim: Port, from: Port, mac: number, vid: number): void {
  sw.setBlocked(victim, BLOCK_LOOP, true)
  victim.loopUntil = sw.nowMs + sw.loopHoldDown * 1000
  victim.loopBlocks++
  sw.stats.loopsDetected++
  const flushed = sw.fdb.deletePort(victim)
  // A client with two ports makes loops at will: within its log budget.
  log.forClient('warn', 'loop_detected', ingress.clientKey, {
    network: sw.name, vlan: vid, mac: formatMac(mac), ports: `${from.name},${ingress.name}`,
    blocked: victim.name, hold_down_seconds: sw.loopHoldDown, fdb_flushed: flushed
  })
}
