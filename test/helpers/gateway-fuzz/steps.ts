/**
 * The steps of the gateway fuzz, each with what it expects: stations join
 * and leave (four client kinds), ask for addresses in their own name and in
 * made-up ones, forge chaddrs, spoof ARP and DHCP servers, flood flows at
 * every class of address (switchd's own ports among them), and an operator
 * sets link conditions and runs drills on random ports. Every frame a step
 * sends that must be refused is counted by the step (context.ts refused()).
 */

import { DHCPDISCOVER, DHCPREQUEST, DHCPDECLINE, DHCPRELEASE, DHCPINFORM, DHCPOFFER, DHCPACK } from '../../../src/common/dhcp'
import { ip4, TCP, UDP, ICMP, SYN } from '../ipv4'
import { Fuzz, MAGIC_DROP, MAGIC_OK, type Setting } from './context'
import { Station, type StationKind } from './stations'
import type { NetPort } from '../../../src/switch/io/net-port'
import { destinationReason } from './model'
import { arp, dhcpClient, rogueDhcp, writeMark, UDP_PAYLOAD, type Mark, type DhcpSeen } from './frames'
import { poll } from '../net'
import { portDrops } from '../../../src/switch/core/drops'

const BROADCAST = 0xffffffffffff

/** An address of the subnet outside the pool and the static leases: nobody's binding, ever. */
function unleased (fz: Fuzz): number {
  const n = fz.net
  for (;;) {
    const ip = (n.subnet + fz.rng.int(4, 250)) >>> 0
    if (!fz.model.inPool(ip) && ![...n.statics.values()].includes(ip) && ip !== n.gw && ip !== n.dns && (ip < n.poolStart || ip >= n.poolStart + n.poolSize)) return ip
  }
}

function mark (fz: Fuzz, s: Station, magic: number): Mark { return { magic, station: s.id, step: fz.step } }

/** A locally administered MAC of station `id`, number `n` (0: its own). */
const stationMac = (id: number, n: number): number => 0x02f000000000 + id * 256 + n

// ---- joining and leaving ---------------------------------------------------

/** A station joins; with `back`, as the one of these MACs (that left) that holds a lease, coming back to it. */
export async function join (fz: Fuzz, set: Setting, leftMacs: number[], back?: number): Promise<Station | undefined> {
  const live = fz.live()
  const kinds: StationKind[] = ['raw', 'raw', 'agent']
  if (!live.some((s) => s.kind === 'vm-unix')) kinds.push('vm-unix')
  if (!live.some((s) => s.kind === 'vm-tcp')) kinds.push('vm-tcp')
  const kind = fz.rng.pick(kinds)
  const id = fz.everyone.size + 1
  // Its own MAC: fresh, a static lease's (if no live station has it), or one of a station that left (coming back to its lease).
  const usedStatic = new Set(live.flatMap((s) => s.macs))
  const statics = set.staticMacs.filter((m) => !usedStatic.has(m))
  let mac = stationMac(id, 0)
  let returning = false
  const r = fz.rng.float()
  if (back !== undefined) { mac = back; returning = true; leftMacs.splice(leftMacs.indexOf(back), 1) } else if (r < 0.15 && statics.length > 0) mac = fz.rng.pick(statics)
  else if (r < 0.4 && leftMacs.length > 0) { mac = leftMacs.splice(fz.rng.int(0, leftMacs.length - 1), 1)[0] as number; returning = true }
  const local = fz.rng.pick(set.clientAddresses)
  const s = await Station.join(id, kind, mac, local, set.endpoints, () => fz.server.ports())
  if (s.port !== undefined) fz.arrivalBase.set(s, fz.arrivals.get(s.port) ?? 0)
  fz.stations.push(s)
  fz.everyone.set(s.id, s)
  fz.count(`join ${kind}`)
  // A station coming back (a VM reconnecting, after switchd restarted) renews what it holds: its own address, ACKed.
  const held = fz.model.holds(mac, Date.now(), 2000)
  if (returning) fz.count(held !== undefined ? 'join returning to its lease' : 'join returning')
  if (returning && held !== undefined) await renew(fz, s, mac, held, fz.rng.bool(0.5))
  return s
}

