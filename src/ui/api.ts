/**
 * The console's requests to the admin API: the token as a Bearer header,
 * never in a URL; no cookies (credentials: 'omit'), nothing cached.
 */

const TOKEN_KEY = 'tapswitch.adminToken'

/** The admin token of this tab (sessionStorage: this tab only, gone when it closes). */
export const auth = { token: sessionStorage.getItem(TOKEN_KEY) ?? '' }

export function setToken (t: string): void {
  auth.token = t
  if (t === '') sessionStorage.removeItem(TOKEN_KEY)
  else sessionStorage.setItem(TOKEN_KEY, t)
}

export function headers (json: boolean): Record<string, string> {
  const h: Record<string, string> = {}
  if (auth.token !== '') h.authorization = 'Bearer ' + auth.token
  if (json) h['content-type'] = 'application/json'
  return h
}

/** A state change through the admin API: JSON (never a "simple" request), token as a header. */
export async function post (path: string, body: unknown = {}, method = 'POST'): Promise<unknown> {
  const r = await fetch(path, { method, headers: headers(true), body: method === 'DELETE' ? undefined : JSON.stringify(body), credentials: 'omit', cache: 'no-store' })
  const answer = await r.json().catch(() => ({})) as { error?: string }
  if (!r.ok) throw new Error(answer.error ?? `HTTP ${r.status}`)
  return answer
}

/** A view of the admin API (GET, JSON); the API's refusal as the error's message. */
export async function getJson (path: string): Promise<unknown> {
  const r = await fetch(path, { headers: headers(false), credentials: 'omit', cache: 'no-store' })
  const answer = await r.json().catch(() => undefined) as unknown
  if (!r.ok) throw new Error((answer as { error?: string } | undefined)?.error ?? `HTTP ${r.status}`)
  return answer
}
