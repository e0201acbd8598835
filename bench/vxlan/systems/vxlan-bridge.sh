# shellcheck shell=bash disable=SC2034
# vxlan-bridge (the baseline): kernel VXLAN host pb-a -> a kernel vxlan device in a Linux bridge in pb-vx
# -> a veth into pb-b. What the kernel alone does with the same VXLAN packets.
SYS_NAME=vxlan-bridge
SYS_NOTE="kernel vxlan (VNI 42) -> kernel vxlan + Linux bridge in netns pb-vx -> veth, MTU 1450"
# shellcheck source=_vxlan.inc
. "$(dirname "${BASH_SOURCE[0]}")/_vxlan.inc"

start_system() {
  vxlan_host_a || return 1
  ip -n "$VX_NS" link add vx42 type vxlan id 42 local "$VX_FAR" dstport 4789 nolearning dev ul0 || return 1
  ip netns exec "$VX_NS" bridge fdb append 00:00:00:00:00:00 dev vx42 dst "$VX_NEAR" || return 1
  ip -n "$VX_NS" link add br0 type bridge stp_state 0 forward_delay 0 || return 1
  ip link add "$PB_IF" netns "$PB_NS_B" mtu "$VX_MTU" type veth peer name port-b netns "$VX_NS" mtu "$VX_MTU" || return 1
  local p
  for p in vx42 port-b; do ip -n "$VX_NS" link set "$p" master br0 up || return 1; done
  ip -n "$VX_NS" link set br0 up
}
stop_system() { :; }   # lib.sh deletes pb-vx, pb-a, pb-b (and the veths with them)
