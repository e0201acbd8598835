#!/usr/bin/env bash
# Installs the system packages tapswitch's build and every test tier need, and
# only those missing (Debian or Ubuntu, apt). The one list: README.md's set-up
# and .ci/run both call this script, and test/unit/install-deps.test.ts fails
# when a test asks for a tool (requireTools, command -v, ...) that is not here.
#
#   sudo scripts/install-deps.sh          # then: npm install && sudo npm test
#   scripts/install-deps.sh --check       # list what is missing, install nothing (exit 1 if anything is)
#
# Node.js (20.19 or later) is not installed here: Debian 12's is too old.
set -euo pipefail

# One line per tool: the command (or an absolute path, where a test runs that
# path, or a library's .a, which must exist), the Debian package that has it,
# and who needs it.
TOOLS='
ip                 iproute2         the demo and e2e tests: namespaces, links, addresses
ss                 iproute2         e2e tests wait for a listener in a namespace
ping               iputils-ping     the demo and e2e tests
sysctl             procps           e2e tests set a namespace'"'"'s sysctls
iperf3             iperf3           e2e throughput and offload tests
tcpdump            tcpdump          e2e: switchctl capture read back by tcpdump; the VXLAN e2e reads VLAN tags with it
bridge             iproute2         the VXLAN e2e: a kernel vxlan device'"'"'s flood list (bridge fdb append)
ethtool            ethtool          the VXLAN e2e and bench: transmit checksum offload off on veth underlays
timeout            coreutils        e2e tests bound a capture run inside a namespace
ovsdb-tool         openvswitch-common  the VXLAN e2e: Open vSwitch'"'"'s userspace datapath in a namespace
ovsdb-server       openvswitch-common  the VXLAN e2e: Open vSwitch'"'"'s userspace datapath in a namespace
ovs-appctl         openvswitch-common  the VXLAN e2e: Open vSwitch'"'"'s userspace datapath in a namespace
ovs-vsctl          openvswitch-switch  the VXLAN e2e: Open vSwitch'"'"'s userspace datapath in a namespace
ovs-vswitchd       openvswitch-switch  the VXLAN e2e: Open vSwitch'"'"'s userspace datapath in a namespace
promtool           prometheus       deploy tests: the scrape configuration and /metrics checked by promtool
nginx              nginx            the balancer: deploy/nginx/tapswitch.conf checked by nginx -t, and run in front of several switchd by the drain tests
qemu-system-x86_64 qemu-system-x86  the QEMU endpoint tests and the gateway (libslirp in a QEMU child)
busybox            busybox          udhcpc in the gateway tests
vde_switch         vde2             the VDE cable e2e test
vde_plug           vde2             the VDE cable e2e test
dpipe              vde2             the VDE cable e2e test
openssl            openssl          TLS test certificates; the deploy quick start'"'"'s token
setpriv            util-linux       tests run parts as an unprivileged user
script             bsdutils         a gateway test gives the child a terminal
unshare            util-linux       the docs-examples test runs each example in namespaces of its own
taskset            util-linux       the CPU-follow tests of the native link read and set the affinity of threads
nice               coreutils        the CPU-follow tests start their spinning threads through it (a niceness given)
nstat              iproute2         the UDP-runs e2e: the UDP checksum errors of the host beyond a router
nft                nftables         the UDP-runs e2e: a length rule in the TAP'"'"'s namespace judges a run as one packet
python3            python3          the native addon'"'"'s build (node-gyp); test helpers
/usr/bin/python3   python3          tests that run the system python in a namespace
make               make             the native addon'"'"'s build (node-gyp)
g++                g++              the native addon'"'"'s build (node-gyp)
cc                 gcc              the native read-length e2e test builds an LD_PRELOAD shim
systemd-analyze    systemd          deploy tests verify the systemd units
/usr/bin/chromium  chromium         the web console'"'"'s browser tests (playwright-core drives it)
curl               curl             docs examples (the gateway recipe)
mkfifo             coreutils        the lab state test plants a FIFO where switchctl looks
clang-format       clang-format     npm test checks native/'"'"'s C++ is formatted (test/unit/format.test.ts); npm run format
clang++            clang            npm test'"'"'s bounded fuzz run of the native WebSocket reader (scripts/fuzz.sh, fuzz/)
/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a libclang-rt-14-dev  clang++ -fsanitize=fuzzer,address,undefined: libFuzzer and the sanitizers (clang only recommends it)
'

