/**
 * switchd's own settings, as a service: where it listens and serves
 * /metrics, its keepalive and buffers, how many networks it may hold, its
 * resource limits, its spanning-tree priority and its state directory.
 */

import * as os from 'node:os'
import * as path from 'node:path'
import type { Reader, Obj } from './reader'
import type { ConfigOverrides, Limits, SwitchdConfig } from './types'
import { DEFAULT_HIGH_WATER_MARK } from '../../../common/defaults'
import { defaultPendingPerAddress } from '../admission'
import { DEFAULT_BRIDGE_PRIORITY } from '../../core/stp'
import { DEFAULT_HELD_TOTAL, DEFAULT_HELD_PER_CLIENT, MAX_HELD_BYTES } from '../../core/held-queue'

/** The parts of the configuration this file reads. */
export type Service = Pick<SwitchdConfig, 'listen' | 'pingInterval' | 'portBuffer' | 'resumeGrace' | 'dynamicNetworks' | 'maxNetworks' |
  'bridgePriority' | 'stateDir' | 'metricsListen' | 'perPortMetrics' | 'maxPortSeries'>

const LIMIT_KEYS = ['maxPorts', 'maxPortsPerAddress', 'handshakeTimeout', 'maxPending', 'maxPendingPerAddress', 'maxCaptures', 'notReadingTimeout', 'conditionBytes', 'conditionBytesPerAddress']

/**
 * switchd's state directory when none is configured: systemd's
 * $STATE_DIRECTORY (StateDirectory=), else /var/lib/tapswitch for root,
 * else $XDG_STATE_HOME/tapswitch or ~/.local/state/tapswitch.
 */
export function defaultStateDir (env: NodeJS.ProcessEnv = process.env, uid: number = process.getuid?.() ?? -1): string {
  const systemd = env.STATE_DIRECTORY?.split(':')[0]
  if (systemd !== undefined && path.isAbsolute(systemd)) return systemd
  if (uid === 0) return '/var/lib/tapswitch'
  const xdg = env.XDG_STATE_HOME
  const base = xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(env.HOME ?? os.homedir(), '.local', 'state')
  return path.join(base, 'tapswitch')
}

/** The top-level settings of switchd itself and `metrics`, under their flags. */
export function readService (r: Reader, top: Obj, overrides: ConfigOverrides): Service {
  const metrics = r.object(top.metrics ?? {}, 'metrics', ['perPort', 'maxPortSeries'])
  return {
    metricsListen: overrides.metricsListen ?? r.str(top.metricsListen, 'metricsListen', /^.+:\d+$/, undefined, 'HOST:PORT'),
    perPortMetrics: r.bool(metrics.perPort, 'metrics.perPort', true),
    maxPortSeries: r.int(metrics.maxPortSeries, 'metrics.maxPortSeries', 0, 1_000_000, 1000),
    resumeGrace: r.num(top.resumeGrace, 'resumeGrace', 0, 3600, 30),
    bridgePriority: overrides.bridgePriority ?? r.int(top.bridgePriority, 'bridgePriority', 0, 65535, DEFAULT_BRIDGE_PRIORITY),
    stateDir: overrides.stateDir ?? r.str(top.stateDir, 'stateDir', /^\//, undefined, 'an absolute path (switchd\'s state directory)') ?? defaultStateDir(),
    listen: overrides.listen ?? r.str(top.listen, 'listen', /^.+:\d+$/, '127.0.0.1:8080', 'HOST:PORT') as string,
    pingInterval: overrides.pingInterval ?? r.int(top.pingInterval, 'pingInterval', 1, 3600, 3),
    portBuffer: overrides.portBuffer ?? r.int(top.portBuffer, 'portBuffer', 16 * 1024, 1024 * 1024 * 1024, DEFAULT_HIGH_WATER_MARK),
    dynamicNetworks: r.bool(top.dynamicNetworks, 'dynamicNetworks', true),
    maxNetworks: r.int(top.maxNetworks, 'maxNetworks', 1, 100_000, 256)
  }
}

/** `limits`: what switchd, and each client address, may take of it. */
export function readLimits (r: Reader, v: unknown): Limits {
  const limits = r.object(v ?? {}, 'limits', LIMIT_KEYS)
  const maxPending = r.int(limits.maxPending, 'limits.maxPending', 1, 1_000_000, 1024)
  // Below the pool (but at least 1): one address may never take all of it.
  const maxPendingPerAddress = r.int(limits.maxPendingPerAddress, 'limits.maxPendingPerAddress', 1, Math.max(1, maxPending - 1), defaultPendingPerAddress(maxPending))
  return Object.freeze({
    maxPorts: r.int(limits.maxPorts, 'limits.maxPorts', 1, 1_000_000, 10_000),
    maxPortsPerAddress: r.int(limits.maxPortsPerAddress, 'limits.maxPortsPerAddress', 1, 1_000_000, 1000),
    handshakeTimeout: r.num(limits.handshakeTimeout, 'limits.handshakeTimeout', 0.1, 3600, 10),
    maxPending,
    maxPendingPerAddress,
    maxCaptures: r.int(limits.maxCaptures, 'limits.maxCaptures', 0, 1000, 4),
    notReadingTimeout: r.num(limits.notReadingTimeout, 'limits.notReadingTimeout', 1, 86_400, 30),
    conditionBytes: r.int(limits.conditionBytes, 'limits.conditionBytes', 0, MAX_HELD_BYTES, DEFAULT_HELD_TOTAL),
    conditionBytesPerAddress: r.int(limits.conditionBytesPerAddress, 'limits.conditionBytesPerAddress', 0, MAX_HELD_BYTES, DEFAULT_HELD_PER_CLIENT)
  })
}
