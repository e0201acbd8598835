/**
 * tap-agent: one TAP on this host, one uplink to switchd. Flags, signals,
 * start and stop; the work is in common/tap.ts, common/uplink.ts and agent.ts.
 */

import * as os from 'node:os'
import { execFileSync } from 'node:child_process'
import { TapDevice, TapError, type TapBinding } from '../common/tap'
import { loadNative } from '../common/native'
import { persistentTaps, noSuchTap } from './netns'
import { Uplink } from '../common/uplink'
import { Agent } from './agent'
import { parseCli, helpText, die } from '../common/cli'
import { agentRegistry, serveMetrics } from './metrics'
import { listenForQemu, connectToQemu, qemuDatagrams, vdeStdio, type ModeHandle } from './modes'
import type { UnixDgramBinding } from './qemu'
import { SPECS, ABOUT, agentPlan, sanitize, type AgentPlan, type EndpointPlan } from './options'
import type { UplinkOptions } from '../common/uplink'
import { configureLog, logger } from '../common/log'
import { linkBindingOf, linkBindingRefusal } from './native-link'

const log = logger('tap-agent')

export { SPECS } from './options'

function loadBinding (): TapBinding & UnixDgramBinding {
  return loadNative('TAPs and Unix datagram sockets')
}

export async function main (argv: string[], binding?: TapBinding): Promise<Agent | undefined> {
  let plan: AgentPlan
  try {
    const o = parseCli(SPECS, argv, process.env, 'tap-agent')
    if (o.help) { process.stdout.write(helpText('tap-agent --url ws://switch:8080/ [options]', ABOUT, SPECS)); return undefined }
    configureLog(o['log-level'] as string, o['log-format'] as string)
    plan = agentPlan(o)
  } catch (err) {
    die('tap-agent', (err as Error).message, 2)
  }
  const endpoint = plan.endpoint
  if (endpoint !== undefined) return await runEndpointMode(async () => await startEndpoint(endpoint, plan.uplink), plan.metricsAt)
  return await runTap(plan, binding)
}

/** The endpoint a TAP-less plan names, started (modes.ts). */
async function startEndpoint (e: EndpointPlan & { name: string }, base: UplinkOptions): Promise<ModeHandle> {
  switch (e.mode) {
    case 'qemu-listen': return await listenForQemu(e.address, base, e.name, { allowRemote: e.allowRemote, maxVms: e.maxVms })
    case 'qemu-connect': return connectToQemu(e.address, base, e.name)
    case 'qemu-dgram': return await qemuDatagrams(e.spec, base, e.name, loadBinding)
    case 'vde-stdio': return vdeStdio(base, e.name, () => { log.info('vde_cable_unplugged', {}); process.kill(process.pid, 'SIGTERM') })
  }
}

/** Open the TAP, serve metrics, drop root, and carry frames until SIGINT/SIGTERM. */
async function runTap (plan: AgentPlan, binding: TapBinding | undefined): Promise<Agent> {
  const { tap: tapOpts, attach, netnsName, metricsAt, dropTo } = plan
  const uplink = new Uplink(plan.uplink)
  let tap: TapDevice
  let addon: TapBinding
  try {
    addon = binding ?? loadBinding()
    tap = TapDevice.open(addon, tapOpts)
  } catch (err) {
    if (attach && err instanceof TapError && err.cause.code === 'ENODEV') die('tap-agent', noSuchTap(tapOpts.name, netnsName, persistentTaps(netnsName)))
    die('tap-agent', (err as Error).message)
  }
  if (uplink.opts.name === undefined) uplink.opts.name = sanitize(`${os.hostname()}:${tap.name}`)
  uplink.opts.mac = tap.mac()
  log.info('tap_opened', { tap: tap.name, ...(netnsName === undefined ? {} : { netns: netnsName }), mac: uplink.opts.mac, mtu: tapOpts.mtu, offload: tap.offloadCapable ? 'capable' : 'off' })
  // A native thread carries each ws:// connection where the addon can (a test's fake TAP binding cannot).
  const links = plan.fastPath ? linkBindingOf(addon) : undefined
  // A stale addon (built before its sources changed) would otherwise leave every connection on the JS path unsaid.
  const stale = plan.fastPath ? linkBindingRefusal(addon) : undefined
  if (stale !== undefined) log.warn('fast_path_unavailable', { error: stale, fix: 'rebuild the addon (npm ci, or npx node-gyp rebuild); frames go on the JS path until then' })
  const agent = new Agent(tap, uplink, tapOpts.mtu ?? (attach ? 0 : undefined), plan.carrier, links, plan.cpuFollow, plan.udpRuns, plan.coalesceUsecs)
  if (metricsAt !== undefined) {
    try {
      const { address } = await serveMetrics(agentRegistry(agent), metricsAt.host, metricsAt.port)
      log.info('metrics_listening', { address: address.address, port: address.port })
    } catch (err) {
      tap.close()
      die('tap-agent', `metrics listen ${metricsAt.host}:${metricsAt.port}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
  }
  if (dropTo !== undefined) {
    try {
      dropPrivileges(dropTo)
      log.info('privileges_dropped', { user: dropTo, uid: process.getuid?.() })
    } catch (err) {
      tap.close()
      die('tap-agent', `--user ${dropTo}: ${(err as Error).message}`)
    }
  }
  agent.start()
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) process.exit(1)
    stopping = true
    agent.fold()
    log.info('shutdown', { signal, ...agent.stats, ...agent.endpointStats() })
    agent.stop().then(() => { process.exit(0) }, () => { process.exit(1) })
  }
  process.on('SIGINT', () => { stop('SIGINT') })
  process.on('SIGTERM', () => { stop('SIGTERM') })
  return agent
}

/** A TAP-less mode: start it, serve metrics for its main agent, stop it on SIGINT/SIGTERM. */
async function runEndpointMode (start: () => Promise<ModeHandle>, metricsAt: { host: string, port: number } | undefined): Promise<Agent | undefined> {
  let handle: ModeHandle
  try {
    handle = await start()
  } catch (err) {
    die('tap-agent', (err as NodeJS.ErrnoException).code !== undefined ? `${(err as Error).message}` : (err as Error).message)
  }
  const main = handle.agents()[0]
  if (metricsAt !== undefined && main !== undefined) {
    try {
      const { address } = await serveMetrics(agentRegistry(main, handle), metricsAt.host, metricsAt.port)
      log.info('metrics_listening', { address: address.address, port: address.port })
    } catch (err) {
      die('tap-agent', `metrics listen ${metricsAt.host}:${metricsAt.port}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
  }
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) process.exit(1)
    stopping = true
    log.info('shutdown', { signal })
    handle.stop().then(() => { process.exit(0) }, () => { process.exit(1) })
  }
  process.on('SIGINT', () => { stop('SIGINT') })
  process.on('SIGTERM', () => { stop('SIGTERM') })
  return main
}

/**
 * Become `user` for good: its primary group, no supplementary groups, then
 * its uid. The TAP's fd stays open and keeps working; only new privileged
 * operations (MTU, carrier) fail, and the agent only warns about those.
 */
function dropPrivileges (user: string): void {
  if (process.setuid === undefined || process.setgid === undefined || process.setgroups === undefined) throw new Error('not supported on this platform')
  let gid: number
  try {
    gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8', timeout: 5000 }).trim())
  } catch {
    throw new Error('no such user')
  }
  process.setgroups([])
  process.setgid(gid)
  process.setuid(user)
}
