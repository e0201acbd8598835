/**
 * The deployment quick start (docs/DEPLOYMENT.md, the block marked deploy-quickstart) works as written:
 * its steps run as pasted, in a sandbox of their own (test/helpers/doc-examples.ts: network, mount and
 * PID namespaces, so port 8080 is the sandbox's), with two changes a test must make: /etc/tapswitch and
 * /etc/systemd/system are directories of a temporary folder, and `systemctl enable --now switchd` is
 * done the way the installed unit says (its EnvironmentFile= read by root, its ExecStart= run as an
 * unprivileged user with no capability, as DynamicUser= and the empty CapabilityBoundingSet= do).
 * Then: /healthz answers, the API refuses a request without the admin token from the env step and takes
 * it with it (the doc's own switchctl step), and an agent with the doc's agent token joins network lab.
 */
import { strict as assert } from 'node:assert'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { requireRoot } from '../helpers/root'
import { requireTools, requireCheckoutReadableBy } from '../helpers/proc'
import { ROOT, examplesIn, runGroup, type Example } from '../helpers/doc-examples'

const DOC = 'docs/DEPLOYMENT.md'
const UNIT = path.join(ROOT, 'deploy', 'systemd', 'switchd.service')

/** The unit's `Key=value` lines (the last of each key). */
function unitKeys (text: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const l of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(l)
    if (m !== null) out.set(m[1] as string, m[2] as string)
  }
  return out
}

describe('deploy: the quick start in docs/DEPLOYMENT.md starts switchd as written', function () {
  this.timeout(120_000)
  let tmp: string

  before(function () {
    requireRoot(this)
    requireTools(this, [{ cmd: 'unshare', pkg: 'util-linux' }, { cmd: 'setpriv', pkg: 'util-linux' }, { cmd: 'openssl', pkg: 'openssl' }, { cmd: 'curl', pkg: 'curl' }])
    requireCheckoutReadableBy(this, ROOT)
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-starter-'))
    fs.chmodSync(tmp, 0o755)
    fs.mkdirSync(path.join(tmp, 'systemd'))
  })
  after(() => { if (tmp !== undefined) fs.rmSync(tmp, { recursive: true, force: true }) })

  it('copies the starter configuration, writes the tokens, and switchd answers with them', async () => {
    const doc = examplesIn(fs.readFileSync(path.join(ROOT, DOC), 'utf8'), DOC).find((e) => e.name === 'deploy-quickstart')
    assert.ok(doc !== undefined, `${DOC} has no example marked deploy-quickstart`)
    const etc = path.join(tmp, 'etc', 'tapswitch')
    const keys = unitKeys(fs.readFileSync(UNIT, 'utf8'))
    const envFile = (keys.get('EnvironmentFile') ?? '').replace(/^-/, '').replace('/etc/tapswitch', etc)
    const exec = (keys.get('ExecStart') ?? '').replace(/^\/usr\/bin\/switchd\b/, 'switchd').replaceAll('/etc/tapswitch', etc)
    assert.match(exec, /^switchd /, 'the unit runs /usr/bin/switchd')
    const start = `( set -a && . ${envFile} && set +a && STATE_DIRECTORY=${tmp}/state exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all ${exec} ) > ${tmp}/switchd.log 2>&1 &`
    let started = 0
    const body = doc.body.split('\n').map((l) => {
      if (/\bsystemctl enable --now switchd\b/.test(l)) { started++; return start }
      return l.replaceAll('/etc/systemd/system/', `${tmp}/systemd/`).replaceAll('/etc/tapswitch', etc)
    }).join('\n')
    assert.equal(started, 1, 'the quick start starts switchd with systemctl enable --now switchd')
    const checks = [
      // Without the admin token the API is refused; the doc's own step showed it is taken with it.
      'test "$(curl -s -o /dev/null -w %{http_code} http://127.0.0.1:8080/api/v1/networks)" = 401',
      // An agent with the doc's agent token joins network lab (a TAP in the sandbox's own namespace).
      'TAP_AGENT_TOKEN=$agent_token tap-agent --url ws://127.0.0.1:8080/net/lab --tap lab0 --name agent-1 > /dev/null 2>&1 &',
      `(. ${envFile} && SWITCHCTL_TOKEN=$SWITCHD_ADMIN_TOKEN switchctl ports --network lab) | grep -q '^agent-1 '`
    ]
    const example: Example = { ...doc, body: `${body}\n${checks.join('\n')}`, opts: new Map([['cwd', 'repo'], ['retry', ''], ['timeout', '60']]) }
    const r = await runGroup([example])
    assert.equal(r.failure, undefined, `${r.failure ?? ''}\n--- switchd:\n${readOr(path.join(tmp, 'switchd.log'))}`)
    // What the steps left: the unit as shipped, the secrets readable by root only, the starter as shipped.
    assert.equal(fs.readFileSync(path.join(tmp, 'systemd', 'switchd.service'), 'utf8'), fs.readFileSync(UNIT, 'utf8'))
    assert.equal(fs.statSync(path.join(etc, 'switchd.env')).mode & 0o777, 0o600)
    assert.match(fs.readFileSync(path.join(etc, 'switchd.env'), 'utf8'), /^SWITCHD_ADMIN_TOKEN=[0-9a-f]{64}\n$/)
    assert.equal(fs.readFileSync(path.join(etc, 'switchd.json'), 'utf8'), fs.readFileSync(path.join(ROOT, 'deploy', 'switchd.starter.json'), 'utf8'))
  })
})

function readOr (file: string): string {
  try { return fs.readFileSync(file, 'utf8') } catch { return '' }
}
