# shellcheck shell=bash disable=SC2034
# tapswitch-local-slowpath: tapswitch-local with --no-fast-path: the TAPs are
# read on switchd's event loop only, no native thread forwarding between them
# (the path before the fast path; docs/LOCAL-TAPS.md). Not in the default set.
SYS_NAME_OVERRIDE=tapswitch-local-slowpath
TSW_SWITCHD_ARGS="--no-fast-path ${TSW_SWITCHD_ARGS:-}"
# shellcheck source=tapswitch-local.sh
. "$(dirname "${BASH_SOURCE[0]}")/tapswitch-local.sh"