export async function leave (fz: Fuzz, s: Station, leftMacs: number[]): Promise<void> {
  const port = s.port
  s.close()
  await fz.until(() => s.closed, `station ${s.id} closing`)
  // A WebSocket port leaves its network; a QEMU listener's port stays, without its socket.
  await fz.until(() => port === undefined || !fz.sw.ports.includes(port) || (port as unknown as { socket?: unknown }).socket === undefined, `the port of station ${s.id} going`)
  if (s.kind === 'raw' || s.kind === 'agent') leftMacs.push(...s.macs.filter((m) => !leftMacs.includes(m)))
  fz.count('leave')
}

// ---- DHCP in the station's own name -----------------------------------------

/**
 * A DHCP message from `s` as `mac` (chaddr the same). Once switchd has read
 * it, it was lost on the way (a link condition, a link down: counted), or
 * the DHCP server decided: an answer, or none, and then (unless the message
 * may go unanswered: `silent`) a counter says why (dhcp_limit, dhcp_rate,
 * dhcp_pool). An answer reaches the station when its path is clean.
 */
async function ask (fz: Fuzz, s: Station, mac: number, frame: Buffer, xid: number, what: string, silent = false): Promise<DhcpSeen | undefined> {
  const before = fz.counts(s)
  const decided = fz.decisions.length
  s.send([frame])
  await fz.settle(s)
  const after = fz.counts(s)
  const moved = (k: string): boolean => (after[k] as number) > (before[k] as number)
  if (fz.decisions.length === decided) {
    // A broadcast (DISCOVER, REQUEST) skips a gateway whose link is down, uncounted, as any flood.
    if (!moved('path') && fz.floodsReachGateway() && !s.closed) fz.fail(`${what} (xid ${xid}) from station ${s.id} never reached the DHCP server, and no drop was counted`)
    return undefined
  }
  const answer = fz.decisions[decided] as number
  if (answer === 0) {
    if (!silent && !['dhcp_limit', 'dhcp_rate', 'dhcp_pool', 'dhcp_other'].some(moved)) {
      fz.fail(`${what} (xid ${xid}) from station ${s.id} was not answered, and no counter says why (moved: ${Object.keys(after).filter(moved).join(', ') || 'none'})`)
    }
    return undefined
  }
  // Answered: on a clean path it arrives (an ACK once the lease file holds it); elsewhere it may be lost, counted or not (a flood to a link that is down).
  if (fz.clean(s.port) && fz.clean(fz.gateway) && fz.server.gatewayChildren[0]?.up === true) {
    await fz.until(() => fz.model.replies.has(xid) || s.closed, `the DHCP server's answer to ${what} (xid ${xid}) reaching station ${s.id}`)
  } else await poll(() => { fz.check(); return fz.model.replies.has(xid) }, 1000)
  const reply = fz.model.replies.get(xid)
  if (reply?.type === DHCPACK && reply.yiaddr !== 0) s.leased.add(mac)
  return reply
}

/** A renewal (ciaddr) or an INIT-REBOOT (requested address, no server id) of what `mac` holds: ACKed, never NAKed (LeaseModel). */
async function renew (fz: Fuzz, s: Station, mac: number, held: number, renewing: boolean): Promise<void> {
  const xid = fz.nextXid++
  fz.model.request(mac, held, Date.now())
  fz.model.requestedIp.set(xid, held)
  const frame = dhcpClient({ src: mac, chaddr: mac, type: DHCPREQUEST, xid, ciaddr: renewing ? held : 0, requested: renewing ? 0 : held })
  await ask(fz, s, mac, frame, xid, renewing ? 'a renewal' : 'an INIT-REBOOT')
  fz.count(renewing ? 'dhcp renew' : 'dhcp init-reboot')
}

