/**
 * A station that dials TCP through a network's gateway with hand-made
 * frames, run as its own process (`node -r tsx/cjs test/helpers/slirp-station.ts
 * '<json>'`) so that an e2e test can start it inside the network namespace
 * where switchd runs. It joins switchd in raw mode (a browser VM's way),
 * introduces itself to slirp by ARP (slirp learns stations only from ARP and
 * DHCP), then for each target sends a SYN with right checksums; on a SYN-ACK
 * it sends an HTTP request and records every byte that comes back until a
 * reset, a FIN or `ms`. It also serves a barrier on `barrierPort` in its
 * namespace: a greeting any connection gets. With `dns`, it also answers
 * UDP on `dns.server`:53 in its namespace ("re:" and the query) and asks the
 * gateway's DNS address (10.0.2.3) once: slirp forwards it to the resolver
 * its /etc/resolv.conf names. Prints one JSON line:
 * { attempts: [{ target, synAck, reset, fin, data }], dnsReply }.
 */

import * as net from 'node:net'
import * as dgram from 'node:dgram'
import WebSocket from 'ws'
import { ipChecksum, parseIpv4 } from '../../src/common/dhcp'

export interface StationTarget { ip: string, port: number }
export interface StationArgs {
  url: string
  targets: StationTarget[]
  barrierPort: number
  /** Where the barrier is dialled (default 192.0.2.1): it must be an address the gateway lets through. */
  barrierIp?: string
  request: string
  ms: number
  dns?: { server: string, query: string }
}
export interface Attempt { target: string, synAck: boolean, reset: boolean, fin: boolean, data: string }

const STATION_MAC = 0x020000000015
const STATION_IP = parseIpv4('10.0.2.15') as number
const GATEWAY_MAC = 0x52550a000202
const GATEWAY_IP = parseIpv4('10.0.2.2') as number
const DNS_IP = parseIpv4('10.0.2.3') as number
const SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10, FIN = 0x01

function arp (op: number, targetMac: number, targetIp: number): Buffer {
  const f = Buffer.alloc(60)
  f.writeUIntBE(op === 1 ? 0xffffffffffff : targetMac, 0, 6)
  f.writeUIntBE(STATION_MAC, 6, 6)
  f.writeUInt16BE(0x0806, 12)
  f.writeUInt16BE(1, 14); f.writeUInt16BE(0x0800, 16); f[18] = 6; f[19] = 4; f.writeUInt16BE(op, 20)
  f.writeUIntBE(STATION_MAC, 22, 6); f.writeUInt32BE(STATION_IP, 28)
  f.writeUIntBE(op === 1 ? 0 : targetMac, 32, 6); f.writeUInt32BE(targetIp, 38)
  return f
}

/** A UDP datagram from the station's port 5353 (checksum 0: none, as IPv4 allows). */
function datagram (dst: number, dport: number, payload: Buffer): Buffer {
  const f = Buffer.alloc(42 + payload.length)
  f.writeUIntBE(GATEWAY_MAC, 0, 6); f.writeUIntBE(STATION_MAC, 6, 6); f.writeUInt16BE(0x0800, 12)
  f[14] = 0x45; f.writeUInt16BE(28 + payload.length, 16); f[22] = 64; f[23] = 17
  f.writeUInt32BE(STATION_IP, 26); f.writeUInt32BE(dst, 30)
  f.writeUInt16BE(ipChecksum(f, 14, 34), 24)
  f.writeUInt16BE(5353, 34); f.writeUInt16BE(dport, 36); f.writeUInt16BE(8 + payload.length, 38)
  payload.copy(f, 42)
  return f
}

/** One TCP segment from the station, IPv4 and TCP checksums right (slirp checks them). */
function segment (dst: number, sport: number, dport: number, seq: number, ack: number, flags: number, payload = Buffer.alloc(0)): Buffer {
  const f = Buffer.alloc(54 + payload.length)
  f.writeUIntBE(GATEWAY_MAC, 0, 6); f.writeUIntBE(STATION_MAC, 6, 6); f.writeUInt16BE(0x0800, 12)
  f[14] = 0x45; f.writeUInt16BE(40 + payload.length, 16); f[22] = 64; f[23] = 6
  f.writeUInt32BE(STATION_IP, 26); f.writeUInt32BE(dst, 30)
  f.writeUInt16BE(ipChecksum(f, 14, 34), 24)
  f.writeUInt16BE(sport, 34); f.writeUInt16BE(dport, 36); f.writeUInt32BE(seq >>> 0, 38); f.writeUInt32BE(ack >>> 0, 42)
  f[46] = 0x50; f[47] = flags; f.writeUInt16BE(65535, 48)
  payload.copy(f, 54)
  const pseudo = Buffer.alloc(12 + 20 + payload.length)
  f.copy(pseudo, 0, 26, 34); pseudo[9] = 6; pseudo.writeUInt16BE(20 + payload.length, 10); f.copy(pseudo, 12, 34)
  f.writeUInt16BE(ipChecksum(pseudo, 0, pseudo.length), 50)
  return f
}

