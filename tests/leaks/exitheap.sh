#!/bin/sh
# The scan reads every word of a live heap at exit (bench/exitheap.c): a
# list whose links sit at every word position of the blocks, in blocks whose
# other words are zero (the scan skips eight zero words at once) or a
# non-pointer byte pattern (tested four words at a time), with block sizes
# that end in a partial group of words. Every block must come out still
# reachable, none lost: a link the scan misses makes the blocks behind it
# lost.
#   exitheap.sh SNAPMALLOC EXITHEAP
set -u
tool=$1 prog=$2
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

n=3000
for size in 16 40 64 72 100 136 4096; do
  for fill in 0 17; do
    "$tool" check --format json --show reachable -o "$work/r.json" -- "$prog" $n $size $fill >"$work/out" 2>"$work/err"
    rc=$?
    [ $rc = 0 ] || { fail "size $size fill $fill: check exited $rc: $(head -c 300 "$work/err")"; continue; }
    python3 - "$work/r.json" $n $size <<'PY' || fail "size $size fill $fill: $(head -c 400 "$work/r.json")"
import json, sys
rep, n, size = json.load(open(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3])
t = rep["totals"]
lost = {k: t[k]["count"] for k in ("definitely", "indirectly", "possibly") if t[k]["count"]}
ok = not lost and t["reachable"]["count"] == n and t["reachable"]["size"] == n * size
if not ok:
    print("lost %s, reachable %s" % (lost, t["reachable"]))
sys.exit(0 if ok else 1)
PY
  done
done
[ $fails = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "ok: every block of every heap still reachable"
