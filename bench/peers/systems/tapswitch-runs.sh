# shellcheck shell=bash disable=SC2034
# tapswitch with the agents writing a run of UDP datagrams of one flow to the TAP as one (tap-agent --udp-runs):
# the UDP-runs lever of issue 24, off by default (LOCAL-TAPS.md, "UDP runs").
SYS_NAME_OVERRIDE=tapswitch-runs
TSW_AGENT_ARGS="--udp-runs"
# shellcheck source=tapswitch.sh
. "$(dirname "${BASH_SOURCE[0]}")/tapswitch.sh"