export async function dhcpOwn (fz: Fuzz, s: Station): Promise<void> {
  const rng = fz.rng
  // Its own MAC, or a made-up one (a port may ask for several: leasesPerPort holds it).
  let mac = rng.pick(s.macs)
  if (rng.bool(0.25)) { mac = stationMac(s.id, s.macs.length); s.macs.push(mac) }
  const now = Date.now()
  const held = fz.model.holds(mac, now, 2000)
  const gw = fz.net.gw
  const xid = fz.nextXid++
  fz.model.askers.add(mac)
  const op = rng.float()
  if (held !== undefined && op < 0.25) { await renew(fz, s, mac, held, rng.bool(0.5)); return }
  if (held !== undefined && op < 0.35) {
    // Give it back: RELEASE, or (rarely: it keeps the address out of offers for 10 minutes) DECLINE.
    const decline = rng.bool(0.2)
    fz.model.giveUp(mac)
    s.leased.delete(mac)
    s.send([dhcpClient({ src: mac, chaddr: mac, type: decline ? DHCPDECLINE : DHCPRELEASE, xid, server: gw, ciaddr: decline ? 0 : held, requested: decline ? held : 0 })])
    await fz.settle(s)
    fz.count(decline ? 'dhcp decline' : 'dhcp release')
    return
  }
  if (op < 0.4) {
    await ask(fz, s, mac, dhcpClient({ src: mac, chaddr: mac, type: DHCPINFORM, xid, ciaddr: held ?? 0 }), xid, 'an INFORM')
    fz.count('dhcp inform')
    return
  }
  // DISCOVER (sometimes asking for an address: its own, another's, anything), then REQUEST what was offered.
  const want = rng.bool(0.3) ? fz.net.poolStart + rng.int(0, fz.net.poolSize + 4) : 0
  const offer = await ask(fz, s, mac, dhcpClient({ src: mac, chaddr: mac, type: DHCPDISCOVER, xid, requested: want }), xid, 'a DISCOVER')
  fz.count('dhcp discover')
  if (offer?.type !== DHCPOFFER || s.closed) return
  const offered = offer.yiaddr
  const xid2 = fz.nextXid++
  // Mostly the offered address; sometimes another one (switchd must NAK it unless it is free).
  const pick = rng.bool(0.85) ? offered : fz.net.poolStart + rng.int(0, fz.net.poolSize - 1)
  fz.model.request(mac, pick, Date.now())
  fz.model.requestedIp.set(xid2, pick)
  await ask(fz, s, mac, dhcpClient({ src: mac, chaddr: mac, type: DHCPREQUEST, xid: xid2, requested: pick, server: gw }), xid2, 'a REQUEST')
  fz.count('dhcp request')
}

/** Messages from `s` in its own MAC's name with another chaddr: dropped and counted (dhcp_chaddr, or dhcp_rate first), never answered. */
export async function forgedChaddr (fz: Fuzz, s: Station): Promise<void> {
  const rng = fz.rng
  const others = [...fz.everyone.values()].flatMap((o) => o.macs).filter((m) => !s.macs.includes(m))
  const frames: Buffer[] = []
  for (let i = rng.int(1, 4); i > 0; i--) {
    const chaddr = others.length > 0 && rng.bool(0.6) ? rng.pick(others) : 0x02ee00000000 + rng.int(1, 0xffffff)
    const xid = fz.nextXid++
    fz.model.forged.add(xid)
    const victimIp = fz.model.holds(chaddr, Date.now())
    const type = rng.pick([DHCPDISCOVER, DHCPREQUEST, DHCPRELEASE, DHCPDECLINE])
    const ip = victimIp ?? fz.net.poolStart + rng.int(0, fz.net.poolSize - 1)
    frames.push(dhcpClient({
      src: rng.pick(s.macs), chaddr, type, xid, server: type === DHCPDISCOVER ? 0 : fz.net.gw,
      requested: type === DHCPREQUEST || type === DHCPDECLINE ? ip : 0, ciaddr: type === DHCPRELEASE ? ip : 0
    }))
  }
  const before = fz.counts(s)
  const reaches = fz.floodsReachGateway()
  s.send(frames)
  await fz.settle(s)
  fz.refused(before, fz.counts(s), { 'dhcp_chaddr|dhcp_rate|dhcp_other': reaches ? frames.length : 0 }, `forged chaddrs from station ${s.id}`)
  fz.count('dhcp forged chaddr', frames.length)
}

/**
 * Another station's RELEASE, sent from `s` with the victim's own MAC (the
 * frame's source and chaddr): switchd ignores it (the lease's port is the
 * victim's), so the victim's next renewal is ACKed, not NAKed, and its
 * address is nobody else's.
 */
