# shellcheck shell=bash disable=SC2034
# Both agents on replica r1 of a 2-replica fleet: the path without a mesh hop (the baseline of fleet-mesh).
SYS_NAME=fleet-one
SYS_NOTE="2 replicas (--fleet), both tap-agents on r1"
# shellcheck source=_fleet.inc
. "$(dirname "${BASH_SOURCE[0]}")/_fleet.inc"
start_system() { fleet_start 1 1; }
stop_system() { :; }
