/**
 * What each drop reason means, in a line an operator can act on (the reasons
 * are switchd's, src/switch/core/drops.ts DROP_REASONS; a unit test checks
 * that every one has its line here, and nothing else does).
 */
export const REASONS: Readonly<Record<string, string>> = Object.freeze({
  runt: 'shorter than an Ethernet header (14 bytes)',
  oversize: 'longer than the network\'s maxFrameSize',
  bad_source: 'a source MAC that is zero or a group (multicast/broadcast) address',
  hairpin: 'addressed to a MAC learned on the port it came in on',
  vlan: 'a VLAN the port (or its egress port) does not carry',
  port_security: 'a source MAC the port may not use (not allowed, or beyond its maxMacs)',
  storm: 'over the port\'s broadcast, multicast or unknown-unicast storm limit',
  loop: 'the port is blocked by loop protection (a MAC flapping between ports)',
  disabled: 'the port is disabled by an operator (enable it to forward)',
  rate: 'over the port\'s rate limit',
  malformed: 'a malformed frame or batch from the port',
  bad_offload: 'a malformed virtio-net header from an offload port',
  egress_blocked: 'known unicast whose port is disabled, loop-blocked or spanning-tree discarding',
  condition: 'lost to a link condition (loss)',
  condition_queue: 'a link condition\'s queue or rate backlog was full',
  link_down: 'the link is down (a failure drill: link up ends it)',
  link_local: 'an IEEE link-local group 01:80:c2:00:00:0X the network does not forward',
  dhcp_snooping: 'a DHCP server message from an untrusted port (DHCP snooping)',
  arp_inspection: 'an ARP that does not match its DHCP binding (ARP inspection)',
  ip_source_guard: 'an IPv4 source that does not match its DHCP binding (IP source guard)',
  backpressure: 'the port\'s peer was not reading fast enough',
  disconnected: 'sent to a port whose peer is away (parked agent, no VM, gateway restarting, link down)',
  split_horizon: 'known unicast from one port of a split-horizon group to another: mesh links (the fleet is one hop) or one VNI\'s VTEPs (set "relay" to relay between them)',
  underlay_mtu: 'too long for one VXLAN/GENEVE datagram on the underlay\'s MTU (lower the hosts\' MTU, or raise the listener\'s "mtu" if the underlay carries it)'
})

/** The line for `reason`; a reason a newer switchd has is shown as it is. */
export function explain (reason: string): string {
  return Object.hasOwn(REASONS, reason) ? REASONS[reason] as string : 'see docs/METRICS.md'
}

/** The port counters (PortJson.drops keys) a reason sums: its name in camelCase; storm has one per kind of traffic. */
export function portCounters (reason: string): string[] {
  if (reason === 'storm') return ['stormBroadcast', 'stormMulticast', 'stormUnknownUnicast']
  return [reason.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase())]
}
