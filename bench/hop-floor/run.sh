#!/usr/bin/env bash
# The floor of one userspace hop on this machine (`npm run bench:hop`):
# builds hop-floor.cc into a temporary directory and runs it. See its header.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
g++ -O2 -std=c++17 -Wall -Wextra -pthread "$here/hop-floor.cc" -o "$tmp/hop-floor"
timeout 300 "$tmp/hop-floor" "${1:-400}"