export async function spoofedRelease (fz: Fuzz, s: Station, victim: Station): Promise<void> {
  const now = Date.now()
  const mac = victim.mac
  const ip = fz.model.holds(mac, now, 5000)
  // Only a lease the victim was given on its own port (one whose port left is anyone's to release until bound again).
  if (ip === undefined || !victim.leased.has(mac) || victim.closed || s.closed) return
  const xid = fz.nextXid++
  s.send([dhcpClient({ src: mac, chaddr: mac, type: fz.rng.bool(0.7) ? DHCPRELEASE : DHCPDECLINE, xid, server: fz.net.gw, ciaddr: ip, requested: ip })])
  await fz.settle(s)
  // The victim speaks again (an ARP probe, which the guards pass): its MAC is learned back on its own port.
  victim.send([arp({ op: 1, src: mac, dst: BROADCAST, sha: mac, spa: 0, tpa: ip, mark: mark(fz, victim, MAGIC_OK) })])
  await fz.settle(victim)
  const xid2 = fz.nextXid++
  fz.model.request(mac, ip, Date.now())
  fz.model.requestedIp.set(xid2, ip)
  await ask(fz, victim, mac, dhcpClient({ src: mac, chaddr: mac, type: DHCPREQUEST, xid: xid2, ciaddr: ip }), xid2, 'the victim\'s renewal')
  fz.count('dhcp spoofed release')
}

// ---- ARP, DHCP servers and IPv4 the guards stop -------------------------------

export async function spoofArp (fz: Fuzz, s: Station): Promise<void> {
  const rng = fz.rng
  const now = Date.now()
  const n = fz.net
  const others = fz.live().filter((o) => o !== s)
  const victimMac = others.length > 0 ? rng.pick(others).mac : BROADCAST
  const frames: Buffer[] = []
  let toGateway = 0
  let refused = 0
  for (let i = rng.int(1, 5); i > 0; i--) {
    const dst = rng.pick([BROADCAST, victimMac, fz.gwMac])
    const op = rng.bool(0.5) ? 1 : 2
    const own = rng.pick(s.macs)
    const kind = rng.int(0, 4)
    let sha = own
    let spa: number
    let drop = true
    if (kind === 0) spa = rng.bool(0.7) ? n.gw : n.dns
    else if (kind === 1) {
      // Another MAC's address: one a station holds, or a static lease's.
      const held = [...fz.model.claims.entries()].filter(([m, c]) => !s.macs.includes(m) && now < c.until).map(([, c]) => c.ip)
      spa = held.length > 0 && rng.bool(0.7) ? rng.pick(held) : rng.pick([...n.statics.entries()].filter(([m]) => !s.macs.includes(m)).map(([, ip]) => ip).concat([n.gw]))
    } else if (kind === 2) {
      spa = unleased(fz)
    } else if (kind === 3) {
      // Its sender MAC is not the frame's source.
      sha = 0x02ed00000000 + rng.int(1, 0xffffff)
      spa = rng.bool(0.5) ? 0 : unleased(fz)
    } else {
      // A sender beyond the subnet: not inspected (a hand-set address elsewhere), but no station's to the gateway.
      spa = rng.pick(fz.setting.foreign)
      drop = false
    }
    const tpa = rng.bool(0.5) ? n.gw : (n.poolStart + rng.int(0, n.poolSize - 1)) >>> 0
    frames.push(arp({ op, src: own, dst, sha, spa, tpa, tha: op === 2 ? dst : 0, mark: mark(fz, s, drop ? MAGIC_DROP : MAGIC_OK) }))
    if (drop) refused++
    else if (dst === fz.gwMac || (dst === BROADCAST && fz.floodsReachGateway())) toGateway++
  }
  const before = fz.counts(s)
  s.send(frames)
  await fz.settle(s)
  fz.refused(before, fz.counts(s), { arp_inspection: refused, source: toGateway }, `spoofed ARPs from station ${s.id}`)
  fz.count('arp spoofed', frames.length)
}

export async function rogueServer (fz: Fuzz, s: Station): Promise<void> {
  const rng = fz.rng
  const others = fz.live().filter((o) => o !== s)
  const frames: Buffer[] = []
  let guard = 0
  for (let i = rng.int(1, 3); i > 0; i--) {
    const victim = others.length > 0 ? rng.pick(others) : undefined
    const dst = victim !== undefined && rng.bool(0.5) ? victim.mac : BROADCAST
    const own = fz.model.holds(s.mac, Date.now()) ?? (fz.net.poolStart + 1)
    if (rng.bool(0.75)) {
      // An OFFER or ACK naming itself router and DNS server (from its address, or the gateway's).
      frames.push(rogueDhcp({ src: s.mac, srcIp: rng.bool(0.7) ? own : fz.net.gw, client: victim?.mac ?? BROADCAST, dst, type: rng.pick([DHCPOFFER, DHCPACK]), yiaddr: fz.net.poolStart + rng.int(0, fz.net.poolSize - 1), mark: mark(fz, s, MAGIC_DROP) }))
    } else {
      // An ICMP redirect "from the gateway": a Linux station would route through the sender.
      const f = ip4({ proto: ICMP, type: 5, src: fz.net.gw, dst: victim === undefined ? fz.net.poolStart : fz.model.holds(victim.mac, Date.now()) ?? fz.net.poolStart, smac: s.mac, dmac: dst, payload: Buffer.alloc(28) })
      writeMark(f, UDP_PAYLOAD, mark(fz, s, MAGIC_DROP))
      frames.push(f)
    }
    guard++
  }
  const before = fz.counts(s)
  s.send(frames)
  await fz.settle(s)
  fz.refused(before, fz.counts(s), { 'dhcp_snooping|ip_source_guard': guard }, `rogue DHCP servers and redirects from station ${s.id}`)
  fz.count('rogue server', frames.length)
}

