# shellcheck shell=bash disable=SC2034
# tapswitch with the agents' data path on the event loop (tap-agent --no-fast-path), switchd as usual:
# one lever of issue 24 alone (switchd's native WebSocket ports).
SYS_NAME_OVERRIDE=tapswitch-jsagent
TSW_AGENT_ARGS="--no-fast-path"
# shellcheck source=tapswitch.sh
. "$(dirname "${BASH_SOURCE[0]}")/tapswitch.sh"
