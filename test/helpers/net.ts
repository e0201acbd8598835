import { once, type EventEmitter } from 'node:events'

/** `once(emitter, event)` that rejects after `ms` (tests never hang). */
export async function onceWithin<T extends unknown[] = unknown[]> (emitter: EventEmitter, event: string, ms = 3000): Promise<T> {
  const ac = new AbortController()
  const t = setTimeout(() => { ac.abort(new Error(`no '${event}' within ${ms} ms`)) }, ms)
  try {
    return await once(emitter, event, { signal: ac.signal }) as T
  } finally {
    clearTimeout(t)
  }
}

/** Poll `check` every 20 ms until it returns true; reject after `ms`. */
export async function waitFor (check: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
