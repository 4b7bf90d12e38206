#!/bin/sh
# Builds the whole-tool fuzz target (fuzz_cli.c) with clang's libFuzzer,
# AddressSanitizer and UndefinedBehaviorSanitizer, and fuzzes it for a few
# seconds starting from its corpus. A crash, leak, hang or undefined
# behaviour fails the test and prints the input as hex (add it to the
# corpus once fixed). Exit 77 (skipped) when clang or its fuzzer runtime is
# missing (Debian: clang and libclang-rt-14-dev).
#   fuzz_cli.sh SRCROOT CORPUS SECONDS SOURCE...
set -u
src=$1 corpus=$2 secs=${FUZZ_SECONDS:-$3}
shift 3
cc=${CLANG:-clang}
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "SKIP: no $cc"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' \
  > "$work/probe.c"
if ! "$cc" -fsanitize=fuzzer,address,undefined "$work/probe.c" -o "$work/probe" 2> "$work/probe.err"; then
  echo "SKIP: $cc cannot build a libFuzzer target here:"
  head -3 "$work/probe.err"
  exit 77
fi
flags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -std=gnu11 -D_GNU_SOURCE"
flags="$flags -DSM_CLI_NO_MAIN -DSM_LIBDIR_FROM_BINDIR=\"lib\" -DSM_PROJECT_VERSION=\"fuzz\" -I$src/include -I$src"
# shellcheck disable=SC2086
if ! "$cc" $flags "$@" -ldw -lelf -lz -lm -lstdc++ -o "$work/fuzz_cli" 2> "$work/build.err"; then
  echo "FAIL: the fuzz target does not build:"
  cat "$work/build.err"
  exit 1
fi
# The fuzzer adds what it finds to the first directory: a copy, not the tree.
mkdir "$work/corpus"
cp "$corpus"/* "$work/corpus/"
cd "$work" || exit 1
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ./fuzz_cli -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 -max_len=65536 \
  -artifact_prefix="$work/" -print_final_stats=1 "$work/corpus" > fuzz.log 2>&1
rc=$?
tail -15 fuzz.log
if [ $rc != 0 ]; then
  for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* "$work"/slow-unit-*; do
    [ -e "$a" ] || continue
    echo "FAIL: $(basename "$a") ($(wc -c < "$a") bytes):"
    od -An -tx1 -v "$a" | head -40
  done
  grep -m1 -B2 -A25 "ERROR\|runtime error" fuzz.log
  exit 1
fi
echo "fuzz-cli: $secs s of fuzzing, no failure"
