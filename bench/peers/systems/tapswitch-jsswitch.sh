# shellcheck shell=bash disable=SC2034
# tapswitch with switchd's WebSocket ports on the event loop (switchd --no-fast-path), the agents as usual:
# one lever of issue 24 alone (the agents' native link).
SYS_NAME_OVERRIDE=tapswitch-jsswitch
TSW_SWITCHD_ARGS="--no-fast-path"
# shellcheck source=tapswitch.sh
. "$(dirname "${BASH_SOURCE[0]}")/tapswitch.sh"
