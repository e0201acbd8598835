import assert from 'node:assert/strict'
import { parseFlags, parseCli, type Specs } from '../../src/common/cli'
import { editDistance, nearest, listNames, NEAREST_BUDGET } from '../../src/common/suggest'
import { notFound } from '../../src/switch/control/names'
import { parseCommandLine, commandHelp, unknownCommand, COMMAND_FLAGS, OPTIONS } from '../../src/ctl/commands'
import { checkUrl, reachError, notSwitchd } from '../../src/ctl/http'

const FLAGS = { network: { type: 'string' }, json: { type: 'boolean' }, w: { type: 'string', short: 'w' } } as const

/** The one line parseFlags throws for `argv`, or undefined if it parses. */
function usage (argv: string[], how = { prog: 'switchctl', command: 'switchctl ports', allowPositionals: true }): string | undefined {
  try { parseFlags(FLAGS, argv, how); return undefined } catch (err) {
    assert.equal((err as { code?: string }).code, 'TSW_ERR_USAGE')
    return (err as Error).message
  }
}

describe('did you mean (common/suggest.ts)', () => {
  it('measures edits, a swap of two neighbours as one, case aside', () => {
    assert.equal(editDistance('network', 'network'), 0)
    assert.equal(editDistance('netwrok', 'network'), 1)
    assert.equal(editDistance('netwrk', 'network'), 1)
    assert.equal(editDistance('Web1', 'web1'), 0)
    assert.equal(editDistance('', 'abc'), 3)
    assert.equal(editDistance('kitten', 'sitting'), 3)
  })

  it('suggests only a near miss, and only one', () => {
    assert.equal(nearest('wbe1', ['web1', 'db1', 'router']), 'web1')
    assert.equal(nearest('lab2', ['default', 'lab1']), 'lab1')
    assert.equal(nearest('zzz', ['web1', 'db1']), undefined, 'nothing near')
    assert.equal(nearest('web', ['web1', 'web2']), undefined, 'two as near: the list says it')
    assert.equal(nearest('web1', ['web1']), undefined, 'the name itself is no suggestion')
  })

  it('bounds what it compares and what it lists', () => {
    assert.equal(editDistance('a'.repeat(100_000), 'b'.repeat(100_000)), 64)
    const many = Array.from({ length: 30 }, (_, i) => `web${i}`)
    assert.equal(listNames(many), 'web0, web1, web2, web3, web4, web5, web6, web7, web8, web9, web10, web11, … (18 more)')
  })

  it('attack: a 404 on a switchd with 10,000 long port names fills a bounded table (NEAREST_BUDGET cells), then lists without a guess', () => {
    // 10,000 names of 60 characters, none near, then the near miss: reaching it means 10,000 tables of 64 x 60 cells
    // (seconds of switchd's event loop, where frames are forwarded too, with the old sort by localeCompare).
    const far = Array.from({ length: 10_000 }, (_, i) => `${String(i).padStart(5, '0')}-${'q'.repeat(54)}`)
    const name = `port-a-${'x'.repeat(53)}`
    const near = `port-b-${'x'.repeat(53)}`
    assert.equal(nearest(name, [near, ...far.slice(0, 10)]), near, 'a short list: the near miss')
    assert.ok(64 * 60 * 10_000 > NEAREST_BUDGET)
    assert.equal(nearest(name, [...far, near]), undefined, 'beyond the budget: no guess')
    const err = notFound('port', name, `no port "${name}"`, [...far, near], 'ports', 'none')
    assert.equal(err.body().known?.length, 100, 'the body lists at most 100')
    assert.match(err.message, /^no port "port-a-x+" \(ports: 00000-q+, .*, … \(9989 more\)\)$/)
  })
})

