/**
 * tap-agent's TAP-less modes: each wires endpoints (qemu.ts) to uplinks.
 *
 *  - listen: a Unix or TCP socket QEMU connects to (`-netdev stream,server=off`).
 *    The first connection uses the main port; a QEMU that disconnects and comes
 *    back (a restart) gets it again. One VM per listener, as switchd's own
 *    QEMU listener: a connection beside it is refused (closed, counted, logged)
 *    unless --qemu-max-vms allows more, each then a port of its own,
 *    `<name>-2`, `<name>-3`, … for as long as it lasts.
 *  - connect: we connect to a QEMU that listens (`server=on`), again after it restarts.
 *  - dgram: QEMU `-netdev dgram` over UDP, or over Unix datagram sockets (native addon).
 *  - VDE stdio: a VDE stream cable on stdin/stdout (`dpipe vde_plug … = tap-agent --vde-stdio`).
 */

import * as net from 'node:net'
import * as fs from 'node:fs'
import { isMainThread } from 'node:worker_threads'
import { StreamEndpoint, DatagramEndpoint, UnixDatagramEndpoint, type SocketAddress, type DgramSpec, type UnixDgramBinding } from './qemu'
import { Agent } from './agent'
import { Uplink, type UplinkOptions } from '../common/uplink'
import { PREFIX_U16, PREFIX_U32 } from '../common/framing'
import { logger } from '../common/log'
import { TapswitchError, ERR_CONFIG } from '../common/errors'
import { isLoopback } from '../common/address'

const log = logger('tap-agent')

export interface ModeHandle {
  /** The agents running now (the main one first). */
  agents (): Agent[]
  /** Connections refused (listen mode: beyond --qemu-max-vms); 0 for the other modes. */
  refused (): number
  stop (): Promise<void>
}

/** --qemu-max-vms at most: each VM is a port and an uplink with the agent's token, so a small number. */
export const MAX_QEMU_VMS = 16
/** Seconds of TCP silence before keepalive probes look for a VM that vanished (as switchd's own QEMU listener). */
const KEEPALIVE_IDLE = 15

function describe (a: SocketAddress): string {
  return a.kind === 'unix' ? `unix:${a.path}` : `tcp:${a.host}:${a.port}`
}

export interface ListenOptions {
  /** A tcp: listener beyond loopback was asked for on purpose (--qemu-allow-remote). */
  allowRemote?: boolean
  /** VMs connected at once (--qemu-max-vms, 1 to MAX_QEMU_VMS): the first is port `name`, the others `name-2`, …; default 1. */
  maxVms?: number
}

/**
 * Listen for QEMU; resolves once listening. QEMU's stream has no
 * authentication, and whoever connects joins the switch with this agent's
 * token (issue 12, finding 16): so a Unix socket is created 0600 (this
 * user's only, like /dev/net/tun), and a tcp: address beyond loopback is a
 * TSW_ERR_CONFIG unless `allowRemote`. And every connection held costs a
 * port and an uplink with that token: any local user can reach a tcp:
 * listener on 127.0.0.1, so at most `maxVms` (default 1) are held at once,
 * silent ones included, and the rest refused (issue 21, finding 12).
 */
