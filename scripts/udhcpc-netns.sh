#!/bin/sh
# busybox udhcpc script for a network namespace (udhcpc -s this-file), used
# by the gateway recipe in docs/GATEWAY.md:
#   ip netns exec lab1 busybox udhcpc -i lab1 -q -s scripts/udhcpc-netns.sh
#
# It applies the lease to the interface and the namespace's default route,
# and nothing else. Debian's default script also writes /etc/resolv.conf,
# which inside `ip netns exec` is the HOST's file unless
# /etc/netns/NAME/resolv.conf exists: this one writes DNS servers only to
# /etc/netns/NAME/resolv.conf, and only if the directory /etc/netns/NAME
# exists (the operator made it for this namespace); otherwise it prints them.
# It refuses to run outside a named namespace, where it would change the
# host's addresses and default route.

ns=$(ip netns identify 2>/dev/null)
if [ -z "$ns" ]; then
  echo "udhcpc-netns.sh: not inside a named network namespace; run udhcpc with ip netns exec NAME" >&2
  exit 1
fi

case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set dev "$interface" up
    ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    if [ -n "$router" ]; then
      ip route replace default via "${router%% *}" dev "$interface"
    fi
    if [ -n "$dns" ]; then
      if [ -d "/etc/netns/$ns" ]; then
        # Rewritten in place (no rename): `ip netns exec` bind-mounts this very file over /etc/resolv.conf.
        : > "/etc/netns/$ns/resolv.conf"
        for s in $dns; do echo "nameserver $s" >> "/etc/netns/$ns/resolv.conf"; done
      else
        echo "udhcpc-netns.sh: DNS $dns (not written: mkdir -p /etc/netns/$ns to have it in /etc/netns/$ns/resolv.conf)"
      fi
    fi
    echo "udhcpc-netns.sh: $interface $ip/${mask:-24} router ${router:-none} in namespace $ns"
    ;;
esac
exit 0
