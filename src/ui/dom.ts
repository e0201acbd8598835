/** The console's DOM helpers: elements built from text, never from markup. */

/** The element with this id (the page's own, from index.html). */
export const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T
type Attrs = Record<string, string>

/** An HTML element with attributes and children; text children become text nodes. */
export function el (tag: string, attrs: Attrs = {}, ...kids: Array<Node | string>): HTMLElement {
  const e = document.createElement(tag)
  for (const k of Object.keys(attrs)) e.setAttribute(k, attrs[k] as string)
  for (const k of kids) e.append(k)
  return e
}

const SVG = 'http://www.w3.org/2000/svg'
/** An SVG element with attributes. */
export function svg (tag: string, attrs: Record<string, string | number> = {}): SVGElement {
  const e = document.createElementNS(SVG, tag)
  for (const k of Object.keys(attrs)) e.setAttribute(k, String(attrs[k]))
  return e
}
