/**
 * switchd: the central switch. Flags, configuration, signals, start and stop.
 */

import * as path from 'node:path'
import { SwitchServer } from './daemon/switchd'
import { protectEnvironment } from './daemon/environment'
import { loadConfig, MAX_BUSY_POLL, type ConfigOverrides, type SwitchdConfig } from './control/config'
import { parseCli, helpText, type Values, intOption, hostPortOption, die, type Specs } from '../common/cli'
import { DEFAULT_MAX_FRAME_SIZE, MAX_FRAME_SIZE_LIMIT } from '../common/protocol'
import { DEFAULT_AGEING_TIME, DEFAULT_MAX_ENTRIES } from './core/fdb'
import { DEFAULT_HIGH_WATER_MARK } from '../common/defaults'
import { configureLog, logger } from '../common/log'
import { TapswitchError } from '../common/errors'

const log = logger('switchd')

// No `default` on flags that the configuration file may also set: absent means "use the file".
export const SPECS = {
  config: { type: 'string', env: 'SWITCHD_CONFIG', arg: 'FILE', help: 'JSON configuration: networks, VLAN profiles, limits, static entries (SIGHUP reloads it)' },
  listen: { type: 'string', env: 'SWITCHD_LISTEN', arg: 'HOST:PORT', help: 'address for WebSocket ports, /healthz and /api [default 127.0.0.1:8080]' },
  'max-frame-size': { type: 'string', env: 'SWITCHD_MAX_FRAME_SIZE', arg: 'BYTES', help: `largest frame, header and VLAN tag included, up to ${MAX_FRAME_SIZE_LIMIT} for jumbo frames [default ${DEFAULT_MAX_FRAME_SIZE}]` },
  'ageing-time': { type: 'string', env: 'SWITCHD_AGEING_TIME', arg: 'SECONDS', help: `idle time before a learned MAC expires [default ${DEFAULT_AGEING_TIME}]` },
  'fdb-max': { type: 'string', env: 'SWITCHD_FDB_MAX', arg: 'N', help: `most MACs per network [default ${DEFAULT_MAX_ENTRIES}]` },
  'port-buffer': { type: 'string', env: 'SWITCHD_PORT_BUFFER', arg: 'BYTES', help: `egress bytes queued per port before frames to it are dropped [default ${DEFAULT_HIGH_WATER_MARK}]` },
  'ping-interval': { type: 'string', env: 'SWITCHD_PING_INTERVAL', arg: 'SECONDS', help: 'keepalive ping period; a silent port is dropped after two [default 3]' },
  tokens: { type: 'string', env: 'SWITCHD_TOKENS', arg: 'FILE', help: 'JSON list of client tokens (README "Security"); same as tokensFile in --config (SIGHUP reloads it)' },
  'allow-anonymous': { type: 'boolean', env: 'SWITCHD_ALLOW_ANONYMOUS', help: 'listen on a non-loopback address without tokens: anyone who reaches it joins the LAN' },
  'tls-cert': { type: 'string', env: 'SWITCHD_TLS_CERT', arg: 'FILE', help: 'PEM certificate: serve wss:// and https:// (SIGHUP reloads it)' },
  'tls-key': { type: 'string', env: 'SWITCHD_TLS_KEY', arg: 'FILE', help: 'PEM key of --tls-cert' },
  uplink: { type: 'string', env: 'SWITCHD_UPLINK', arg: 'URL,…', help: 'trunk to another switchd: ws[s]://HOST:PORT/net/NAME joins our network NAME to its; each URL is one trunk (docs/TRUNKS.md)' },
  'uplink-token': { type: 'string', env: 'SWITCHD_UPLINK_TOKEN', arg: 'TOKEN', help: 'bearer token for the --uplink switches (prefer the environment variable)' },
  'uplink-ca': { type: 'string', env: 'SWITCHD_UPLINK_CA', arg: 'FILE', help: 'PEM CA to trust for wss:// --uplink URLs instead of the system\'s' },
  'bridge-priority': { type: 'string', env: 'SWITCHD_BRIDGE_PRIORITY', arg: 'N', help: 'spanning-tree priority over trunks, 0-65535: the lowest becomes the root [default 32768]' },
  'qemu-listen': { type: 'string', env: 'SWITCHD_QEMU_LISTEN', arg: 'NAME=unix:PATH,…', help: 'accept a local QEMU VM as port NAME on this socket (-netdev stream,server=off,addr.type=unix,addr.path=PATH)' },
  tap: { type: 'string', env: 'SWITCHD_TAP', arg: 'NAME,…', help: 'serve these TAPs itself, with no tap-agent: creates each (needs CAP_NET_ADMIN) as a port of the default network; the fastest path between TAPs on this host (docs/LOCAL-TAPS.md)' },
  'vxlan-listen': { type: 'string', env: 'SWITCHD_VXLAN_LISTEN', arg: 'HOST[:PORT]', help: 'the UDP address --vxlan listens on; beyond loopback anyone who can send from a listed VTEP\'s address can inject frames (docs/VXLAN.md) [default 127.0.0.1:4789]' },
  vxlan: { type: 'string', env: 'SWITCHD_VXLAN', arg: 'VNI[=NETWORK[/VLAN]]@REMOTE[+REMOTE…],…', help: 'VXLAN ports: each remote VTEP of a VNI is a port of NETWORK (default "default"), access in VLAN (default 1); accepted only from the listed remotes, e.g. 42@10.0.0.2+10.0.0.3 (docs/VXLAN.md)' },
  'busy-poll': { type: 'string', env: 'SWITCHD_BUSY_POLL', arg: 'USEC', help: 'after traffic from a --tap TAP, keep polling this many µs instead of sleeping: an answer in that window costs no wake-up; spins a core while traffic flows [default 0 = off]' },
  replica: { type: 'string', env: 'SWITCHD_REPLICA', arg: 'NAME', help: 'this replica\'s name in its fleet, a DNS label (e.g. switchd-0) [default: the host\'s name]' },
  fleet: { type: 'string', env: 'SWITCHD_FLEET', arg: 'URL,…|dns://NAME:PORT', help: 'the other replicas (http[s]://HOST:PORT, or every address of a DNS name): a network with ports on two replicas is joined by a mesh link (docs/FLEET.md)' },
  'fleet-token-file': { type: 'string', env: 'SWITCHD_FLEET_TOKEN_FILE', arg: 'FILE', help: 'the fleet credential, at least 32 characters, the same on every replica (or the secret itself in SWITCHD_FLEET_TOKEN)' },
  'fleet-vlans': { type: 'string', env: 'SWITCHD_FLEET_VLANS', arg: 'VID,…', help: 'VLANs mesh links carry tagged, besides VLAN 1 untagged [default: none]' },
  'metrics-listen': { type: 'string', env: 'SWITCHD_METRICS_LISTEN', arg: 'HOST:PORT', help: 'serve /metrics on this address instead of --listen' },
  'admin-token': { type: 'string', env: 'SWITCHD_ADMIN_TOKEN', arg: 'TOKEN', help: 'require this bearer token on /api and /metrics; needed with client tokens or beyond loopback (prefer the environment variable: flags show in ps)' },
  'no-fast-path': { type: 'boolean', env: 'SWITCHD_NO_FAST_PATH', help: 'no native thread forwarding known unicast: --tap TAPs and tapswitch.v1 WebSocket ports stay on the event loop (docs/LOCAL-TAPS.md, docs/NATIVE-PATH.md)' },
  'no-api': { type: 'boolean', env: 'SWITCHD_NO_API', help: 'turn the admin API (/api, capture) off: it answers 404' },
  'allowed-hosts': { type: 'string', env: 'SWITCHD_ALLOWED_HOSTS', arg: 'NAME,…', help: 'Host names requests may use besides IP addresses and localhost (DNS-rebinding guard); .example.org = it and subdomains, * = any' },
  'allowed-origins': { type: 'string', env: 'SWITCHD_ALLOWED_ORIGINS', arg: 'ORIGIN,…', help: 'web page origins (e.g. http://localhost:8000) whose browser VMs may connect; * = any [default: none]' },
  'trusted-proxy': { type: 'string', env: 'SWITCHD_TRUSTED_PROXY', arg: 'CIDR,…', help: 'proxies (a balancer) whose X-Forwarded-For names the client: only a peer in these ranges may set it, and per-address limits and logs then use its last entry [default: none]' },
  'state-dir': { type: 'string', env: 'SWITCHD_STATE_DIR', arg: 'DIR', help: 'switchd\'s state directory: the gateways\' DHCP leases [default $STATE_DIRECTORY, else /var/lib/tapswitch as root, else $XDG_STATE_HOME/tapswitch or ~/.local/state/tapswitch]' },
  'log-level': { type: 'string', env: 'SWITCHD_LOG_LEVEL', default: 'info', arg: 'LEVEL', help: 'debug, info, warn or error' },
  'log-format': { type: 'string', env: 'SWITCHD_LOG_FORMAT', default: 'auto', arg: 'auto|text|json', help: 'log lines as text for a person or JSON for a program; auto = text when stderr is a terminal (coloured unless NO_COLOR is set), JSON otherwise' },
  help: { type: 'boolean', short: 'h', help: 'show this help' }
} satisfies Specs