export async function listenForQemu (address: SocketAddress, uplinkOpts: UplinkOptions, name: string, opts: ListenOptions = {}): Promise<ModeHandle> {
  if (address.kind === 'tcp' && !isLoopback(address.host) && opts.allowRemote !== true) {
    throw new TapswitchError(ERR_CONFIG, `--qemu-listen tcp:${address.host}:${address.port} is beyond loopback, and QEMU's stream has no authentication: ` +
      'anyone who reaches it would join the switch as this agent. Listen on 127.0.0.1 or a unix: socket, or pass --qemu-allow-remote')
  }
  const maxVms = opts.maxVms ?? 1
  if (!Number.isInteger(maxVms) || maxVms < 1 || maxVms > MAX_QEMU_VMS) throw new TapswitchError(ERR_CONFIG, `--qemu-max-vms ${maxVms}: expected 1 to ${MAX_QEMU_VMS}`)
  const main = new StreamEndpoint(name, PREFIX_U32)
  const mainAgent = new Agent(main, new Uplink({ ...uplinkOpts, name }), 0)
  mainAgent.start()
  const extra = new Set<Agent>()
  /** Connections beside the main VM's, from accept to close, whether they have a port yet or not. */
  const beside = new Set<net.Socket>()
  let refused = 0
  let next = 2
  const server = net.createServer((socket) => {
    // From accept on: a reset before the endpoint has its own listener is an 'error' event, which unheard ends the process.
    socket.on('error', () => {})
    socket.setNoDelay(true)
    // A VM whose host vanished (--qemu-allow-remote) sends no FIN: keepalive finds it, and frees its place for its restart.
    if (address.kind === 'tcp') socket.setKeepAlive(true, KEEPALIVE_IDLE * 1000)
    if (!main.attached) {
      main.attach(socket, socket, () => {})
      return
    }
    if (1 + beside.size >= maxVms) {
      // As switchd's own listener (qemu_busy): the VM keeps its port, the newcomer is refused.
      refused++
      log.limited('warn', 'qemu_refused', { address: describe(address), reason: `${maxVms} VM${maxVms === 1 ? ' is' : 's are'} connected (--qemu-max-vms ${maxVms})`, refused_total: refused })
      socket.destroy()
      return
    }
    beside.add(socket)
    socket.once('close', () => { beside.delete(socket) })
    // A VM beside the running one: a port of its own once it sends a frame
    // (something that connects and leaves without a word, like another agent probing the path, gets none).
    socket.once('data', (first: Buffer) => {
      const n = next++
      const ep = new StreamEndpoint(`${name}-${n}`, PREFIX_U32)
      const agent = new Agent(ep, new Uplink({ ...uplinkOpts, name: `${name}-${n}` }), 0)
      extra.add(agent)
      agent.start()
      ep.attach(socket, socket, () => { extra.delete(agent); void agent.stop() })
      socket.emit('data', first)
    })
  })
  await bind(server, address)
  log.info('qemu_listening', { address: describe(address), name })
  return {
    agents: () => [mainAgent, ...extra],
    refused: () => refused,
    stop: async () => {
      server.close()
      for (const s of beside) s.destroy()
      await Promise.all([mainAgent, ...extra].map(async (a) => { await a.stop() }))
      if (address.kind === 'unix') fs.rmSync(address.path, { force: true })
    }
  }
}

/**
 * Bind `server` to `address`: a stale socket file of a run that died is
 * removed first, and a Unix socket is this user's only (0600) from bind on.
 */
async function bind (server: net.Server, address: SocketAddress): Promise<void> {
  if (address.kind === 'unix' && fs.existsSync(address.path) && fs.statSync(address.path).isSocket()) {
    // A socket file left by an earlier run that died: nothing can be listening on it if connect fails.
    const alive = await new Promise<boolean>((resolve) => {
      const probe = net.connect(address.path, () => { probe.destroy(); resolve(true) })
      probe.on('error', () => { resolve(false) })
    })
    if (!alive) fs.unlinkSync(address.path)
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    const done = (): void => {
      server.off('error', reject)
      // After listen, an error is accept's (EMFILE: too many connections at once): logged, never the end of the agent.
      server.on('error', (err: NodeJS.ErrnoException) => { log.limited('warn', 'qemu_accept_failed', { address: describe(address), error: err.code ?? err.message }) })
      resolve()
    }
    if (address.kind === 'unix') {
      // bind(2) applies the umask: narrow it for this synchronous call, so the
      // socket is never connectable by other users, not even before the chmod.
      const old = isMainThread ? process.umask(0o177) : undefined
      try { server.listen(address.path, done) } finally { if (old !== undefined) process.umask(old) }
    } else {
      server.listen(address.port, address.host, done)
    }
  })
  if (address.kind === 'unix') fs.chmodSync(address.path, 0o600)
}

