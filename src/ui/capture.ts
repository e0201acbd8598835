/**
 * The Capture tab: GET /api/v1/capture streamed into the page (a pcap), each
 * frame decoded to one line, and the whole downloaded as a file. The token
 * goes as a header; the query names only what to capture, with bounds, so
 * the page's memory is bounded too.
 */

import type { NetworkJson, PortJson } from '../common/api-types'
import { PcapReader, describeFrame } from './decode'
import { $, el } from './dom'
import { bytes } from './format'
import { headers } from './api'

/** Lines kept in the capture list. */
const MAX_CAPTURE_LINES = 1000
/** What the page asks a capture for: bounded, so the page's memory is too. */
const CAPTURE_QUERY = 'count=10000&bytes=20000000&duration=600'

let capture: AbortController | undefined
let captured: Uint8Array[] = []

export function fillCaptureChoices (lastNetworks: readonly NetworkJson[], lastPorts: readonly PortJson[]): void {
  const nets = $<HTMLSelectElement>('cap-network')
  const names = lastNetworks.map((n) => n.name)
  if ([...nets.options].map((o) => o.value).join() !== names.join()) {
    const was = nets.value
    nets.replaceChildren(...names.map((n) => el('option', { value: n }, n)))
    if (names.includes(was)) nets.value = was
  }
  const ports = $<HTMLSelectElement>('cap-port')
  const pnames = ['', ...lastPorts.filter((p) => p.network === nets.value).map((p) => p.name)]
  if ([...ports.options].map((o) => o.value).join() !== pnames.join()) {
    const was = ports.value
    ports.replaceChildren(...pnames.map((n) => el('option', { value: n }, n === '' ? 'any' : n)))
    if (pnames.includes(was)) ports.value = was
  }
}

export async function startCapture (): Promise<void> {
  if (capture !== undefined) return
  const q = new URLSearchParams({ network: $<HTMLSelectElement>('cap-network').value })
  const port = $<HTMLSelectElement>('cap-port').value
  const vlan = $<HTMLInputElement>('cap-vlan').value
  if (port !== '') q.set('port', port)
  if (vlan !== '') q.set('vlan', vlan)
  const ctl = new AbortController()
  capture = ctl
  captured = []
  $('cap-frames').replaceChildren()
  $<HTMLButtonElement>('cap-start').disabled = true
  $<HTMLButtonElement>('cap-stop').disabled = false
  $<HTMLButtonElement>('cap-download').disabled = true
  const status = $('cap-status')
  status.textContent = 'starting…'
  let frames = 0
  let size = 0
  try {
    // A GET with a header: the token stays out of the URL (the query names only what to capture).
    const r = await fetch(`/api/v1/capture?${q.toString()}&${CAPTURE_QUERY}`, { headers: headers(false), signal: ctl.signal, credentials: 'omit', cache: 'no-store' })
    if (!r.ok || r.body === null) {
      const answer = await r.json().catch(() => ({})) as { error?: string }
      throw new Error(answer.error ?? `HTTP ${r.status}`)
    }
    status.textContent = 'capturing'
    const reader = new PcapReader()
    const stream = r.body.getReader()
    const list = $('cap-frames')
    for (;;) {
      const { done, value } = await stream.read()
      if (done) break
      captured.push(value)
      size += value.length
      $<HTMLButtonElement>('cap-download').disabled = false
      for (const rec of reader.push(value)) {
        frames++
        const t = new Date(rec.timeMs).toISOString().slice(11, 23)
        list.append(el('li', {}, `${t} ${describeFrame(rec.frame)}`))
        if (list.childElementCount > MAX_CAPTURE_LINES) list.firstElementChild?.remove()
      }
      if (reader.error !== undefined) throw new Error(reader.error)
      status.textContent = `capturing: ${frames} frames, ${bytes(size)}`
    }
    status.textContent = `ended: ${frames} frames, ${bytes(size)}`
  } catch (err) {
    status.textContent = ctl.signal.aborted ? `stopped: ${frames} frames, ${bytes(size)}` : `capture failed: ${(err as Error).message}`
  } finally {
    capture = undefined
    $<HTMLButtonElement>('cap-start').disabled = false
    $<HTMLButtonElement>('cap-stop').disabled = true
  }
}

export function downloadCapture (): void {
  const blob = new Blob(captured as BlobPart[], { type: 'application/vnd.tcpdump.pcap' })
  const a = el('a', { href: URL.createObjectURL(blob), download: `tapswitch-${new Date().toISOString().replace(/[:.]/g, '-')}.pcap` }) as HTMLAnchorElement
  document.body.append(a)
  a.click()
  a.remove()
  setTimeout(() => { URL.revokeObjectURL(a.href) }, 10000)
}

export function stopCapture (): void { capture?.abort() }
