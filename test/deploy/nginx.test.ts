/**
 * deploy/nginx/tapswitch.conf, the balancer: nginx itself accepts it (nginx -t
 * on a copy rendered with test replicas, everything else as shipped, in a
 * prefix of the test's own), a broken copy is refused (so the check can fail),
 * and it says what the design needs: the consistent hash of $uri, the next
 * upstream on a refusal or a draining replica's 503, WebSocket upgrades, long
 * timeouts, and nothing proxied but /net/<name>. test/integration/balancer.test.ts
 * runs it in front of real switchd.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import * as YAML from 'yaml'
import { requireTools } from '../helpers/proc'
import { NGINX_CONF, writeConf, nginxCheck, renderTapswitchConf, mainConf } from '../helpers/balancer'
import { networkFromPath } from '../../src/switch/control/networks'

const text = fs.readFileSync(NGINX_CONF, 'utf8')
/** The file without its comments. */
const code = text.split('\n').map((l) => l.replace(/#.*$/, '').trimEnd()).filter((l) => l.trim() !== '').join('\n')
/** The body of the block that opens with `head` (no nested braces inside the blocks we read). */
function block (head: RegExp): string {
  const m = new RegExp(head.source + '\\s*\\{([^}]*)\\}').exec(code)
  assert.ok(m !== null, `no block ${head.source} in deploy/nginx/tapswitch.conf`)
  return m[1] as string
}

describe('deploy: nginx, the balancer (deploy/nginx/tapswitch.conf)', function () {
  let prefix: string
  before(function () {
    requireTools(this, [{ cmd: 'nginx', pkg: 'nginx' }])
    prefix = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-nginx-t-'))
  })
  after(() => { if (prefix !== undefined) fs.rmSync(prefix, { recursive: true, force: true }) })

  it('passes nginx -t as shipped (its replicas and port replaced by a test\'s), and a broken copy does not', () => {
    const conf = writeConf(prefix, ['127.0.0.1:18081', '127.0.0.1:18082'], '127.0.0.1:18080')
    const ok = nginxCheck(prefix, conf)
    assert.equal(ok.status, 0, ok.out)
    const rendered = fs.readFileSync(path.join(prefix, 'tapswitch.conf'), 'utf8')
    assert.equal(rendered.split('\n').length, text.split('\n').length - 1, 'only the server and listen lines change')
    for (const [bad, why] of [['hash $uri consistent;', 'hash $uri consistant;'], ['proxy_next_upstream error', 'proxy_next_upstream eror']]) {
      const file = path.join(prefix, 'broken.conf')
      fs.writeFileSync(file, rendered.replace(bad as string, why as string))
      const main = path.join(prefix, 'broken-main.conf')
      fs.writeFileSync(main, mainConf(prefix, file))
      assert.notEqual(nginxCheck(prefix, main).status, 0, `nginx -t accepted ${why as string}`)
    }
  })

  it('hashes $uri consistently onto the replicas, none ever taken out of the ring (a failed attempt goes to the next replica)', () => {
    const up = block(/upstream switchd/)
    assert.match(up, /^\s*hash \$uri consistent;$/m)
    const servers = [...up.matchAll(/^\s*server (\S+)(.*);$/gm)]
    assert.ok(servers.length >= 2, 'at least two replicas')
    for (const s of servers) {
      // max_fails=1 marked replicas failed for good in a rolling restart (a trial that becomes a WebSocket never clears the mark).
      assert.match(s[2] as string, /\bmax_fails=0\b/, s[0])
    }
    // The renderer keeps the options of the shipped lines.
    assert.match(renderTapswitchConf(['10.0.0.1:1'], '1'), /server 10\.0\.0\.1:1 max_fails=0;/)
  })

  it('proxies only /net/<name>, as WebSocket upgrades with hour-long timeouts, to the next replica on an error, a timeout, a 502 or a 503', () => {
    const locations = [...code.matchAll(/location (~ )?(\S+)\s*\{([^}]*)\}/g)]
    const proxied = locations.filter((l) => /proxy_pass http:\/\/switchd;/.test(l[3] as string))
    assert.equal(proxied.length, 1, 'one location proxies')
    const [, regex, pattern, body] = proxied[0] as RegExpMatchArray
    assert.equal(regex, '~ ', 'a regular expression location')
    const routes = (uri: string): boolean => new RegExp(pattern as string).test(uri)
    for (const net of ['/net/lab', '/net/lab/', '/net/default']) {
      assert.ok(routes(net), `${net} is not routed`)
      assert.equal(networkFromPath(net), net.replace(/^\/net\/|\/$/g, ''))
    }
    for (const inside of ['/', '/api/v1/ports', '/api/v1/drain', '/metrics', '/healthz', '/readyz', '/ui/', '/net/lab/extra', '/fleet/v1/state']) {
      assert.equal(routes(inside), false, `${inside} is exposed`)
    }
    // /net/lab/ and /net/lab: one key (the rewrite before the hash).
    const rewrite = /rewrite (\S+) (\S+) break;/.exec(body as string)
    assert.ok(rewrite !== null, 'a rewrite drops the trailing slash')
    assert.equal('/net/lab/'.replace(new RegExp(rewrite[1] as string), (rewrite[2] as string).replace('$1', '$$1')), '/net/lab')
    const b = body as string
    assert.match(b, /proxy_http_version 1\.1;/)
    assert.match(b, /proxy_set_header Upgrade \$http_upgrade;/)
    const conn = /proxy_set_header Connection \$(\w+);/.exec(b)?.[1]
    assert.ok(conn !== undefined && new RegExp(`map \\$http_upgrade \\$${conn}\\s*\\{[^}]*default upgrade;`).test(code), 'Connection: upgrade for an upgrade')
    assert.match(b, /proxy_set_header Host \$host;/)
    // switchd --trusted-proxy takes the header's last entry: nginx must set it to what it saw, not append the client's.
    assert.match(b, /proxy_set_header X-Forwarded-For \$remote_addr;/)
    assert.doesNotMatch(code, /\$proxy_add_x_forwarded_for/)
    assert.deepEqual(/proxy_next_upstream ([^;]*);/.exec(b)?.[1]?.split(/\s+/).sort(), ['error', 'http_502', 'http_503', 'timeout'])
    for (const t of ['proxy_read_timeout', 'proxy_send_timeout']) assert.match(b, new RegExp(`${t} (1h|[1-9]\\d*h|[1-9]\\d{3,}s?);`), t)
    const other = locations.filter((l) => l !== proxied[0])
    for (const l of other) assert.doesNotMatch(l[3] as string, /proxy_pass/)
  })

  it('and the Kubernetes Ingress asks ingress-nginx for the same: the hash of $uri, the same next upstreams', () => {
    const ingress = YAML.parseAllDocuments(fs.readFileSync(path.join(__dirname, '..', '..', 'deploy', 'k8s', 'ingress.yaml'), 'utf8'))
      .map((d) => d.toJS() as { kind: string, metadata: { annotations: Record<string, string> } }).find((d) => d.kind === 'Ingress')
    const a = ingress?.metadata.annotations ?? {}
    assert.equal(a['nginx.ingress.kubernetes.io/upstream-hash-by'], '$uri')
    assert.deepEqual(a['nginx.ingress.kubernetes.io/proxy-next-upstream']?.split(/\s+/).sort(), ['error', 'http_502', 'http_503', 'timeout'])
  })
})
