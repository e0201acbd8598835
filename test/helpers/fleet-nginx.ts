/**
 * A real nginx in front of the fleet's replicas (Debian's package), as the
 * shipped deploy/nginx/tapswitch.conf runs it: `hash $uri consistent` over
 * the replicas, WebSocket upgrade headers, the next upstream on error,
 * timeout, 502 or 503 (a draining replica answers 503). It runs in the
 * foreground (`daemon off`) under a temporary prefix of its own, with its
 * log on stderr, and is stopped by the PID we started.
 */

import { spawn, type ChildProcess } from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as path from 'node:path'
import { emitLines, stopChild } from '../../src/lab/lab'
import { freePort, until, MIN_WAIT_MS } from './net'

const ROOT = path.join(__dirname, '..', '..')
export const SHIPPED_CONF = path.join(ROOT, 'deploy', 'nginx', 'tapswitch.conf')
const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => fs.existsSync(p)) ?? 'nginx'

/** Whether Debian's nginx is installed (scripts/install-deps.sh installs it). */
export function haveNginx (): boolean { return NGINX !== 'nginx' }

/**
 * The `server {}`/`upstream {}` part for the http block, from the shipped
 * file: its upstream's servers replaced by ours and its listeners by one on
 * loopback (the shipped file names example hosts and port 80/443). Falls back
 * to the same directives written here while the shipped file is missing.
 */
export function siteConfig (ports: readonly number[], listen: number): string {
  const servers = ports.map((p) => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=2s;`).join('\n')
  if (fs.existsSync(SHIPPED_CONF)) {
    const shipped = fs.readFileSync(SHIPPED_CONF, 'utf8')
    return shipped
      .replace(/(upstream\s+switchd\s*\{)([^}]*)\}/, (_m, head: string, body: string) =>
        `${head}\n${body.split('\n').filter((l) => !/^\s*server\s/.test(l)).join('\n')}\n${servers}\n}`)
      .replace(/^(\s*)listen\s+[^;]+;/m, `$1listen 127.0.0.1:${listen};`)
      .replace(/^\s*listen\s+[^;]+;\n?/gm, (m, off: number, all: string) => all.indexOf(m) === off && m.includes(`127.0.0.1:${listen}`) ? m : '')
      .replace(/^\s*(ssl_[a-z_]+|http2)\s[^;]*;\n?/gm, '')
  }
  return `
map $http_upgrade $connection_upgrade { default upgrade; '' close; }
upstream switchd {
    hash $uri consistent;
${servers}
}
server {
    listen 127.0.0.1:${listen};
    location /net/ {
        proxy_pass http://switchd;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_next_upstream error timeout http_502 http_503;
        proxy_next_upstream_tries 3;
        proxy_connect_timeout 2s;
        proxy_read_timeout 3600s;
        proxy_send_timeout 3600s;
        proxy_buffering off;
    }
}
`
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
    const tmp = (what: string): string => `${what}_temp_path ${path.join(this.prefix, 'tmp', what)};`
    const conf = `daemon off;
master_process on;
worker_processes 1;
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
