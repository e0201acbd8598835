/**
 * Asking before an action that cannot be taken back (disconnect, flush): a
 * modal <dialog> naming what and where, and what will happen; the action runs
 * only on Confirm. Escape, Cancel or a click outside does nothing.
 */

import { $ } from './dom'

/** Resolves true on Confirm, false otherwise. Text only: the names in it are a client's. */
export async function confirmAction (title: string, detail: string, confirmLabel: string): Promise<boolean> {
  const dialog = $<HTMLDialogElement>('confirm')
  $('confirm-title').textContent = title
  $('confirm-detail').textContent = detail
  $('confirm-ok').textContent = confirmLabel
  return await new Promise<boolean>((resolve) => {
    dialog.addEventListener('close', () => { resolve(dialog.returnValue === 'ok') }, { once: true })
    dialog.returnValue = ''
    dialog.showModal()
    $('confirm-cancel').focus()
  })
}

/** Wire the dialog's buttons once (index.html has it). */
export function initConfirm (): void {
  const dialog = $<HTMLDialogElement>('confirm')
  $('confirm-ok').addEventListener('click', () => { dialog.close('ok') })
  $('confirm-cancel').addEventListener('click', () => { dialog.close('cancel') })
  // A click on the backdrop (the dialog element itself, outside its form) cancels.
  dialog.addEventListener('click', (ev) => { if (ev.target === dialog) dialog.close('cancel') })
}