/** A station with a lease announces it (a gratuitous ARP): every other station whose link is clean must get it. */
export async function announce (fz: Fuzz, s: Station): Promise<void> {
  const mac = s.macs.find((m) => s.leased.has(m) && fz.model.holds(m, Date.now(), 5000) !== undefined)
  if (mac === undefined) return
  const ip = fz.model.holds(mac, Date.now(), 5000) as number
  const expect = fz.live().filter((o) => o !== s && fz.clean(o.port))
  const drops0 = fz.portDrops(s.port)
  s.send([arp({ op: 1, src: mac, dst: BROADCAST, sha: mac, spa: ip, tpa: ip, mark: mark(fz, s, MAGIC_OK) })])
  await fz.settle(s)
  if (!fz.clean(s.port)) { fz.count('announce (unclean link)'); return }
  const got = (): boolean => expect.every((o) => o.closed || fz.receiversOf(s.id, fz.step).has(o.id))
  await fz.until(() => got() || fz.portDrops(s.port) > drops0, `station ${s.id}'s announcement of ${mac} reaching ${expect.length} stations`)
  if (!got()) fz.fail(`station ${s.id}'s ARP for its own lease was refused at ingress`)
  fz.count('announce')
}

// ---- flows -----------------------------------------------------------------

/** A flood of SYNs and datagrams to every class of address, switchd's own ports among them. */
export async function flood (fz: Fuzz, s: Station): Promise<void> {
  const rng = fz.rng
  const n = fz.net
  const set = fz.setting
  // From a lease it was given on this port, if it has one; else from an address of the subnet nobody is given.
  const own = s.macs.filter((m) => s.leased.has(m)).map((m) => ({ mac: m, ip: fz.model.holds(m, Date.now(), 5000) })).find((x) => x.ip !== undefined)
  const smac = own?.mac ?? s.mac
  const src = own?.ip ?? unleased(fz)
  const dsts = (): number => {
    const c = rng.int(0, 9)
    if (c === 0) return n.gw
    if (c === 1) return 0xffffffff
    if (c === 2) return rng.bool(0.5) ? 0 : 0x7f000001 + rng.int(0, 3)
    if (c === 3) return n.dns
    if (c === 4 && n.hostAddresses.length > 0) return rng.pick(n.hostAddresses)
    if (c === 5) return rng.pick([0xa9fea9fe, 0xe00000fb, (n.subnet + rng.int(4, 250)) >>> 0])
    if (c === 6) return rng.pick(set.outside)
    return rng.pick([n.gw, 0xffffffff, 0x7f000001])
  }
  const frames: Buffer[] = []
  const expected: Record<string, number> = {}
  // Now and then, with a lease and nat on: one datagram from each of 80 to 200 source ports to the outside (a socket of
  // the child's each), which only the client's share of flows (flowsPerClient, 64 here) bounds.
  if (own !== undefined && n.nat === 'on' && rng.bool(0.25)) {
    for (let i = rng.int(80, 200); i > 0; i--) {
      const f = ip4({ proto: UDP, src, dst: rng.pick(set.outside), sport: fz.nextSport++, dport: 9, smac, dmac: fz.gwMac, payload: Buffer.alloc(16) })
      writeMark(f, UDP_PAYLOAD, mark(fz, s, MAGIC_OK))
      frames.push(f)
    }
    fz.count('share flood')
  }
  for (let i = rng.int(4, 60); i > 0; i--) {
    const dst = dsts()
    const tcp = rng.bool(0.65)
    const dport = tcp && rng.bool(0.5) ? rng.pick(n.selfPorts) : rng.pick([...set.services, ...set.services, 22, 53, 80, 443, rng.int(1, 65535)].filter((p) => p !== 67))
    const sport = fz.nextSport++
    if (fz.nextSport > 65000) fz.nextSport = 20000
    const reason = destinationReason(n, tcp ? 'tcp' : 'udp', dst, dport)
    // With its lease, the station's flow may reach slirp; without one, where the guards bind sources, `source`.
    const why = reason === 'flow' && own === undefined ? 'source' : reason
    const dmac = rng.bool(0.9) ? fz.gwMac : BROADCAST
    if (why !== 'flow' && (dmac === fz.gwMac || fz.floodsReachGateway())) expected[why] = (expected[why] ?? 0) + 1
    if (tcp) {
      fz.noteSyn(s, src, sport, dst, dport, why === 'flow' && n.nat === 'on' && (dst === n.gw || dst === 0xffffffff) && n.hostPorts.has(dport))
      frames.push(ip4({ proto: TCP, src, dst, sport, dport, flags: SYN, smac, dmac }))
    } else {
      const f = ip4({ proto: UDP, src, dst, sport, dport, smac, dmac, payload: Buffer.alloc(16) })
      writeMark(f, UDP_PAYLOAD, mark(fz, s, MAGIC_OK))
      frames.push(f)
    }
  }
  const before = fz.counts(s)
  s.send(frames)
  await fz.settle(s)
  const after = fz.counts(s)
  fz.count('flood frames', frames.length)
  // slirp has acted on all of it (a SYN-ACK it sent would have arrived) before the counters are judged.
  await gatewayBarrier(fz, s)
  fz.refused(before, after, expected, `a flood of ${frames.length} flows from station ${s.id}`)
}

