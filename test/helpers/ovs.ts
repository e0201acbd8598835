/**
 * Open vSwitch's userspace datapath (`datapath_type=netdev`: no kernel
 * module) in a namespace the test made, as bench/peers/systems/ovs-netdev.sh
 * runs it: its own database and ovs-vswitchd per run, in a run directory of
 * its own (OVS_RUNDIR and friends), both in the foreground, started and
 * stopped by the PID we hold. ovs-vsctl and ovs-appctl reach them by the
 * sockets in that directory.
 */

import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { run, stopChild } from '../../src/lab/lab'
import { spawnLogged, type Logged } from './proc'
import { until, MIN_WAIT_MS } from './net'

export const OVS_SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema'

export class OvsNetdev {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-ovs-'))
  private db: Logged | undefined
  private vswitchd: Logged | undefined

  constructor (readonly ns: string, readonly onLog: (line: string) => void) {}

  private get env (): NodeJS.ProcessEnv {
    return { ...process.env, OVS_RUNDIR: this.dir, OVS_LOGDIR: this.dir, OVS_DBDIR: this.dir, OVS_SYSCONFDIR: this.dir }
  }

  /** Start ovsdb-server and ovs-vswitchd in `ns`; resolves once ovs-vsctl gets answers. */
  async start (): Promise<void> {
    const d = this.dir
    await run('ovsdb-tool', ['create', path.join(d, 'conf.db'), OVS_SCHEMA])
    this.db = spawnLogged('ovsdb-server', 'ip', ['netns', 'exec', this.ns, 'ovsdb-server', path.join(d, 'conf.db'), `--remote=punix:${d}/db.sock`,
      `--unixctl=${d}/ovsdb.ctl`, `--pidfile=${d}/ovsdb.pid`], (l) => { this.onLog(`ovsdb-server: ${l}`) }, { env: this.env })
    await until(async () => fs.existsSync(path.join(d, 'db.sock')), MIN_WAIT_MS, 'ovsdb-server\'s socket')
    await this.vsctl('--no-wait', 'init')
    this.vswitchd = spawnLogged('ovs-vswitchd', 'ip', ['netns', 'exec', this.ns, 'ovs-vswitchd', `unix:${d}/db.sock`,
      `--unixctl=${d}/vswitchd.ctl`, `--pidfile=${d}/vswitchd.pid`, `--log-file=${d}/vswitchd.log`], (l) => { this.onLog(`ovs-vswitchd: ${l}`) }, { env: this.env })
    await until(async () => fs.existsSync(path.join(d, 'vswitchd.ctl')), MIN_WAIT_MS, 'ovs-vswitchd\'s control socket')
  }

  async vsctl (...args: string[]): Promise<string> {
    return await run('ovs-vsctl', [`--db=unix:${this.dir}/db.sock`, '--timeout=20', ...args], 30_000)
  }

  async appctl (...args: string[]): Promise<string> {
    return await run('ovs-appctl', ['-t', `${this.dir}/vswitchd.ctl`, '--timeout=20', ...args], 30_000)
  }

  /** ovs-vswitchd's log file (its warnings name what it could not do). */
  log (): string {
    try { return fs.readFileSync(path.join(this.dir, 'vswitchd.log'), 'utf8') } catch { return '' }
  }

  /** Stop both daemons by the PIDs we started; remove the run directory. Safe to repeat. */
  async stop (): Promise<void> {
    await stopChild(this.vswitchd?.child, 5000)
    await stopChild(this.db?.child, 5000)
    this.vswitchd = undefined
    this.db = undefined
    fs.rmSync(this.dir, { recursive: true, force: true })
  }
}
