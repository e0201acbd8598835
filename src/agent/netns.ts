/**
 * Names tap-agent is given that must exist: the network namespace of
 * --netns, the persistent TAP of --attach. A name that does not exist fails
 * at start with one line naming what does exist (and the likeliest meant),
 * never by making something of the typo.
 */

import { nearest, listNames } from '../common/suggest'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import { TapswitchError, ERR_CONFIG } from '../common/errors'

/** Where `ip netns add NAME` puts its namespace files (/var/run is a link to /run). */
export const NETNS_DIR = '/run/netns'

/** The namespace file of --netns NAME; throws a one-line TSW_ERR_CONFIG if the name is bad or no namespace has it. */
export function netnsPath (name: string, dir = NETNS_DIR): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0') || name.length > 255) {
    throw new TapswitchError(ERR_CONFIG, `--netns ${name}: not a namespace name (as \`ip netns list\` shows them)`)
  }
  const file = path.join(dir, name)
  if (fs.existsSync(file)) return file
  let names: string[] = []
  try { names = fs.readdirSync(dir).sort() } catch { /* no namespace made yet: no directory */ }
  throw new TapswitchError(ERR_CONFIG, `--netns ${name}: no network namespace ${name}; create it with \`ip netns add ${name}\`${existing(name, names, 'namespaces')}`)
}

/**
 * The persistent TAPs in a namespace (`ip -n` of the namespace name, or this
 * one's): the ones --attach could take. Empty if they cannot be listed.
 */
export function persistentTaps (netnsName?: string): string[] {
  try {
    const args = [...(netnsName === undefined ? [] : ['-n', netnsName]), '-d', '-j', 'link', 'show', 'type', 'tun']
    const links = JSON.parse(execFileSync('ip', args, { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] })) as Array<{ ifname?: string, linkinfo?: { info_data?: { type?: string, persist?: boolean } } }>
    return links.filter((l) => l.linkinfo?.info_data?.type === 'tap' && l.linkinfo.info_data.persist === true).map((l) => l.ifname ?? '').filter((n) => n !== '').sort()
  } catch {
    return netnsName === undefined ? sysfsPersistentTaps() : []
  }
}

/** Without ip: /sys/class/net/<if>/tun_flags of this namespace (IFF_TAP 0x0002, IFF_PERSIST 0x0800). */
function sysfsPersistentTaps (): string[] {
  const out: string[] = []
  try {
    for (const name of fs.readdirSync('/sys/class/net')) {
      try {
        const flags = Number(fs.readFileSync(`/sys/class/net/${name}/tun_flags`, 'utf8').trim())
        if ((flags & 0x0002) !== 0 && (flags & 0x0800) !== 0) out.push(name)
      } catch { /* not a TUN/TAP */ }
    }
  } catch { /* no sysfs */ }
  return out.sort()
}

/** The --attach error: the TAP does not exist (or is not persistent), what does, and how to make one. */
export function noSuchTap (name: string, netnsName: string | undefined, taps: string[]): string {
  const where = netnsName === undefined ? '' : ` in namespace ${netnsName}`
  const make = `${netnsName === undefined ? '' : `ip netns exec ${netnsName} `}ip tuntap add dev ${name} mode tap`
  return `--attach --tap ${name}: no persistent TAP ${name}${where}${existing(name, taps, 'persistent TAPs')}; ` +
    `make one with \`${make}\`, or leave out --attach to have tap-agent create it`
}

/** " (did you mean x? existing: a, b)", " (existing: a, b)" or " (there are no <what>)". */
export function existing (name: string, names: string[], what: string): string {
  if (names.length === 0) return ` (there are no ${what})`
  const near = nearest(name, names)
  return ` (${near === undefined ? '' : `did you mean ${near}? `}${what}: ${listNames(names)})`
}
