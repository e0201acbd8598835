/**
 * How a gateway's QEMU child is confined: the arguments of the launcher
 * (native/sandbox.cc, built beside the addon as build/Release/tapswitch-sandbox)
 * that io/gateway.ts runs instead of QEMU, and which then execs QEMU in the
 * same process.
 *
 * The child parses every frame the stations send to the gateway, so it is
 * treated as the stations' code: it must not read switchd's secrets (its
 * configuration, token files, TLS key, /proc/<switchd>/environ), even when
 * it runs as switchd's own user (switchd not root) or as `nobody` beside a
 * world-readable configuration (switchd root). The launcher applies a
 * Landlock ruleset (Linux >= 5.13, unprivileged) that lets it read only what
 * QEMU was seen to need under strace: its binary and the system's libraries,
 * the resolver's files (libslirp reads /etc/resolv.conf for DNS forwarding),
 * /dev/null and /dev/urandom, and /usr/share/qemu; nothing of /etc at large,
 * /home, /run, /tmp, /var, /proc or /sys. QEMU 7.2 runs without /proc and
 * /sys (it only looks for NUMA and SELinux there, and carries on). Without
 * Landlock the child still starts, and switchd says once, loudly, what is
 * missing (`gateway_sandbox_weak`).
 *
 * Its RLIMIT_NOFILE is part of the bound on what a station can make slirp
 * hold (one host socket per flow): childFdLimit() computes it from the spec,
 * lowered to switchd's own hard limit when switchd may not raise it.
 */

import * as fs from 'node:fs'
import * as path from 'node:path'
import type { GatewaySpec } from '../core/gateway-spec'
import { tryLoadNative } from '../../common/native'

/** Flows the child may hold when the spec says nothing: slirp needs one host socket per TCP or UDP flow. */
export const DEFAULT_MAX_FLOWS = 4096
/** fds QEMU holds besides flows (stdio, the two socketpairs, its event loop, slirp's DNS socket: about 20 seen), with room. */
export const FD_RESERVE = 64

/** The child's RLIMIT_NOFILE: its flows, one listener per published port, and the reserve. */
export function childFdLimit (spec: Pick<GatewaySpec, 'publish'>, maxFlows = DEFAULT_MAX_FLOWS): number {
  return maxFlows + spec.publish.length + FD_RESERVE
}

/** What switchd knows of its host before it starts a child (io/gateway.ts reads it from the addon; tests pass their own). */
export interface SandboxHost {
  /** Landlock's ABI version (>= 1), -errno when the kernel has none (-38 ENOSYS, -95 EOPNOTSUPP), undefined without the addon. */
  landlockAbi: number | undefined
  /** switchd runs as root: the child drops to the gateway's `user`. */
  root: boolean
  /** switchd's own RLIMIT_NOFILE hard limit, and whether it may raise it (CAP_SYS_RESOURCE). */
  nofileHard: number
  canRaiseNofile: boolean
  /** switchd's PID: the launcher stops if its parent is not this one any more. */
  pid: number
  /** Where libslirp reads its DNS server (tests point it elsewhere); /etc/resolv.conf. */
  resolvConf?: string
}

/** Where the child may read (and execute, and write): the launcher's --read/--exec/--write. */
export interface ChildPaths {
  exec: string[]
  read: string[]
  write: string[]
  /** A file ruled on its own (not its directory): replaced by a rename, the child loses it, and is restarted (io/gateway.ts). */
  watch: string | undefined
}

const SYSTEM_EXEC = ['/bin', '/usr/bin', '/lib', '/lib64', '/lib32', '/usr/lib', '/usr/lib64', '/usr/lib32', '/usr/libexec', '/usr/local/bin', '/usr/local/lib']
const RESOLVER_FILES = ['/etc/hosts', '/etc/nsswitch.conf', '/etc/gai.conf', '/etc/host.conf', '/etc/ld.so.cache']
export const RESOLV_CONF = '/etc/resolv.conf'

/**
 * The paths the child may use, for QEMU at `qemu`. Binaries and libraries
 * are public (and QEMU's seccomp forbids it to exec anyway); a QEMU installed
 * under its own prefix (/opt/qemu/bin/…) gets that prefix's lib and
 * share/qemu too, never its binary's directory (which may be an /etc).
 * /etc/resolv.conf is followed to its file: when that lives in a resolver's
 * own directory under /run (/run/systemd/resolve, /run/NetworkManager) the
 * directory is allowed, as its daemon replaces the file by rename; anywhere
 * else (/etc) only the file, watched.
 */
export function childPaths (qemu: string, realpath: (p: string) => string = fs.realpathSync, resolvConf = RESOLV_CONF): ChildPaths {
  const real = (p: string): string | undefined => { try { return realpath(p) } catch { return undefined } }
  const qemuReal = real(qemu) ?? qemu
  const exec = [qemuReal, ...SYSTEM_EXEC]
  const read = [...RESOLVER_FILES, '/usr/share/qemu', '/dev/urandom', '/dev/random']
  const prefix = path.dirname(path.dirname(qemuReal))
  if (prefix !== '/' && prefix !== '/usr') {
    exec.push(path.join(prefix, 'lib'), path.join(prefix, 'lib64'))
    read.push(path.join(prefix, 'share', 'qemu'))
  }
  let watch: string | undefined
  const resolv = real(resolvConf)
  if (resolv !== undefined) {
    const dir = path.dirname(resolv)
    if (dir.startsWith('/run/')) read.push(dir)
    else { read.push(resolv); watch = resolvConf }
  }
  return { exec, read, write: ['/dev/null'], watch }
}

