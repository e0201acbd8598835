/**
 * The condition editor: index.html's one form, moved into a row under the
 * port being edited, and back when it closes. The API's refusal is shown in
 * the form, as text.
 */

import type { PortJson } from '../common/api-types'
import { conditionBody, formFrom } from './condition'
import { $, el } from './dom'
import { post } from './api'
import { portPath } from './actions'

/** The port whose condition is being edited, and the row that holds the editor under the port's row. */
let editing: { id: number, name: string, network: string, row: HTMLTableRowElement } | undefined

/** The id of the port being edited, if any. */
export function editingPort (): number | undefined { return editing?.id }

/** Open the editor under `portRow` for port `p`, or close it if it is open there. */
export function toggleEditor (p: PortJson, portRow: HTMLTableRowElement): void {
  if (editing?.id === p.id) { closeEditor(); return }
  closeEditor()
  const form = $<HTMLFormElement>('cond-editor')
  const f = formFrom(p.condition)
  $<HTMLSelectElement>('cond-direction').value = f.direction
  $<HTMLInputElement>('cond-delay').value = f.delay
  $<HTMLInputElement>('cond-jitter').value = f.jitter
  $<HTMLInputElement>('cond-loss').value = f.loss
  $<HTMLInputElement>('cond-rate').value = f.rate
  $('cond-port').textContent = p.name
  $('cond-error').textContent = ''
  // One cell across the port row's columns.
  const td = el('td', { colspan: String(portRow.cells.length) }, form)
  const row = el('tr', { class: 'editor', 'data-editor': p.name }, td) as HTMLTableRowElement
  portRow.after(row)
  form.hidden = false
  editing = { id: p.id, name: p.name, network: p.network, row }
  $<HTMLInputElement>('cond-delay').focus()
}

export function closeEditor (): void {
  if (editing === undefined) return
  const form = $<HTMLFormElement>('cond-editor')
  form.hidden = true
  // The form goes back where index.html has it, so the next row can take it.
  $('ports').after(form)
  editing.row.remove()
  editing = undefined
}

/** Set (POST) or clear (DELETE) the edited port's condition; the API's refusal is shown in the editor, as text. */
export async function submitCondition (clear: boolean, button: HTMLElement): Promise<void> {
  const e = editing
  if (e === undefined) return
  const direction = $<HTMLSelectElement>('cond-direction').value
  const path = `${portPath(e)}/condition?network=${encodeURIComponent(e.network)}`
  const error = $('cond-error')
  error.textContent = ''
  button.setAttribute('disabled', '')
  try {
    if (clear) await post(`${path}&direction=${encodeURIComponent(direction)}`, undefined, 'DELETE')
    else {
      await post(path, conditionBody({
        direction,
        delay: $<HTMLInputElement>('cond-delay').value,
        jitter: $<HTMLInputElement>('cond-jitter').value,
        loss: $<HTMLInputElement>('cond-loss').value,
        rate: $<HTMLInputElement>('cond-rate').value
      }))
    }
    if (editing === e) closeEditor()
  } catch (err) {
    error.textContent = (err as Error).message
  } finally {
    button.removeAttribute('disabled')
  }
}

/** Wire the form's buttons once (index.html has it). */
export function initEditor (): void {
  $('cond-editor').addEventListener('submit', (ev) => { ev.preventDefault(); void submitCondition(false, $('cond-set')) })
  $('cond-clear').addEventListener('click', () => { void submitCondition(true, $('cond-clear')) })
  $('cond-close').addEventListener('click', closeEditor)
  $('cond-editor').addEventListener('keydown', (ev) => { if (ev.key === 'Escape') closeEditor() })
}
