# shellcheck shell=bash disable=SC2034
# tapswitch-local-busypoll: tapswitch-local with --busy-poll 10000 (10 ms of
# polling after each burst: covers the harness's 5 ms ping interval; spins a
# core while traffic flows). Not in the default set: on a 2-core machine
# shared with other work it measured slower than without (docs/LOCAL-TAPS.md).
SYS_NAME_OVERRIDE=tapswitch-local-busypoll
TSW_SWITCHD_ARGS="--busy-poll 10000 ${TSW_SWITCHD_ARGS:-}"
# shellcheck source=tapswitch-local.sh
. "$(dirname "${BASH_SOURCE[0]}")/tapswitch-local.sh"
