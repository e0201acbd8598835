import assert from 'node:assert/strict'
import { parseMetrics, metricValues, metricSum, metricValue } from '../helpers/metrics-text'

const TEXT = [
  '# HELP switchd_vxlan_packets_total Datagrams in and out per listener.',
  '# TYPE switchd_vxlan_packets_total counter',
  'switchd_vxlan_packets_total{listener="127.0.0.1:4789",direction="in",replica="r1"} 4',
  'switchd_vxlan_packets_total{listener="127.0.0.1:4789",direction="out",replica="r1"} 1',
  'switchd_vxlan_packets_total{listener="127.0.0.1:4790",direction="in",replica="r1"} 3',
  '',
  '# TYPE switchd_up gauge',
  'switchd_up 1',
  'switchd_port_drops_total{port="a\\"b,c=\\"d\\"",reason="underlay_mtu"} 7 1700000000000',
  'switchd_port_drops_total{port="x\\\\y\\nz",reason="underlay_mtu",} 2',
  'switchd_port_drops_total{port="export",reason="oversize"} 5',
  'switchd_cpu_seconds{mode="idle"} +Inf',
  'switchd_cpu_seconds{mode="user"} -inf',
  'nodejs_eventloop_lag_mean_seconds{replica="r1"} Nan',
  ''
].join('\n')

describe('metrics text (test helper)', () => {
  it('reads one series: its value, found by a subset of its labels', () => {
    assert.deepEqual(metricValues(TEXT, 'switchd_vxlan_packets_total', { listener: '127.0.0.1:4789', direction: 'out' }), [1])
    assert.deepEqual(metricValues(TEXT, 'switchd_up'), [1])
    assert.deepEqual(metricValues(TEXT, 'switchd_cpu_seconds', { mode: 'idle' }), [Infinity])
    assert.deepEqual(metricValues(TEXT, 'switchd_cpu_seconds', { mode: 'user' }), [-Infinity])
    // prom-client writes NaN as `Nan`; Prometheus reads it in any case.
    assert.deepEqual(metricValues(TEXT, 'nodejs_eventloop_lag_mean_seconds'), [NaN])
  })

  it('reads the one series asked for, and throws naming it where there is none', () => {
    assert.equal(metricValue(TEXT, 'switchd_vxlan_packets_total', { listener: '127.0.0.1:4790' }), 3)
    assert.throws(() => metricValue(TEXT, 'switchd_vxlan_packets_total', { listener: '127.0.0.1:9' }), /no switchd_vxlan_packets_total\{"listener":"127\.0\.0\.1:9"\} in:\n# HELP/)
    assert.throws(() => metricValue(TEXT, 'switchd_absent'), /no switchd_absent\{\} in/)
  })

  it('sums the series whose labels include every pair asked for', () => {
    assert.equal(metricSum(TEXT, 'switchd_vxlan_packets_total', { direction: 'in' }), 7)
    assert.equal(metricSum(TEXT, 'switchd_vxlan_packets_total'), 8)
    assert.equal(metricSum(TEXT, 'switchd_port_drops_total', { reason: 'underlay_mtu' }), 9)
  })

  it('reads label values with escaped quotes, backslashes, newlines and commas, and a trailing comma and a timestamp', () => {
    const drops = parseMetrics(TEXT).filter((s) => s.name === 'switchd_port_drops_total')
    assert.deepEqual(drops, [
      { name: 'switchd_port_drops_total', labels: { port: 'a"b,c="d"', reason: 'underlay_mtu' }, value: 7 },
      { name: 'switchd_port_drops_total', labels: { port: 'x\\y\nz', reason: 'underlay_mtu' }, value: 2 },
      { name: 'switchd_port_drops_total', labels: { port: 'export', reason: 'oversize' }, value: 5 }
    ])
    assert.deepEqual(metricValues(TEXT, 'switchd_port_drops_total', { port: 'a"b,c="d"' }), [7])
    // A label matches whole, never as a part of another's text (`port="a` is in the first line, `c="d"` too).
    assert.deepEqual(metricValues(TEXT, 'switchd_port_drops_total', { port: 'a' }), [])
    assert.deepEqual(metricValues(TEXT, 'switchd_port_drops_total', { c: 'd' }), [])
    assert.deepEqual(metricValues(TEXT, 'switchd_port_drops_total', { port: 'port' }), [])
  })

  it('finds nothing for an absent metric, a metric only named as another\'s prefix, or labels no series has', () => {
    assert.deepEqual(metricValues(TEXT, 'switchd_vxlan_dropped_total'), [])
    assert.equal(metricSum(TEXT, 'switchd_vxlan_dropped_total'), 0)
    assert.deepEqual(metricValues(TEXT, 'switchd_vxlan_packets'), [])
    assert.deepEqual(metricValues(TEXT, 'switchd_vxlan_packets_total', { direction: 'sideways' }), [])
    assert.deepEqual(metricValues(TEXT, 'switchd_up', { replica: 'r1' }), [])
  })

  it('throws on a line that is not a sample, rather than reading a wrong value', () => {
    for (const line of ['switchd_up', 'switchd_up{a="1" 2', 'switchd_up{a="1"b="2"} 2', 'switchd_up{a=1} 2', 'switchd_up one', 'switchd_up nano', '{a="1"} 2', 'switchd_up{a="1"}2']) {
      assert.throws(() => parseMetrics(line), /not a metrics sample line/, line)
    }
  })
})
