/**
 * The per-frame cost of the forwarding decision in process (Switch.receiveBatch: known unicast
 * and broadcast, 64-frame batches of 64 B, ports that only count), without sockets or a load
 * generator, so that a change to the decision can be compared before and after on a busy
 * machine. Not part of npm test. Run: npx tsx test/bench/decision.bench.ts [ports]
 *
 * Where perf counters are not available (a VM), count instructions instead:
 * CALLGRIND=u (or b) skips the timed rounds, warms up briefly, then runs
 * ROUNDS batches of known unicast (or broadcast) only, so that
 *   valgrind --tool=callgrind node --predictable <this, bundled by esbuild>
 * with ROUNDS=0 and ROUNDS=4000 differ by 4000 * 64 frames' instructions
 * (--predictable: no concurrent compiler, counts repeat to ~0.01 %).
 */
import { Switch } from '../../src/switch/core/switch'
import { Port } from '../../src/switch/core/port'
import { encodeBatch } from '../../src/common/protocol'

class CountingPort extends Port {
  output (): void { this.txFrames++ }
  flush (): void {}
  shutdown (): void {}
}

function frame (dst: number, src: number): Buffer {
  const b = Buffer.alloc(64)
  b.writeUIntBE(dst, 0, 6); b.writeUIntBE(src, 6, 6); b.writeUInt16BE(0x0800, 12)
  return b
}

const n = Number(process.argv[2] ?? 4)
const sw = new Switch({}, 1000)
const ports = Array.from({ length: n }, (_, i) => { const p = new CountingPort(i + 1, `p${i + 1}`); sw.addPort(p); return p })
const A = 0x020000000001
const B = 0x020000000002
sw.receiveFrame(ports[0] as Port, frame(0xffffffffffff, A))
sw.receiveFrame(ports[1] as Port, frame(0xffffffffffff, B))
const unicast = encodeBatch(Array.from({ length: 64 }, () => frame(B, A)))
const broadcast = encodeBatch(Array.from({ length: 64 }, () => frame(0xffffffffffff, A)))

/** ns per frame for `rounds` batches of `msg`. */
function run (msg: Buffer, rounds: number): number {
  const t = process.hrtime.bigint()
  for (let i = 0; i < rounds; i++) sw.receiveBatch(ports[0] as Port, msg)
  return Number(process.hrtime.bigint() - t) / (rounds * 64)
}

const only = process.env.CALLGRIND
if (only !== undefined) {
  for (let w = 0; w < 2; w++) { run(unicast, 2000); run(broadcast, 2000) }
  const rounds = Number(process.env.ROUNDS ?? 4000)
  for (let i = 0; i < rounds; i++) sw.receiveBatch(ports[0] as Port, only === 'b' ? broadcast : unicast)
  process.exit(0)
}
for (let w = 0; w < 3; w++) { run(unicast, 20_000); run(broadcast, 20_000) }
const u: number[] = []
const b: number[] = []
for (let r = 0; r < 7; r++) { u.push(run(unicast, 20_000)); b.push(run(broadcast, 20_000)) }
u.sort((x, y) => x - y); b.sort((x, y) => x - y)
console.log(`${n} ports: known unicast ${(u[3] as number).toFixed(1)} ns/frame (best ${(u[0] as number).toFixed(1)}), broadcast ${(b[3] as number).toFixed(1)} ns/frame (best ${(b[0] as number).toFixed(1)})`)
