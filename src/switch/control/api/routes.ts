/**
 * The admin API's endpoints: one row each, its handler in the file of its
 * resource. Every route needs what handleApi (index.ts) checks before it looks
 * here: the API on, a request no browser rule refuses (exposure.ts), and the
 * admin token where one is configured. There is one permission today, so the
 * table has no column for it; a read-only role would be one, checked in
 * handleApi once the route is found.
 *
 * `<name>` is a port's name; `?network=` names its network when two networks
 * have a port of that name (409 otherwise).
 */

import type { Route } from './route'
import { getNetworks } from './networks'
import { getPorts, portAction } from './ports'
import { getFdb, flushFdb } from './fdb'
import { addStatic, removeStatic } from './statics'
import { getConditions, setCondition, clearCondition, setLink } from './conditions'
import { getCapture } from './capture'
import { postTrace } from './trace'
import { getDrops } from './drops'
import { getLeases } from './leases'
import { postDrain } from './drain'
import { getStatus } from './status'

export const ROUTES: readonly Route[] = [
  /** Networks and their counters. */
  { method: 'GET', path: '/api/v1/networks', handler: getNetworks },
  /** ?network=: VLAN mode, state, counters, drops. */
  { method: 'GET', path: '/api/v1/ports', handler: getPorts },
  { method: 'POST', path: '/api/v1/ports/:port/disable', handler: portAction('disable') },
  { method: 'POST', path: '/api/v1/ports/:port/enable', handler: portAction('enable') },
  { method: 'POST', path: '/api/v1/ports/:port/disconnect', handler: portAction('disconnect') },
  /** ?network=&vlan=&port=&mac= */
  { method: 'GET', path: '/api/v1/fdb', handler: getFdb },
  /** {network?, port?, mac?, vlan?} */
  { method: 'POST', path: '/api/v1/fdb/flush', handler: flushFdb },
  /** {network?, vlan?, mac, port, detached?} (detached: the port has not connected yet) */
  { method: 'POST', path: '/api/v1/fdb/static', handler: addStatic },
  /** ?network=&vlan=&mac= */
  { method: 'DELETE', path: '/api/v1/fdb/static', handler: removeStatic },
  /** ?network=: link conditions and drills in force (docs/CONDITIONS.md). */
  { method: 'GET', path: '/api/v1/conditions', handler: getConditions },
  /** {direction?: in|out|both, delay?, jitter?, loss?, rate?, …} */
  { method: 'POST', path: '/api/v1/ports/:port/condition', handler: setCondition },
  /** ?direction=in|out|both */
  { method: 'DELETE', path: '/api/v1/ports/:port/condition', handler: clearCondition },
  /** {state: down|up, direction?: in|out|both, flap?: "2s/8s"} */
  { method: 'POST', path: '/api/v1/ports/:port/link', handler: setLink },
  /** ?network=&port=&vlan=&count=&bytes=&duration=: a pcap stream. */
  { method: 'GET', path: '/api/v1/capture', handler: getCapture },
  /** {network?, in, frame}: the forwarding decision for a frame, now (changes nothing). */
  { method: 'POST', path: '/api/v1/trace', handler: postTrace },
  /** ?since=&limit=&network=&port=&reason=: the last dropped frames. */
  { method: 'GET', path: '/api/v1/drops', handler: getDrops },
  /** ?network=: the gateways' DHCP leases, dynamic and static. */
  { method: 'GET', path: '/api/v1/leases', handler: getLeases },
  /** {drain?: boolean}: hand this replica's ports to the others (4006), or serve again; answers once they are closed. */
  { method: 'POST', path: '/api/v1/drain', handler: postDrain },
  /** This switchd as a replica: its name (--replica), its fleet's peers and mesh links. */
  { method: 'GET', path: '/api/v1/status', handler: getStatus }
]
