/**
 * A real nginx in front of the fleet's replicas (Debian's package) running
 * the shipped deploy/nginx/tapswitch.conf (rendered by balancer.ts with our
 * replicas and port): `hash $uri consistent`, WebSocket upgrades, the next
 * upstream on error, timeout, 502 or 503 (a draining replica answers 503).
 * Unlike balancer.ts it runs in the foreground (`daemon off`, a child we
 * stop by its PID, its log on stderr in the test's log) with as many
 * connections as the capacity bench needs.
 */

import { spawn, type ChildProcess } from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as path from 'node:path'
import { emitLines, stopChild } from '../../src/lab/lab'
import { freePort, until, MIN_WAIT_MS } from './net'
import { renderTapswitchConf } from './balancer'

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => fs.existsSync(p)) ?? 'nginx'

/** Whether Debian's nginx is installed (scripts/install-deps.sh installs it). */
export function haveNginx (): boolean { return NGINX !== 'nginx' }

/** The shipped deploy/nginx/tapswitch.conf with our replicas as its upstream servers and a loopback listener. */
export function siteConfig (ports: readonly number[], listen: number): string {
  return renderTapswitchConf(ports.map((p) => `127.0.0.1:${p}`), `127.0.0.1:${listen}`)
}

export class Balancer {
  port = 0
  child: ChildProcess | undefined

  constructor (private readonly prefix: string, private readonly upstreams: readonly number[], private readonly onLog?: (line: string) => void,
    private readonly connections = 8192) {}

  /** Write the configuration, start nginx, resolve once it accepts connections. */
  async start (): Promise<void> {
    this.port = await freePort()
    fs.mkdirSync(path.join(this.prefix, 'tmp'), { recursive: true })
    // nginx's workers (www-data when nginx runs as root) create their temp files under the prefix.
    for (const d of [path.dirname(this.prefix), this.prefix, path.join(this.prefix, 'tmp')]) fs.chmodSync(d, 0o755)
    const tmp = (what: string): string => `${what}_temp_path ${path.join(this.prefix, 'tmp', what)};`
    const conf = `daemon off;
master_process on;
worker_processes auto;
worker_rlimit_nofile ${2 * this.connections + 64};
pid ${path.join(this.prefix, 'nginx.pid')};
error_log stderr warn;
events { worker_connections ${this.connections}; }
http {
    access_log off;
    ${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(tmp).join('\n    ')}
${siteConfig(this.upstreams, this.port)}
}
`
    const file = path.join(this.prefix, 'nginx.conf')
    fs.writeFileSync(file, conf)
    this.child = spawn(NGINX, ['-p', this.prefix, '-c', file, '-e', 'stderr'], { stdio: ['ignore', 'pipe', 'pipe'] })
    emitLines(this.child, 'nginx', this.onLog)
    const child = this.child
    await until(async () => {
      if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}): see its log (config ${file})`)
      return await connects(this.port)
    }, MIN_WAIT_MS, 'nginx listening')
  }

  async stop (): Promise<void> {
    // SIGTERM is nginx's fast shutdown: the master stops its workers and exits.
    await stopChild(this.child, 5000)
    this.child = undefined
  }
}

function connects (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => { resolve(false) })
  })
}
