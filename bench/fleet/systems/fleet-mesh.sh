# shellcheck shell=bash disable=SC2034
# One agent on r1, the other on r2: the network is split and the replicas' mesh link joins it,
# so every frame crosses agent -> r1 -> mesh -> r2 -> agent (one hop more than fleet-one).
SYS_NAME=fleet-mesh
SYS_NOTE="2 replicas (--fleet), tap-agents on r1 and r2, joined by the mesh"
# shellcheck source=_fleet.inc
. "$(dirname "${BASH_SOURCE[0]}")/_fleet.inc"
start_system() { fleet_start 1 2; }
stop_system() { :; }
