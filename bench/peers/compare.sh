#!/usr/bin/env bash
# bench/peers/compare.sh (`npm run bench:peers`, root): tapswitch against the
# userspace L2 peers users compare it with, in ONE interleaved run on this
# machine, then the ratios to the best peer (ratios.sh).
#
#   sudo npm run bench:peers                  # default systems, 2 rounds
#   sudo npm run bench:peers -- -r 3 tapswitch-local ovs-netdev
#   sudo npm run bench:peers -- --install     # apt-get install the peers first
#
# tapswitch runs both ways: `tapswitch` (switchd + 2 tap-agents over WebSocket,
# as across hosts) and `tapswitch-local` (switchd --tap, TAPs on its own host).
set -u
PB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export TSW_DIR=${TSW_DIR:-$(cd "$PB_DIR/../.." && pwd)}
PKGS="iperf3 iputils-ping jq iproute2 ethtool procps openvswitch-switch tinc openvpn vde2 socat"
install=0 rounds=2 systems=()
while [ $# -gt 0 ]; do
  case $1 in
    --install) install=1 ;;
    -r) rounds=$2; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) systems+=("$1") ;;
  esac
  shift
done
[ ${#systems[@]} -gt 0 ] || systems=(bridge-veth ovs-netdev tinc-nocrypt openvpn-none-udp vde-tcp tapswitch tapswitch-local)
[ "$(id -u)" = 0 ] || { echo "bench:peers needs root (namespaces, TAPs, the peers' daemons): sudo npm run bench:peers" >&2; exit 2; }
[ -f "$TSW_DIR/dist/switch/main.js" ] || { echo "no dist/ in $TSW_DIR: run npm run build first" >&2; exit 2; }
if [ $install = 1 ]; then
  apt-get install -y --no-install-recommends $PKGS || exit 2
fi
missing=()
for t in iperf3 ping jq ethtool ovs-vswitchd tincd openvpn vde_switch socat; do
  command -v "$t" >/dev/null || PATH=$PATH:/usr/sbin command -v "$t" >/dev/null || missing+=("$t")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]}. Install the peers (Debian): apt-get install -y --no-install-recommends $PKGS, or pass --install" >&2
  exit 2
fi
out=${PB_OUT:-/tmp/pb-bench/$(date +%Y%m%d-%H%M%S)}
"$PB_DIR/run-all.sh" -o "$out" -r "$rounds" "${systems[@]}" || exit $?
echo
"$PB_DIR/ratios.sh" "$out/results.tsv" | tee "$out/ratios.md"
