/**
 * The console's topology picture (inline SVG): one network as this switch, its
 * neighbours and its ports.
 *
 * A neighbour is one far switch (its bridge id, from its BPDUs), whatever the
 * number of trunks to it, labelled by the name this switch knows it by (the
 * host it dialled, or the name the far switch asked for), with its full bridge
 * id on hover. Links between two OTHER switches are drawn where the BPDUs
 * prove them: a neighbour that advertises cost 1 to a root other than us has
 * a link to that root (thin grey line); one further away gets a dotted line
 * to the root, marked with its hops. Nothing is guessed beyond that.
 */

import type { NetworkJson, PortJson } from '../common/api-types'
import { svg } from './dom'

/** The end of a bridge id (priority and random part in hex): enough to tell switches apart on the picture. */
function short (bridge: string): string { return bridge.length > 14 ? '…' + bridge.slice(-8) : bridge }

function clip (t: string, n: number): string { return t.length > n ? t.slice(0, n - 1) + '…' : t }

type Stp = NonNullable<PortJson['stp']>
interface Neighbour { key: string, bridge: string | undefined, peer: string, ports: PortJson[], root: string | undefined, cost: number | undefined, x: number, y: number }

/** The trunks grouped by the switch at their far end (one without a BPDU yet is a switch of its own). */
function neighbours (trunks: PortJson[]): Neighbour[] {
  const byKey = new Map<string, Neighbour>()
  for (const p of trunks) {
    const st = p.stp as Stp
    const key = st.neighbour ?? `port:${p.id}`
    let n = byKey.get(key)
    if (n === undefined) {
      n = { key, bridge: st.neighbour, peer: st.peer ?? p.name, ports: [], root: st.neighbourRoot, cost: st.neighbourCost, x: 0, y: 0 }
      byKey.set(key, n)
    }
    n.ports.push(p)
  }
  return [...byKey.values()]
}

const W = 560
const H = 460
/** This switch, in the middle. */
const cx = W / 2
const cy = H / 2 + 10
/** Access ports drawn at most; the rest are a count. */
const MAX_ACCESS = 16

/** The i-th of `count` points on an arc around this switch from angle `from` to `to`, radius r. */
function arc (i: number, count: number, from: number, to: number, r: number): [number, number] {
  const a = count === 1 ? (from + to) / 2 : from + ((to - from) * i) / (count - 1)
  return [cx + r * Math.cos(a), cy + r * Math.sin(a)]
}

