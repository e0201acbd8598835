#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/*.cc, clang with AddressSanitizer and
# UBSan) of the native WebSocket reader and of the batch walk, with the UDP
# runs in it that tap-agent's link writes as one TAP write (native/udp_run.h:
# each run, cut by a model of the kernel's segmentation, must give back its
# frames byte for byte), writes their seed corpus from ws's own frames and
# from UDP runs (fuzz/make-corpus.mjs) and runs each for a bounded time.
# Exits non-zero on any crash, failed check, leak or undefined behaviour,
# printing the reproducer and the command that replays it.
#
#   scripts/fuzz.sh [seconds]      # each target runs this long (default 45); npm run fuzz -- 600
#
# The build, the corpus the runs grow and any reproducer go to $FUZZ_OUT
# (default build/fuzz, git-ignored; the corpus is kept between runs, so a
# longer run starts where the last one stopped). Needs clang++ and its
# libFuzzer runtime: sudo scripts/install-deps.sh (Debian: clang, libclang-rt-14-dev).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-45}"
case "$secs" in ''|*[!0-9]*) echo "fuzz: seconds must be a whole number, not \"$secs\" (scripts/fuzz.sh [seconds])" >&2; exit 2 ;; esac
out="${FUZZ_OUT:-$root/build/fuzz}"
mkdir -p "$out/bin" "$out/seed" "$out/crash"

flags=(-std=c++17 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -O1 -g)
if ! command -v clang++ >/dev/null 2>&1; then
  echo "fuzz: clang++ is missing: install it with sudo scripts/install-deps.sh (Debian packages clang, libclang-rt-14-dev)" >&2
  exit 3
fi
probe="$out/bin/probe.cc"
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$probe"
if ! clang++ "${flags[@]}" "$probe" -o "$out/bin/probe" 2> "$out/bin/probe.log"; then
  echo "fuzz: clang++ cannot link -fsanitize=fuzzer,address,undefined ($(head -c 300 "$out/bin/probe.log")): install libFuzzer with sudo scripts/install-deps.sh (Debian package libclang-rt-14-dev)" >&2
  exit 3
fi

# target, its sources, the longest input (a 64-bit-length seed is 64 KiB and a bit)
targets=(
  "ws_reader fuzz/ws_reader_fuzz.cc native/ws_frame.cc 70000"
  "batch fuzz/batch_fuzz.cc 4096"
)
for t in "${targets[@]}"; do
  read -r name srcs <<< "${t% *}"
  # shellcheck disable=SC2086
  (cd "$root" && clang++ "${flags[@]}" $srcs -o "$out/bin/${name}_fuzz")
done
node "$root/fuzz/make-corpus.mjs" "$out/seed" > /dev/null

# The targets run side by side, each for the whole time on a core of its own (the run takes `secs`, not
# `secs` per target); their reports follow in order once both are done.
pids=()
# A run cut short (a test's timeout, ^C) stops its fuzzers too, by the PIDs it started.
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
trap 'exit 143' TERM INT
for t in "${targets[@]}"; do
  name="${t%% *}"
  max_len="${t##* }"
  mkdir -p "$out/corpus/$name"
  log="$out/$name.log"
  echo "fuzz: $name for ${secs} s (log: $log)"
  "$out/bin/${name}_fuzz" -max_total_time="$secs" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$out/crash/$name-" "$out/corpus/$name" "$out/seed/$name" > "$log" 2>&1 &
  pids+=("$!")
done
failed=0
for i in "${!targets[@]}"; do
  t="${targets[$i]}"
  name="${t%% *}"
  log="$out/$name.log"
  set +e
  wait "${pids[$i]}"
  rc=$?
  set -e
  echo "fuzz: $name done"
  grep -E '^(#[0-9]+\s+DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" | sed 's/^/  /' || true
  if [ "$rc" -ne 0 ]; then
    failed=1
    grep -E 'check failed|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|SUMMARY' "$log" | head -5 | sed 's/^/  /' || true
    repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    echo "fuzz: $name FAILED (exit $rc); reproducer: ${repro:-none written, see $log}" >&2
    [ -n "$repro" ] && echo "fuzz: replay it with: $out/bin/${name}_fuzz $repro" >&2
  fi
done
pids=()
if [ "$failed" -ne 0 ]; then exit 1; fi
echo "fuzz: no findings"
