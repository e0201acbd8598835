# shellcheck shell=bash disable=SC2034
# vxlan-tapswitch: kernel VXLAN host pb-a -> switchd's VXLAN port (--vxlan-listen, --vxlan 42@pb-a) in
# pb-vx -> WebSocket on pb-vx's loopback -> tap-agent, whose TAP is pb0 in pb-b (--netns). switchd and the
# agent run in pb-vx, so the underlay and their loopback exist only there.
SYS_NAME=vxlan-tapswitch
SYS_NOTE="kernel vxlan (VNI 42) -> switchd VXLAN port in netns pb-vx -> tap-agent (--netns pb-b, --mtu 1450)"
# shellcheck source=_vxlan.inc
. "$(dirname "${BASH_SOURCE[0]}")/_vxlan.inc"

start_system() {
  local port
  [ -f "$TSW_DIR/bin/switchd.js" ] || { pb_log "vxlan-tapswitch.sh: no bin/switchd.js in $TSW_DIR (set TSW_DIR)"; return 1; }
  vxlan_host_a || return 1
  port=$(pb_port 44)
  pb_spawn_ns "$VX_NS" switchd node "$TSW_DIR/bin/switchd.js" --listen "127.0.0.1:$port" --log-level warn \
    --vxlan-listen "$VX_FAR:4789" --vxlan "42@$VX_NEAR"
  pb_wait_listen "$port" tcp 15 "$VX_NS" && pb_wait_listen 4789 udp 15 "$VX_NS" || return 1
  pb_spawn_ns "$VX_NS" agent-b node "$TSW_DIR/bin/tap-agent.js" --url "ws://127.0.0.1:$port/" --tap "$PB_IF" --netns "$PB_NS_B" \
    --mtu "$VX_MTU" --log-level warn
  pb_wait_link "$PB_IF" "$PB_NS_B" 15
}
stop_system() { :; }
