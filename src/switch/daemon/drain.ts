/**
 * Drain: this replica hands its ports to the others (switchctl drain,
 * POST /api/v1/drain, SIGTERM before it stops). From the first instant it is
 * not ready (/readyz answers 503 "draining") and refuses every port's upgrade
 * with 503, which a balancer takes as "try the next upstream" (nginx
 * proxy_next_upstream http_503: deploy/nginx/tapswitch.conf); then every
 * WebSocket port and handshake is closed with 4006 "this replica is draining:
 * reconnect now", and tap-agent and trunks reconnect at once, through the
 * balancer, to the replica their network now hashes to. Parked ports go at
 * once: their agents could not resume them here (the upgrade is refused).
 *
 * What the configuration opened (QEMU listeners, TAPs, gateways, the trunks
 * this switchd dials) stays: those are this host's, no balancer places them.
 * A drain is idempotent; undrain makes the replica ready again.
 */

import type { WebSocket } from 'ws'
import type { PortTable } from './port-table'
import type { DrainJson } from '../../common/api-types'
import { CLOSE_DRAINING, DRAINING_REASON } from '../../common/protocol'
import { logger } from '../../common/log'

const log = logger('server')

/**
 * Close `sockets` with `code` and wait for each peer's close (and `also`) up to
 * `seconds`, then cut whatever is left: a peer that does not answer cannot
 * hold a drain or a shutdown.
 */
export async function closeSockets (sockets: WebSocket[], code: number, reason: string, seconds: number, also: Array<Promise<void>> = []): Promise<void> {
  const gone = sockets.map((ws) => new Promise<void>((resolve) => {
    if (ws.readyState === ws.CLOSED) { resolve(); return }
    ws.once('close', () => { resolve() })
    ws.close(code, reason)
  }))
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<void>((resolve) => { timer = setTimeout(resolve, seconds * 1000) })
  await Promise.race([Promise.all([...gone, ...also]), late])
  clearTimeout(timer)
  for (const ws of sockets) ws.terminate()
}

export class Drain {
  /** The drain under way or done (resolves with the ports it closed); undefined while the replica serves. */
  private run: Promise<number> | undefined

  constructor (private readonly portTable: PortTable, private readonly closeTimeout: number) {}

  get draining (): boolean { return this.run !== undefined }

  /** Drain (idempotent): resolves once this drain's ports are closed; a second call waits for the first and closes nothing more. */
  async start (): Promise<DrainJson> {
    const first = this.run === undefined
    this.run ??= this.closeAll()
    const closed = await this.run
    return { draining: true, closed: first ? closed : 0 }
  }

  /** Serve again: ready, and ports admitted (their agents come back as the balancer sends them). */
  stop (): DrainJson {
    if (this.run !== undefined) log.info('undrained', {})
    this.run = undefined
    this.portTable.closing = false
    return { draining: false, closed: 0 }
  }

  private async closeAll (): Promise<number> {
    // No port parks from here on: no agent could resume it (upgrades are refused).
    this.portTable.closing = true
    const sockets = this.portTable.sockets('this replica is draining')
    log.info('draining', { ports: sockets.length })
    await closeSockets(sockets, CLOSE_DRAINING, DRAINING_REASON, this.closeTimeout)
    log.info('drained', { closed: sockets.length })
    return sockets.length
  }
}
