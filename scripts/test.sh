#!/bin/sh
# Installs what is needed (as root, on Debian 12), builds, and runs every
# test suite: unit, preload, stress, real programs, CLI (in ./build). Then,
# each in a build directory of its own (docs/checks.md):
#   build-checks  -Dchecks=true: the preload, stress, tracer and control
#                 suites with the library's asserts and invariant checkers on;
#   build-tsan    -Db_sanitize=thread: the unit suite (allocator and tracer
#                 linked in directly) under ThreadSanitizer;
#   build-asan    -Dtools_sanitize=address,undefined: the tool's suites (cli,
#                 export, svg, the fuzz corpus replay, control: the client of
#                 the control channel, live: the live view) under ASan and UBSan.
# With arguments (a test or suite for meson test), only ./build runs them.
# Prints how long each stage took; the last line is
# "N passed, N failed, N skipped" over every stage.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
sh scripts/build.sh
status=0
dirs="build"

# stage NAME DIR SETUP-OPTIONS -- MESON-TEST-ARGS: configures DIR once,
# builds it, runs the tests; a build failure counts as one failed test.
stage() {
  name=$1 dir=$2
  shift 2
  setup=""
  while [ "$1" != "--" ]; do setup="$setup $1"; shift; done
  shift
  start=$(date +%s)
  rm -f "$dir/meson-logs/testlog.json"
  dirs="$dirs $dir"
  # shellcheck disable=SC2086
  if { [ -f "$dir/build.ninja" ] || meson setup "$dir" $setup >/dev/null; } && meson compile -C "$dir" >/dev/null; then
    meson test -C "$dir" --print-errorlogs --num-processes 2 "$@" || status=1
  else
    echo "test.sh: stage $name: the build in $dir failed" >&2
    mkdir -p "$dir/meson-logs"
    echo '{"name": "build of '"$dir"'", "result": "FAIL"}' > "$dir/meson-logs/testlog.json"
    status=1
  fi
  echo "test.sh: stage $name took $(($(date +%s) - start)) s" >&2
}

start=$(date +%s)
rm -f build/meson-logs/testlog.json
meson test -C build --print-errorlogs --num-processes 2 "$@" || status=$?
echo "test.sh: stage main took $(($(date +%s) - start)) s" >&2

if [ $# -eq 0 ]; then
  stage checked build-checks -Dchecks=true -- --suite preload --suite stress --suite tracer --suite control
  # The unit suite only: a preloaded malloc cannot run under TSan, whose
  # runtime is itself the process's malloc (docs/checks.md). 'sym' checks
  # source lines that the instrumentation moves.
  export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
  stage tsan build-tsan -Db_sanitize=thread -Db_lto=false -- --suite unit --no-suite sym
  unset TSAN_OPTIONS
  # Leak reports off: the CLI exits holding memory on purpose (error paths
  # included); every access is still checked, and UB aborts.
  export ASAN_OPTIONS="detect_leaks=0" UBSAN_OPTIONS="print_stacktrace=1"
  stage tools-asan build-asan -Dtools_sanitize=address,undefined -Db_lto=false -- --suite cli --suite export --suite svg \
    --suite control --suite live
  unset ASAN_OPTIONS UBSAN_OPTIONS
fi

python3 - $dirs <<'PY'
import json, os, sys
passed = failed = skipped = 0
for d in sys.argv[1:]:
    log = os.path.join(d, "meson-logs", "testlog.json")
    if not os.path.exists(log):
        failed += 1  # the stage ran nothing at all
        continue
    for line in open(log):
        r = json.loads(line).get("result", "")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
