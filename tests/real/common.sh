# Shared by the tests/real/*.sh scripts (sourced, POSIX sh).
# Usage of a script: SCRIPT PATH-TO-libsnapmalloc.so
# A script defines workload() (reads $work, a private scratch directory;
# writes what it wants compared to stdout) and calls compare_runs NAME.
# compare_runs runs the workload twice, without and with the preload
# (exported, so that every process the workload starts gets it too), and
# requires the same exit status and byte-identical stdout; the preloaded run
# must not print snapmalloc errors or warnings.
set -eu

lib=${1:-}
if [ -z "$lib" ]; then
  echo "usage: $0 PATH-TO-libsnapmalloc.so" >&2
  exit 2
fi
if [ ! -f "$lib" ]; then
  echo "$0: library $lib does not exist" >&2
  exit 1
fi
case $lib in
/*) ;;
*) lib=$(pwd)/$lib ;;
esac

# Never inherit a preload from the caller into the reference run.
unset LD_PRELOAD || true
unset SNAPMALLOC_OPTIONS || true

# need PROGRAM...: skip (77) unless every program is installed.
need() {
  for p in "$@"; do
    if ! command -v "$p" >/dev/null 2>&1; then
      echo "$p is not installed: skipped"
      exit 77
    fi
  done
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/smreal.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# The dynamic loader only warns and goes on when a preload cannot be loaded,
# so check it is really mapped in a preloaded process.
if ! LD_PRELOAD=$lib grep -q snapmalloc /proc/self/maps; then
  echo "$lib is not mapped in a preloaded process" >&2
  exit 1
fi

# compare_runs NAME: runs workload twice and compares.
compare_runs() {
  name=$1
  mkdir -p "$tmp/plain" "$tmp/preload"
  # set -e does not act inside a command that is the left side of || or
  # &&, so the status is collected with errexit off in the caller and on in
  # the subshell: the first failing command ends the workload.
  set +e
  (
    set -e
    work=$tmp/plain
    cd "$work"
    workload
  ) >"$tmp/plain.out" 2>"$tmp/plain.err"
  plain_status=$?
  (
    set -e
    work=$tmp/preload
    cd "$work"
    export LD_PRELOAD="$lib"
    # SMREAL_TRACE=1: trace too, with the stack walker checked against
    # libunwind on every capture (unwind=check).
    if [ -n "${SMREAL_TRACE:-}" ]; then
      mkdir -p "$tmp/snaps"
      export SNAPMALLOC_OPTIONS="trace=1,unwind=check,leaks=0,out=$tmp/snaps/%e.%p.%n.snap"
    fi
    workload
  ) >"$tmp/preload.out" 2>"$tmp/preload.err"
  pre_status=$?
  set -e
  # For debugging: SMREAL_KEEP=DIR keeps both runs' outputs there.
  if [ -n "${SMREAL_KEEP:-}" ]; then
    mkdir -p "$SMREAL_KEEP"
    cp "$tmp/plain.out" "$tmp/plain.err" "$tmp/preload.out" "$tmp/preload.err" "$SMREAL_KEEP/"
  fi
  result=0
  if [ "$plain_status" -ne 0 ]; then
    echo "$name: the reference run (no preload) failed with status $plain_status:"
    tail -n 20 "$tmp/plain.err"
    exit 1
  fi
  if [ "$pre_status" -ne "$plain_status" ]; then
    echo "$name: exit status $pre_status with the preload, $plain_status without"
    result=1
  fi
  if ! cmp -s "$tmp/plain.out" "$tmp/preload.out"; then
    echo "$name: stdout differs with the preload (- without, + with):"
    diff -u "$tmp/plain.out" "$tmp/preload.out" | head -n 40
    result=1
  fi
  if grep -q 'snapmalloc: \(error\|warning\)' "$tmp/preload.err"; then
    echo "$name: snapmalloc complained:"
    grep 'snapmalloc: \(error\|warning\)' "$tmp/preload.err" | head -n 10
    result=1
  fi
  if [ -n "${SMREAL_TRACE:-}" ]; then
    # Every traced process reports its comparison at exit; the walker must
    # have been compared at least once and never differed (a difference is
    # also a warning, caught above).
    if ! grep -q 'unwind=check compared [1-9][0-9]*, 0 differed' "$tmp/preload.err"; then
      echo "$name: no traced process reported a clean unwind=check comparison"
      result=1
    elif grep 'unwind=check compared' "$tmp/preload.err" | grep -qv ', 0 differed'; then
      echo "$name: the stack walker and libunwind differed:"
      grep 'unwind=check compared' "$tmp/preload.err" | grep -v ', 0 differed' | head -n 5
      result=1
    fi
    checks=$(grep -c 'unwind=check compared' "$tmp/preload.err" || true)
    echo "$name: traced; $checks processes compared their stack captures with libunwind"
  fi
  if [ "$result" -ne 0 ]; then
    echo "---- stderr with the preload (last 30 lines):"
    tail -n 30 "$tmp/preload.err"
    exit 1
  fi
  echo "$name: identical output with and without the preload ($(wc -l <"$tmp/plain.out") lines)"
  rm -rf "$tmp/plain" "$tmp/preload"
}