/** Connect to a QEMU that listens; reconnect (0.5 s doubling to 5 s) whenever it goes away. */
export function connectToQemu (address: SocketAddress, uplinkOpts: UplinkOptions, name: string): ModeHandle {
  const ep = new StreamEndpoint(name, PREFIX_U32)
  const agent = new Agent(ep, new Uplink({ ...uplinkOpts, name }), 0)
  agent.start()
  let stopped = false
  let delay = 0.5
  let timer: NodeJS.Timeout | undefined
  let dialing: net.Socket | undefined
  const dial = (): void => {
    if (stopped) return
    const socket = address.kind === 'unix' ? net.connect(address.path) : net.connect(address.port, address.host)
    dialing = socket
    socket.setNoDelay(true)
    socket.once('connect', () => {
      dialing = undefined
      if (stopped) { socket.destroy(); return }
      delay = 0.5
      ep.attach(socket, socket, () => { if (!stopped) timer = setTimeout(dial, delay * 1000) })
    })
    socket.once('error', (err) => {
      if (dialing === socket) dialing = undefined
      if (ep.attached || stopped) return
      log.limited('warn', 'qemu_connect_failed', {
        address: describe(address), error: (err as NodeJS.ErrnoException).code ?? err.message, retry_seconds: delay,
        hint: 'start QEMU with -netdev stream,server=on at this address (or use --qemu-listen and let QEMU connect); retrying'
      })
      timer = setTimeout(dial, delay * 1000)
      delay = Math.min(5, delay * 2)
    })
  }
  dial()
  return {
    agents: () => [agent],
    refused: () => 0,
    stop: async () => { stopped = true; clearTimeout(timer); dialing?.destroy(); await agent.stop() }
  }
}

/**
 * QEMU -netdev dgram over UDP, or over Unix datagram sockets; the latter need
 * the native addon, which `loadBinding` provides (called only then).
 */
export async function qemuDatagrams (spec: DgramSpec, uplinkOpts: UplinkOptions, name: string, loadBinding?: () => UnixDgramBinding): Promise<ModeHandle> {
  let ep: DatagramEndpoint | UnixDatagramEndpoint
  if (spec.kind === 'unix') {
    if (loadBinding === undefined) throw new TapswitchError(ERR_CONFIG, 'Unix datagram sockets need the native addon: pass its loader to qemuDatagrams')
    const binding = loadBinding()
    try {
      ep = new UnixDatagramEndpoint(name, spec.local, spec.remote, binding)
    } catch (err) {
      throw new TapswitchError(ERR_CONFIG, `--qemu-dgram: ${(err as Error).message}`, { cause: err })
    }
  } else {
    const udp = new DatagramEndpoint(name, spec.local, spec.remote)
    await udp.bind()
    ep = udp
  }
  const agent = new Agent(ep, new Uplink({ ...uplinkOpts, name }), 0)
  agent.start()
  if (spec.kind === 'unix') log.info('qemu_dgram', { local: `unix:${spec.local}`, remote: `unix:${spec.remote}`, name })
  else log.info('qemu_dgram', { local: `${spec.local.host}:${spec.local.port}`, remote: `${spec.remote.host}:${spec.remote.port}`, name })
  return { agents: () => [agent], refused: () => 0, stop: async () => { await agent.stop() } }
}

/** A VDE stream cable on stdin/stdout; `onEnd` when the cable is unplugged (stdin ends). */
export function vdeStdio (uplinkOpts: UplinkOptions, name: string, onEnd: () => void): ModeHandle {
  const ep = new StreamEndpoint(name, PREFIX_U16)
  const agent = new Agent(ep, new Uplink({ ...uplinkOpts, name }), 0)
  agent.start()
  ep.attach(process.stdin, process.stdout, onEnd)
  return { agents: () => [agent], refused: () => 0, stop: async () => { await agent.stop() } }
}
