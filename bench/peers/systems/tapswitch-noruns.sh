# shellcheck shell=bash disable=SC2034
# tapswitch with the agents writing every frame to the TAP alone (tap-agent --no-udp-runs):
# the UDP-runs lever of issue 24 alone (LOCAL-TAPS.md, "UDP runs").
SYS_NAME_OVERRIDE=tapswitch-noruns
TSW_AGENT_ARGS="--no-udp-runs"
# shellcheck source=tapswitch.sh
. "$(dirname "${BASH_SOURCE[0]}")/tapswitch.sh"