/**
 * Until the gateway's child answers `s`'s ARP probe (sender 0.0.0.0, which
 * the guards pass and slirp learns nothing from): slirp has then handled
 * what `s` sent before it. Resent while lost on a lossy link; skipped while
 * a link of the path is down.
 */
export async function gatewayBarrier (fz: Fuzz, s: Station, spa = 0): Promise<void> {
  if (s.closed || !fz.pathUp(s)) return
  for (let tries = 0; tries < 60; tries++) {
    const probe = arp({ op: 1, src: s.mac, dst: BROADCAST, sha: s.mac, spa, tpa: fz.net.gw, mark: { magic: 0, station: s.id, step: fz.step } })
    const replies = fz.gatewayReplies.get(s.id) ?? 0
    s.send([probe])
    await fz.settle(s)
    if (await poll(() => { fz.check(); return (fz.gatewayReplies.get(s.id) ?? 0) > replies || s.closed || !fz.pathUp(s) }, 500)) return
  }
  const state = (p: NetPort | undefined): string => p === undefined
    ? 'none'
    : JSON.stringify({ name: p.name, rx: p.rxFrames, tx: p.txFrames, blocked: p.blocked, in: p.condIn?.params, out: p.condOut?.params, drops: Object.fromEntries(Object.entries(portDrops(p)).filter(([, v]) => v !== 0)) })
  fz.fail(`the gateway did not answer 60 ARP probes of station ${s.id} (${s.kind}): it is gone, or one station took it from the others; ` +
    `the gateway's port ${state(fz.gateway)}, child up ${String(fz.server.gatewayChildren[0]?.up)}, socket ${String(fz.gateway.socket !== undefined)}; the station's port ${state(s.port)}; ` +
    `held memory ${JSON.stringify({ used: fz.server.networks.heldBudget.used, total: fz.server.networks.heldBudget.total, client: fz.server.networks.heldBudget.of(s.port?.clientKey ?? ''), queues: fz.sw.ports.flatMap((p) => [p.condIn, p.condOut].map((c, i) => c === null ? '' : `${p.name}/${i === 0 ? 'in' : 'out'}: ${c.memoryBytes} B, ${c.queuedFrames} frames`).filter((x) => x !== '')) })}`)
}

// ---- the operator: link conditions and drills, the child restarted ----------

