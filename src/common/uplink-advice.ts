/**
 * What an uplink's failures mean to the person running it, and how long to
 * wait before the next attempt. Pure: uplink.ts logs and schedules with it.
 *
 * Most failures pass by themselves (switchd restarting, the network down):
 * the uplink retries on its usual backoff, min..reconnectMax. Some never do
 * until a person changes something: switchd refuses the token (401, 403),
 * the path (404), the subprotocol (400) or the Host (421), refuses the port
 * at its hello (close 1008 policy or 4002 bad hello, before the welcome), or
 * the TLS certificate fails verification. Those are refusals: after
 * REFUSALS_BEFORE_SLOW in a row the uplink says so once, at error, with the
 * fix, and retries every REFUSED_MIN..REFUSED_MAX seconds instead of hammering
 * a switch that will say no (and filling its log with connection_rejected).
 * A welcome resets the count.
 */

import {
  CLOSE_GOING_AWAY, CLOSE_PROTOCOL_ERROR, CLOSE_POLICY, CLOSE_HELLO_TIMEOUT, CLOSE_BAD_HELLO,
  CLOSE_DEAD_PEER, CLOSE_NOT_READING, CLOSE_BPDU_GUARD, CLOSE_TOO_BIG, CLOSE_DRAINING
} from './protocol'

/** Refusals in a row after which the uplink says so at error and slows down. */
export const REFUSALS_BEFORE_SLOW = 3
/** Slow retries after refusals: from this many seconds, doubling… */
export const REFUSED_MIN = 30
/** …up to this many. */
export const REFUSED_MAX = 300

/** Why an attempt failed, when retrying the same way cannot help: what to say, once. */
export interface Refusal {
  kind: 'token' | 'path' | 'protocol' | 'host' | 'policy' | 'tls'
  /** One line naming the cause and the fix. */
  message: string
}

/** Where the uplink's token and CA come from, for the hints: flags and variables (tap-agent) or switchd's trunk settings. */
export interface UplinkSources { url: string, token: string, ca: string }
export const AGENT_SOURCES: UplinkSources = { url: '--url', token: '--token or TAP_AGENT_TOKEN', ca: '--ca FILE' }
export const TRUNK_SOURCES: UplinkSources = {
  url: 'the trunk\'s URL (--uplink, or "url" in its trunks entry)',
  token: 'the trunk\'s token (--uplink-token, or "token" in its trunks entry)',
  ca: '--uplink-ca FILE (or "ca" in its trunks entry)'
}

/** The HTTP status of a refused upgrade (ws: "Unexpected server response: 401"), or undefined. */
export function upgradeStatus (err: Error): number | undefined {
  const m = /Unexpected server response: (\d{3})/.exec(err.message)
  return m === null ? undefined : Number(m[1])
}

function hostOf (url: string): string {
  try { return new URL(url).host } catch { return url }
}

function hostnameOf (url: string): string {
  try { return new URL(url).hostname } catch { return url }
}

const TLS_UNTRUSTED = /SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/

/**
 * What to do about an error on an uplink's connection, in words. Never
 * empty: every failure a person can act on names the fix, and the others
 * say what the uplink does about them.
 */
export function uplinkHint (err: Error & { code?: string }, url: string, sources = AGENT_SOURCES): string {
  const code = err.code ?? ''
  const host = hostOf(url)
  const status = upgradeStatus(err)
  if (TLS_UNTRUSTED.test(code)) return `the switch's certificate is not trusted: pass its CA with ${sources.ca}`
  if (code === 'CERT_HAS_EXPIRED') return 'the switch\'s certificate has expired: renew it (switchd reloads it on SIGHUP)'
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `the switch's certificate does not name this host: use the name it was issued for in ${sources.url}`
  if (code === 'EPROTO' || code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number|packet length too long/.test(err.message)) {
    return `${host} does not speak TLS: use ws:// rather than wss:// (or give switchd --tls-cert and --tls-key)`
  }
  if (status === 401) return `switchd refuses the token: check ${sources.token} (a token in switchd's tokens file)`
  if (status === 403) return `this token is not for the network in ${sources.url}: connect to /net/NAME of the token's network, or use a token for this one`
  if (status === 404) return 'switchd has no such network or path: use / (the default network) or /net/NAME of a configured network'
  if (status === 400) return 'switchd refused the handshake: run the same tapswitch version on both ends'
  if (status === 421) return `switchd does not accept the host name ${host}: use its IP address, or add the name to switchd's --allowed-hosts`
  if (status === 429) return 'switchd has as many ports from this address as it allows (limits.maxPortsPerAddress): retrying'
  if (status === 503) return 'switchd is at its port limit, shutting down or draining: retrying'
  if (status !== undefined) return `not a tapswitch switchd at ${host}? (HTTP ${status}): check the host and port in ${sources.url}`
  if (code === 'ECONNREFUSED') return `nothing listens at ${host}: start switchd there, or fix the host and port in ${sources.url} (switchd's --listen)`
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `cannot resolve ${hostnameOf(url)}: check the host name in ${sources.url}, or use an IP address`
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return `no route to ${host}: check the address in ${sources.url} and this host's network`
  if (code === 'ETIMEDOUT' || /handshake has timed out/.test(err.message)) return `no answer from ${host} in time: check the host and port in ${sources.url}, and any firewall between`
  if ((code === 'ECONNRESET' || /socket hang up/.test(err.message)) && url.startsWith('ws:')) return `the connection was cut: if switchd serves TLS, use wss:// in ${sources.url}`
  return 'the network or switchd failed: retrying with backoff'
}

