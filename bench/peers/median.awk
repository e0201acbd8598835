# The median of A[s,1..n[s]] (one figure of system s over its rounds), "NA" and empty skipped; "" if none.
# Shared by the ratio scripts (bench/peers/ratios.sh, bench/fleet/hop-ratio.sh, bench/vxlan/ratio.sh):
# each prepends it to its own program, since Debian's awk (mawk) has no -e beside -f.
function med(A,s,   i,m,a,x,p,q) {
  m=0; for (i=1;i<=n[s];i++) { x=A[s,i]; if (x!="" && x!="NA") a[++m]=x+0 }
  if (m==0) return ""
  for (p=2;p<=m;p++) { x=a[p]; for (q=p-1;q>=1 && a[q]>x;q--) a[q+1]=a[q]; a[q+1]=x }
  return (m%2)? a[(m+1)/2] : (a[m/2]+a[m/2+1])/2
}