/** The SVG being drawn, in order: what is appended later is drawn on top. */
class Picture {
  readonly root: SVGElement
  constructor (label: string) {
    this.root = svg('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label })
  }

  add<T extends SVGElement> (e: T): T { this.root.append(e); return e }

  text (x: number, y: number, t: string, anchor = 'middle', cls = ''): SVGElement {
    const e = svg('text', { x: x.toFixed(1), y: y.toFixed(1), 'text-anchor': anchor, ...(cls !== '' ? { class: cls } : {}) }); e.textContent = t; this.root.append(e); return e
  }

  /** A hover text (SVG <title>) on `e`; a label goes into a group with it, so its own text stays its text. */
  hover (e: SVGElement, t: string): void {
    const h = svg('title'); h.textContent = t
    if (e.tagName !== 'text') { e.append(h); return }
    const g = svg('g')
    e.replaceWith(g)
    g.append(h, e)
  }
}

/** One network: this switch in the middle, its neighbours on the upper arc, access ports on the lower one (so labels never cross). */
export function topology (n: NetworkJson, ports: PortJson[]): SVGElement {
  const pic = new Picture(`network ${n.name}`)
  pic.text(10, 18, `network ${n.name}`, 'start')
  drawAccess(pic, ports.filter((p) => p.stp === undefined))
  const near = neighbours(ports.filter((p) => p.stp !== undefined))
  near.forEach((nb, i) => { [nb.x, nb.y] = arc(i, near.length, (-5 * Math.PI) / 6, -Math.PI / 6, 140) })
  const byBridge = new Map(near.filter((nb) => nb.bridge !== undefined).map((nb) => [nb.bridge as string, nb]))
  const me = n.stp.bridge
  // The root, when it is neither this switch nor a neighbour: drawn at the top, known by its id only.
  const farRoot = n.stp.root !== me && !byBridge.has(n.stp.root) ? { x: cx, y: 34 } : undefined
  const at = (bridge: string): { x: number, y: number } | undefined => byBridge.get(bridge) ?? (bridge === n.stp.root ? farRoot : undefined)
  // Links between other switches, under everything else.
  for (const nb of near) drawFarLink(pic, nb, me, at)
  for (const nb of near) drawNeighbour(pic, nb, n.stp.root)
  if (farRoot !== undefined) {
    const c = pic.add(svg('circle', { cx: farRoot.x, cy: farRoot.y, r: 12, class: 'peer far', 'data-bridge': n.stp.root }))
    pic.hover(c, `the spanning-tree root, bridge id ${n.stp.root}: not a neighbour (cost ${n.stp.rootCost} from here)`)
    pic.hover(pic.text(farRoot.x + 18, farRoot.y + 4, `★ root ${short(n.stp.root)}`, 'start', 'name'), `bridge id ${n.stp.root}`)
  }
  pic.add(svg('circle', { cx, cy, r: 26, class: 'sw' }))
  pic.hover(pic.text(cx + 34, cy + 4, `${n.stp.root === me ? '★ ' : ''}this switch ${short(me)}`, 'start', 'name'), `this switch, bridge id ${me}`)
  return pic.root
}

/** The access ports on the lower arc (MAX_ACCESS of them, and how many more). */
function drawAccess (pic: Picture, access: PortJson[]): void {
  const shown = access.slice(0, MAX_ACCESS)
  shown.forEach((p, i) => {
    const [x, y] = arc(i, shown.length, (5 * Math.PI) / 6, Math.PI / 6, 150)
    pic.add(svg('line', { x1: cx, y1: cy, x2: x, y2: y, class: 'access' }))
    pic.add(svg('rect', { x: x - 6, y: y - 6, width: 12, height: 12, class: 'access' }))
    pic.text(x, y + 20 + (i % 2) * 13, p.name + (p.state === 'forwarding' ? '' : ` (${p.state})`))
  })
  if (access.length > shown.length) pic.text(W - 10, H - 10, `+${access.length - shown.length} more ports`, 'end')
}

/** What a neighbour's BPDUs prove of its way to a root that is not this switch: a link (cost 1), or a number of hops. */
function drawFarLink (pic: Picture, nb: Neighbour, me: string, at: (bridge: string) => { x: number, y: number } | undefined): void {
  if (nb.root === undefined || nb.cost === undefined || nb.root === me || nb.root === nb.bridge) return
  const to = at(nb.root)
  if (to === undefined) return
  // Bowed away from this switch, so the curve passes outside the neighbours' labels.
  const mx = (nb.x + to.x) / 2; const my = (nb.y + to.y) / 2
  const d = Math.hypot(mx - cx, my - cy) || 1
  const bow = 40
  const qx = mx + ((mx - cx) / d) * bow; const qy = my + ((my - cy) / d) * bow
  const path = svg('path', { d: `M${nb.x.toFixed(1)},${nb.y.toFixed(1)} Q${qx.toFixed(1)},${qy.toFixed(1)} ${to.x.toFixed(1)},${to.y.toFixed(1)}`, class: nb.cost === 1 ? 'learned' : 'learned hops' })
  pic.hover(path, nb.cost === 1
    ? `${nb.peer} has a link to the root ${nb.root} (its BPDUs: cost 1)`
    : `${nb.peer} is ${nb.cost} hops from the root ${nb.root} (its BPDUs); the switches between are not known here`)
  pic.add(path)
  if (nb.cost > 1) pic.text((nb.x + to.x) / 2 + ((mx - cx) / d) * (bow / 2), (nb.y + to.y) / 2 + ((my - cy) / d) * (bow / 2), `${nb.cost} hops`, 'middle', 'hops')
}

/** A neighbour switch: its trunks to this one (side by side), its circle and its name. */
function drawNeighbour (pic: Picture, nb: Neighbour, stpRoot: string): void {
  const count = nb.ports.length
  nb.ports.forEach((p, j) => {
    const stp = p.stp as Stp
    // Parallel trunks to one switch: side by side.
    const off = (j - (count - 1) / 2) * 8
    const d = Math.hypot(nb.x - cx, nb.y - cy) || 1
    const ox = (-(nb.y - cy) / d) * off; const oy = ((nb.x - cx) / d) * off
    const line = svg('line', { x1: cx + ox, y1: cy + oy, x2: nb.x + ox, y2: nb.y + oy, class: stp.forwarding ? 'trunk' : 'trunk down' })
    pic.hover(line, `trunk ${p.name}: ${stp.role}, ${stp.forwarding ? 'forwarding' : 'discarding'}`)
    pic.add(line)
    const left = nb.x < cx
    const t = pic.text((cx + nb.x) / 2 + ox + (left ? -8 : 8), (cy + nb.y) / 2 + oy + 4, `${stp.role}${stp.forwarding ? '' : ' (discarding)'}`, left ? 'end' : 'start')
    pic.hover(t, `trunk ${p.name}`)
  })
  const circle = svg('circle', { cx: nb.x, cy: nb.y, r: 16, class: 'peer', 'data-bridge': nb.bridge ?? '' })
  pic.hover(circle, `bridge id ${nb.bridge ?? '(no BPDU yet)'}\ntrunks: ${nb.ports.map((p) => p.name).join(', ')}`)
  pic.add(circle)
  const isRoot = nb.bridge !== undefined && nb.bridge === stpRoot
  const label = pic.text(nb.x, nb.y - 24, `${isRoot ? '★ ' : ''}${clip(nb.peer, 30)}`, 'middle', 'name')
  pic.hover(label, `${nb.peer}\nbridge id ${nb.bridge ?? '(no BPDU yet)'}`)
}
