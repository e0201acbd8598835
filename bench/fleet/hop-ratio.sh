#!/usr/bin/env bash
# bench/fleet/hop-ratio.sh RESULTS.tsv -- the cost of a mesh hop: fleet-mesh (agents on two replicas
# joined by the mesh) against fleet-one (both on one replica), medians over every finished round.
set -u
f=${1:?usage: hop-ratio.sh RESULTS.tsv}
[ -s "$f" ] || { echo "empty results: $f" >&2; exit 1; }
awk -F'\t' "$(cat "$(dirname "${BASH_SOURCE[0]}")/../peers/median.awk")"'
NR==1 { for (i=1;i<=NF;i++) col[$i]=i; next }
$col["status"]=="ok" { s=$col["system"]; n[s]++; P[s,n[s]]=$col["ping_p50_us"]; U[s,n[s]]=$col["udp_rx_pps"]; T[s,n[s]]=$col["tcp1_gbps"] }
END {
  if (n["fleet-one"]==0 || n["fleet-mesh"]==0) { print "fleet-one or fleet-mesh did not finish a round: no ratio"; exit 1 }
  p1=med(P,"fleet-one"); p2=med(P,"fleet-mesh"); u1=med(U,"fleet-one"); u2=med(U,"fleet-mesh"); t1=med(T,"fleet-one"); t2=med(T,"fleet-mesh")
  print "| path | rounds | ping p50 µs | 64 B UDP received/s | TCP 1 stream Gbit/s |"
  print "|---|---|---|---|---|"
  printf "| one replica (fleet-one) | %d | %.0f | %.0f | %.2f |\n", n["fleet-one"], p1, u1, t1
  printf "| two replicas + mesh (fleet-mesh) | %d | %.0f | %.0f | %.2f |\n", n["fleet-mesh"], p2, u2, t2
  printf "| the mesh hop | | +%.0f µs (%.2fx) | %.2fx | %.2fx |\n", p2-p1, (p1>0? p2/p1 : 0), (u1>0? u2/u1 : 0), (t1>0? t2/t1 : 0)
}' "$f"
