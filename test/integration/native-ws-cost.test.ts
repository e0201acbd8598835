/**
 * What natively carried WebSocket ports cost when nothing flows (issue 24):
 * switchd's thread sleeps in poll(2) (an idle second costs well under 0.2 s
 * of CPU), and a port's buffers go with it (connecting and disconnecting
 * many ports leaves nothing behind: no per-port growth, no thread of a
 * network that has no port left).
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { SwitchServer } from '../../src/switch/daemon/switchd'
import { buildConfig } from '../../src/switch/control/config'
import { TestClient } from '../helpers/client'
import { waitFor } from '../helpers/net'
import { spawnLogged, waitForLine, type Logged } from '../helpers/proc'
import { eth, BROADCAST } from '../helpers/frames'
import { RawWs, encodeFrame, OP_TEXT, OP_CLOSE } from '../helpers/rawws'
import { SUBPROTOCOL_V1 } from '../../src/common/protocol'
import { setLogSink } from '../../src/common/log'
import type { FastPath } from '../../src/switch/io/fast-path'

const ROOT = path.resolve(__dirname, '../..')
const SWITCHD = path.join(ROOT, 'bin/switchd.js')

/** utime + stime of `pid`, in seconds. */
function cpuSeconds (pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / 100
}

function mac (i: number): string { return (0x020000100000 + i).toString(16).padStart(12, '0') }

