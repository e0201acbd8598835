/**
 * Issue 21, finding 5: a gateway's lease file (io/lease-file.ts) in a
 * temporary state directory: written atomically, read back whole, refused
 * whole when it is not a lease file, and never shared by two switchds.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { spawnSync } from 'node:child_process'
import { LeaseFile } from '../../src/switch/io/lease-file'
import { LeaseTable, LEASE_BOUND, type PoolSpec } from '../../src/switch/core/leases'
import { ERR_STATE } from '../../src/common/errors'
import { parseIpv4 } from '../../src/common/dhcp'
import { setLogSink } from '../../src/common/log'
import { waitFor } from '../helpers/net'

const ip = (t: string): number => parseIpv4(t) as number
const POOL: PoolSpec = { subnet: ip('10.0.2.0'), mask: 0xffffff00, start: ip('10.0.2.15'), size: 240, reserved: [ip('10.0.2.2'), ip('10.0.2.3')], statics: new Map() }
const A = 0x020000000001

describe('lease file', () => {
  let dir: string
  const opened: LeaseFile[] = []
  let restore: (line: string) => void
  let logs: string[]

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-leases-'))
    logs = []
    restore = setLogSink((l) => { logs.push(l) })
  })
  afterEach(async () => {
    for (const f of opened.splice(0)) await f.close()
    fs.rmSync(dir, { recursive: true, force: true })
    setLogSink(restore)
  })

  function open (table = new LeaseTable(POOL), landed: (v: number) => void = () => {}, stateDir = path.join(dir, 'state')): { file: LeaseFile, table: LeaseTable } {
    const file = new LeaseFile(stateDir, 'lab', table, landed)
    file.open(Date.now())
    opened.push(file)
    return { file, table }
  }

  function bindA (table: LeaseTable): void {
    const l = table.offer(A, ip('10.0.2.15'), null, Date.now() + 30_000)
    table.bind(l, null, Date.now() + 3_600_000)
  }

  it('creates the state directory 0700 and writes the leases atomically (0600), saying when they landed', async () => {
    let landed = 0
    const { file, table } = open(undefined, (v) => { landed = v })
    assert.equal(fs.statSync(path.join(dir, 'state')).mode & 0o777, 0o700)
    assert.equal(fs.statSync(path.join(dir, 'state', 'leases')).mode & 0o777, 0o700)
    bindA(table)
    file.request()
    await waitFor(() => landed === table.version, 5000, 'the write landed')
    assert.equal(file.path, path.join(dir, 'state', 'leases', 'lab.json'))
    assert.equal(fs.statSync(file.path).mode & 0o777, 0o600)
    assert.ok(!fs.existsSync(`${file.path}.tmp`), 'no temporary file left')
    const json = JSON.parse(fs.readFileSync(file.path, 'utf8'))
    assert.deepEqual([json.version, json.network, json.leases.length, json.leases[0].ip, json.leases[0].state], [1, 'lab', 1, '10.0.2.15', 'bound'])
    await file.close()
    const again = open()
    assert.equal(again.table.lookup(A)?.state, LEASE_BOUND, 'read back after a restart')
  })

  it('coalesces: changes made while a write is in flight go in the next one', async () => {
    let landed = 0
    const { file, table } = open(undefined, (v) => { landed = v })
    bindA(table)
    file.request()
    const l = table.offer(0x020000000002, ip('10.0.2.16'), null, Date.now() + 30_000)
    table.bind(l, null, Date.now() + 3_600_000)
    file.request()
    await waitFor(() => landed === table.version, 5000, 'both on disk')
    assert.ok(file.writes <= 2)
    assert.equal(JSON.parse(fs.readFileSync(file.path, 'utf8')).leases.length, 2)
  })

  it('writes lazy changes (renewals) on a later tick, and everything on close', async () => {
    const { file, table } = open()
    bindA(table)
    table.bind(table.lookup(A) as NonNullable<ReturnType<LeaseTable['lookup']>>, null, Date.now() + 7_200_000)
    await file.close()
    const expires = Date.parse(JSON.parse(fs.readFileSync(file.path, 'utf8')).leases[0].expires)
    assert.ok(expires > Date.now() + 3_600_000, 'the renewal\'s expiry is on disk')
  })

  it('attack: refuses a corrupt or half-written file whole, naming the file and the fix (TSW_ERR_STATE), and leaves it as it was', () => {
    const leases = path.join(dir, 'state', 'leases')
    fs.mkdirSync(leases, { recursive: true })
    const cases = ['{"version":1,"network":"lab","leases":[{"mac":"02:00:00:00:00:01","ip":"10.0.2.15","st', '', '{"version":1,"network":"lab","leases":[{"mac":"zz","ip":"10.0.2.15","state":"bound","expires":"2026-01-01T00:00:00Z"}]}']
    for (const text of cases) {
      fs.writeFileSync(path.join(leases, 'lab.json'), text)
      const table = new LeaseTable(POOL)
      assert.throws(() => new LeaseFile(path.join(dir, 'state'), 'lab', table, () => {}).open(Date.now()),
        (err: Error & { code?: string }) => err.code === ERR_STATE && err.message.includes(path.join(leases, 'lab.json')) && err.message.includes('move it away'), JSON.stringify(text))
      assert.equal(fs.readFileSync(path.join(leases, 'lab.json'), 'utf8'), text, 'the file is not touched')
      assert.equal(table.size, 0)
      assert.ok(!fs.existsSync(path.join(leases, 'lab.lock')), 'the lock is let go')
    }
  })

  it('attack: a second switchd on the same lease file is refused, naming the pid; a lock whose process is gone is taken over', () => {
    open()
    assert.throws(() => new LeaseFile(path.join(dir, 'state'), 'lab', new LeaseTable(POOL), () => {}).open(Date.now()),
      (err: Error & { code?: string }) => err.code === ERR_STATE && err.message.includes(`pid ${process.pid}`) && err.message.includes('--state-dir'))
    // A lock left by a switchd that died (SIGKILL): its pid is gone.
    const other = path.join(dir, 'other')
    fs.mkdirSync(path.join(other, 'leases'), { recursive: true })
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString()
    fs.writeFileSync(path.join(other, 'leases', 'lab.lock'), `${dead}\n`)
    const { file } = open(undefined, undefined, other)
    assert.equal(fs.readFileSync(path.join(other, 'leases', 'lab.lock'), 'utf8'), `${process.pid}\n`)
    assert.ok(file.path.startsWith(other))
  })

  it('a write that fails is counted and logged, and retried on the next tick', async () => {
    let landed = 0
    const { file, table } = open(undefined, (v) => { landed = v })
    bindA(table)
    const leases = path.dirname(file.path)
    fs.mkdirSync(`${file.path}.tmp`) // the temporary file cannot be opened: a directory is in its way
    file.request()
    await waitFor(() => file.errors === 1, 5000, 'the failed write')
    assert.equal(landed, 0)
    assert.ok(logs.some((l) => l.includes('"event":"lease_file_error"')))
    fs.rmdirSync(`${file.path}.tmp`)
    file.tick(Date.now())
    await waitFor(() => landed === table.version, 5000, 'the retry landed')
    assert.ok(fs.existsSync(path.join(leases, 'lab.json')))
  })
})
