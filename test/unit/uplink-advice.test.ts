import assert from 'node:assert/strict'
import {
  uplinkHint, refusalOfError, refusalOfClose, closeHint, reconnectDelay, reconnectAtOnce, upgradeStatus,
  DRAIN_AGAIN_MIN, REFUSALS_BEFORE_SLOW, REFUSED_MIN, REFUSED_MAX, TRUNK_SOURCES, tlsClientHint
} from '../../src/common/uplink-advice'
import { CLOSE_POLICY, CLOSE_BAD_HELLO, CLOSE_BPDU_GUARD, CLOSE_NOT_READING, CLOSE_GOING_AWAY, CLOSE_HELLO_TIMEOUT, CLOSE_DRAINING } from '../../src/common/protocol'

const URL_ = 'ws://switch.example:8080/net/lab'

function err (code: string | undefined, message = code ?? ''): Error & { code?: string } {
  const e = new Error(message) as Error & { code?: string }
  if (code !== undefined) e.code = code
  return e
}
const http = (status: number): Error => new Error(`Unexpected server response: ${status}`)

describe('uplink advice', () => {
  it('names the fix for each failure a person can act on: never an empty hint', () => {
    const cases: Array<[Error & { code?: string }, RegExp]> = [
      [err('ECONNREFUSED'), /nothing listens at switch\.example:8080: start switchd there/],
      [err('ETIMEDOUT'), /no answer from switch\.example:8080.*firewall/],
      [new Error('Opening handshake has timed out'), /no answer from/],
      [err('ENOTFOUND'), /cannot resolve switch\.example: check the host name/],
      [err('EAI_AGAIN'), /cannot resolve/],
      [err('EHOSTUNREACH'), /no route to/],
      [err('SELF_SIGNED_CERT_IN_CHAIN'), /not trusted: pass its CA with --ca FILE/],
      [err('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), /not trusted/],
      [err('CERT_HAS_EXPIRED'), /expired: renew it/],
      [err('ERR_TLS_CERT_ALTNAME_INVALID'), /does not name this host/],
      [err('EPROTO', 'write EPROTO 40:error:0A00010B:SSL routines:ssl3_get_record:wrong version number'), /does not speak TLS: use ws:\/\//],
      [http(401), /switchd refuses the token: check --token or TAP_AGENT_TOKEN/],
      [http(403), /not for the network in --url/],
      [http(404), /no such network or path: use \/ .* or \/net\/NAME/],
      [http(421), /add the name to switchd's --allowed-hosts/],
      [http(429), /maxPortsPerAddress/],
      [http(503), /port limit, shutting down or draining/],
      [http(502), /not a tapswitch switchd at switch\.example:8080\? \(HTTP 502\)/],
      [err('ECONNRESET'), /use wss:\/\//],
      [err('EPIPE'), /retrying with backoff/],
      [err('ENOTFOUND'), /check the host name in --url/]
    ]
    for (const [e, want] of cases) {
      const hint = uplinkHint(e, URL_)
      assert.notEqual(hint, '', e.message)
      assert.match(hint, want, `${e.code ?? e.message}: ${hint}`)
    }
  })

  it('names a trunk\'s own settings, not tap-agent\'s flags', () => {
    assert.match(uplinkHint(http(401), URL_, TRUNK_SOURCES), /--uplink-token/)
    assert.match(uplinkHint(err('SELF_SIGNED_CERT_IN_CHAIN'), URL_, TRUNK_SOURCES), /--uplink-ca/)
  })

  it('reads the status of a refused upgrade', () => {
    assert.equal(upgradeStatus(http(401)), 401)
    assert.equal(upgradeStatus(err('ECONNREFUSED')), undefined)
  })

  it('counts as refusals only what retrying cannot change', () => {
    for (const s of [401, 403]) assert.equal(refusalOfError(http(s), URL_)?.kind, 'token')
    assert.equal(refusalOfError(http(404), URL_)?.kind, 'path')
    assert.equal(refusalOfError(http(400), URL_)?.kind, 'protocol')
    assert.equal(refusalOfError(http(421), URL_)?.kind, 'host')
    assert.equal(refusalOfError(err('CERT_HAS_EXPIRED'), URL_)?.kind, 'tls')
    for (const e of [http(429), http(503), err('ECONNREFUSED'), err('ETIMEDOUT'), err('ENOTFOUND'), err('ECONNRESET')]) {
      assert.equal(refusalOfError(e, URL_), undefined, e.message)
    }
    assert.match(refusalOfError(http(401), URL_)?.message ?? '', /^switchd refuses the token: check --token or TAP_AGENT_TOKEN/)
    assert.deepEqual(refusalOfClose(CLOSE_POLICY, 'this token may not connect a trunk (give it "trunk": true)'),
      { kind: 'policy', message: 'switchd refuses this port: this token may not connect a trunk (give it "trunk": true)' })
    assert.equal(refusalOfClose(CLOSE_BAD_HELLO, 'bad')?.kind, 'protocol')
    for (const c of [1000, 1006, CLOSE_GOING_AWAY, CLOSE_HELLO_TIMEOUT]) assert.equal(refusalOfClose(c, ''), undefined, String(c))
  })

  it('says what a close code means', () => {
    assert.match(closeHint(CLOSE_BPDU_GUARD), /connect it as a trunk/)
    assert.match(closeHint(CLOSE_NOT_READING), /did not read/)
    assert.match(closeHint(CLOSE_GOING_AWAY), /next URL/)
    assert.match(closeHint(CLOSE_DRAINING), /draining.*at once/)
    assert.notEqual(closeHint(4999), '')
  })

  it('reconnects at once when an uplink that was up is closed with 4006 (draining), and for nothing else', () => {
    assert.equal(CLOSE_DRAINING, 4006)
    assert.equal(reconnectAtOnce(CLOSE_DRAINING, true, Infinity), true)
    for (const c of [1000, 1001, 1006, CLOSE_POLICY, CLOSE_NOT_READING]) assert.equal(reconnectAtOnce(c, true, Infinity), false, String(c))
    assert.equal(reconnectAtOnce(CLOSE_DRAINING, false, Infinity), false, 'a 4006 before the welcome is a refusal like any other')
    assert.equal(reconnectAtOnce(CLOSE_DRAINING, true, DRAIN_AGAIN_MIN), true)
  })

  it('attack: a switch that welcomes and drains (4006) in a loop gets the usual backoff from the second time on, not a tight reconnect loop', () => {
    assert.equal(reconnectAtOnce(CLOSE_DRAINING, true, 0), false)
    assert.equal(reconnectAtOnce(CLOSE_DRAINING, true, DRAIN_AGAIN_MIN - 0.001), false)
  })

  it('backs off as usual: full jitter over min..min·2^attempt, at most max', () => {
    assert.equal(reconnectDelay(0, 0, 0.25, 5, 0), 0.25)
    assert.equal(reconnectDelay(0, 0, 0.25, 5, 0.999), 0.25, 'the first ceiling is the minimum')
    assert.equal(reconnectDelay(2, 0, 0.25, 5, 1), 1)
    assert.equal(reconnectDelay(10, 0, 0.25, 5, 1), 5)
    assert.equal(reconnectDelay(10, REFUSALS_BEFORE_SLOW - 1, 0.25, 5, 1), 5, 'two refusals: still the usual backoff')
  })

  it('after repeated refusals waits 30 s doubling to 5 min, never less than half', () => {
    const n = REFUSALS_BEFORE_SLOW
    assert.equal(reconnectDelay(3, n, 0.25, 5, 0), REFUSED_MIN / 2)
    assert.equal(reconnectDelay(3, n, 0.25, 5, 1), REFUSED_MIN)
    assert.equal(reconnectDelay(4, n + 1, 0.25, 5, 1), 2 * REFUSED_MIN)
    assert.equal(reconnectDelay(50, n + 50, 0.25, 5, 1), REFUSED_MAX)
    assert.equal(reconnectDelay(50, n + 50, 0.25, 5, 0), REFUSED_MAX / 2)
    assert.equal(reconnectDelay(50, n + 50, 0.25, 3600, 1), 3600, 'a longer --reconnect-max still holds')
    assert.equal(reconnectDelay(3, n, 0.05, 0.2, 1, 0.5, 1), 0.5, 'bounds given (tests)')
    for (let r = n; r < n + 20; r++) assert.ok(reconnectDelay(r, r, 0.25, 5, 0) >= REFUSED_MIN / 2)
  })

  it('tells switchd\'s operator what a client got wrong in a failed TLS handshake', () => {
    assert.match(tlsClientHint(err('ERR_SSL_HTTP_REQUEST', 'http request')), /plain ws:\/\/ or http:\/\/ to this TLS port/)
    assert.match(tlsClientHint(err('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'alert unknown ca')), /does not trust this certificate: give it the CA/)
    assert.match(tlsClientHint(err('ECONNRESET')), /left during the handshake/)
    assert.notEqual(tlsClientHint(err(undefined, 'something else')), '')
  })
})
