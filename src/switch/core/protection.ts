/**
 * What the switch does when learning refuses a source (port security, a
 * static MAC seen elsewhere) or reports a flapping MAC (a loop). Rare events:
 * they log, and may block or shut a port. Kept out of switch.ts so the frame
 * path stays on one screen.
 */

import type { Switch } from './switch'
import { BLOCK_LOOP, type Port } from './port'
import { LEARN_LIMIT } from './fdb'
import { R_BAD_SOURCE, R_PORT_SECURITY } from './drops'
import { formatMac } from '../../common/ethernet'
import { CLOSE_POLICY } from '../../common/protocol'
import { logger } from '../../common/log'

const log = logger('switch')

/** Port security or a pinned static MAC refused the source: count, and shut the port if so configured. */
export function refuseSource (sw: Switch, ingress: Port, learned: number, buf: Buffer, off: number, len: number, vid: number): void {
  if (learned !== LEARN_LIMIT) {
    ingress.dropBadSource++
    sw.stats.dropBadSource++
    sw.logDrop(ingress, R_BAD_SOURCE, buf, off, len, vid)
    return
  }
  ingress.dropPortSecurity++
  sw.stats.dropPortSecurity++
  sw.logDrop(ingress, R_PORT_SECURITY, buf, off, len, vid)
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
 * it. Block one of the two for the hold-down and forget the blocked port's
 * MACs. The MAC's `home` (fdb.ts: where it lives, which changes only when it
 * has lived elsewhere for the ageing time) is its station's own port and is
 * never the one blocked; when neither is home, the newer port is blocked
 * (the one whose arrival made the loop). The VLAN's other entries are kept:
 * flushing them would let whoever sends a MAC first after the flush become
 * its home, which is how spoofing ports got a station's own port blocked
 * (issue 12, finding 11); the fdb never moved a MAC away from a port still
 * sending it, so they are right. Returns true if the frame must be dropped
 * (its ingress is now blocked).
 */
export function blockLoop (sw: Switch, ingress: Port, from: Port, home: Port, mac: number, vid: number): boolean {
  const blocked = loopVictim(ingress, from, home)
  blocked.blocked |= BLOCK_LOOP
  sw.invalidate()
  blocked.loopUntil = sw.nowMs + sw.loopHoldDown * 1000
  blocked.loopBlocks++
  sw.stats.loopsDetected++
  const flushed = sw.fdb.deletePort(blocked)
  // A client with two ports makes loops at will: within its log budget.
  log.forClient('warn', 'loop_detected', ingress.clientKey, {
    network: sw.name, vlan: vid, mac: formatMac(mac), ports: `${from.name},${ingress.name}`,
    blocked: blocked.name, hold_down_seconds: sw.loopHoldDown, fdb_flushed: flushed
  })
  if (blocked !== ingress) return false
  ingress.dropLoop++
  sw.stats.dropLoop++
  return true
}
