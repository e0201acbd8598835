#!/usr/bin/env bash
# bench/peers/ratios.sh RESULTS.tsv -- tapswitch against the best USERSPACE
# peer of the same run, per figure (issue 14's goals):
#   ping p50     lower is better: "x faster" = best peer's p50 / ours
#   UDP 64B rx   higher is better: ours / best peer's
#   TCP 1 stream higher is better: ours / best peer's (goal: >= 3x)
# Medians over every round that finished (the harness's report screens
# rounds disturbed by other load; this uses them all, and says how many).
# Kernel paths (bridge-veth, veth-direct) are shown as the floor, not as peers.
set -u
f=${1:?usage: ratios.sh RESULTS.tsv}
[ -s "$f" ] || { echo "empty results: $f" >&2; exit 1; }
awk -F'\t' "$(cat "$(dirname "${BASH_SOURCE[0]}")/median.awk")"'
NR==1 { for (i=1;i<=NF;i++) col[$i]=i; next }
$col["status"]=="ok" {
  s=$col["system"]; n[s]++
  P[s,n[s]]=$col["ping_p50_us"]; U[s,n[s]]=$col["udp_rx_pps"]; T[s,n[s]]=$col["tcp1_gbps"]
  if (!(s in seen)) { seen[s]=1; order[++ns]=s }
}
function kernel(s) { return s=="bridge-veth" || s=="veth-direct" }
function ours(s) { return s ~ /^tapswitch/ }
END {
  bp=""; bu=""; bt=""
  for (i=1;i<=ns;i++) { s=order[i]; if (kernel(s) || ours(s)) continue
    p=med(P,s); u=med(U,s); t=med(T,s)
    if (p!="" && (bp=="" || p<bp)) { bp=p; bps=s }
    if (u!="" && (bu=="" || u>bu)) { bu=u; bus=s }
    if (t!="" && (bt=="" || t>bt)) { bt=t; bts=s }
  }
  if (bp=="") { print "no userspace peer finished in this run: nothing to compare with"; exit 1 }
  printf "best userspace peer: ping p50 %.0f us (%s), UDP 64B rx %.0f frames/s (%s), TCP 1 stream %.2f Gbit/s (%s)\n\n", bp, bps, bu, bus, bt, bts
  print "| system | rounds | ping p50 µs | vs best peer | UDP 64B rx/s | vs best peer | TCP1 Gbit/s | vs best peer |"
  print "|---|---|---|---|---|---|---|---|"
  for (i=1;i<=ns;i++) { s=order[i]
    p=med(P,s); u=med(U,s); t=med(T,s)
    rp=(p!="" && p>0)? sprintf("%.2fx faster", bp/p) : "-"
    ru=(u!="" && bu>0)? sprintf("%.2fx", u/bu) : "-"
    rt=(t!="" && bt>0)? sprintf("%.2fx", t/bt) : "-"
    name=s; if (kernel(s)) name=s " (kernel)"; else if (ours(s)) name="**" s "**"
    printf "| %s | %d | %s | %s | %s | %s | %s | %s |\n", name, n[s], (p==""?"NA":sprintf("%.0f",p)), rp, (u==""?"NA":sprintf("%.0f",u)), ru, (t==""?"NA":sprintf("%.2f",t)), rt
  }
  print ""
  print "goals (issue 14): ping faster than the best peer (> 1x), UDP 64B above it (> 1x), TCP 1 stream >= 3x."
}' "$f"