check_only=0
case "${1:-}" in
  --check) check_only=1 ;;
  -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  '') ;;
  *) echo "install-deps: unknown option \"$1\" (expected --check or --help)" >&2; exit 2 ;;
esac

have () { case "$1" in /*.a) [ -f "$1" ] ;; /*) [ -x "$1" ] ;; *) command -v "$1" >/dev/null 2>&1 ;; esac }

need=()
missing=()
while read -r tool pkg _; do
  [ -z "$tool" ] && continue
  if ! have "$tool"; then
    missing+=("$tool")
    case " ${need[*]:-} " in *" $pkg "*) ;; *) need+=("$pkg") ;; esac
  fi
done <<< "$TOOLS"

if [ "$check_only" = 1 ]; then
  if [ "${#need[@]}" -eq 0 ]; then echo "install-deps: nothing missing"; exit 0; fi
  echo "install-deps: missing ${missing[*]} (Debian packages: ${need[*]})"
  exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then exec sudo -- "$0" "$@"; fi
  echo "install-deps: needs root to install packages: run it as root, or install sudo" >&2
  exit 1
fi

if [ "${#need[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: no apt-get here: install the packages that give ${missing[*]} with your system's package manager (Debian names: ${need[*]})" >&2
    exit 1
  fi
  echo "install-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
  # Only promtool is needed, but the package also starts a Prometheus server on every address (:9090,
  # no authentication): stop and disable the service this install enabled; the host had none before.
  case " ${need[*]} " in
    *" prometheus "*)
      if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled --quiet prometheus.service 2>/dev/null; then
        systemctl disable --now prometheus.service >/dev/null 2>&1 || systemctl disable prometheus.service >/dev/null 2>&1 || true
        echo "install-deps: stopped and disabled the prometheus service its package started (tapswitch's tests need its promtool only)"
      fi
      ;;
  esac
  # The same for nginx: the tests run their own nginx (their own prefix and port, on loopback); the service the
  # package starts would serve the default site on port 80 of every address.
  case " ${need[*]} " in
    *" nginx "*)
      if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled --quiet nginx.service 2>/dev/null; then
        systemctl disable --now nginx.service >/dev/null 2>&1 || systemctl disable nginx.service >/dev/null 2>&1 || true
        echo "install-deps: stopped and disabled the nginx service its package started (tapswitch's tests run their own nginx)"
      fi
      ;;
  esac
else
  echo "install-deps: every package is installed"
fi

# The demo and the e2e tests need the TUN/TAP driver: load it if the device node is missing.
if [ ! -c /dev/net/tun ]; then
  if command -v modprobe >/dev/null 2>&1; then modprobe tun 2>/dev/null || true; fi
  if [ ! -c /dev/net/tun ]; then
    mkdir -p /dev/net && mknod /dev/net/tun c 10 200 && chmod 0666 /dev/net/tun
  fi
fi

# Node.js is the one thing this script leaves to you (Debian 12 ships 18; sudo may hide an nvm install).
node_version=$(node --version 2>/dev/null || true)
if [ -z "$node_version" ]; then
  echo "install-deps: warning: no node on root's PATH: tapswitch needs Node.js 20.19 or later (https://nodejs.org/en/download)" >&2
else
  IFS=. read -r major minor _ <<< "${node_version#v}"
  if [ "$major" -lt 20 ] || { [ "$major" -eq 20 ] && [ "$minor" -lt 19 ]; }; then
    echo "install-deps: warning: node $node_version is too old: tapswitch needs Node.js 20.19 or later (https://nodejs.org/en/download)" >&2
  fi
fi