/** Whether an error on an upgrade is a refusal (see the header), and what to say about it. */
export function refusalOfError (err: Error & { code?: string }, url: string, sources = AGENT_SOURCES): Refusal | undefined {
  const status = upgradeStatus(err)
  const code = err.code ?? ''
  const message = uplinkHint(err, url, sources)
  if (status === 401 || status === 403) return { kind: 'token', message }
  if (status === 404) return { kind: 'path', message }
  if (status === 400) return { kind: 'protocol', message }
  if (status === 421) return { kind: 'host', message }
  if (TLS_UNTRUSTED.test(code) || code === 'CERT_HAS_EXPIRED' || code === 'ERR_TLS_CERT_ALTNAME_INVALID') return { kind: 'tls', message }
  return undefined
}

/** A close before the welcome that retrying will not change: switchd's policy refused the hello, or could not read it. */
export function refusalOfClose (code: number, reason: string): Refusal | undefined {
  if (code === CLOSE_POLICY) return { kind: 'policy', message: `switchd refuses this port: ${reason === '' ? 'its policy' : reason}` }
  if (code === CLOSE_BAD_HELLO) return { kind: 'protocol', message: `switchd cannot read our hello (${reason}): run the same tapswitch version on both ends` }
  return undefined
}

/** What a close code from switchd means, and the fix where there is one. */
export function closeHint (code: number): string {
  switch (code) {
    case CLOSE_GOING_AWAY: return 'switchd is shutting down or sent us away: reconnecting (to the next URL, if several)'
    case CLOSE_POLICY: return 'switchd closed the port on purpose (the reason says why: an operator, a configuration change, port security)'
    case CLOSE_PROTOCOL_ERROR: return 'switchd found a protocol error: run the same tapswitch version on both ends'
    case CLOSE_TOO_BIG: return 'a message over the protocol\'s limit: run the same tapswitch version on both ends'
    case CLOSE_HELLO_TIMEOUT: return 'our hello came too late: a loaded host or a slow link; retrying'
    case CLOSE_BAD_HELLO: return 'switchd cannot read our hello: run the same tapswitch version on both ends'
    case CLOSE_DEAD_PEER: return 'no keepalive in time: the link or one of the hosts stalled; reconnecting'
    case CLOSE_NOT_READING: return 'this agent did not read what switchd sent for a whole keepalive round: is the host overloaded? reconnecting'
    case CLOSE_DRAINING: return 'this replica is draining (switchctl drain, SIGTERM): reconnecting at once, through the balancer or to the next URL'
    case CLOSE_BPDU_GUARD: return 'a bridge behind this port sent spanning-tree BPDUs: connect it as a trunk (a token with "trunk": true), or turn STP off on it'
    case 1006: return 'the connection broke without a close: the network or switchd; reconnecting'
    default: return 'reconnecting'
  }
}

/**
 * Seconds before the next attempt. `attempt` counts failures since the last
 * welcome, `refusals` the refusals among them; `random` is in [0, 1).
 * Usually full jitter over min..min·2^attempt (at most max), never below
 * min; after REFUSALS_BEFORE_SLOW refusals, REFUSED_MIN doubling per further
 * refusal up to REFUSED_MAX (or max, if larger), with half jitter: never
 * less than half, so a refused uplink never drops back to a fast loop.
 */
export function reconnectDelay (attempt: number, refusals: number, min: number, max: number, random: number,
  refusedMin = REFUSED_MIN, refusedMax = REFUSED_MAX): number {
  if (refusals >= REFUSALS_BEFORE_SLOW) {
    const ceiling = Math.max(max, Math.min(refusedMax, refusedMin * 2 ** (refusals - REFUSALS_BEFORE_SLOW)))
    return ceiling / 2 + random * ceiling / 2
  }
  const ceiling = Math.min(max, min * 2 ** attempt)
  return min + random * Math.max(0, ceiling - min)
}

/** Least seconds between two reconnects at once after drains (4006). */
export const DRAIN_AGAIN_MIN = 10

/**
 * Whether the next attempt goes at once, with no backoff: the switch closed
 * an uplink that was up with 4006 (it drains; another replica takes us), and
 * the last such reconnect was at least DRAIN_AGAIN_MIN seconds ago. A switch
 * that welcomes and drains in a loop gets the usual backoff from the second
 * time on, so it cannot make us reconnect in a tight loop.
 */
export function reconnectAtOnce (code: number, wasUp: boolean, secondsSinceLastAtOnce: number): boolean {
  return code === CLOSE_DRAINING && wasUp && secondsSinceLastAtOnce >= DRAIN_AGAIN_MIN
}

/**
 * switchd's side of a failed TLS handshake (tls_handshake_failed): what the
 * client most likely got wrong, for the operator to pass on.
 */
export function tlsClientHint (err: Error & { code?: string }): string {
  const text = `${err.code ?? ''} ${err.message}`
  if (/HTTP_REQUEST|http request/i.test(text)) return 'the client spoke plain ws:// or http:// to this TLS port: it should use wss:// or https://'
  if (/UNKNOWN_CA|unknown ca|CERTIFICATE_UNKNOWN|certificate unknown|BAD_CERTIFICATE/i.test(text)) return 'the client does not trust this certificate: give it the CA (tap-agent --ca, a trunk\'s "ca")'
  if (/WRONG_VERSION|UNSUPPORTED_PROTOCOL|NO_SHARED_CIPHER|no shared cipher|VERSION_TOO_LOW/i.test(text)) return 'no TLS version or cipher in common: update the client'
  if (/ECONNRESET|socket hang up/.test(text)) return 'the client left during the handshake (often: it does not trust this certificate)'
  return 'a client could not complete TLS with this certificate'
}
