/** The console's topology picture (inline SVG): one network as this switch, its trunks and its ports. */

import type { NetworkJson, PortJson } from '../common/api-types'
import { svg } from './dom'

/** The end of a bridge id (priority and MAC in hex): enough to tell neighbours apart. */
function short (bridge: string): string { return bridge.length > 14 ? '…' + bridge.slice(-11) : bridge }

/**
 * One network: this switch in the middle, trunks to their neighbours on the upper arc, access ports on the
 * lower one (so labels never cross), the spanning-tree root marked ★.
 */
export function topology (n: NetworkJson, ports: PortJson[]): SVGElement {
  const W = 560; const H = 420; const cx = W / 2; const cy = H / 2 - 10
  const root = svg('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `network ${n.name}` })
  const text = (x: number, y: number, t: string, anchor = 'middle'): void => {
    const e = svg('text', { x: x.toFixed(1), y: y.toFixed(1), 'text-anchor': anchor }); e.textContent = t; root.append(e)
  }
  text(10, 18, `network ${n.name}`, 'start')
  const trunks = ports.filter((p) => p.stp !== undefined)
  const access = ports.filter((p) => p.stp === undefined)
  const MAX_ACCESS = 16
  const shown = access.slice(0, MAX_ACCESS)
  /** The i-th of `count` points on an arc from angle `from` to `to`, radius r. */
  const arc = (i: number, count: number, from: number, to: number, r: number): [number, number] => {
    const a = count === 1 ? (from + to) / 2 : from + ((to - from) * i) / (count - 1)
    return [cx + r * Math.cos(a), cy + r * Math.sin(a)]
  }
  shown.forEach((p, i) => {
    const [x, y] = arc(i, shown.length, (5 * Math.PI) / 6, Math.PI / 6, 150)
    root.append(svg('line', { x1: cx, y1: cy, x2: x, y2: y, class: 'access' }))
    root.append(svg('rect', { x: x - 6, y: y - 6, width: 12, height: 12, class: 'access' }))
    text(x, y + 20 + (i % 2) * 13, p.name + (p.state === 'forwarding' ? '' : ` (${p.state})`))
  })
  if (access.length > shown.length) text(W - 10, H - 10, `+${access.length - shown.length} more ports`, 'end')
  trunks.forEach((p, i) => {
    const [x, y] = arc(i, trunks.length, (-5 * Math.PI) / 6, -Math.PI / 6, 130)
    const stp = p.stp as NonNullable<PortJson['stp']>
    root.append(svg('line', { x1: cx, y1: cy, x2: x, y2: y, class: stp.forwarding ? '' : 'down' }))
    root.append(svg('circle', { cx: x, cy: y, r: 16, class: 'peer' }))
    const isRoot = stp.neighbour !== undefined && stp.neighbour === n.stp.root
    text(x, y - 36, `${isRoot ? '★ ' : ''}${short(stp.neighbour ?? '?')}`)
    text(x, y - 22, `${p.name.length > 28 ? p.name.slice(0, 27) + '…' : p.name}`)
    const left = x < cx
    text((cx + x) / 2 + (left ? -8 : 8), (cy + y) / 2 + 4, `${stp.role}${stp.forwarding ? '' : ' (discarding)'}`, left ? 'end' : 'start')
  })
  root.append(svg('circle', { cx, cy, r: 26, class: 'sw' }))
  text(cx + 34, cy + 4, `${n.stp.root === n.stp.bridge ? '★ ' : ''}this switch ${short(n.stp.bridge)}`, 'start')
  return root
}
