#!/bin/sh
# Drives tests/tracer/lifecycle.c under the preload: one scenario per call.
#   lifecycle.sh MODE LIB BIN DLLIB SNAPMALLOC
set -u
mode=$1 lib=$2 bin=$3 dllib=$4 tool=$5
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
chmod 755 "$dir"
opts="trace=1,out=$dir/x.%p.%n.snap"
fail() { echo "FAIL: $*" >&2; exit 1; }

case $mode in
signal)
  LD_PRELOAD=$lib SNAPMALLOC_OPTIONS=$opts "$bin" signal "$dir" > "$dir/out" 2>&1 &
  pid=$!
  for i in $(seq 50); do grep -q ready "$dir/out" 2>/dev/null && break; sleep 0.1; done
  grep -q ready "$dir/out" || fail "program did not start"
  kill -USR2 $pid
  found=0
  for i in $(seq 10); do   # within a second
    if ls "$dir"/x.$pid.*.snap >/dev/null 2>&1; then found=1; break; fi
    sleep 0.1
  done
  [ $found = 1 ] || fail "no snapshot within 1 s of SIGUSR2 while the program sleeps"
  kill -TERM $pid
  wait $pid || { cat "$dir/out" >&2; fail "program failed after SIGTERM"; }
  ;;
interval)
  LD_PRELOAD=$lib SNAPMALLOC_OPTIONS="$opts,interval=1" "$bin" interval "$dir" || fail "interval"
  # fractions of a second: 0.2 s over the same 2.6 s writes about 13
  mkdir "$dir/frac"
  LD_PRELOAD=$lib SNAPMALLOC_OPTIONS="trace=1,at_exit=0,out=$dir/frac/x.%n.snap,interval=0.2" \
    "$bin" interval "$dir/frac" 2> "$dir/frac.err" || fail "interval=0.2"
  grep -q warning "$dir/frac.err" && { cat "$dir/frac.err" >&2; fail "interval=0.2 printed warnings"; }
  n=$(ls "$dir/frac" | grep -c 'snap$')
  [ "$n" -ge 8 ] || fail "interval=0.2 wrote $n snapshots in 2.6 s (about 13 expected)"
  ;;
forkinterval)
  LD_PRELOAD=$lib SNAPMALLOC_OPTIONS="$opts,at_exit=0,interval=0.2" "$bin" forkinterval "$dir" || fail "forkinterval"
  ;;
atexit)
  LD_PRELOAD=$lib SNAPMALLOC_OPTIONS=$opts "$bin" atexit "$dir" || fail "program failed"
  snap=$(ls "$dir"/x.*.snap | head -n 1)
  [ -n "$snap" ] || fail "no final snapshot"
  "$tool" top "$snap" --by function --limit 0 > "$dir/top" || fail "snapmalloc top failed"
  grep -q '^child_alloc: size=42.2 KiB, count=10' "$dir/top" || { cat "$dir/top" >&2; fail "the live blocks of child_alloc are missing"; }
  if grep -q 'exit_leftover' "$dir/top"; then
    cat "$dir/top" >&2
    fail "the final snapshot was written before atexit handlers and destructors ran"
  fi
  ;;
fork|dlopen|exec)
  LD_PRELOAD=$lib SNAPMALLOC_OPTIONS=$opts "$bin" $mode "$dir" "$( [ $mode = exec ] && echo "$bin" || echo "$dllib")" || fail "$mode"
  ;;
exitcode)
  LD_PRELOAD=$lib SNAPMALLOC_OPTIONS=$opts "$bin" exitcode; rc=$?
  [ $rc = 3 ] || fail "exit status $rc under the preload, expected 3"
  SNAPMALLOC_LIB=$lib "$tool" run --out "$dir/r.%p.snap" --no-report -- "$bin" exitcode; rc=$?
  [ $rc = 3 ] || fail "snapmalloc run passed status $rc, expected 3"
  SNAPMALLOC_LIB=$lib "$tool" run --out "$dir/k.%p.snap" --no-report -- sh -c 'kill -TERM $$' 2>/dev/null; rc=$?
  [ $rc = 143 ] || fail "snapmalloc run: death by SIGTERM gave status $rc, expected 143"
  ;;
dropped)
  [ "$(id -u)" = 0 ] || exit 77
  ro=$(mktemp -d); chmod 700 "$ro"
  LD_PRELOAD=$lib SNAPMALLOC_OPTIONS="trace=1,at_exit=0,out=$ro/x.snap" "$bin" dropped "$ro" > "$dir/out" 2> "$dir/err"; rc=$?
  rm -rf "$ro"
  cat "$dir/err" >&2
  [ $rc = 0 ] || fail "program failed after dropping privileges"
  grep -q 'went on' "$dir/out" || fail "program did not go on"
  n=$(grep -c '^snapmalloc: warning: cannot write snapshot .*: Permission denied$' "$dir/err")
  [ "$n" = 1 ] || fail "expected one warning line, got $n"
  ;;
helperstack)
  # The exit-time leak scan reads the snapshot helper's stack (the helper is
  # not stopped: it blocks every signal) from its outermost frame up, not
  # the whole mapping: reading 8 MiB of untouched default stack faults it
  # in. Peak RSS with the helper running stays within 2 MiB of the run
  # without it (the whole stack read: about 9 MiB more).
  rss() { "$bin" maxrss "$lib" "$opts,leaks=1,$1" || echo -1; }
  with=$(rss signal=12) without=$(rss signal=0)
  echo "peak RSS: $with KiB with the helper thread, $without KiB without"
  [ "$with" -gt 0 ] && [ "$without" -gt 0 ] || fail "the program failed"
  [ $((with - without)) -lt 2048 ] || fail "the leak scan grew peak RSS by $((with - without)) KiB with the helper thread"
  ;;
*) fail "unknown mode $mode" ;;
esac
exit 0
