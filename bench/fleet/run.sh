#!/usr/bin/env bash
# bench/fleet/run.sh (`npm run bench:fleet`, root): what a fleet of switchd replicas (issue 25) costs,
# in one run on this machine.
#  1. The mesh hop: two tap-agents in network "bench" on ONE replica of a 2-replica fleet (fleet-one)
#     against the same two split over TWO replicas joined by their mesh link (fleet-mesh): ping p50,
#     64-byte UDP frames/s, TCP 1 stream, interleaved rounds (the bench/peers harness: namespaces,
#     PID-tracked daemons, the machine's idle check), then the ratio mesh/one.
#  2. Capacity: 3 replicas behind nginx, networks of two raw WebSocket ports added in doubling steps
#     up to --max-networks (bench/fleet/capacity.ts), every network delivering a frame after each step.
#
#   sudo npm run bench:fleet                       # 2 rounds, up to 8000 networks (16000 ports)
#   sudo npm run bench:fleet -- -r 3 --max-networks 9000
#   sudo npm run bench:fleet -- --hop-only | --capacity-only
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
export TSW_DIR=${TSW_DIR:-$root}
rounds=2 max=8000 hop=1 cap=1
while [ $# -gt 0 ]; do
  case $1 in
    -r) rounds=$2; shift ;;
    --max-networks) max=$2; shift ;;
    --hop-only) cap=0 ;;
    --capacity-only) hop=0 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "bench:fleet needs root (namespaces, TAPs): sudo npm run bench:fleet" >&2; exit 2; }
[ -f "$TSW_DIR/dist/switch/main.js" ] || { echo "no dist/ in $TSW_DIR: run npm run build first" >&2; exit 2; }
out=${PB_OUT:-/tmp/pb-bench/fleet-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
status=0
if [ $hop = 1 ]; then
  # Shorter iperf3 runs than bench:peers: two systems, and the figure asked for is a ratio between them.
  PB_TCP_SECS=${PB_TCP_SECS:-6} PB_UDP_SECS=${PB_UDP_SECS:-6} \
    "$root/bench/peers/run-all.sh" -o "$out/hop" -r "$rounds" "$here/systems/fleet-one.sh" "$here/systems/fleet-mesh.sh" || status=$?
  if [ -f "$out/hop/results.tsv" ]; then
    echo
    "$here/hop-ratio.sh" "$out/hop/results.tsv" | tee "$out/hop-ratio.md"
  fi
fi
if [ $cap = 1 ]; then
  command -v nginx >/dev/null || PATH=$PATH:/usr/sbin command -v nginx >/dev/null || { echo "no nginx: apt-get install -y nginx (scripts/install-deps.sh)" >&2; exit 2; }
  echo
  # Each port is a socket in this process, two in nginx and one in a replica.
  ulimit -n $((8 * max + 4096)) 2>/dev/null || echo "(open files limited to $(ulimit -n) a process here: the ramp may stop there)"
  BENCH_FLEET_JSON="$out/capacity.json" node -r tsx/cjs "$here/capacity.ts" --max-networks "$max" || status=$?
fi
echo "results: $out"
exit $status
