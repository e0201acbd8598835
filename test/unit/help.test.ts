/**
 * --help fits the terminal: every program's, at 80 and 100 columns (as
 * $COLUMNS gives them when stdout is not a terminal), no line wider, no flag
 * broken, no empty default.
 */

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import * as path from 'node:path'
import { wrapWords, twoColumns, helpWidth, displayWidth, helpText, reflow, type Specs } from '../../src/common/cli'

const ROOT = path.join(__dirname, '..', '..')

/** The switchctl commands whose --help is checked too (each prints the whole usage). */
const CTL_COMMANDS = ['networks', 'ports', 'fdb', 'flush', 'static', 'port', 'condition', 'link', 'capture', 'events', 'trace', 'leases', 'drops']

/** Every program's --help at `columns`, in one child process whose stdout is a pipe. */
function helps (columns: number): Array<{ who: string, text: string }> {
  const script = `
    const runs = [
      ['switchd', () => require('./src/switch/main').main(['--help'])],
      ['tap-agent', () => require('./src/agent/main').main(['--help'])],
      ['tapswitch-lab', () => require('./src/lab/main').main(['--help'])],
      ['switchctl', () => require('./src/ctl/main').main(['--help'])],
      ...${JSON.stringify(CTL_COMMANDS)}.map((c) => ['switchctl ' + c, () => require('./src/ctl/main').main([c, '--help'])])
    ]
    const write = process.stdout.write.bind(process.stdout)
    ;(async () => {
      const out = []
      for (const [who, run] of runs) {
        let text = ''
        process.stdout.write = (s) => { text += s; return true }
        try { await run() } finally { process.stdout.write = write }
        out.push({ who, text })
      }
      write(JSON.stringify(out))
    })()`
  const out = execFileSync(process.execPath, ['-r', 'tsx/cjs', '-e', script], {
    cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, COLUMNS: String(columns) }
  })
  return JSON.parse(out) as Array<{ who: string, text: string }>
}

describe('--help', () => {
  for (const columns of [80, 100]) {
    it(`every program's help fits ${columns} columns and shows no empty default`, () => {
      const all = helps(columns)
      assert.equal(all.length, 4 + CTL_COMMANDS.length)
      for (const { who, text } of all) {
        assert.match(text, /Usage: /, who)
        for (const line of text.split('\n')) {
          assert.ok(displayWidth(line) <= columns, `${who}: ${displayWidth(line)} columns: ${line}`)
        }
        assert.doesNotMatch(text, /default ?\]|default undefined|default ,/, who)
      }
      // Every flag still whole on one line, as typed.
      const agent = (all.find((h) => h.who === 'tap-agent') as { text: string }).text
      assert.match(agent, /--qemu-dgram local=H:P,remote=H:P\n/)
      assert.match(agent, /\[env TAP_AGENT_TAP\]/, '--tap: its env, no empty default')
    })
  }

  it('wraps at spaces only: a word wider than the width gets a line of its own, whole', () => {
    assert.deepEqual(wrapWords('aa bb cc dd', 5), ['aa bb', 'cc dd'])
    assert.deepEqual(wrapWords('x --qemu-listen=unix:/a/very/long/path y', 10), ['x', '--qemu-listen=unix:/a/very/long/path', 'y'])
    assert.deepEqual(wrapWords('µs … ok', 4), ['µs …', 'ok'], 'µ and … are one column each')
    assert.deepEqual(wrapWords('', 10), [''])
  })

  it('aligns descriptions under their column, and puts them under a flag too wide for it', () => {
    const text = twoColumns([['--a', 'one two three four five six'], ['--bb', 'x'], ['--a-very-long-flag VALUE', 'desc']], 30, 2, 10)
    assert.equal(text, [
      '  --a   one two three four',
      '        five six',
      '  --bb  x',
      '  --a-very-long-flag VALUE',
      '        desc',
      ''
    ].join('\n'))
  })

  it('breaks a long command synopsis between bracket groups, never inside one or between a flag and its value', () => {
    const text = twoColumns([['cmd --in PORT [--loss 1% | --burst P%,R%] [--rate 10mbit] [--seed N]', 'd']], 32, 2, 10)
    const lines = text.split('\n')
    assert.ok(lines.every((l) => displayWidth(l) <= 32), text)
    assert.ok(lines.some((l) => l.includes('[--loss 1% | --burst P%,R%]')), text)
    assert.ok(lines.some((l) => l.includes('--in PORT')), text)
  })

  it('reflows paragraphs and keeps indented lines', () => {
    assert.equal(reflow('one two\nthree four\n\n  keep  this', 9), 'one two\nthree\nfour\n\n  keep\n  this', 'an indented line too wide wraps under its indentation')
    assert.equal(reflow('one two\nthree four\n\n  keep  this', 20), 'one two three four\n\n  keep  this')
  })

  it('takes the terminal\'s width on a terminal, $COLUMNS or 80 elsewhere, within 60..120', () => {
    assert.equal(helpWidth({ isTTY: true, columns: 100 }, {}), 100)
    assert.equal(helpWidth({ isTTY: true, columns: 252 }, {}), 120)
    assert.equal(helpWidth({ isTTY: true, columns: 40 }, {}), 60)
    assert.equal(helpWidth({ isTTY: false }, {}), 80)
    assert.equal(helpWidth({ isTTY: false }, { COLUMNS: '100' }), 100)
    assert.equal(helpWidth({ isTTY: false }, { COLUMNS: 'wide' }), 80)
  })

  it('shows no default for a flag whose default is empty', () => {
    const specs = { tap: { type: 'string', env: 'T_TAP', default: '', help: 'which' } } satisfies Specs
    const text = helpText('x', 'about', specs, 80)
    assert.match(text, /--tap +which \[env T_TAP\]\n/)
  })
})