async function main (args: StationArgs): Promise<{ attempts: Attempt[], dnsReply: string | undefined }> {
  const barrier = net.createServer((c) => { c.on('error', () => {}); c.end('hello-from-the-namespace\n') })
  await new Promise<void>((resolve) => barrier.listen(args.barrierPort, '0.0.0.0', resolve))
  const ws = new WebSocket(args.url, { perMessageDeflate: false })
  await new Promise<void>((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  const onFrame: Array<(f: Buffer) => void> = []
  ws.on('message', (data: Buffer) => {
    // Answer slirp's ARP for us; hand every frame to the attempt in progress.
    if (data.readUInt16BE(12) === 0x0806 && data.readUInt16BE(20) === 1 && data.readUInt32BE(38) === STATION_IP) ws.send(arp(2, data.readUIntBE(22, 6), data.readUInt32BE(28)))
    for (const fn of onFrame) fn(data)
  })
  // Introduce ourselves; the reply is the barrier that slirp knows us.
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => { reject(new Error('no ARP reply from the gateway')) }, 10_000)
    const timer = setInterval(() => { ws.send(arp(1, 0, GATEWAY_IP)) }, 500)
    ws.send(arp(1, 0, GATEWAY_IP))
    onFrame.push((f) => { if (f.readUInt16BE(12) === 0x0806 && f.readUInt16BE(20) === 2) { clearTimeout(t); clearInterval(timer); onFrame.length = 0; resolve() } })
  })
  const out: Attempt[] = []
  let sport = 41000
  for (const t of [...args.targets, { ip: args.barrierIp ?? '192.0.2.1', port: args.barrierPort }]) {
    const dst = parseIpv4(t.ip) as number
    const my = ++sport
    const a: Attempt = { target: `${t.ip}:${t.port}`, synAck: false, reset: false, fin: false, data: '' }
    await new Promise<void>((resolve) => {
      let timer = setTimeout(done, args.ms)
      function done (): void { clearTimeout(timer); onFrame.length = 0; resolve() }
      onFrame.push((f) => {
        if (f.length < 54 || f.readUInt16BE(12) !== 0x0800 || f[23] !== 6 || f.readUInt32BE(26) !== dst) return
        const ihl = ((f[14] as number) & 0x0f) * 4
        const tcp = 14 + ihl
        if (f.readUInt16BE(tcp) !== t.port || f.readUInt16BE(tcp + 2) !== my) return
        const flags = f[tcp + 13] as number
        const seq = f.readUInt32BE(tcp + 4)
        const payload = f.subarray(tcp + (((f[tcp + 12] as number) >> 4) * 4), 14 + f.readUInt16BE(16))
        if ((flags & RST) !== 0) { a.reset = true; done(); return }
        if ((flags & (SYN | ACK)) === (SYN | ACK) && !a.synAck) {
          a.synAck = true
          ws.send(segment(dst, my, t.port, 1001, seq + 1, PSH | ACK, Buffer.from(args.request)))
          clearTimeout(timer); timer = setTimeout(done, args.ms)
          return
        }
        if (payload.length > 0) {
          a.data += payload.toString('latin1')
          ws.send(segment(dst, my, t.port, 1001 + args.request.length, seq + payload.length, ACK))
        }
        if ((flags & FIN) !== 0) { a.fin = true; done() }
      })
      ws.send(segment(dst, my, t.port, 1000, 0, SYN))
    })
    out.push(a)
  }
  let dnsReply: string | undefined
  if (args.dns !== undefined) {
    const server = dgram.createSocket('udp4', (msg, from) => { server.send(Buffer.concat([Buffer.from('re:'), msg]), from.port, from.address) })
    await new Promise<void>((resolve) => server.bind(53, args.dns?.server, resolve))
    dnsReply = await new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => { onFrame.length = 0; resolve(undefined) }, args.ms)
      onFrame.push((f) => {
        if (f.length < 42 || f.readUInt16BE(12) !== 0x0800 || f[23] !== 17 || f.readUInt32BE(26) !== DNS_IP || f.readUInt16BE(36) !== 5353) return
        clearTimeout(timer); onFrame.length = 0
        resolve(f.subarray(42, 14 + f.readUInt16BE(16)).toString('latin1'))
      })
      ws.send(datagram(DNS_IP, 53, Buffer.from(args.dns?.query ?? '')))
    })
    server.close()
  }
  ws.close()
  barrier.close()
  return { attempts: out, dnsReply }
}

if (require.main === module) {
  main(JSON.parse(process.argv[2] as string) as StationArgs).then(
    (r) => { process.stdout.write(JSON.stringify(r) + '\n'); process.exit(0) },
    (err: Error) => { process.stderr.write(`slirp-station: ${err.message}\n`); process.exit(1) })
}