export async function condition (fz: Fuzz, ports: string[]): Promise<void> {
  const rng = fz.rng
  const name = rng.pick(ports)
  const q = `?network=${encodeURIComponent(fz.sw.name)}`
  const path = `/api/v1/ports/${encodeURIComponent(name)}/condition${q}`
  if (rng.bool(0.3)) {
    const status = await fz.api('DELETE', `${path}&direction=${rng.pick(['in', 'out', 'both'])}`)
    if (status !== 200) fz.fail(`clearing the condition of ${name} answered ${status}`)
    fz.count('condition cleared')
    return
  }
  const body: Record<string, unknown> = { direction: rng.pick(['in', 'out', 'both']), seed: rng.int(1, 1_000_000) }
  if (rng.bool(0.6)) body.delay = rng.int(1, 60)
  if (rng.bool(0.3)) body.jitter = rng.int(1, 20)
  if (rng.bool(0.3)) body.jitterReorders = rng.bool(0.5)
  // Loss, or bursty loss; never corruption, which may turn a station's own frame into anything on its way out.
  if (rng.bool(0.4)) body.loss = rng.int(1, 15)
  else if (rng.bool(0.15)) body.burst = { p: rng.int(1, 10), r: rng.int(30, 90) }
  if (rng.bool(0.2)) body.duplicate = rng.int(1, 20)
  if (rng.bool(0.2)) body.reorder = rng.int(1, 30)
  const queueBytes = rng.int(2, 256) * 1024
  if (rng.bool(0.5)) body.queueBytes = queueBytes
  if (rng.bool(0.3)) { body.rate = `${rng.int(1, 50)}mbit`; if (rng.bool(0.5)) body.backlog = Math.min(queueBytes, rng.int(16, 64) * 1024) }
  if (rng.bool(0.5)) body.queueFrames = rng.int(4, 2000)
  const status = await fz.api('POST', path, body)
  if (status !== 200) fz.fail(`setting ${JSON.stringify(body)} on ${name} answered ${status}`)
  fz.count('condition set')
}

export async function drill (fz: Fuzz, ports: string[]): Promise<void> {
  const rng = fz.rng
  const name = rng.pick(ports)
  const path = `/api/v1/ports/${encodeURIComponent(name)}/link?network=${encodeURIComponent(fz.sw.name)}`
  const r = rng.float()
  const body = r < 0.45
    ? { state: 'up' }
    : r < 0.7
      ? { state: 'down', direction: rng.pick(['in', 'out', 'both']) }
      : { state: 'down', flap: `${rng.int(50, 300)}ms/${rng.int(500, 2000)}ms` }
  const status = await fz.api('POST', path, body)
  if (status !== 200) fz.fail(`the drill ${JSON.stringify(body)} on ${name} answered ${status}`)
  fz.count(`drill ${body.state}${'flap' in body ? ' flap' : ''}`)
}

/**
 * An operator's `port disconnect gateway`: the child restarts, after a
 * backoff that grows while it keeps being restarted within 30 s (up to 30 s),
 * and the leases stay (they are switchd's). The run goes on meanwhile: what
 * stations send to the gateway is dropped and counted (`disconnected`).
 */
export async function restartChild (fz: Fuzz): Promise<void> {
  const g = fz.server.gatewayChildren[0]
  if (g === undefined || !g.up) return
  const status = await fz.api('POST', `/api/v1/ports/gateway/disconnect?network=${encodeURIComponent(fz.sw.name)}`)
  if (status !== 200) fz.fail(`disconnecting the gateway answered ${status}`)
  await fz.until(() => !g.up, 'the gateway\'s child going')
  fz.count('child restart')
}

/** The child is back, within its longest backoff (30 s) and a start. */
export async function childBack (fz: Fuzz): Promise<void> {
  const g = fz.server.gatewayChildren[0]
  await fz.until(() => g?.up === true, 'the gateway\'s child starting again', 90_000)
}

/**
 * switchd restarts (as any gateway change needs): every station's port goes,
 * the leases stay in the lease file, and the stations come back later with
 * their MACs, still holding what they were given. Nobody may be given their
 * addresses meanwhile, and their renewals are ACKed.
 */
export async function restartSwitchd (fz: Fuzz, leftMacs: number[]): Promise<void> {
  for (const s of fz.live()) {
    s.close()
    await fz.until(() => s.closed, `station ${s.id} closing`)
    leftMacs.push(...s.macs.filter((m) => !leftMacs.includes(m)))
  }
  await fz.restart()
  fz.stations.length = 0
  fz.count('switchd restart')
  // Two of them come back at once, and renew: the new switchd read their leases from the file.
  const holders = leftMacs.filter((m) => fz.model.holds(m, Date.now(), 5000) !== undefined)
  for (let i = 0; i < 2 && holders.length > 0; i++) await join(fz, fz.setting, leftMacs, holders.splice(fz.rng.int(0, holders.length - 1), 1)[0])
}

