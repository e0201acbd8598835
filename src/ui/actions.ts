/**
 * An action asked of the admin API from a button (disable, disconnect, a
 * flush...): the button is disabled while it runs, and a refusal is a line
 * in the event log.
 */

import { post } from './api'
import { confirmAction } from './confirm'
import { addEvent } from './events'

/** A port's API path; its network goes with it in the query (names are unique in a network only: every gateway is `gateway`). */
export function portPath (p: { name: string }): string { return `/api/v1/ports/${encodeURIComponent(p.name)}` }

/** An action that cannot be taken back: only once the operator confirms it. */
export async function confirmed (title: string, detail: string, label: string, path: string, body: unknown, button: HTMLElement): Promise<void> {
  if (await confirmAction(title, detail, label)) await act(path, body, button)
}

export async function act (path: string, body: unknown, button: HTMLElement): Promise<void> {
  button.setAttribute('disabled', '')
  try {
    await post(path, body)
  } catch (err) {
    addEvent({ seq: 0, time: new Date().toISOString(), level: 'error', component: 'console', event: 'action_failed', fields: { path, error: (err as Error).message } })
  } finally {
    button.removeAttribute('disabled')
  }
}
