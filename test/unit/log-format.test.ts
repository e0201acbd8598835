import assert from 'node:assert/strict'
import {
  formatText, formatJson, chooseLogFormat, chooseLogColor, textFromJsonLine, isLogFormatChoice
} from '../../src/common/log-format'
import { logger, setLogSink, setLogFormat, configureLog, setLogLevel, CLIENT_BURST, CLIENT_WINDOW_MS } from '../../src/common/log'
import { clientKeyOf } from '../../src/common/address'

const T = new Date(2026, 11, 6, 8, 51, 27, 123) // local time, as the text format shows it
const ESC = '\x1b'

describe('log format', () => {
  it('auto is text on a terminal and JSON anywhere else; a flag overrides either way', () => {
    assert.equal(chooseLogFormat('auto', true), 'text')
    assert.equal(chooseLogFormat('auto', false), 'json')
    assert.equal(chooseLogFormat('json', true), 'json')
    assert.equal(chooseLogFormat('text', false), 'text')
    assert.ok(isLogFormatChoice('auto') && isLogFormatChoice('text') && isLogFormatChoice('json'))
    assert.ok(!isLogFormatChoice('pretty'))
  })

  it('colours only text on a terminal, and never with NO_COLOR set to something', () => {
    assert.equal(chooseLogColor('text', true, {}), true)
    assert.equal(chooseLogColor('text', true, { NO_COLOR: '' }), true, 'an empty NO_COLOR does not count (no-color.org)')
    assert.equal(chooseLogColor('text', true, { NO_COLOR: '1' }), false)
    assert.equal(chooseLogColor('text', false, {}), false)
    assert.equal(chooseLogColor('json', true, {}), false)
  })

  it('writes time, level, component: event, then key=value, quoting values that need it', () => {
    const line = formatText(T, 'warn', 'uplink', 'uplink_error', { url: 'ws://127.0.0.1:8080/', error: 'ECONNREFUSED', attempt: 3, up: false, none: null, gone: undefined, hint: 'nothing listens at 127.0.0.1:8080: start switchd' })
    assert.equal(line, '2026-12-06 08:51:27.123 WARN  uplink: uplink_error url=ws://127.0.0.1:8080/ error=ECONNREFUSED attempt=3 up=false none=null hint="nothing listens at 127.0.0.1:8080: start switchd"')
    assert.equal(formatText(T, 'info', 'switchd', 'listening', undefined), '2026-12-06 08:51:27.123 INFO  switchd: listening')
    assert.equal(formatText(T, 'info', 'x', 'e', { empty: '', eq: 'a=b', q: 'say "hi"' }), '2026-12-06 08:51:27.123 INFO  x: e empty="" eq="a=b" q="say \\"hi\\""')
  })

  it('colours the level, the event and the keys with ANSI codes only when asked', () => {
    const plain = formatText(T, 'error', 'a', 'b', { k: 1 })
    const coloured = formatText(T, 'error', 'a', 'b', { k: 1 }, true)
    assert.ok(!plain.includes(ESC))
    assert.ok(coloured.includes(`${ESC}[1;31mERROR${ESC}[0m`))
    assert.equal(coloured.replace(/\x1b\[[0-9;]*m/g, ''), plain)
  })

  it('writes JSON as before: time, level, component, event, then the fields, undefined ones left out', () => {
    const rec = JSON.parse(formatJson(T, 'info', 'switch', 'port_up', { port: 3, name: 'a', gone: undefined })) as Record<string, unknown>
    assert.deepEqual(rec, { time: T.toISOString(), level: 'info', component: 'switch', event: 'port_up', port: 3, name: 'a' })
  })

  it('attack: a client\'s text cannot put terminal control sequences or bidi overrides on the operator\'s terminal', () => {
    // A hello's name, a close reason or an Origin header reach the log as field values.
    const evil = `x\x1b]0;pwned\x07\x9b31m\u202egnp.exe\r\nfake line`
    for (const line of [formatText(T, 'warn', 'c', 'e', { why: evil, [`k\x1b`]: 1 }, true), formatJson(T, 'warn', 'c', 'e', { why: evil })]) {
      const noOurColours = line.replace(/\x1b\[[0-9;]*m/g, '')
      assert.doesNotMatch(noOurColours, /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/, line)
    }
    // JSON stays JSON, and says the same.
    assert.equal((JSON.parse(formatJson(T, 'warn', 'c', 'e', { why: evil })) as { why: string }).why, evil)
  })

  it('turns a child\'s JSON line into text, and leaves another line as it was (escaped)', () => {
    const json = formatJson(T, 'warn', 'tap-agent', 'uplink_error', { url: 'ws://h/', hint: 'a b' })
    assert.equal(textFromJsonLine(json), '2026-12-06 08:51:27.123 WARN  tap-agent: uplink_error url=ws://h/ hint="a b"')
    assert.equal(textFromJsonLine('tap-agent: --url is required'), 'tap-agent: --url is required')
    assert.equal(textFromJsonLine('{"not":"a log line"}'), '{"not":"a log line"}')
    assert.equal(textFromJsonLine('bad \x1b[2J'), 'bad \\u001b[2J')
  })

  describe('the logger', () => {
    let lines: string[]
    let prev: (line: string) => void
    beforeEach(() => { lines = []; prev = setLogSink((l) => { lines.push(l) }) })
    afterEach(() => { setLogSink(prev); setLogFormat('json'); setLogLevel('info') })

    it('writes what configureLog chose: text on a terminal, JSON on a pipe, as the flag says', () => {
      const log = logger('t')
      configureLog('info', 'auto', { isTTY: true }, { NO_COLOR: '1' })
      log.info('hello', { a: 1 })
      configureLog('info', 'auto', { isTTY: false }, {})
      log.info('hello', { a: 1 })
      configureLog('info', 'json', { isTTY: true }, {})
      log.info('hello', { a: 1 })
      configureLog('debug', 'text', { isTTY: false }, {})
      log.debug('hello', { a: 1 })
      assert.match(lines[0] as string, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO {2}t: hello a=1$/)
      assert.equal((JSON.parse(lines[1] as string) as { a: number }).a, 1)
      assert.equal((JSON.parse(lines[2] as string) as { a: number }).a, 1)
      assert.match(lines[3] as string, / DEBUG t: hello a=1$/)
      assert.ok(!lines.some((l) => l.includes(ESC)), 'no colour off a terminal or with NO_COLOR')
    })

    it('refuses a bad --log-format or --log-level with the values it takes', () => {
      assert.throws(() => { configureLog('info', 'pretty', { isTTY: true }, {}) }, { code: 'TSW_ERR_CONFIG', message: '--log-format pretty: expected auto, text or json' })
      assert.throws(() => { configureLog('loud', 'auto', { isTTY: true }, {}) }, { code: 'TSW_ERR_CONFIG', message: /--log-level loud: expected debug, info, warn or error/ })
    })

    it('keeps each client\'s budget in text as in JSON, and says in text what it suppressed', () => {
      setLogFormat('text')
      const log = logger('server')
      const realNow = Date.now
      let now = realNow()
      Date.now = () => now
      try {
        for (let i = 0; i < CLIENT_BURST + 5; i++) log.client('warn', 'connection_rejected', '192.0.2.7', { remote: '192.0.2.7', reason: 'unauthorized' })
        log.client('warn', 'connection_rejected', '192.0.2.8', { remote: '192.0.2.8', reason: 'unauthorized' })
        now += CLIENT_WINDOW_MS
        log.forClient('warn', 'connection_rejected', clientKeyOf('192.0.2.7'), { remote: '192.0.2.7' })
      } finally {
        Date.now = realNow
      }
      const rejected = lines.filter((l) => / WARN {2}server: connection_rejected remote=192\.0\.2\.7/.test(l))
      assert.equal(rejected.length, CLIENT_BURST + 1, 'the burst, then one in the next window')
      assert.ok(lines.some((l) => l.includes('connection_rejected remote=192.0.2.8')), 'another address has its own budget')
      const suppressed = lines.filter((l) => l.includes('server: log_suppressed'))
      assert.equal(suppressed.length, 1)
      assert.match(suppressed[0] as string, /INFO {2}server: log_suppressed remote=192\.0\.2\.7 count=5 window_seconds=10$/)
      assert.ok(lines.every((l) => !l.startsWith('{')), 'all text')
    })

    it('limits repeats of one event in text too', () => {
      setLogFormat('text', true)
      const log = logger('lim')
      for (let i = 0; i < 25; i++) log.limited('warn', 'same', { i })
      assert.equal(lines.length, 10)
      assert.ok(lines.every((l) => l.includes(`${ESC}[33mWARN `)))
    })
  })
})