/**
 * Many frames into the link conditions at once (broadcast, a test EtherType): what they hold stays within their bounds.
 * Mostly the whole burst is held at once, its port's ingress delayed a minute until switchd has read it: up to
 * 2.2 MB for one client, over its conditionBytesPerAddress (1 MiB here) on any machine, however fast it releases.
 */
export async function burst (fz: Fuzz, s: Station): Promise<void> {
  const rng = fz.rng
  const hold = s.port !== undefined && s.port.condIn === null && rng.bool(0.75)
  const frames: Buffer[] = []
  const size = hold ? 1514 : rng.pick([60, 200, 1514])
  for (let i = rng.int(hold ? 1000 : 100, 1500); i > 0; i--) {
    const f = Buffer.alloc(size)
    f.writeUIntBE(BROADCAST, 0, 6); f.writeUIntBE(s.mac, 6, 6); f.writeUInt16BE(0x88b5, 12)
    frames.push(f)
  }
  const path = `/api/v1/ports/${encodeURIComponent(s.port?.name ?? '')}/condition?network=${encodeURIComponent(fz.sw.name)}`
  if (hold) {
    const status = await fz.api('POST', path, { direction: 'in', delay: '60s' })
    if (status !== 200) fz.fail(`holding the ingress of station ${s.id} answered ${status}`)
  }
  s.send(frames)
  if (hold) {
    // held() judges the queue's memory at every poll while switchd reads the burst.
    await fz.until(() => s.closed || fz.arrived(s) >= s.sent, `switchd reading the ${s.sent} frames of station ${s.id}`)
    const status = await fz.api('DELETE', `${path}&direction=in`)
    if (status !== 200 && !s.closed) fz.fail(`clearing the ingress of station ${s.id} answered ${status}`)
    fz.count('burst held', frames.length)
  }
  await fz.settle(s)
  fz.count('burst frames', frames.length)
}


/**
 * The end of a run with nat on: the host port the gateway lists is reached.
 * Every link is made whole, and a fresh client (from `client`, an address
 * no station joined from: a share of flows of its own, where the stations'
 * may be full for minutes) with a static lease sends SYNs to it until one
 * is answered and the service sees the connection.
 */
export async function reachListed (fz: Fuzz, seen: { connections: number }, client: string): Promise<void> {
  for (const s of fz.live()) await leave(fz, s, [])
  await childBack(fz)
  const q = `?network=${encodeURIComponent(fz.sw.name)}`
  for (const name of ['gateway']) {
    await fz.api('DELETE', `/api/v1/ports/${name}/condition${q}&direction=both`)
    await fz.api('POST', `/api/v1/ports/${name}/link${q}`, { state: 'up' })
  }
  const n = fz.net
  const [mac, ip] = [...n.statics.entries()].find(([, a]) => a < n.poolStart || a >= n.poolStart + n.poolSize) ?? [...n.statics.entries()][0]!
  const port = [...fz.net.hostPorts][0] as number
  const s = await Station.join(fz.everyone.size + 1, 'raw', mac, client, fz.setting.endpoints, () => fz.server.ports())
  fz.everyone.set(s.id, s)
  fz.stations.push(s)
  if (s.port !== undefined) fz.arrivalBase.set(s, fz.arrivals.get(s.port) ?? 0)
  // Who-has the gateway from its address: slirp learns the station (it learns none from DHCP, which is switchd's).
  await gatewayBarrier(fz, s, ip)
  const before = seen.connections
  for (let tries = 0; tries < 30; tries++) {
    const sport = fz.nextSport++
    fz.noteSyn(s, ip, sport, fz.net.gw, port, true)
    s.send([ip4({ proto: TCP, src: ip, dst: fz.net.gw, sport, dport: port, flags: SYN, smac: mac, dmac: fz.gwMac })])
    await fz.settle(s)
    if (await poll(() => { fz.check(); return seen.connections > before && (fz.tally['syn-ack (allowed)'] ?? 0) > 0 }, 1000)) { fz.count('listed host port reached'); return }
  }
  fz.fail('the host port the gateway lists was never reached')
}
