/**
 * io/gateway-sandbox.ts: the launcher's arguments for a gateway child (the
 * paths it may read, its fd limit, its user, whether Landlock applies).
 */

import assert from 'node:assert/strict'
import { childFdLimit, childPaths, sandboxPlan, landlockMissing, DEFAULT_MAX_FLOWS, FD_RESERVE, type SandboxHost } from '../../src/switch/io/gateway-sandbox'

const HOST: SandboxHost = { landlockAbi: 7, root: false, nofileHard: 1_048_576, canRaiseNofile: false, pid: 4242 }
const PUBLISH = [{ proto: 'tcp' as const, hostAddress: '127.0.0.1', hostPort: 2222, guest: 1, guestPort: 22, allowRemote: false }]

/** A realpath over a table of links; a path absent from it and from `exists` does not exist. */
function fakeRealpath (links: Record<string, string>, exists: string[]): (p: string) => string {
  return (p) => {
    if (links[p] !== undefined) return links[p]
    if (exists.includes(p)) return p
    throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' })
  }
}

/** The values that follow `flag` in `args`. */
const values = (args: string[], flag: string): string[] => args.flatMap((a, i) => a === flag ? [args[i + 1] as string] : [])

describe('gateway sandbox', () => {
  it('childFdLimit: the flows, one listener per published port, and a reserve', () => {
    assert.equal(childFdLimit({ publish: [] }), DEFAULT_MAX_FLOWS + FD_RESERVE)
    assert.equal(childFdLimit({ publish: PUBLISH }), DEFAULT_MAX_FLOWS + 1 + FD_RESERVE)
    assert.equal(childFdLimit({ publish: PUBLISH }, 100), 100 + 1 + FD_RESERVE)
  })

  it('childPaths: QEMU and the system\'s libraries, the resolver\'s files; never its directory, never /etc at large', () => {
    const p = childPaths('qemu-system-x86_64', fakeRealpath({ 'qemu-system-x86_64': '/usr/bin/qemu-system-x86_64', '/etc/resolv.conf': '/run/systemd/resolve/stub-resolv.conf' }, []))
    assert.ok(p.exec.includes('/usr/bin/qemu-system-x86_64') && p.exec.includes('/usr/lib'))
    assert.ok(p.read.includes('/run/systemd/resolve'), 'a resolver\'s own directory: its daemon renames files there')
    assert.equal(p.watch, undefined)
    assert.deepEqual(p.write, ['/dev/null'])
    const all = [...p.exec, ...p.read, ...p.write]
    assert.ok(!all.includes('/etc') && !all.includes('/') && !all.includes('/proc') && !all.includes('/home') && !all.includes('/run'), all.join(' '))
    assert.ok(all.every((x) => !x.startsWith('/etc/') || ['/etc/hosts', '/etc/nsswitch.conf', '/etc/gai.conf', '/etc/host.conf', '/etc/ld.so.cache'].includes(x)))
  })

  it('childPaths: a resolv.conf in /etc is allowed as a file and watched; a QEMU under its own prefix gets its lib and share/qemu', () => {
    const p = childPaths('/opt/qemu/bin/qemu', fakeRealpath({}, ['/opt/qemu/bin/qemu', '/etc/resolv.conf']))
    assert.ok(p.read.includes('/etc/resolv.conf'))
    assert.equal(p.watch, '/etc/resolv.conf')
    assert.ok(p.exec.includes('/opt/qemu/lib') && p.read.includes('/opt/qemu/share/qemu'))
    assert.ok(!p.exec.includes('/opt/qemu/bin'), 'not the binary\'s directory')
    const q = childPaths('/etc/tapswitch/qemu-wrapper', fakeRealpath({}, ['/etc/tapswitch/qemu-wrapper']))
    assert.ok(!q.exec.some((x) => x === '/etc/tapswitch' || x === '/etc'), 'a wrapper in /etc opens nothing else of /etc')
  })

  it('sandboxPlan: Landlock with the paths, the fd limit, the parent; the user only when root', () => {
    const paths = childPaths('/usr/bin/qemu-system-x86_64', fakeRealpath({}, ['/usr/bin/qemu-system-x86_64']))
    const plan = sandboxPlan({ publish: [] }, paths, HOST, undefined)
    assert.equal(plan.landlock, true)
    assert.equal(plan.weak, undefined)
    assert.deepEqual(values(plan.args, '--parent'), ['4242'])
    assert.deepEqual(values(plan.args, '--nofile'), [String(DEFAULT_MAX_FLOWS + FD_RESERVE)])
    assert.deepEqual(values(plan.args, '--user'), [])
    assert.ok(plan.args.includes('--landlock'))
    assert.deepEqual(values(plan.args, '--exec'), paths.exec)
    assert.deepEqual(values(plan.args, '--write'), ['/dev/null'])
    assert.equal(plan.args[plan.args.length - 1], '--')
    const root = sandboxPlan({ publish: [] }, paths, { ...HOST, root: true, canRaiseNofile: true }, [65534, 65534])
    assert.deepEqual(values(root.args, '--user'), ['65534:65534'])
  })

  it('sandboxPlan: without Landlock, no rules and a reason naming the kernel feature', () => {
    const paths = childPaths('/usr/bin/qemu', fakeRealpath({}, ['/usr/bin/qemu']))
    for (const abi of [-38, -95, -1, undefined]) {
      const plan = sandboxPlan({ publish: [] }, paths, { ...HOST, landlockAbi: abi }, undefined)
      assert.equal(plan.landlock, false)
      assert.ok(!plan.args.includes('--landlock') && !plan.args.includes('--read'))
      assert.equal(plan.weak, landlockMissing(abi))
      assert.match(plan.weak ?? '', /Landlock/)
    }
    assert.match(landlockMissing(-95) ?? '', /lsm=/)
    assert.match(landlockMissing(-38) ?? '', /5\.13/)
    assert.match(landlockMissing(-1) ?? '', /seccomp/)
  })

  it('sandboxPlan: an fd limit above switchd\'s hard limit comes down to it, unless switchd may raise it', () => {
    const paths = childPaths('/usr/bin/qemu', fakeRealpath({}, []))
    const low = sandboxPlan({ publish: PUBLISH }, paths, { ...HOST, nofileHard: 1024 }, undefined)
    assert.deepEqual([low.nofile, low.nofileWanted], [1024, DEFAULT_MAX_FLOWS + 1 + FD_RESERVE])
    assert.deepEqual(values(low.args, '--nofile'), ['1024'])
    const raised = sandboxPlan({ publish: PUBLISH }, paths, { ...HOST, nofileHard: 1024, canRaiseNofile: true }, undefined)
    assert.equal(raised.nofile, raised.nofileWanted)
  })
})