export interface SandboxPlan {
  /** The launcher's arguments, ending with `--` (QEMU and its arguments follow). */
  args: string[]
  /** Landlock confines the child. */
  landlock: boolean
  /** Why not, naming the kernel feature, when it does not. */
  weak: string | undefined
  /** The child's RLIMIT_NOFILE, and what the spec asked for when switchd could not give that much. */
  nofile: number
  nofileWanted: number
  /** The file watched for replacement (ChildPaths.watch), when Landlock is on. */
  watch: string | undefined
}

/** Why Landlock cannot confine the child on this host, or undefined when it can. */
export function landlockMissing (abi: number | undefined): string | undefined {
  if (abi === undefined) return 'the native addon did not load (run npm install in the tapswitch directory), so switchd cannot ask the kernel for Landlock'
  if (abi >= 1) return undefined
  if (abi === -95) return 'Landlock is built into this kernel but not enabled: add landlock to the lsm= kernel parameter (e.g. lsm=landlock,lockdown,yama,integrity,apparmor)'
  if (abi === -1) return 'a seccomp filter (a container runtime\'s profile, say) denies Landlock\'s syscalls: allow landlock_create_ruleset, landlock_add_rule and landlock_restrict_self'
  return 'this kernel has no Landlock (Linux 5.13 or later with CONFIG_SECURITY_LANDLOCK=y; Debian 12\'s 6.1 has it), or a seccomp filter hides it'
}

/**
 * The launcher's arguments for `spec`: the user to drop to (`ids`, when
 * root), the fd limit (lowered to switchd's hard limit when it may not
 * raise it), and the Landlock paths when the kernel has Landlock.
 */
export function sandboxPlan (spec: Pick<GatewaySpec, 'publish'>, paths: ChildPaths, host: SandboxHost, ids: [number, number] | undefined, maxFlows = DEFAULT_MAX_FLOWS): SandboxPlan {
  const nofileWanted = childFdLimit(spec, maxFlows)
  const nofile = host.canRaiseNofile ? nofileWanted : Math.min(nofileWanted, host.nofileHard)
  const args = ['--parent', String(host.pid), '--nofile', String(nofile)]
  if (host.root && ids !== undefined) args.push('--user', `${ids[0]}:${ids[1]}`)
  const weak = landlockMissing(host.landlockAbi)
  if (weak === undefined) {
    args.push('--landlock')
    for (const p of paths.exec) args.push('--exec', p)
    for (const p of paths.read) args.push('--read', p)
    for (const p of paths.write) args.push('--write', p)
  }
  args.push('--')
  return { args, landlock: weak === undefined, weak, nofile, nofileWanted, watch: weak === undefined ? paths.watch : undefined }
}

/** The launcher beside the addon (both built by npm install), or undefined. */
export function launcherPath (): string | undefined {
  const root = path.join(__dirname, '..', '..', '..')
  for (const dir of ['Release', 'Debug']) {
    const file = path.join(root, 'build', dir, 'tapswitch-sandbox')
    try { fs.accessSync(file, fs.constants.X_OK); return file } catch {}
  }
  return undefined
}

/** What the addon and /proc say of this host (the addon missing: no Landlock, a conservative fd ceiling). */
export function readSandboxHost (binding: { landlockAbi?: () => number, nofileLimit?: () => number[] } | undefined): SandboxHost {
  const root = process.getuid?.() === 0
  let capEff = 0n
  try { capEff = BigInt('0x' + (/^CapEff:\s*([0-9a-f]+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0')) } catch {}
  const CAP_SYS_RESOURCE = 24n
  return {
    landlockAbi: binding?.landlockAbi?.(),
    root,
    nofileHard: binding?.nofileLimit?.()[1] ?? 1024,
    canRaiseNofile: ((capEff >> CAP_SYS_RESOURCE) & 1n) === 1n,
    pid: process.pid
  }
}

/** The addon's process functions (native/process.cc), or undefined when it did not load. */
export function loadProcessBinding (): { landlockAbi: () => number, nofileLimit: () => number[], setDumpable: (on: boolean) => void } | undefined {
  const b = tryLoadNative() as { landlockAbi?: () => number, nofileLimit?: () => number[], setDumpable?: (on: boolean) => void } | undefined
  if (b?.landlockAbi === undefined || b.nofileLimit === undefined || b.setDumpable === undefined) return undefined
  return { landlockAbi: b.landlockAbi, nofileLimit: b.nofileLimit, setDumpable: b.setDumpable }
}

/**
 * Mark switchd non-dumpable (PR_SET_DUMPABLE 0) because it runs a gateway:
 * a process of its user (the child, when switchd is not root) can then
 * neither read /proc/<switchd>/environ (its admin token) or /mem nor ptrace
 * it. No core dumps; gcore and strace -p need root. Returns whether it took.
 */
export function makeNondumpable (): boolean {
  const b = loadProcessBinding()
  if (b === undefined) return false
  b.setDumpable(false)
  return true
}
