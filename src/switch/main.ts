/**
 * switchd: the central switch. Flags, signals, start and stop; nothing else.
 */

import { SwitchServer } from './server'
import { parseCli, helpText, intOption, hostPortOption, die, type Specs } from '../common/cli'
import { DEFAULT_MAX_FRAME_SIZE, MAX_FRAME_SIZE_LIMIT } from '../common/protocol'
import { DEFAULT_AGEING_TIME, DEFAULT_MAX_ENTRIES } from './fdb'
import { DEFAULT_HIGH_WATER_MARK } from './ws-port'
import { setLogLevel, isLevel, logger } from '../common/log'
import { TapswitchError } from '../common/errors'

const log = logger('switchd')

const SPECS = {
  listen: { type: 'string', env: 'SWITCHD_LISTEN', default: '127.0.0.1:8080', arg: 'HOST:PORT', help: 'address for WebSocket ports and /healthz' },
  'max-frame-size': { type: 'string', env: 'SWITCHD_MAX_FRAME_SIZE', default: String(DEFAULT_MAX_FRAME_SIZE), arg: 'BYTES', help: `largest frame forwarded, Ethernet header included (up to ${MAX_FRAME_SIZE_LIMIT} for jumbo frames)` },
  'ageing-time': { type: 'string', env: 'SWITCHD_AGEING_TIME', default: String(DEFAULT_AGEING_TIME), arg: 'SECONDS', help: 'idle time before a learned MAC expires' },
  'fdb-max': { type: 'string', env: 'SWITCHD_FDB_MAX', default: String(DEFAULT_MAX_ENTRIES), arg: 'N', help: 'most MACs in the forwarding table' },
  'port-buffer': { type: 'string', env: 'SWITCHD_PORT_BUFFER', default: String(DEFAULT_HIGH_WATER_MARK), arg: 'BYTES', help: 'egress bytes queued per port before frames to it are dropped' },
  'ping-interval': { type: 'string', env: 'SWITCHD_PING_INTERVAL', default: '3', arg: 'SECONDS', help: 'keepalive ping period; a silent port is dropped after two' },
  'log-level': { type: 'string', env: 'SWITCHD_LOG_LEVEL', default: 'info', arg: 'LEVEL', help: 'debug, info, warn or error' },
  help: { type: 'boolean', short: 'h', help: 'show this help' }
} satisfies Specs

const ABOUT = `switchd is tapswitch's central switch: every WebSocket connection is a port.
It learns source MACs, forwards known unicast to one port and floods the rest,
like an Ethernet switch. tap-agent connects with the tapswitch.v1 subprotocol;
browser VMs (v86, jor1k, JSLinux) connect with no subprotocol (raw mode).`

export async function main (argv: string[]): Promise<void> {
  let server: SwitchServer
  let listenText = ''
  try {
    const o = parseCli(SPECS, argv, process.env)
    if (o.help) { process.stdout.write(helpText('switchd [options]', ABOUT, SPECS)); return }
    const logLevel = o['log-level'] as string
    if (!isLevel(logLevel)) throw new TapswitchError('TSW_ERR_CONFIG', `--log-level ${logLevel}: expected debug, info, warn or error`)
    setLogLevel(logLevel)
    listenText = o.listen ?? ''
    const listen = hostPortOption('listen', listenText)
    server = new SwitchServer({
      host: listen.host,
      port: listen.port,
      maxFrameSize: intOption('max-frame-size', o['max-frame-size'], 64, MAX_FRAME_SIZE_LIMIT),
      ageingTime: intOption('ageing-time', o['ageing-time'], 1, 1_000_000),
      maxEntries: intOption('fdb-max', o['fdb-max'], 1, 10_000_000),
      highWaterMark: intOption('port-buffer', o['port-buffer'], 16 * 1024, 1024 * 1024 * 1024),
      pingInterval: intOption('ping-interval', o['ping-interval'], 1, 3600)
    })
  } catch (err) {
    die('switchd', (err as Error).message, 2)
  }
  try {
    await server.listen()
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    const hint = e.code === 'EADDRINUSE'
      ? 'another process has this port; choose another with --listen'
      : e.code === 'EACCES' ? 'ports below 1024 need CAP_NET_BIND_SERVICE; use a higher port' : e.code === 'EADDRNOTAVAIL' ? 'no local interface has that address' : ''
    die('switchd', `listen ${listenText}: ${e.code ?? e.message}${hint !== '' ? ` (${hint})` : ''}`)
  }
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) { log.warn('forced_exit', { signal }); process.exit(1) }
    stopping = true
    log.info('shutdown', { signal })
    server.close().then(() => { process.exit(0) }, (err: Error) => { log.error('shutdown_failed', { error: err.message }); process.exit(1) })
  }
  process.on('SIGINT', () => { stop('SIGINT') })
  process.on('SIGTERM', () => { stop('SIGTERM') })
}