const ABOUT = `switchd is tapswitch's central switch: every WebSocket connection is a port.
It learns source MACs, forwards known unicast to one port and floods the rest,
like an Ethernet switch. tap-agent connects with the tapswitch.v1 subprotocol;
browser VMs (v86, jor1k, JSLinux) connect with no subprotocol (raw mode).
The URL path picks the network: / is "default", /net/NAME is NAME.`

/** The configuration the flags give (undefined where a flag is absent: the file decides). */
function overridesOf (o: Values<typeof SPECS>): ConfigOverrides {
  if (o.listen !== undefined) hostPortOption('listen', o.listen)
  if (o['metrics-listen'] !== undefined) hostPortOption('metrics-listen', o['metrics-listen'])
  const opt = (name: keyof typeof SPECS, min: number, max: number): number | undefined => {
    const v = o[name] as string | undefined
    return v === undefined ? undefined : intOption(name, v, min, max)
  }
  return {
    listen: o.listen,
    maxFrameSize: opt('max-frame-size', 64, MAX_FRAME_SIZE_LIMIT),
    ageingTime: opt('ageing-time', 1, 1_000_000),
    fdbMax: opt('fdb-max', 1, 10_000_000),
    portBuffer: opt('port-buffer', 16 * 1024, 1024 * 1024 * 1024),
    pingInterval: opt('ping-interval', 1, 3600),
    metricsListen: o['metrics-listen'],
    adminToken: o['admin-token'],
    tokensFile: o.tokens,
    tlsCert: o['tls-cert'],
    tlsKey: o['tls-key'],
    allowAnonymous: o['allow-anonymous'] ? true : undefined,
    api: o['no-api'] ? false : undefined,
    allowedHosts: o['allowed-hosts'],
    allowedOrigins: o['allowed-origins'],
    trustedProxies: o['trusted-proxy'],
    qemuListen: o['qemu-listen'],
    taps: o.tap,
    uplink: o.uplink,
    uplinkToken: o['uplink-token'],
    uplinkCa: o['uplink-ca'],
    bridgePriority: opt('bridge-priority', 0, 65535),
    vxlanListen: o['vxlan-listen'],
    vxlan: o.vxlan,
    busyPoll: opt('busy-poll', 0, MAX_BUSY_POLL),
    fastPath: o['no-fast-path'] ? false : undefined,
    stateDir: o['state-dir'] === undefined ? undefined : path.resolve(o['state-dir']),
    replica: o.replica,
    fleet: o.fleet,
    fleetTokenFile: o['fleet-token-file'],
    // The secret itself, from the environment only (a flag would show in ps).
    fleetToken: process.env.SWITCHD_FLEET_TOKEN,
    fleetVlans: o['fleet-vlans']
  }
}

