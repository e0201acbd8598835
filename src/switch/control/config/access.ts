/**
 * Who may reach switchd, and how: TLS, the admin token, the Host names and
 * browser origins it answers (the DNS-rebinding and cross-site guards), the
 * client tokens, and whether it may listen beyond loopback without them
 * (control/exposure.ts checks that last rule once the listeners are known).
 */

import { readList, type Reader, type Obj } from './reader'
import { readTokenLists, TOKEN_PATTERN } from './tokens'
import type { ConfigOverrides, SwitchdConfig, TlsFiles } from './types'
import type { PortPolicy } from '../../core/port'
import { parseTrustedProxies, TRUSTED_PROXY_PATTERN } from '../client-address'

/** The parts of the configuration this file reads. */
export type Access = Pick<SwitchdConfig, 'adminToken' | 'api' | 'allowedHosts' | 'allowedOrigins' | 'trustedProxies' | 'tokens' | 'allowAnonymous' | 'tls'>

/** `adminToken`, `api`, `allowedHosts`, `allowedOrigins`, `trustedProxies`, `tokens`/`tokensFile`, `allowAnonymous` and `tls`, under their flags. */
export function readAccess (r: Reader, top: Obj, overrides: ConfigOverrides, defaultPolicy: PortPolicy): Access {
  const tokensFile = overrides.tokensFile ?? r.str(top.tokensFile, 'tokensFile', /^.+$/, undefined, 'a path')
  const tokens = readTokenLists(r, top.tokens, tokensFile, defaultPolicy)
  const tls = readTls(r, top.tls, overrides)
  const adminToken = overrides.adminToken ?? r.str(top.adminToken, 'adminToken', TOKEN_PATTERN, undefined, 'a token of at least 16 characters without spaces')
  if (overrides.adminToken !== undefined && !TOKEN_PATTERN.test(overrides.adminToken)) r.fail('admin token', 'at least 16 characters without spaces')
  return {
    adminToken,
    api: overrides.api ?? r.bool(top.api, 'api', true),
    allowedHosts: readList(r, top.allowedHosts, overrides.allowedHosts, 'allowedHosts', /^(\*|\.?[A-Za-z0-9]([A-Za-z0-9.-]{0,252}))$/, 'host names like "switch.example.org", ".example.org" (and subdomains) or "*"'),
    allowedOrigins: readList(r, top.allowedOrigins, overrides.allowedOrigins, 'allowedOrigins', /^(\*|https?:\/\/[^/\s]+)$/, 'origins like "http://localhost:8000" (scheme://host[:port], no path) or "*"'),
    trustedProxies: readTrustedProxies(r, top, overrides),
    tokens,
    allowAnonymous: overrides.allowAnonymous ?? r.bool(top.allowAnonymous, 'allowAnonymous', false),
    tls
  }
}

/** `tls` ({cert, key, clientCa}; --tls-cert and --tls-key win): both files or neither. */
function readTls (r: Reader, v: unknown, overrides: ConfigOverrides): TlsFiles | undefined {
  const tlsRaw = v === undefined ? undefined : r.object(v, 'tls', ['cert', 'key', 'clientCa'])
  const tlsCert = overrides.tlsCert ?? r.str(tlsRaw?.cert, 'tls.cert', /^.+$/, undefined, 'a PEM file')
  const tlsKey = overrides.tlsKey ?? r.str(tlsRaw?.key, 'tls.key', /^.+$/, undefined, 'a PEM file')
  if ((tlsCert === undefined) !== (tlsKey === undefined)) r.fail('tls', 'needs both cert and key')
  return tlsCert === undefined ? undefined : Object.freeze({ cert: tlsCert, key: tlsKey as string, clientCa: r.str(tlsRaw?.clientCa, 'tls.clientCa', /^.+$/, undefined, 'a PEM file') })
}

/** `trustedProxies` (--trusted-proxy): CIDR ranges, each checked by the BlockList that will hold it. */
function readTrustedProxies (r: Reader, top: Obj, overrides: ConfigOverrides): readonly string[] {
  const what = 'address ranges of the proxies that set X-Forwarded-For, like "10.0.0.0/8", "fd00::/8" or "127.0.0.1"'
  const list = readList(r, top.trustedProxies, overrides.trustedProxies, 'trustedProxies', TRUSTED_PROXY_PATTERN, what)
  list.forEach((entry, i) => {
    try { parseTrustedProxies([entry]) } catch (err) { r.fail(`trustedProxies[${i}]`, (err as Error).message) }
  })
  return list
}
