/**
 * Frame specs for the frame trace (`switchctl trace --frame SPEC`): a short
 * way to write the frame whose forwarding you want to see, e.g.
 *
 *   dst=02:00:00:00:00:02,src=02:00:00:00:00:01,vlan=10,type=arp
 *   dst=lldp,src=02:00:00:00:00:01
 *   ffffffffffff020000000001080600...          (hex bytes: the frame itself)
 *
 * Keys: dst and src (a MAC, or broadcast, stp, lacp, 8021x, lldp for dst),
 * vlan (adds an 802.1Q tag; 0 is a priority tag), pcp (0-7), type (arp, ipv4,
 * ipv6, lldp, lacp, eapol, or a number like 0x88b5), len (total length,
 * padded with zeros; default 60). Slow path; input is bounded
 * (MAX_SPEC_LENGTH) and every error names the key.
 */

import { TapswitchError, ERR_FRAME_SPEC } from './errors'
import { parseMac } from './ethernet'

/** Longest spec accepted: hex for a 9,216-byte frame, with room to spare. */
export const MAX_SPEC_LENGTH = 20_000
/** Longest frame a spec may describe (a trace may show an oversize drop). */
export const MAX_SPEC_FRAME = 9216

const GROUPS: Readonly<Record<string, string>> = {
  broadcast: 'ff:ff:ff:ff:ff:ff',
  stp: '01:80:c2:00:00:00',
  lacp: '01:80:c2:00:00:02',
  '8021x': '01:80:c2:00:00:03',
  lldp: '01:80:c2:00:00:0e'
}

const TYPES: Readonly<Record<string, number>> = { arp: 0x0806, ipv4: 0x0800, ipv6: 0x86dd, lldp: 0x88cc, lacp: 0x8809, eapol: 0x888e }

function bad (message: string): never {
  throw new TapswitchError(ERR_FRAME_SPEC, `frame spec: ${message}`)
}

function mac (key: string, text: string): Buffer {
  const b = parseMac(GROUPS[text.toLowerCase()] ?? text)
  return b ?? bad(`${key}: expected a MAC like 02:00:00:00:00:01${key === 'dst' ? ' or broadcast, stp, lacp, 8021x, lldp' : ''}`)
}

function int (key: string, text: string, max: number): number {
  const n = /^(0x[0-9a-f]+|[0-9]+)$/i.test(text) ? Number(text) : NaN
  if (!Number.isInteger(n) || n < 0 || n > max) bad(`${key}: expected a number from 0 to ${max}`)
  return n
}

/** The frame `spec` describes; throws TSW_ERR_FRAME_SPEC naming what is wrong. */
export function parseFrameSpec (spec: string): Buffer {
  if (typeof spec !== 'string' || spec.length === 0) bad('empty')
  if (spec.length > MAX_SPEC_LENGTH) bad(`longer than ${MAX_SPEC_LENGTH} characters`)
  const compact = spec.replace(/[\s:]/g, '')
  if (!spec.includes('=')) {
    if (!/^([0-9a-fA-F]{2})+$/.test(compact)) bad('expected key=value,... or hex bytes')
    if (compact.length / 2 > MAX_SPEC_FRAME) bad(`a frame of at most ${MAX_SPEC_FRAME} bytes`)
    return Buffer.from(compact, 'hex')
  }
  const kv = new Map<string, string>()
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=')
    const key = part.slice(0, eq).trim().toLowerCase()
    if (eq < 0 || !['dst', 'src', 'vlan', 'pcp', 'type', 'len'].includes(key)) bad(`"${part.slice(0, 40)}": expected dst=, src=, vlan=, pcp=, type= or len=`)
    if (kv.has(key)) bad(`${key} given twice`)
    kv.set(key, part.slice(eq + 1).trim())
  }
  const dst = mac('dst', kv.get('dst') ?? bad('dst is required'))
  const src = mac('src', kv.get('src') ?? bad('src is required'))
  const typeText = kv.get('type') ?? 'ipv4'
  const type = TYPES[typeText.toLowerCase()] ?? int('type', typeText, 0xffff)
  const vlanText = kv.get('vlan')
  const vlan = vlanText === undefined ? -1 : int('vlan', vlanText, 4095)
  const pcp = kv.has('pcp') ? int('pcp', kv.get('pcp') as string, 7) : 0
  if (vlan < 0 && kv.has('pcp')) bad('pcp needs vlan (use vlan=0 for a priority tag)')
  const header = vlan < 0 ? 14 : 18
  const len = kv.has('len') ? int('len', kv.get('len') as string, MAX_SPEC_FRAME) : Math.max(60, header)
  if (len < header) bad(`len: at least ${header} for this header`)
  const f = Buffer.alloc(len)
  dst.copy(f, 0); src.copy(f, 6)
  if (vlan >= 0) { f.writeUInt16BE(0x8100, 12); f.writeUInt16BE((pcp << 13) | vlan, 14) }
  f.writeUInt16BE(type, header - 2)
  return f
}
