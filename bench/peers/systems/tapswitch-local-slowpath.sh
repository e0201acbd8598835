# shellcheck shell=bash disable=SC2034
# tapswitch-local-slowpath: tapswitch-local with --no-fast-path: the TAPs are
# read on switchd's event loop only, no native thread forwarding between them
# (the path before the fast path; docs/LOCAL-TAPS.md). Not in the default set.
#
# tapswitch-local: ONE switchd that serves both TAPs itself (`--tap`), no
# tap-agent and no WebSocket: a frame from pb-a to pb-b wakes one Node process.
# This is tapswitch for TAPs on the switch's own host; systems/tapswitch.sh is
# the agent path (TAPs on other hosts, over WebSocket). Defaults (offload auto).
# TSW_DIR: an installed checkout (default: the current directory).
# TSW_SWITCHD_ARGS: extra switchd flags.
SYS_NAME=${SYS_NAME_OVERRIDE:-tapswitch-local-slowpath}
TSW_SWITCHD_ARGS="--no-fast-path ${TSW_SWITCHD_ARGS:-}"
SYS_NOTE="one switchd serving both TAPs itself (--tap), no agents ${TSW_SWITCHD_ARGS:-}"
: "${TSW_DIR:=$PWD}"

start_system() {
  local port
  [ -f "$TSW_DIR/bin/switchd.js" ] || { pb_log "tapswitch-local.sh: no bin/switchd.js in $TSW_DIR (run from the project root or set TSW_DIR)"; return 1; }
  port=$(pb_port 42)
  # shellcheck disable=SC2086
  pb_spawn switchd node "$TSW_DIR/bin/switchd.js" --listen "127.0.0.1:$port" --log-level warn --tap pbtswlA,pbtswlB ${TSW_SWITCHD_ARGS:-}
  pb_wait_link pbtswlA "" 15 && pb_wait_link pbtswlB "" 15 || return 1
  pb_attach pbtswlA a && pb_attach pbtswlB b
}
stop_system() { :; }
