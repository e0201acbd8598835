/**
 * The shipped balancer, run by a test: deploy/nginx/tapswitch.conf rendered
 * with the test's replicas and port (its own lines otherwise, so the test runs
 * what we ship), inside a main configuration of the test's own (a prefix
 * directory, a pid file, logs, temp paths), started on 127.0.0.1 and stopped
 * by the PID it wrote.
 */

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { freePort, until, httpRequest } from './net'

export const NGINX_CONF = path.join(__dirname, '..', '..', 'deploy', 'nginx', 'tapswitch.conf')

/** deploy/nginx/tapswitch.conf with its upstream's servers replaced by `replicas` (host:port, same options) and its listen by `listen`. */
export function renderTapswitchConf (replicas: string[], listen: string, text = fs.readFileSync(NGINX_CONF, 'utf8')): string {
  const servers = [...text.matchAll(/^( *)server (\S+)( [^;\n]*)?;$/gm)]
  assert.ok(servers.length > 0, 'deploy/nginx/tapswitch.conf has no server lines')
  const [indent, , options] = [servers[0]?.[1] ?? '', '', servers[0]?.[3] ?? '']
  const lines = replicas.map((r) => `${indent}server ${r}${options};`).join('\n')
  let out = text.replace(servers[0]?.[0] as string, lines)
  for (const s of servers.slice(1)) out = out.replace(s[0] + '\n', '')
  assert.match(out, /^ *listen 8080;$/m, 'deploy/nginx/tapswitch.conf listens on 8080')
  return out.replace(/^( *)listen 8080;$/m, `$1listen ${listen};`)
}

/** A main configuration around the rendered file, everything nginx writes inside `prefix`. */
export function mainConf (prefix: string, include: string): string {
  const p = (f: string): string => path.join(prefix, f)
  return [
    `pid ${p('nginx.pid')};`,
    `error_log ${p('error.log')} info;`,
    'worker_processes 1;',
    'events { worker_connections 1024; }',
    'http {',
    `  access_log ${p('access.log')};`,
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${p(t)};`),
    `  include ${include};`,
    '}',
    ''
  ].join('\n')
}

/** A prefix directory with the rendered configuration; returns the main file's path. */
export function writeConf (prefix: string, replicas: string[], listen: string): string {
  fs.chmodSync(prefix, 0o755) // nginx's workers (www-data when run as root) create their temp files in it
  const include = path.join(prefix, 'tapswitch.conf')
  fs.writeFileSync(include, renderTapswitchConf(replicas, listen))
  const main = path.join(prefix, 'nginx.conf')
  fs.writeFileSync(main, mainConf(prefix, include))
  return main
}

/** `nginx -t` on a configuration: its exit status and what it said. */
export function nginxCheck (prefix: string, conf: string): { status: number, out: string } {
  const r = spawnSync('nginx', ['-t', '-q', '-p', prefix, '-c', conf], { encoding: 'utf8', timeout: 30_000 })
  return { status: r.status ?? 1, out: (r.stdout ?? '') + (r.stderr ?? '') }
}

export interface Balancer {
  readonly port: number
  readonly prefix: string
  /** Every line nginx logged so far. */
  log: () => string
  stop: () => Promise<void>
}

/** Start nginx with the shipped configuration in front of `replicas` (127.0.0.1 ports), on a free loopback port. */
export async function startBalancer (replicas: number[]): Promise<Balancer> {
  const prefix = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-nginx-'))
  const port = await freePort()
  const conf = writeConf(prefix, replicas.map((r) => `127.0.0.1:${r}`), `127.0.0.1:${port}`)
  // nginx daemonises: it returns once the master runs, leaving its PID in the pid file.
  const r = spawnSync('nginx', ['-p', prefix, '-c', conf], { encoding: 'utf8', timeout: 30_000 })
  const log = (): string => { try { return fs.readFileSync(path.join(prefix, 'error.log'), 'utf8') } catch { return '' } }
  assert.equal(r.status, 0, `nginx did not start: ${r.stderr ?? ''}\n${log()}`)
  const pid = Number(fs.readFileSync(path.join(prefix, 'nginx.pid'), 'utf8').trim())
  assert.ok(Number.isInteger(pid) && pid > 1, 'nginx wrote no PID')
  const stop = async (): Promise<void> => {
    try { process.kill(pid, 'SIGTERM') } catch { /* gone already */ }
    await until(async () => { try { process.kill(pid, 0); return false } catch { return true } }, 30_000, 'nginx to exit')
    fs.rmSync(prefix, { recursive: true, force: true })
  }
  try {
    // Up once it answers (404 for a path it does not route).
    await until(async () => (await httpRequest(port, 'GET', '/nothing').catch(() => ({ status: 0 }))).status === 404, 30_000, 'nginx to answer')
  } catch (err) {
    await stop()
    throw err
  }
  return { port, prefix, log, stop }
}
