# shellcheck shell=bash disable=SC2034
# tapswitch with the agents' link threads left where the scheduler puts them (tap-agent --no-cpu-follow):
# the cpu-follow lever of issue 24 alone (LOCAL-TAPS.md, "Where the link's thread runs").
SYS_NAME_OVERRIDE=tapswitch-nofollow
TSW_AGENT_ARGS="--no-cpu-follow"
# shellcheck source=tapswitch.sh
. "$(dirname "${BASH_SOURCE[0]}")/tapswitch.sh"
