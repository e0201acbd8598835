/**
 * Client tokens: the one parser of a token list, whether it is written in the
 * configuration (`tokens`) or in its own file (`tokensFile`, `--tokens`, the
 * file SIGHUP rereads), and the one rule for what a token looks like, for
 * client tokens and the admin token alike.
 *
 * Tokens are kept by their SHA-256 digest (auth.ts compares digests); a list
 * may give either the token or its digest, so a tokens file need not hold a
 * secret.
 */

import * as path from 'node:path'
import { Reader, readJsonFile, type Obj } from './reader'
import { NETWORK_NAME, PORT_KEYS } from './types'
import { readPolicy } from './profiles'
import { sha256Hex, type TokenGrant } from '../auth'
import { parseMac, macAt } from '../../../common/ethernet'
import { NAME_PATTERN } from '../../../common/protocol'
import type { PortPolicy } from '../../core/port'

/** A token (client or admin): long enough not to be guessed, no spaces (it travels in a header). */
export const TOKEN_PATTERN = /^\S{16,}$/

const TOKEN_KEYS = ['id', 'token', 'sha256', 'network', 'name', 'macs', 'rate', 'trunk', 'rootGuard', ...PORT_KEYS]

/**
 * The client tokens of a configuration read from `source`: its `tokens` list
 * and then the list in `tokensFile` (relative to the configuration's folder;
 * a --tokens flag wins over the key), checked as one: no token twice, no id
 * twice, across both.
 */
export function readTokenLists (r: Reader, inline: unknown, tokensFile: string | undefined, defaultPolicy: PortPolicy): Map<string, TokenGrant> {
  const tokens = new Map<string, TokenGrant>()
  const ids = new Map<string, string>()
  readTokens(r, inline, 'tokens', defaultPolicy, tokens, ids)
  if (tokensFile !== undefined) {
    const file = path.resolve(path.dirname(r.source.startsWith('(') ? '.' : r.source), tokensFile)
    readTokens(new Reader(file), readJsonFile(file, 'tokensFile', r.source), 'tokens', defaultPolicy, tokens, ids)
  }
  return tokens
}

function readTokens (r: Reader, v: unknown, key: string, defaultPolicy: PortPolicy, into: Map<string, TokenGrant>, ids: Map<string, string>): void {
  if (v === undefined) return
  if (!Array.isArray(v)) r.fail(key, 'expected a list of {id, token | sha256, network?, name?, macs?, rate?, …port policy}')
  v.forEach((t: unknown, i: number) => {
    const k = `${key}[${i}]`
    const o = r.object(t, k, TOKEN_KEYS)
    let digest: string
    if (o.token !== undefined) {
      digest = sha256Hex(r.str(o.token, `${k}.token`, TOKEN_PATTERN, undefined, 'at least 16 characters without spaces (e.g. openssl rand -hex 32)') as string)
    } else if (o.sha256 !== undefined) {
      digest = (r.str(o.sha256, `${k}.sha256`, /^[0-9a-fA-F]{64}$/, undefined, 'the token\'s SHA-256 as 64 hex digits') as string).toLowerCase()
    } else {
      r.fail(k, 'needs token or sha256')
    }
    if (into.has(digest)) r.fail(k, 'the same token twice')
    // Not the list position: removing an earlier token must not hand this one's id (and logs, resume) to another.
    const id = r.str(o.id, `${k}.id`, /^[A-Za-z0-9._:@-]{1,64}$/, `sha256:${digest.slice(0, 12)}`, 'a short name for logs') as string
    const where = `${r.source}: ${k}`
    const other = ids.get(id)
    if (other !== undefined) r.fail(`${k}.id`, `"${id}" is also the id of ${other}: give each token its own id`)
    ids.set(id, where)
    const hasPolicy = PORT_KEYS.some((pk) => o[pk] !== undefined)
    const policyFields: Obj = {}
    for (const pk of PORT_KEYS) if (o[pk] !== undefined) policyFields[pk] = o[pk]
    let macs: Set<number> | undefined
    if (o.macs !== undefined) {
      if (!Array.isArray(o.macs) || o.macs.length === 0) r.fail(`${k}.macs`, 'expected a non-empty list of MACs')
      macs = new Set((o.macs as unknown[]).map((m, j) => {
        const b = typeof m === 'string' ? parseMac(m) : undefined
        if (b === undefined) r.fail(`${k}.macs[${j}]`, 'expected a MAC like 02:00:00:00:00:01')
        return macAt(b, 0)
      }))
    }
    into.set(digest, Object.freeze({
      id,
      digest,
      network: r.str(o.network, `${k}.network`, NETWORK_NAME, undefined, 'a network name'),
      name: r.str(o.name, `${k}.name`, NAME_PATTERN, undefined, 'a port name'),
      policy: hasPolicy ? readPolicy(r, policyFields, k, defaultPolicy) : undefined,
      macs,
      rate: r.int(o.rate, `${k}.rate`, 0, 100_000_000_000, 0),
      trunk: r.bool(o.trunk, `${k}.trunk`, false),
      rootGuard: r.bool(o.rootGuard, `${k}.rootGuard`, false)
    }))
  })
}
