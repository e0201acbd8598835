/**
 * How many times each broadcast reaches each port: one namespace sends
 * `count` numbered broadcast frames (EtherType 0x88b5, IEEE local
 * experimental) and then a barrier frame; a receiver in every listed
 * namespace (an AF_PACKET socket on the agent's TAP, frames the namespace
 * itself sent left out) counts each number it sees. A receiver stops 2 s
 * after the barrier, so a late duplicate (a frame re-flooded around a loop
 * of switches) is still counted; every receiver has a hard deadline.
 */

import type { ChildProcess } from 'node:child_process'
import { run } from '../../src/lab/lab'
import { waitForLine, spawnLogged, type Logged } from './proc'
import { MIN_WAIT_MS } from './net'

export interface Station { name: string, ns: string, tap: string }
export interface Seen { frames: number, duplicates: number, missing: number }

const RECEIVER = `
import json, socket, sys, time
iface, count, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))  # ETH_P_ALL: frames going out too (the barrier)
s.bind((iface, 0))
s.settimeout(0.2)
print('ready', flush=True)
seen = [0] * count
end = time.monotonic() + 60
barrier = None
while time.monotonic() < end and (barrier is None or time.monotonic() < barrier + 2):
    try:
        data, addr = s.recvfrom(2048)
    except socket.timeout:
        continue
    if data[12:14] != b'\\x88\\xb5' or not data[14:].startswith(tag):
        continue
    body = data[14 + len(tag):].split(b'\\0')[0].decode()
    if body == 'end':
        # In the sender's own namespace the barrier is its own frame going out.
        barrier = barrier or time.monotonic()
    elif addr[2] != socket.PACKET_OUTGOING and body.isdigit() and int(body) < count:
        seen[int(body)] += 1
print(json.dumps({'frames': sum(seen), 'duplicates': sum(n - 1 for n in seen if n > 1), 'missing': sum(1 for n in seen if n == 0)}), flush=True)
`

const SENDER = `
import socket, sys, time
iface, count, tag, src = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), bytes.fromhex(sys.argv[4].replace(':', ''))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
def frame(body):
    return b'\\xff' * 6 + src + b'\\x88\\xb5' + (tag + body.encode()).ljust(46, b'\\0')
for i in range(count):
    s.send(frame(str(i)))
    time.sleep(0.01)  # a pace no queue on the way overruns: this counts copies, not capacity
time.sleep(0.2)
s.send(frame('end'))
`

export const BroadcastCount = {
  /** Send `count` broadcasts from `from`; how many of them each of `to` (the sender may be listed: it must see none) received. */
  async run (from: Station & { mac: string }, to: Station[], count: number): Promise<Map<string, Seen>> {
    const tag = `tsw-fleet-${process.pid}-`
    const receivers: Array<{ name: string, p: Logged }> = []
    try {
      for (const st of to) {
        const p = spawnLogged(`rx-${st.name}`, 'ip', ['netns', 'exec', st.ns, 'python3', '-c', RECEIVER, st.tap, String(count), tag], () => {})
        receivers.push({ name: st.name, p })
        await waitForLine(p, `rx-${st.name}`, (l) => l === 'ready', MIN_WAIT_MS)
      }
      await run('ip', ['netns', 'exec', from.ns, 'python3', '-c', SENDER, from.tap, String(count), tag, from.mac], MIN_WAIT_MS)
      const out = new Map<string, Seen>()
      for (const r of receivers) {
        const line = await waitForLine(r.p, `rx-${r.name}`, (l) => l.startsWith('{'), 90_000)
        out.set(r.name, JSON.parse(line) as Seen)
      }
      return out
    } finally {
      for (const r of receivers) kill(r.p.child)
    }
  }
}

function kill (child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
}