export async function main (argv: string[]): Promise<void> {
  let server: SwitchServer
  let configPath: string | undefined
  let overrides: ConfigOverrides
  try {
    const o = parseCli(SPECS, argv, process.env, 'switchd')
    if (o.help) { process.stdout.write(helpText('switchd [options]', ABOUT, SPECS)); return }
    configureLog(o['log-level'] as string, o['log-format'] as string)
    overrides = overridesOf(o)
    configPath = o.config
    server = new SwitchServer({ config: loadConfig(configPath, overrides) })
  } catch (err) {
    die('switchd', (err as Error).message, 2)
  }
  // Reload whatever the configuration came from: the --config file, and files given by flags alone
  // (--tokens, --tls-cert/--tls-key): a token must be revocable without a restart.
  const reload = (): void => {
    let next: SwitchdConfig
    try {
      next = loadConfig(configPath, overrides)
    } catch (err) {
      // A bad file never takes the switch down: keep running on the old configuration.
      server.reloads.rejected++
      log.error('config_rejected', { file: configPath ?? overrides.tokensFile, error: (err as Error).message })
      return
    }
    server.reload(next)
  }
  // Before the start: SIGHUP's default action ends the process, and a start can take seconds (a gateway's QEMU).
  // One that comes meanwhile is applied once switchd listens (a reload must not race the endpoints opening).
  let started = false
  let reloadPending = false
  process.on('SIGHUP', () => {
    if (started) { reload(); return }
    reloadPending = true
    log.info('reload_deferred', { why: 'switchd is starting: the configuration is re-read once it listens' })
  })
  await listen(server)
  started = true
  if (reloadPending) reload()
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) { log.warn('forced_exit', { signal }); process.exit(1) }
    stopping = true
    log.info('shutdown', { signal })
    // SIGTERM (systemd, Kubernetes, a rollout) drains first: its ports reconnect at once (4006) to the other replicas.
    const drained = signal === 'SIGTERM' ? server.drain(true) : Promise.resolve()
    drained.then(async () => { await server.close() }).then(() => { process.exit(0) }, (err: Error) => { log.error('shutdown_failed', { error: err.message }); process.exit(1) })
  }
  process.on('SIGINT', () => { stop('SIGINT') })
  process.on('SIGTERM', () => { stop('SIGTERM') })
}

/** Start serving, or exit naming why (a configuration error: 2; the address: 1, with the fix). */
async function listen (server: SwitchServer): Promise<void> {
  const listenText = server.config.listen
  protectEnvironment(server.config)
  try {
    await server.listen()
  } catch (err) {
    if (err instanceof TapswitchError) die('switchd', err.message, 2)
    const e = err as NodeJS.ErrnoException
    const hint = e.code === 'EADDRINUSE'
      ? 'another process has this port; choose another with --listen'
      : e.code === 'EACCES' ? 'ports below 1024 need CAP_NET_BIND_SERVICE; use a higher port' : e.code === 'EADDRNOTAVAIL' ? 'no local interface has that address' : ''
    die('switchd', `listen ${listenText}: ${e.code ?? e.message}${hint !== '' ? ` (${hint})` : ''}`)
  }
}
