/**
 * switchctl over a fleet, without sockets: the URL list and the fleet file
 * parsed (bad lines named), and replicas' answers merged from literal JSON.
 */

import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { columns, merge, MAX_REPLICAS, notAFleetCommand, parseFleetFile, replicaName, splitUrls, type Answer } from '../../src/ctl/fleet'
import { readFleetFile } from '../../src/ctl/fleet-ask'
import { CtlError } from '../../src/ctl/http'

interface Row { name: string, n: number }
const COLS = columns<Row>(['NAME', 'N'], (r) => [r.name, r.n], (rows) => rows.filter((r) => r.n < 0).map((r) => `warning: ${r.name} is negative\n`).join(''))

/** A CtlError with exit code 2 whose message matches `re`. */
function usageError (fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof CtlError && e.exitCode === 2 && re.test(e.message))
}

describe('switchctl fleet: the replicas', () => {
  it('splits --url A,B,C into replicas, each checked as --url is', () => {
    assert.deepEqual(splitUrls('http://r1:8080, https://r2:8443', '--url').map((r) => r.url), ['http://r1:8080', 'https://r2:8443'])
    assert.deepEqual(splitUrls('http://r1:8080', '--url'), [{ url: 'http://r1:8080', from: '--url' }])
    usageError(() => splitUrls('http://r1:8080,ws://r2:8080/', '--url'), /--url ws:\/\/r2:8080\/: switchctl speaks to switchd's HTTP API.*use http:\/\/r2:8080\//)
    usageError(() => splitUrls('http://r1:8080,r2:8080', '--url'), /no scheme: use http:\/\/r2:8080/)
    usageError(() => splitUrls('http://r1:8080,,http://r2:8080', '--url'), /an empty URL in the list/)
    usageError(() => splitUrls('http://r1:8080,http://r1:8080/', '--url'), /listed twice/)
  })

  it('parses a fleet file: one URL a line, # comments and blank lines skipped', () => {
    const text = '# the lab fleet\n\nhttp://r1:8080\n  https://r2:8443   # the TLS one\n#http://r3:8080\n'
    assert.deepEqual(parseFleetFile(text, 'fleet.txt'), [{ url: 'http://r1:8080', from: 'fleet.txt:3' }, { url: 'https://r2:8443', from: 'fleet.txt:4' }])
  })

  it('names the bad line of a fleet file, and the fix', () => {
    usageError(() => parseFleetFile('http://r1:8080\nftp://r2:21\n', 'f'), /^f:2: ftp:\/\/r2:21: expected http:\/\/HOST:PORT/)
    usageError(() => parseFleetFile('http://r1:8080\nfile:///etc/passwd\n', 'f'), /^f:2: file:\/\/\/etc\/passwd: expected http/)
    usageError(() => parseFleetFile('http://r1:8080 http://r2:8080\n', 'f'), /^f:1: one URL a line/)
    usageError(() => parseFleetFile('r1.example:8080\n', 'f'), /^f:1: r1.example:8080: no scheme: use http:\/\/r1.example:8080/)
    usageError(() => parseFleetFile('# nothing\n\n', 'f'), /f lists no URL/)
    usageError(() => parseFleetFile('http://r1:8080\n# again\nhttp://r1:8080\n', 'f'), /^f:3: http:\/\/r1:8080 is listed twice \(also f:1\)/)
  })

  it('attack: a fleet file of 10,000 URLs is refused, naming the count and the limit, without a URL checked past the limit', () => {
    const text = Array.from({ length: 10_000 }, (_, i) => `http://10.0.${i >> 8}.${i & 255}:8080`).join('\n')
    usageError(() => parseFleetFile(text, 'big'), new RegExp(`^big lists 10000 URLs; switchctl asks at most ${MAX_REPLICAS} replicas at once`))
    usageError(() => splitUrls(text.replace(/\n/g, ','), '--url'), /--url gives 10000 URLs; switchctl asks at most/)
    // Exactly the limit is a fleet.
    assert.equal(parseFleetFile(text.split('\n').slice(0, MAX_REPLICAS).join('\n'), 'ok').length, MAX_REPLICAS)
  })

  it('attack: a fleet file that is not a regular file, or too large, is refused before it is read whole', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-fleet-'))
    try {
      usageError(() => readFleetFile('/dev/zero'), /--fleet-file \/dev\/zero: not a regular file/)
      usageError(() => readFleetFile(path.join(dir, 'absent')), /--fleet-file .*absent: ENOENT/)
      const big = path.join(dir, 'big')
      fs.writeFileSync(big, '#'.repeat(2 * 1024 * 1024))
      usageError(() => readFleetFile(big), /over 1048576 bytes/)
      const ok = path.join(dir, 'ok')
      fs.writeFileSync(ok, 'http://127.0.0.1:1\nhttp://127.0.0.1:2\n')
      assert.equal(readFleetFile(ok).length, 2)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('prints a replica\'s name only if it is a plain name; else its host:port', () => {
    assert.equal(replicaName('r1', 'http://10.0.0.1:8080'), 'r1')
    assert.equal(replicaName('switchd-0.switchd.lab.svc', 'http://x:1'), 'switchd-0.switchd.lab.svc')
    assert.equal(replicaName(undefined, 'http://10.0.0.1:8080'), '10.0.0.1:8080')
    assert.equal(replicaName('\u001b[2Jr1', 'http://10.0.0.1:8080'), '10.0.0.1:8080', 'terminal controls')
    assert.equal(replicaName('x'.repeat(200), 'https://h'), 'h:443')
    assert.equal(replicaName(42, 'http://[::1]:9'), '[::1]:9')
  })

  it('refuses several URLs for a command that acts on one replica, naming the fix', () => {
    const e = notAFleetCommand('flush', 3)
    assert.equal(e.exitCode, 2)
    assert.match(e.message, /switchctl flush acts on one replica, and 3 were given: give one URL .*several URLs fit networks, ports, fdb only/)
  })
})

describe('switchctl fleet: merging answers', () => {
  it('merges every replica\'s rows under REPLICA, in the order given, and --json as {replica, ...row}', () => {
    const answers: Answer[] = [
      { url: 'http://a:1', replica: 'r1', rows: [{ name: 'x', n: 1 }, { name: 'y', n: -2 }] },
      { url: 'http://b:1', replica: 'r2', rows: [] },
      { url: 'http://c:1', replica: 'r3', rows: [{ name: 'z', n: 3 }] }
    ]
    const m = merge(answers, COLS)
    assert.deepEqual(m.headers, ['REPLICA', 'NAME', 'N'])
    assert.deepEqual(m.rows, [['r1', 'x', 1], ['r1', 'y', -2], ['r3', 'z', 3]])
    assert.deepEqual(m.json, [{ replica: 'r1', name: 'x', n: 1 }, { replica: 'r1', name: 'y', n: -2 }, { replica: 'r3', name: 'z', n: 3 }])
    assert.equal(m.notes, 'r1: warning: y is negative\n')
    assert.deepEqual(m.errors, [])
  })

  it('keeps the rows of the replicas that answered when one did not, and names the one that did not', () => {
    const m = merge([
      { url: 'http://a:1', replica: 'r1', rows: [{ name: 'x', n: 1 }] },
      { url: 'http://b:2', replica: 'b:2', error: 'nothing listens at b:2' }
    ], COLS)
    assert.deepEqual(m.rows, [['r1', 'x', 1]])
    assert.deepEqual(m.errors, ['http://b:2: nothing listens at b:2'])
  })

  it('attack: a replica answering what is not a list of rows is its own error; the others\' rows stay', () => {
    const good: Answer = { url: 'http://a:1', replica: 'r1', rows: [{ name: 'x', n: 1 }] }
    const bad: Answer[] = [
      { url: 'http://b:1', replica: 'r2', rows: { name: 'x' } },
      { url: 'http://c:1', replica: 'r3', rows: [{ name: 'x', n: 1 }, null] },
      { url: 'http://d:1', replica: 'r4', rows: ['text'] },
      { url: 'http://e:1', replica: 'r5', rows: 7 }
    ]
    // A row the table cannot read (the mapper throws): the whole replica is an error, not half of its rows.
    const strict = columns<Row>(['NAME'], (r) => [r.name.toUpperCase()])
    const m = merge([good, ...bad, { url: 'http://f:1', replica: 'r6', rows: [{ name: 'ok', n: 1 }, { n: 2 }] }], strict)
    assert.deepEqual(m.rows, [['r1', 'X']])
    assert.deepEqual(m.json, [{ replica: 'r1', name: 'x', n: 1 }])
    assert.equal(m.errors.length, 5)
    assert.match(m.errors[0] as string, /^r2 \(http:\/\/b:1\): answered an object where a list was expected/)
    assert.match(m.errors[1] as string, /^r3 \(http:\/\/c:1\): answered rows switchctl cannot read \(a row that is null\)/)
    assert.match(m.errors[2] as string, /^r4 .*a row that is a string/)
    assert.match(m.errors[3] as string, /^r5 .*answered a number where a list was expected/)
    assert.match(m.errors[4] as string, /^r6 .*cannot read \(.*toUpperCase/)
  })

  it('warns when two URLs reach the same replica (its rows would be listed twice)', () => {
    const m = merge([
      { url: 'http://lb:80', replica: 'r1', rows: [{ name: 'x', n: 1 }] },
      { url: 'http://r1:8080', replica: 'r1', rows: [{ name: 'x', n: 1 }] }
    ], COLS)
    assert.equal(m.rows.length, 2)
    assert.deepEqual(m.warnings, ['http://lb:80 and http://r1:8080 both answer as replica r1: its rows are listed twice (list each replica\'s own address, not the balancer\'s)'])
    assert.deepEqual(m.errors, [])
  })

  it('attack: text a replica chose reaches the terminal without its controls', () => {
    const m = merge([{ url: 'http://a:1', replica: 'r1', rows: [{ name: '\u001b]0;owned\u0007x', n: -1 }] }], COLS)
    assert.deepEqual(m.rows, [['r1', '\\u001b]0;owned\\u0007x', -1]])
    assert.equal(m.notes, 'r1: warning: \\u001b]0;owned\\u0007x is negative\n')
  })

  it('lets a row not overwrite its replica in --json', () => {
    const m = merge([{ url: 'http://a:1', replica: 'r1', rows: [{ replica: 'forged', name: 'x', n: 1 }] }], COLS)
    assert.equal(m.json[0]?.replica, 'r1')
  })
})
