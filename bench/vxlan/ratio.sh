#!/usr/bin/env bash
# bench/vxlan/ratio.sh RESULTS.tsv -- switchd's VXLAN port (vxlan-tapswitch) against the kernel's own
# VXLAN-to-bridge path (vxlan-bridge) measured in the same run: medians over every finished round.
set -u
f=${1:?usage: ratio.sh RESULTS.tsv}
[ -s "$f" ] || { echo "empty results: $f" >&2; exit 1; }
awk -F'\t' "$(cat "$(dirname "${BASH_SOURCE[0]}")/../peers/median.awk")"'
NR==1 { for (i=1;i<=NF;i++) col[$i]=i; next }
$col["status"]=="ok" { s=$col["system"]; n[s]++; P[s,n[s]]=$col["ping_p50_us"]; U[s,n[s]]=$col["udp_rx_pps"]; T[s,n[s]]=$col["tcp1_gbps"]; R[s,n[s]]=$col["tcp1_retr"] }
END {
  k="vxlan-bridge"; t="vxlan-tapswitch"
  if (n[k]==0 || n[t]==0) { print k " or " t " did not finish a round: no ratio"; exit 1 }
  p1=med(P,k); p2=med(P,t); u1=med(U,k); u2=med(U,t); t1=med(T,k); t2=med(T,t)
  print "| path | rounds | ping p50 µs | 64 B UDP received/s | TCP 1 stream Gbit/s | TCP retransmits |"
  print "|---|---|---|---|---|---|"
  printf "| kernel vxlan + bridge (vxlan-bridge) | %d | %.0f | %.0f | %.2f | %.0f |\n", n[k], p1, u1, t1, med(R,k)
  printf "| switchd VXLAN port + tap-agent (vxlan-tapswitch) | %d | %.0f | %.0f | %.2f | %.0f |\n", n[t], p2, u2, t2, med(R,t)
  printf "| tapswitch / kernel | | %.2fx | %.2fx | %.2fx | |\n", (p1>0? p2/p1 : 0), (u1>0? u2/u1 : 0), (t1>0? t2/t1 : 0)
}' "$f"
