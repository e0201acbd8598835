#!/usr/bin/env bash
# bench/vxlan/run.sh (`npm run bench:vxlan`, root): a switchd VXLAN port (issue 26) against the kernel's
# VXLAN-to-bridge path, in one interleaved run on this machine (the bench/peers harness: namespaces,
# PID-tracked daemons, the machine's idle check):
#   vxlan-bridge     kernel vxlan host -> kernel vxlan + Linux bridge -> veth host
#   vxlan-tapswitch  kernel vxlan host -> switchd VXLAN port -> tap-agent host
# ping p50 (idle), 64-byte UDP frames/s (iperf3 -u -l 64), TCP 1 stream, then the ratios (ratio.sh).
#
#   sudo npm run bench:vxlan              # 2 rounds
#   sudo npm run bench:vxlan -- -r 3
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
export TSW_DIR=${TSW_DIR:-$root}
rounds=2
while [ $# -gt 0 ]; do
  case $1 in
    -r) rounds=$2; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "bench:vxlan needs root (namespaces, TAPs): sudo npm run bench:vxlan" >&2; exit 2; }
[ -f "$TSW_DIR/dist/switch/main.js" ] || { echo "no dist/ in $TSW_DIR: run npm run build first" >&2; exit 2; }
command -v bridge >/dev/null || { echo "no bridge command: apt-get install -y iproute2" >&2; exit 2; }
out=${PB_OUT:-/tmp/pb-bench/vxlan-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
status=0
# Shorter iperf3 runs than bench:peers: two systems, and the figure asked for is a ratio between them.
# Daemons live up to 15 min (the harness's 5 min default ends a round that waited long for a quiet machine:
# switchd was stopped under its own measurement).
PB_TCP_SECS=${PB_TCP_SECS:-6} PB_UDP_SECS=${PB_UDP_SECS:-6} PB_DAEMON_MAX=${PB_DAEMON_MAX:-900} PER_RUN_MAX=${PER_RUN_MAX:-900} \
  "$root/bench/peers/run-all.sh" -o "$out" -r "$rounds" "$here/systems/vxlan-bridge.sh" "$here/systems/vxlan-tapswitch.sh" || status=$?
if [ -f "$out/results.tsv" ]; then
  echo
  "$here/ratio.sh" "$out/results.tsv" | tee "$out/ratio.md" || status=1
fi
echo "results: $out"
exit $status
