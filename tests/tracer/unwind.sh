#!/bin/sh
# Runs tests/tracer/unwind.c twice under the preload:
#  - "shapes" with unwind=check: the program's own checks pass, its captures
#    were compared with libunwind and never differed, and the signal
#    handler's captures really went to libunwind (the hand-over path ran);
#  - "dlclose" with the default walker: blocks made through two libraries
#    loaded in turn at the same address are charged to the right stacks,
#    by the walker alone.
# Usage: unwind.sh LIBSNAPMALLOC TEST-PROGRAM LIB-A LIB-B
set -eu
lib=$1 prog=$2 lib_a=$3 lib_b=$4
tmp=$(mktemp -d "${TMPDIR:-/tmp}/smunwind.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

run() { # run OPTIONS ARGS...: the program's status, its stdout shown, stderr kept
  opts=$1
  shift
  status=0
  LD_PRELOAD=$lib SNAPMALLOC_OPTIONS="$opts" "$prog" "$@" >"$tmp/out" 2>"$tmp/err" || status=$?
  cat "$tmp/out"
  if [ "$status" -ne 0 ]; then
    echo "$* failed with status $status:"
    cat "$tmp/err"
    exit 1
  fi
  if grep -q 'snapmalloc: warning' "$tmp/err"; then
    echo "snapmalloc warned (a capture differed from libunwind's?):"
    cat "$tmp/err"
    exit 1
  fi
}

run "trace=1,at_exit=0,unwind=check" shapes "$tmp/shapes.snap"
line=$(grep 'unwind=check compared' "$tmp/err" || true)
echo "$line"
case $line in
*"captures fell back"*", 0 differed") ;;
*) echo "no clean comparison reported"; exit 1 ;;
esac
compared=$(echo "$line" | sed 's/.*compared \([0-9]*\),.*/\1/')
fell=$(echo "$line" | sed 's/.*unwind: \([0-9]*\) captures.*/\1/')
if [ "$compared" -lt 5000 ]; then
  echo "only $compared captures compared"
  exit 1
fi
if [ "$fell" -lt 10 ]; then
  echo "the signal handler's captures did not go to libunwind ($fell fell back)"
  exit 1
fi
echo "ok: $compared captures identical to libunwind's, $fell handed to libunwind"

# verbose=1 for the exit line: with correct rules the walker never needs
# libunwind here; a stale rule walks into garbage and has to hand over.
run "trace=1,at_exit=0,verbose=1" dlclose "$tmp/dlclose.snap" "$lib_a" "$lib_b"
line=$(grep 'captures fell back' "$tmp/err" || true)
echo "$line"
case $line in
*"unwind: 0 captures fell back"*) ;;
*) echo "the walker could not follow the reloaded code by itself"; exit 1 ;;
esac