describe('command lines (common/cli.ts parseFlags)', () => {
  it('names an unknown option, the near miss and the help, in one line (no node:util text)', () => {
    assert.equal(usage(['--netwrk', 'x']), 'unknown option --netwrk for `switchctl ports` (did you mean --network?); see switchctl ports --help')
    assert.equal(usage(['--frobnicate']), 'unknown option --frobnicate for `switchctl ports`; see switchctl ports --help')
    assert.equal(usage(['-network', 'x']), 'unknown option -network for `switchctl ports` (did you mean --network?); see switchctl ports --help')
    assert.equal(usage(['--lisen', 'x'], { prog: 'switchd', command: undefined as unknown as string, allowPositionals: false }), 'unknown option --lisen; see switchd --help')
    for (const m of [usage(['--x']), usage(['-q'])]) assert.doesNotMatch(m ?? '', /positional|'--'|\n/)
  })

  it('says a value is missing, or not wanted, and what stray argument a program refuses', () => {
    assert.match(usage(['--network']) ?? '', /^option --network needs a value; see switchctl ports --help$/)
    assert.match(usage(['--network', '--json']) ?? '', /^option --network needs a value \(it is followed by --json/)
    assert.match(usage(['--json=yes']) ?? '', /^option --json takes no value/)
    assert.equal(usage(['stray'], { prog: 'switchd', command: undefined as unknown as string, allowPositionals: false }), 'unexpected argument "stray" (switchd takes options only); see switchd --help')
    assert.equal(usage(['--network=-x', '-w', '-', 'pos']), undefined, 'an inline value, "-" for stdout and positionals parse')
  })

  it('gives switchd, tap-agent and tapswitch-lab the same line through parseCli', () => {
    const specs = { listen: { type: 'string', help: 'where' }, help: { type: 'boolean', short: 'h', help: 'help' } } satisfies Specs
    assert.throws(() => parseCli(specs, ['--lisen', 'x'], {}, 'switchd'), { code: 'TSW_ERR_USAGE', message: 'unknown option --lisen (did you mean --listen?); see switchd --help' })
  })
})

describe('switchctl command lines (ctl/commands.ts)', () => {
  it('takes each command\'s own flags only, naming the command', () => {
    assert.deepEqual(parseCommandLine(['ports', '--network', 'lab1']).o.network, 'lab1')
    assert.throws(() => parseCommandLine(['ports', '--mac', '02:00:00:00:00:01']), { exitCode: 2, message: 'unknown option --mac for `switchctl ports`; see switchctl ports --help' })
    assert.throws(() => parseCommandLine(['--netwrk=x', 'fdb']), { exitCode: 2, message: /^unknown option --netwrk for `switchctl fdb` \(did you mean --network\?\)/ })
    assert.throws(() => parseCommandLine(['frobnicate', '--x']), { exitCode: 2, message: 'unknown option --x; see switchctl --help' })
    for (const flags of Object.values(COMMAND_FLAGS)) for (const f of flags) assert.ok(f in OPTIONS, f)
  })

  it('prints one command\'s help, and suggests a command', () => {
    const usageText = 'Usage: x\n\nCommands:\n  port disable NAME     act\n  ports [--network N]   list\n                        more of it\n  fdb                   table\n\nOptions:\n  --url URL   where\n'
    assert.equal(commandHelp(usageText, 'ports'), 'Usage: switchctl [--url URL[,URL…]] [--token TOKEN] [--json] ports [options]\n\n  ports [--network N]   list\n                        more of it\n\nOptions:\n  --url URL   where\n')
    assert.match(commandHelp(usageText, 'port') ?? '', /port disable NAME/)
    assert.doesNotMatch(commandHelp(usageText, 'port') ?? '', /list/)
    assert.equal(unknownCommand('fbd').message, 'unknown command "fbd" (did you mean fdb?); see switchctl --help')
  })
})

describe('switchctl URLs and failures (ctl/http.ts)', () => {
  it('says how to write the URL: ws://, no scheme, another scheme', () => {
    assert.equal(checkUrl('http://127.0.0.1:8080', '--url'), 'http://127.0.0.1:8080')
    assert.equal(checkUrl('', 'SWITCHCTL_URL'), 'http://127.0.0.1:8080', 'empty is as unset')
    assert.throws(() => checkUrl('ws://127.0.0.1:8080/', '--url'), { exitCode: 2, message: /^--url ws:\/\/127\.0\.0\.1:8080\/: .*use http:\/\/127\.0\.0\.1:8080\/$/ })
    assert.throws(() => checkUrl('wss://switch.example/', 'SWITCHCTL_URL'), { message: /^SWITCHCTL_URL=wss:\/\/switch\.example\/: .*use https:\/\/switch\.example\/$/ })
    assert.throws(() => checkUrl('127.0.0.1:8080', '--url'), { message: /no scheme: use http:\/\/127\.0\.0\.1:8080 / })
    assert.throws(() => checkUrl('localhost:8080', '--url'), { message: /no scheme: use http:\/\/localhost:8080 / })
    assert.throws(() => checkUrl('[::1]:8080', '--url'), { message: /no scheme: use http:\/\/\[::1\]:8080 / })
    assert.throws(() => checkUrl('ftp://x/', '--url'), { message: /expected http:\/\/HOST:PORT/ })
  })

  it('names the cause of a failed connection and its fix', () => {
    const base = 'http://127.0.0.1:8080'
    const fetchErr = (code: string, message = ''): Error => Object.assign(new Error('fetch failed'), { cause: { code, message } })
    assert.match(reachError(base, fetchErr('ECONNREFUSED')).message, /^nothing listens at 127\.0\.0\.1:8080: is switchd running\? \(start it with: switchd --listen 127\.0\.0\.1:8080; .*SWITCHCTL_URL\)$/)
    assert.match(reachError('https://127.0.0.1:8080', fetchErr('ERR_SSL_WRONG_VERSION_NUMBER', 'ssl3_get_record:wrong version number')).message, /speaks plain HTTP, not TLS: use http:\/\/127\.0\.0\.1:8080$/)
    assert.match(reachError('https://127.0.0.1:8080', Object.assign(new Error('x'), { code: 'EPROTO' })).message, /use http:\/\//, 'ws reports it on the error itself')
    assert.match(reachError(base, fetchErr('UND_ERR_SOCKET', 'other side closed')).message, /use https:\/\/127\.0\.0\.1:8080/)
    assert.match(reachError('https://h.example', fetchErr('DEPTH_ZERO_SELF_SIGNED_CERT')).message, /^h\.example:443: .*NODE_EXTRA_CA_CERTS/)
    assert.match(reachError('http://nowhere.invalid:8080', fetchErr('ENOTFOUND')).message, /^cannot resolve nowhere\.invalid \(ENOTFOUND\)/)
  })

  it('tells switchd from another web server', () => {
    const h = (o: Record<string, string>) => ({ get: (n: string) => o[n] ?? null })
    assert.equal(notSwitchd('http://127.0.0.1:8000', 'GET /api/v1/ports', 200, h({ 'x-tapswitch': 'switchd', 'content-type': 'application/json' })), undefined)
    assert.equal(notSwitchd('http://127.0.0.1:8000', 'GET /api/v1/ports', 404, h({ 'x-tapswitch': 'switchd', 'content-type': 'application/json' })), undefined)
    assert.equal(notSwitchd('http://127.0.0.1:8000', 'GET /api/v1/ports', 404, h({ 'content-type': 'text/html; charset=utf-8' }))?.message,
      '127.0.0.1:8000 is not switchd (it answered GET /api/v1/ports with 404 text/html): check --url or SWITCHCTL_URL')
  })
})
