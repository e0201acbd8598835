import assert from 'node:assert/strict'
import { parseCli, helpText, intOption, hostPortOption, type Specs } from '../../src/common/cli'

const SPECS = {
  listen: { type: 'string', env: 'T_LISTEN', default: '127.0.0.1:8080', help: 'where' },
  verbose: { type: 'boolean', env: 'T_VERBOSE', help: 'more' }
} satisfies Specs

describe('cli', () => {
  it('prefers flags over environment over defaults', () => {
    assert.equal(parseCli(SPECS, [], {}).listen, '127.0.0.1:8080')
    assert.equal(parseCli(SPECS, [], { T_LISTEN: '0.0.0.0:1' }).listen, '0.0.0.0:1')
    assert.equal(parseCli(SPECS, ['--listen', '[::1]:2'], { T_LISTEN: '0.0.0.0:1' }).listen, '[::1]:2')
    assert.equal(parseCli(SPECS, [], { T_VERBOSE: 'yes' }).verbose, true)
    assert.equal(parseCli(SPECS, [], {}).verbose, false)
  })

  it('rejects unknown flags with TSW_ERR_USAGE and bad values with TSW_ERR_CONFIG', () => {
    assert.throws(() => parseCli(SPECS, ['--nope'], {}), { code: 'TSW_ERR_USAGE' })
    assert.throws(() => parseCli(SPECS, [], { T_VERBOSE: 'maybe' }), { code: 'TSW_ERR_CONFIG' })
    assert.throws(() => intOption('mtu', '12.5', 68, 65535), { code: 'TSW_ERR_CONFIG' })
    assert.throws(() => intOption('mtu', '', 68, 65535), { code: 'TSW_ERR_CONFIG' })
    // Number() reads these as 1500; a flag takes decimal digits only.
    for (const odd of ['0x5dc', '1.5e3', '0b10111011100', '0o2734', '1_500', '+ 1500', 'Infinity']) {
      assert.throws(() => intOption('mtu', odd, 68, 65535), { code: 'TSW_ERR_CONFIG', message: new RegExp(`--mtu ${odd.replace('+', '\\+')}: expected an integer from 68 to 65535`) }, odd)
    }
    assert.equal(intOption('mtu', '1500', 68, 65535), 1500)
    assert.equal(intOption('mtu', ' 1500 ', 68, 65535), 1500)
    assert.equal(intOption('vlan', '-1', -1, 4094), -1)
    assert.equal(intOption('coalesce-usecs', '-0', 0, 200), 0) // not -0
    assert.equal(intOption('mtu', '01500', 68, 65535), 1500) // leading zeros are still decimal, as before
    assert.throws(() => intOption('mtu', '+1500', 68, 65535), { code: 'TSW_ERR_CONFIG' })
    assert.throws(() => hostPortOption('listen', '8080'), { code: 'TSW_ERR_CONFIG' })
    assert.throws(() => hostPortOption('listen', 'h:70000'), { code: 'TSW_ERR_CONFIG' })
  })

  it('parses host:port including IPv6 brackets', () => {
    assert.deepEqual(hostPortOption('listen', '[::1]:8080'), { host: '::1', port: 8080 })
    assert.deepEqual(hostPortOption('listen', 'localhost:0'), { host: 'localhost', port: 0 })
  })

  it('documents every flag with its environment variable', () => {
    const text = helpText('x [options]', 'about', SPECS)
    assert.match(text, /--listen .*env T_LISTEN, default 127\.0\.0\.1:8080/)
    assert.match(text, /--verbose .*env T_VERBOSE/)
  })
})

describe('uplink masking', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { zeroMaskFor } = require('../../src/common/uplink') as typeof import('../../src/common/uplink')
  it('zeroes the mask only where no intermediary can read the stream, unless told otherwise', () => {
    assert.equal(zeroMaskFor('wss://switch.example/', 'auto'), true)
    assert.equal(zeroMaskFor('ws://127.0.0.1:8080/', 'auto'), true)
    assert.equal(zeroMaskFor('ws://localhost:8080/', 'auto'), true)
    assert.equal(zeroMaskFor('ws://switch.example:8080/', 'auto'), false)
    assert.equal(zeroMaskFor('wss://switch.example/', 'always'), false)
    assert.equal(zeroMaskFor('ws://switch.example:8080/', 'never'), true)
  })
})
