/**
 * The fleet's mesh policy (core/fleet-plan.ts), with literals: which links a
 * replica dials and closes, given its name, its networks and its peers'
 * last answers.
 */

import assert from 'node:assert/strict'
import {
  MeshPlan, AwaitWatch, AWAIT_MS, meshKey, nameClashes, parsePeerState, peersByName, peerBases, wantedLinks, GRACE_MS, PEER_STALE_MS, MAX_PEERS, type PeerView
} from '../../src/switch/core/fleet-plan'

function view (base: string, replica: string, networks: string[], atMs = 0, draining = false): PeerView {
  return { base, state: { replica, draining, networks }, atMs }
}

const R2 = 'http://10.0.0.2:8080'
const R3 = 'http://10.0.0.3:8080'

describe('fleet plan', () => {
  it('dials only peers whose name sorts above ours, for the networks both have', () => {
    const peers = peersByName('r1', [view(R2, 'r2', ['lab', 'other']), view(R3, 'r0', ['lab'])], 0)
    const want = wantedLinks('r1', new Set(['lab', 'mine']), peers)
    assert.deepEqual([...want.values()], [{ peer: 'r2', network: 'lab', base: R2 }])
  })

  it('skips a peer answering with our own name (the same list on every replica)', () => {
    const peers = peersByName('r1', [view('http://127.0.0.1:1', 'r1', ['lab']), view(R2, 'r2', ['lab'])], 0)
    assert.deepEqual([...peers.keys()], ['r2'])
  })

  it('keeps one base per replica (the lowest), and forgets a peer silent for PEER_STALE_MS', () => {
    const peers = peersByName('r1', [view(R3, 'r2', ['lab'], 0), view(R2, 'r2', ['lab'], 0)], 0)
    assert.equal(peers.get('r2')?.base, R2)
    assert.equal(peersByName('r1', [view(R2, 'r2', ['lab'], 0)], PEER_STALE_MS + 1).size, 0)
  })

  it('dials a shared network once, not again while the link is held, and never a draining peer', () => {
    const plan = new MeshPlan()
    const first = plan.step('a', new Set(['lab']), [view(R2, 'b', ['lab'])], new Set(), 0)
    assert.deepEqual(first, { dial: [{ peer: 'b', network: 'lab', base: R2 }], close: [] })
    assert.deepEqual(plan.step('a', new Set(['lab']), [view(R2, 'b', ['lab'])], new Set([meshKey('b', 'lab')]), 1000), { dial: [], close: [] })
    assert.deepEqual(plan.step('a', new Set(['lab']), [view(R2, 'b', ['lab'], 0, true)], new Set(), 0).dial, [])
  })

  it('closes an unneeded link only after GRACE_MS, and a link needed again in between is kept', () => {
    const plan = new MeshPlan()
    const held = new Set([meshKey('b', 'lab')])
    const peer = (networks: string[], at: number): PeerView[] => [view(R2, 'b', networks, at)]
    // The peer's last local port left: the link is unneeded from t=0.
    assert.deepEqual(plan.step('a', new Set(['lab']), peer([], 0), held, 0).close, [])
    assert.deepEqual(plan.step('a', new Set(['lab']), peer([], GRACE_MS - 1), held, GRACE_MS - 1).close, [])
    // A port came back before the grace ran out: kept, and the grace starts again when it goes.
    assert.deepEqual(plan.step('a', new Set(['lab']), peer(['lab'], GRACE_MS), held, GRACE_MS).close, [])
    const t = GRACE_MS + 1000
    assert.deepEqual(plan.step('a', new Set(['lab']), peer([], t), held, t).close, [])
    assert.deepEqual(plan.step('a', new Set(['lab']), peer([], t + GRACE_MS), held, t + GRACE_MS).close, [meshKey('b', 'lab')])
  })

  it('closes when our own side has no local port left, and when the peer is gone (stale)', () => {
    const plan = new MeshPlan()
    const held = new Set([meshKey('b', 'lab')])
    plan.step('a', new Set(), [view(R2, 'b', ['lab'], 0)], held, 0)
    assert.deepEqual(plan.step('a', new Set(), [view(R2, 'b', ['lab'], GRACE_MS)], held, GRACE_MS).close, [meshKey('b', 'lab')])
    const gone = new MeshPlan()
    gone.step('a', new Set(['lab']), [view(R2, 'b', ['lab'], 0)], held, PEER_STALE_MS + 1)
    assert.deepEqual(gone.step('a', new Set(['lab']), [view(R2, 'b', ['lab'], 0)], held, PEER_STALE_MS + 1 + GRACE_MS).close, [meshKey('b', 'lab')])
  })

  it('parses a peer\'s answer, refusing what is not one', () => {
    assert.deepEqual(parsePeerState('{"replica":"r2","draining":false,"networks":["lab",3,"x\\ny"]}'), { replica: 'r2', draining: false, networks: ['lab'] })
    assert.equal(parsePeerState('{"replica":"R2!","networks":[]}'), undefined)
    assert.equal(parsePeerState('{"replica":"r2"}'), undefined)
    assert.equal(parsePeerState('not json'), undefined)
    assert.equal(parsePeerState('null'), undefined)
  })

  it('attack: asks each peer address once, and at most MAX_PEERS of them, the same ones on every replica', () => {
    const many = Array.from({ length: 10_000 }, (_, i) => `http://10.0.${i >> 8}.${i & 255}:8080`)
    const got = peerBases([...many].reverse().concat(many))
    assert.equal(got.bases.length, MAX_PEERS)
    assert.equal(got.left, 10_000 - MAX_PEERS)
    assert.deepEqual(got.bases, peerBases(many).bases)
    assert.deepEqual(peerBases([R3, R2, R3]), { bases: [R2, R3], left: 0 })
  })

  it('attack: tells a peer answering to our name, or two to one name, from ourselves (by the process\'s random id)', () => {
    const v = (base: string, replica: string, instance: string | undefined, atMs = 0): PeerView => ({ base, state: { replica, draining: false, networks: ['lab'], ...(instance === undefined ? {} : { instance }) }, atMs })
    assert.deepEqual(nameClashes('a', 'aa', [v(R2, 'a', 'aa'), v(R3, 'b', 'bb')], 0), [], 'ourselves, and a peer')
    assert.deepEqual(nameClashes('a', 'aa', [v(R2, 'a', 'cc')], 0), ['a'], 'another process with our name')
    assert.deepEqual(nameClashes('a', 'aa', [v(R2, 'b', 'bb'), v(R3, 'b', 'cc')], 0), ['b'], 'two processes with one name')
    assert.deepEqual(nameClashes('a', 'aa', [v(R2, 'a', 'cc', 0)], PEER_STALE_MS + 1), [], 'a stale answer is forgotten')
    assert.deepEqual(nameClashes('a', 'aa', [v(R2, 'a', undefined)], 0), [], 'an older replica without an id')
    assert.equal(parsePeerState('{"replica":"r2","networks":[],"instance":"0123abcd"}')?.instance, '0123abcd')
    assert.equal(parsePeerState('{"replica":"r2","networks":[],"instance":"not hex!"}')?.instance, undefined)
  })

  it('attack: says a link a lower-named peer should have dialled to us once it has been missing AWAIT_MS, and nothing while it is up', () => {
    const watch = new AwaitWatch()
    const peers = [view(R2, 'a', ['lab', 'other'], 0), view(R3, 'c', ['lab'], 0)]
    assert.deepEqual(watch.step('b', new Set(['lab']), peers, new Set(), 0), [], 'not yet')
    const at = (ms: number): PeerView[] => peers.map((p) => ({ ...p, atMs: ms }))
    assert.deepEqual(watch.step('b', new Set(['lab']), at(AWAIT_MS), new Set(), AWAIT_MS), [meshKey('a', 'lab')], 'a dials b, not c (b dials c)')
    assert.deepEqual(watch.step('b', new Set(['lab']), at(AWAIT_MS + 1), new Set([meshKey('a', 'lab')]), AWAIT_MS + 1), [], 'the link came')
    assert.deepEqual(watch.step('b', new Set(['lab']), at(AWAIT_MS + 2), new Set(), AWAIT_MS + 2), [], 'gone again: a new wait')
    assert.deepEqual(watch.step('b', new Set(), at(2 * AWAIT_MS + 2), new Set(), 2 * AWAIT_MS + 2), [], 'no local port: nothing awaited')
    const draining = new AwaitWatch()
    draining.step('b', new Set(['lab']), [view(R2, 'a', ['lab'], 0, true)], new Set(), 0)
    assert.deepEqual(draining.step('b', new Set(['lab']), [view(R2, 'a', ['lab'], AWAIT_MS, true)], new Set(), AWAIT_MS), [], 'a draining peer dials nothing')
  })
})
