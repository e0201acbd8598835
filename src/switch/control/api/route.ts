/**
 * A route of the admin API: a method, a path pattern and the handler that
 * answers it (routes.ts holds the table), and the lookup that finds the route
 * of a request.
 *
 * A pattern is a path whose `:name` segments match one segment (no `/`),
 * handed to the handler percent-decoded in `params`. No two routes of the
 * table match one request, so their order does not matter.
 */

import type * as http from 'node:http'
import type { SwitchdView } from '../view'
import { HttpError } from './http'

/** One request, as a handler gets it. */
export interface ApiRequest {
  readonly req: http.IncomingMessage
  readonly res: http.ServerResponse
  readonly server: SwitchdView
  readonly method: string
  readonly path: string
  /** The query (`?network=…`). */
  readonly q: URLSearchParams
  /** The pattern's `:name` segments, percent-decoded. */
  readonly params: Readonly<Record<string, string>>
}

export interface Route {
  readonly method: 'GET' | 'POST' | 'DELETE'
  /** `/api/v1/fdb`, or a pattern: `/api/v1/ports/:port/condition`. */
  readonly path: string
  /** Answers the request (send()), or throws HttpError or NameError (handleApi answers those). */
  readonly handler: (r: ApiRequest) => void | Promise<void>
}

interface Compiled { readonly route: Route, readonly re: RegExp, readonly names: readonly string[] }

/** The table, its patterns compiled once; find() is the dispatcher's lookup. */
export class RouteTable {
  private readonly compiled: readonly Compiled[]

  constructor (readonly routes: readonly Route[]) {
    this.compiled = routes.map((route) => {
      const names: string[] = []
      const source = route.path.split('/').map((seg) => {
        if (!seg.startsWith(':')) return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
        names.push(seg.slice(1))
        return '([^/]+)'
      }).join('/')
      return { route, re: new RegExp(`^${source}$`), names }
    })
  }

  /**
   * The route for `method` and `path`, with its params; undefined if none.
   * A param that is not valid percent-encoding is the client's mistake: 400, never a 500.
   */
  find (method: string, path: string): { route: Route, params: Record<string, string> } | undefined {
    for (const c of this.compiled) {
      if (c.route.method !== method) continue
      const m = c.re.exec(path)
      if (m === null) continue
      const params: Record<string, string> = {}
      c.names.forEach((name, i) => { params[name] = decodeParam(name, m[i + 1] as string) })
      return { route: c.route, params }
    }
    return undefined
  }
}

function decodeParam (name: string, raw: string): string {
  try {
    return decodeURIComponent(raw)
  } catch {
    throw new HttpError(400, `the ${name} in the path is not valid percent-encoding (${raw.slice(0, 64)}): encode the name as UTF-8, e.g. with encodeURIComponent`)
  }
}
