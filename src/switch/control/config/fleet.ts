/**
 * The replica's name and its fleet (issue 25, docs/FLEET.md), from flags
 * only: `--replica`, `--fleet URL,…|dns://NAME:PORT`, `--fleet-token-file`
 * (or SWITCHD_FLEET_TOKEN), `--fleet-vlans`. Every error names the flag and
 * the fix; the credential is read here once and never logged.
 */

import * as os from 'node:os'
import { readFileSync } from 'node:fs'
import { REPLICA_NAME, MIN_FLEET_TOKEN, MAX_PEERS, type FleetSpec, type FleetPeerSpec } from '../../core/fleet-plan'
import { TapswitchError, ERR_CONFIG } from '../../../common/errors'
import type { ConfigOverrides } from './types'

function fail (message: string): never { throw new TapswitchError(ERR_CONFIG, message) }

/** The host's name as a replica name: lowercased, anything else made '-', cut to a DNS label; 'switchd' if nothing is left. */
export function defaultReplica (hostname: string = os.hostname()): string {
  const name = hostname.toLowerCase().split('.')[0]?.replace(/[^a-z0-9-]/g, '-').replace(/^-+/, '').slice(0, 63) ?? ''
  return REPLICA_NAME.test(name) ? name : 'switchd'
}

/** `--replica`, checked; the host's name without one. */
export function readReplica (given: string | undefined): string {
  if (given === undefined) return defaultReplica()
  if (!REPLICA_NAME.test(given)) fail(`--replica "${given.slice(0, 80)}": a replica name is a DNS label: 1-63 lowercase letters, digits and '-', starting with a letter or digit (e.g. switchd-0)`)
  return given
}

/** One `--fleet` entry: http(s)://HOST:PORT, or dns://NAME:PORT. */
function readPeer (text: string): FleetPeerSpec {
  let u: URL
  try { u = new URL(text) } catch { return fail(`--fleet "${text.slice(0, 120)}": not a URL: give http://HOST:PORT, https://HOST:PORT or dns://NAME:PORT`) }
  if (u.protocol === 'dns:') {
    const port = Number(u.port)
    if (u.hostname === '' || u.port === '' || (u.pathname !== '' && u.pathname !== '/')) fail(`--fleet "${text}": a DNS peer is dns://NAME:PORT (every address NAME resolves to is a replica listening on PORT)`)
    return { kind: 'dns', name: u.hostname, port }
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') fail(`--fleet "${text}": unsupported scheme ${u.protocol} (use http://, https:// or dns://)`)
  if ((u.pathname !== '' && u.pathname !== '/') || u.search !== '' || u.username !== '' || u.password !== '') {
    fail(`--fleet "${text}": give the replica's base URL only (scheme, host and port: no path, query or credentials)`)
  }
  return { kind: 'url', url: `${u.protocol}//${u.host}` }
}

/** The fleet credential: the file's first line, or SWITCHD_FLEET_TOKEN; at least MIN_FLEET_TOKEN characters. */
function readToken (file: string | undefined, env: string | undefined): string {
  let token = env
  if (file !== undefined) {
    try { token = readFileSync(file, 'utf8').split('\n')[0]?.trim() } catch (err) {
      fail(`--fleet-token-file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (a file holding the fleet credential, readable by switchd)`)
    }
  }
  const where = file !== undefined ? `--fleet-token-file ${file}` : 'SWITCHD_FLEET_TOKEN'
  if (token === undefined || token === '') fail('--fleet needs the fleet credential: --fleet-token-file FILE or SWITCHD_FLEET_TOKEN, the same secret on every replica (e.g. `openssl rand -hex 32`)')
  if (token.length < MIN_FLEET_TOKEN) fail(`${where}: the fleet credential has ${token.length} characters, fewer than ${MIN_FLEET_TOKEN}: make a longer one (e.g. \`openssl rand -hex 32\`)`)
  if (!/^[\x21-\x7e]+$/.test(token)) fail(`${where}: the fleet credential may hold only printable ASCII without spaces (it travels as a bearer token)`)
  return token
}

/** `--fleet-vlans VID,…`: the VLANs mesh links carry tagged, besides VLAN 1 untagged. */
function readVlans (text: string | undefined): number[] {
  if (text === undefined || text.trim() === '') return []
  const out = new Set<number>()
  for (const part of text.split(',')) {
    const v = Number(part.trim())
    if (!Number.isInteger(v) || v < 2 || v > 4094) fail(`--fleet-vlans "${part.trim()}": expected VLAN ids from 2 to 4094, comma-separated (VLAN 1 is always carried, untagged)`)
    out.add(v)
  }
  return [...out].sort((a, b) => a - b)
}

/** The fleet the flags describe, or undefined without --fleet (then the other fleet flags are refused: they would do nothing). */
export function readFleet (o: ConfigOverrides): FleetSpec | undefined {
  if (o.fleet === undefined || o.fleet.trim() === '') {
    if (o.fleetTokenFile !== undefined) fail('--fleet-token-file is used only with --fleet: add --fleet, or drop it')
    if (o.fleetVlans !== undefined) fail('--fleet-vlans is used only with --fleet: add --fleet, or drop it')
    return undefined
  }
  const peers = o.fleet.split(',').map((s) => s.trim()).filter((s) => s !== '').map(readPeer)
  if (peers.length > MAX_PEERS) fail(`--fleet lists ${peers.length} peers: a fleet has at most ${MAX_PEERS} replicas (a dns:// name stands for all of its addresses)`)
  return Object.freeze({ peers: Object.freeze(peers), token: readToken(o.fleetTokenFile, o.fleetToken), vlans: Object.freeze(readVlans(o.fleetVlans)), ca: o.uplinkCa })
}