describe('switchd: natively carried WebSocket ports at rest (issue 24)', function () {
  this.timeout(120_000)

  it('switchd with natively carried ports idle for a second uses < 0.2 s of CPU', async () => {
    const out: string[] = []
    const p: Logged = spawnLogged('switchd', process.execPath, [SWITCHD, '--listen', '127.0.0.1:0'], (l) => { out.push(l) })
    const clients: TestClient[] = []
    try {
      const line = await waitForLine(p, 'switchd', (l) => l.includes('"listening"'), 30_000)
      const port = (JSON.parse(line.slice(line.indexOf('{'))) as { port: number }).port
      for (let i = 0; i < 4; i++) clients.push(await TestClient.batched(`ws://127.0.0.1:${port}/`, { name: `p${i}` }))
      // Some traffic first, so the thread and every port's reader have run.
      for (const [i, c] of clients.entries()) c.send([eth(BROADCAST, mac(i), 1)])
      await waitFor(() => clients.every((c) => c.frames.length === 3), 10_000, 'floods')
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/ports`)
      assert.equal(res.status, 200)
      const ports = await res.json() as Array<{ path: string }>
      assert.deepEqual(ports.map((q) => q.path), ['native', 'native', 'native', 'native'])
      const pid = p.child.pid as number
      const before = cpuSeconds(pid)
      await new Promise((resolve) => setTimeout(resolve, 1000))
      const used = cpuSeconds(pid) - before
      assert.ok(used < 0.2, `switchd used ${used.toFixed(2)} s of CPU in 1 s of idle`)
    } finally {
      for (const c of clients) c.close()
      p.child.kill('SIGTERM')
    }
  })

  it('connecting and disconnecting many ports leaves nothing behind: buffers bounded per port, freed with it', async () => {
    const restore = setLogSink(() => {})
    const server = new SwitchServer({ config: buildConfig({}, 'test'), host: '127.0.0.1', port: 0 })
    const url = `ws://127.0.0.1:${(await server.listen()).port}/`
    try {
      const ROUNDS = 5
      const PORTS = 16
      let most = 0
      for (let r = 0; r < ROUNDS; r++) {
        const clients: TestClient[] = []
        for (let i = 0; i < PORTS; i++) clients.push(await TestClient.batched(url, { name: `r${r}p${i}` }))
        await waitFor(() => server.ports().length === PORTS && server.ports().every((q) => q.fastPath !== null), 10_000, 'carried')
        const fp = server.switch.fastPath as FastPath
        // Each port sends a batch, so each reader has grown its buffer once.
        for (const [i, c] of clients.entries()) c.send([eth(BROADCAST, mac(i), 1)])
        await waitFor(() => clients.every((c) => c.frames.length === PORTS - 1), 20_000, 'floods')
        const footprint = fp.wsFootprint()
        assert.ok(footprint > 0, 'the ports hold their readers')
        if (r === 0) most = footprint
        // The same ports doing the same thing hold the same: nothing accumulates across rounds.
        assert.ok(footprint <= most, `round ${r}: ${footprint} bytes, round 0: ${most}`)
        for (const c of clients) c.close()
        await waitFor(() => server.ports().length === 0, 20_000, 'ports gone')
        // Every port's buffers went with it; the network stays, and so does its (idle) fast path.
        assert.equal(fp.portCount, 0)
        assert.equal(fp.wsFootprint(), 0)
        assert.equal(server.switch.fastPath, fp)
      }
    } finally {
      await server.close()
      setLogSink(restore)
    }
  })

  it('a dynamic network\'s fast path (its thread) goes with the network, when its last carried port leaves', async () => {
    const restore = setLogSink(() => {})
    const server = new SwitchServer({ config: buildConfig({ dynamicNetworks: true }, 'test'), host: '127.0.0.1', port: 0 })
    const base = `ws://127.0.0.1:${(await server.listen()).port}`
    try {
      const a = await TestClient.batched(`${base}/net/dyn`, { name: 'a' })
      await waitFor(() => server.ports().length === 1 && server.ports()[0]?.fastPath != null, 10_000, 'carried')
      const sw = server.ports()[0]?.network
      assert.ok(sw !== undefined && sw.fastPath !== null)
      a.close()
      await waitFor(() => server.ports().length === 0, 10_000, 'port gone')
      assert.equal(sw.fastPath, null, 'the fast path closed with the network')
    } finally {
      await server.close()
      setLogSink(restore)
    }
  })

  it('bug: switchd stopping waits for a carried port\'s close handshake (the loop must not end under it: a close delivered during teardown aborted the process)', async () => {
    const p: Logged = spawnLogged('switchd', process.execPath, [SWITCHD, '--listen', '127.0.0.1:0'], () => {})
    try {
      const line = await waitForLine(p, 'switchd', (l) => l.includes('"listening"'), 30_000)
      const port = (JSON.parse(line.slice(line.indexOf('{'))) as { port: number }).port
      const r = await RawWs.connect(port, { protocol: SUBPROTOCOL_V1 })
      r.write(encodeFrame(OP_TEXT, Buffer.from(JSON.stringify({ type: 'hello', version: 1, name: 'slow-closer' }))))
      await r.until(() => r.messages.length > 0, 10_000)
      let path = ''
      for (let i = 0; i < 100 && path !== 'native'; i++) {
        path = ((await (await fetch(`http://127.0.0.1:${port}/api/v1/ports`)).json()) as Array<{ path: string }>)[0]?.path ?? ''
        if (path !== 'native') await new Promise((resolve) => setTimeout(resolve, 50))
      }
      assert.equal(path, 'native')
      // SIGINT: the shutdown without a drain (SIGTERM drains first, and its close handshakes end before the teardown: drain.test.ts).
      p.child.kill('SIGINT')
      // switchd sends 1001; its peer answers only after a while, as a busy agent may.
      assert.equal(await r.closed(10_000), 1001)
      await new Promise((resolve) => setTimeout(resolve, 500))
      const code = Buffer.alloc(2); code.writeUInt16BE(1001)
      r.write(encodeFrame(OP_CLOSE, code))
      await new Promise<void>((resolve) => { if (p.child.exitCode !== null || p.child.signalCode !== null) resolve(); else p.child.once('exit', () => { resolve() }) })
      assert.equal(p.child.signalCode, null, p.lines.slice(-20).join('\n'))
      assert.equal(p.child.exitCode, 0)
      assert.ok(p.lines.some((l) => l.includes('"stopped"')), 'switchd finished its shutdown')
      r.destroy()
    } finally {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL')
    }
  })
})
