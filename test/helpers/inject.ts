/**
 * Raw Ethernet frames from inside a test namespace: a short python3
 * AF_PACKET sender run with `ip netns exec`, so frames enter a TAP exactly as
 * a misbehaving host would send them (no IP stack involved).
 *
 * Frames are 60 bytes, EtherType 0x88b5 (IEEE local experimental), to `dst`
 * from a fixed source or from unique random locally administered unicast
 * sources (02:xx:xx:xx:xx:xx), optionally 802.1Q-tagged. Bounded in count
 * and in time; `burst`/`pauseMs` pace the sender so the TAP's queue (which
 * drops silently when full) is not overrun.
 *
 * Also startVlanSplitter(): 802.1Q subinterfaces in user space, for a trunk
 * host on kernels without VLAN support.
 */

import { spawn, type ChildProcess } from 'node:child_process'
import { run, stopChild } from '../../src/lab/lab'

export interface InjectOptions {
  ns: string
  iface: string
  count: number
  /** Destination MAC; default broadcast. */
  dst?: string
  /** 'random' (a new unique source per frame) or a fixed source MAC. */
  src: 'random' | string
  /** Add an 802.1Q tag with this VID. */
  vlan?: number
  /** Pause `pauseMs` after every `burst` frames (0 = never pause). */
  burst?: number
  pauseMs?: number
  /** The sender stops after this long, sent or not. */
  seconds?: number
}

export interface InjectResult {
  sent: number
  /** Sends the kernel refused (ENOBUFS), retried. */
  errors: number
  seconds: number
}

const SCRIPT = `
import json, os, socket, struct, sys, time
a = json.loads(sys.argv[1])
mac = lambda t: bytes.fromhex(t.replace(':', ''))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((a['iface'], 0))
dst = mac(a['dst'])
fixed = None if a['src'] == 'random' else mac(a['src'])
tag = struct.pack('!HH', 0x8100, a['vlan']) if a['vlan'] else b''
body = tag + b'\\x88\\xb5' + b'tapswitch-e2e'.ljust(46, b'\\0')
burst, pause = a['burst'], a['pauseMs'] / 1000
seen = set()
sent = errors = 0
start = time.monotonic()
deadline = start + a['seconds']
while sent < a['count'] and time.monotonic() < deadline:
    src = fixed
    while src is None or src in seen:
        src = b'\\x02' + os.urandom(5)
    try:
        s.send(dst + src + body)
    except OSError:
        errors += 1
        time.sleep(0.001)
        continue
    if fixed is None:
        seen.add(src)
    sent += 1
    if burst and sent % burst == 0:
        time.sleep(pause)
print(json.dumps({'sent': sent, 'errors': errors, 'seconds': time.monotonic() - start}))
`

/** Send the frames; resolves with what was sent once the sender exits. */
export async function inject (o: InjectOptions): Promise<InjectResult> {
  const args = {
    iface: o.iface,
    count: o.count,
    dst: o.dst ?? 'ff:ff:ff:ff:ff:ff',
    src: o.src,
    vlan: o.vlan ?? 0,
    burst: o.burst ?? 0,
    pauseMs: o.pauseMs ?? 0,
    seconds: o.seconds ?? 10
  }
  const out = await run('ip', ['netns', 'exec', o.ns, 'python3', '-c', SCRIPT, JSON.stringify(args)], (args.seconds + 5) * 1000)
  return JSON.parse(out) as InjectResult
}

/**
 * What a Linux host does with VLAN subinterfaces (eth0.10), in user space, for
 * kernels built without 802.1Q (CONFIG_VLAN_8021Q): frames arriving tagged on
 * `trunk` leave untagged by the interface mapped to their VID, and frames
 * arriving on a mapped interface leave `trunk` tagged with its VID. The
 * kernel strips a received tag into the packet's metadata before packet
 * sockets see it, so the VID is read from PACKET_AUXDATA. Untagged frames
 * on the trunk, and our own transmissions, are ignored.
 */
const SPLITTER = `
import json, select, socket, struct, sys, time
a = json.loads(sys.argv[1])
SOL_PACKET, PACKET_AUXDATA, PACKET_OUTGOING, ETH_P_ALL, TP_STATUS_VLAN_VALID = 263, 8, 4, 3, 0x10
def open_(name):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((name, ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    return s
trunk = open_(a['trunk'])
by_vid = {int(v): open_(n) for v, n in a['access'].items()}
vid_of = {s.fileno(): v for v, s in by_vid.items()}
print('ready', flush=True)
deadline = time.monotonic() + a['seconds']
while time.monotonic() < deadline:
    ready, _, _ = select.select([trunk, *by_vid.values()], [], [], 0.2)
    for s in ready:
        data, anc, _, addr = s.recvmsg(65536, socket.CMSG_SPACE(32))
        if addr[2] == PACKET_OUTGOING:
            continue
        if s is trunk:
            vid = 0
            for level, kind, aux in anc:
                if level == SOL_PACKET and kind == PACKET_AUXDATA:
                    status, _, _, _, _, tci = struct.unpack_from('IIIHHH', aux)
                    if status & TP_STATUS_VLAN_VALID:
                        vid = tci & 0xfff
            if vid == 0 and data[12:14] == b'\\x81\\x00':
                vid, data = struct.unpack_from('!H', data, 14)[0] & 0xfff, data[:12] + data[16:]
            out = by_vid.get(vid)
            if out is not None:
                out.send(data)
        else:
            trunk.send(data[:12] + struct.pack('!HH', 0x8100, vid_of[s.fileno()]) + data[12:])
`

/**
 * Start a VLAN splitter in `ns` (see SPLITTER) for at most `seconds`;
 * resolves once it listens, with the child to stop by its PID (stopChild).
 */
export async function startVlanSplitter (ns: string, trunk: string, access: Record<number, string>, seconds = 60): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', ns, 'python3', '-u', '-c', SPLITTER, JSON.stringify({ trunk, access, seconds })], { stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  child.stderr.setEncoding('utf8').on('data', (s: string) => { err += s })
  const ready = new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => { reject(new Error('the VLAN splitter did not start within 5 s')) }, 5000)
    child.stdout.setEncoding('utf8').once('data', () => { clearTimeout(t); resolve() })
    child.once('exit', (code) => { clearTimeout(t); reject(new Error(`the VLAN splitter exited (${String(code)}): ${err}`)) })
  })
  try {
    await ready
  } catch (e) {
    await stopChild(child)
    throw e
  }
  return child
}
