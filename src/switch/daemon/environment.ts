/**
 * What switchd does to its own process before any gateway child exists: a
 * child of our user must not read our environment (the admin token) nor
 * ptrace us, so switchd makes itself non-dumpable (io/gateway-sandbox.ts).
 */

import { makeNondumpable } from '../io/gateway-sandbox'
import type { SwitchdConfig } from '../control/config'
import { logger } from '../../common/log'

const log = logger('switchd')

/** Before any child exists: with a gateway configured, no process of this user may read /proc/<pid>/environ. */
export function protectEnvironment (config: SwitchdConfig): void {
  if (config.gateways.length === 0) return
  if (makeNondumpable()) log.info('nondumpable', { why: 'a gateway runs: no process of this user may read /proc/<pid>/environ or ptrace switchd; no core dumps' })
  else log.warn('nondumpable_failed', { why: 'the native addon did not load (run npm install): a process of switchd\'s user can read its environment' })
}
