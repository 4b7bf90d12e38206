#!/bin/sh
# The leak scan at exit under threads (tests/leaks/exitstress.c).
#   exitstress.sh LIBSNAPMALLOC EXITSTRESS SNAPMALLOC [RUNS]
# 1. `busy`, RUNS times (default 300): every traced exit with leak analysis
#    ends, each under a 20 s watchdog, so a hang fails the test instead of
#    the CI run. The scan once hung in about 1 run of 200.
# 2. `sigexit`: exit() from a signal handler that interrupted the library,
#    30 times, each under a 10 s watchdog.
# 3. `blocked`: threads that block every signal cost the exit no wait (the
#    scan once waited 0.5 s for them), and the blocks only their stacks hold
#    are still reachable, not lost.
set -u
lib=$1 prog=$2 tool=$3 runs=${4:-300}
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

hung=0 i=0
while [ $i -lt "$runs" ]; do
  SNAPMALLOC_OPTIONS="trace=1,leaks=1,out=$work/busy.snap" LD_PRELOAD=$lib timeout -s KILL 20 "$prog" busy 2>"$work/err"
  rc=$?
  if [ $rc = 137 ]; then hung=$((hung + 1)); break; fi # one is enough: end the test now
  if [ $rc != 0 ] && [ $rc != 137 ]; then fail "busy run $i: exit $rc: $(head -c 300 "$work/err")"; fi
  i=$((i + 1))
done
[ $hung = 0 ] || fail "busy: $hung of $runs traced exits hung (killed after 20 s)"
[ -s "$work/busy.snap" ] || fail "busy: no final snapshot"
echo "busy: $runs traced exits with 8 threads allocating, $hung hung"

# sigexit: exit() from a signal handler that may interrupt the tracer or the
# allocator holding a lock (it hung in about 1 run of 2 before)
hung=0 i=0
while [ $i -lt 30 ]; do
  SNAPMALLOC_OPTIONS="trace=1,leaks=1,out=$work/sigexit.snap" LD_PRELOAD=$lib timeout -s KILL 10 "$prog" sigexit $((20000 + i * 7919 % 30000)) 2>/dev/null
  rc=$?
  if [ $rc = 137 ]; then hung=$((hung + 1)); break; fi
  [ $rc = 0 ] || fail "sigexit run $i: exit $rc"
  i=$((i + 1))
done
[ $hung = 0 ] || fail "sigexit: an exit from a signal handler hung (killed after 10 s)"
echo "sigexit: $i exits from a signal handler, $hung hung"

# blocked: time the exit with and without the scan (best of 3 each)
best() { # options -> milliseconds
  b=999999
  for k in 1 2 3; do
    t0=$(date +%s%N)
    SNAPMALLOC_OPTIONS="$1,out=$work/blocked.snap" LD_PRELOAD=$lib timeout -s KILL 20 "$prog" blocked 2>/dev/null
    t1=$(date +%s%N)
    t=$(( (t1 - t0) / 1000000 ))
    [ $t -lt $b ] && b=$t
  done
  echo $b
}
with=$(best trace=1,leaks=1)
without=$(best trace=1,leaks=0)
echo "blocked: exit with the leak scan ${with} ms, without ${without} ms"
[ $((with - without)) -lt 250 ] || fail "blocked: the scan cost $((with - without)) ms (threads that block signals were waited for)"
"$tool" check --format json -- "$prog" blocked > "$work/json" 2>"$work/err" || fail "blocked: check failed: $(cat "$work/err")"
python3 - "$work/json" <<'PY' || fail "blocked: the sleeping threads' blocks were not still reachable"
import json, sys
d = json.loads(open(sys.argv[1]).readline())["totals"]
ok = d["definitely"]["count"] == 0 and d["reachable"]["size"] >= 2 * 1234
print("blocked: totals", d)
sys.exit(0 if ok else 1)
PY

[ $fails = 0 ] && echo "exitstress: all checks passed" || echo "exitstress: $fails failures"
[ $fails = 0 ]
