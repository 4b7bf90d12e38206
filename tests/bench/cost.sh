#!/bin/sh
# bench/cost: the counts it reports are the same on every run (the same
# library counted as --lib and as --base-lib gives ratios of 1.000),
# tracing costs what it should (traced churn executes more instructions
# than untraced, sampled fewer than traced), the report and CSV agree,
# and bad arguments get one line and exit status 2.
#   cost.sh BENCH_COST BENCH_BUILD_DIR LIBSNAPMALLOC
set -u
cost=$1 build=$2 lib=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
command -v valgrind > /dev/null || { echo "valgrind is not installed: skipped"; exit 77; }

"$cost" --quiet --build "$build" --lib "$lib" --base-lib "$lib" --workloads churn --args churn=20000 \
  --out "$work/out" > "$work/stdout" 2> "$work/err"
rc=$?
[ $rc = 0 ] || { fail "exit $rc"; cat "$work/err"; }
cmp -s "$work/stdout" "$work/out/cost.md" || fail "stdout and cost.md differ"
[ -s "$work/err" ] && fail "--quiet printed: $(cat "$work/err")"

# the same build twice: the base table's ratios are 1.000, untraced and
# traced (sampled runs pick their samples afresh: not compared)
row=$(grep '^| churn | 1.000 | 1.000 | [0-9.]* |$' "$work/out/cost.md")
[ -n "$row" ] || fail "the same library counted twice differs: $(grep '^| churn |' "$work/out/cost.md" | tail -n 1)"

# from the CSV: traced > 1.3x untraced, sampled between the two
python3 - "$work/out/cost.csv" <<'PY' || fails=$((fails + 1))
import csv, sys
rows = {r["tool"]: int(r["instructions"]) for r in csv.DictReader(open(sys.argv[1]))}
u, t, s = rows["untraced"], rows["traced"], rows["sampled"]
# the same build counted twice: a few instructions apart at most (the
# clock and the process id reach a few branches)
ok = t > 1.3 * u and u < s < t and abs(rows["base-traced"] - t) < t * 1e-6
if not ok:
    print(f"FAIL: instructions untraced {u}, traced {t}, sampled {s}, base-traced {rows['base-traced']}")
sys.exit(0 if ok else 1)
PY
grep -q '^| churn | `20000` | ' "$work/out/cost.md" || fail "no churn row with its arguments"

# bad arguments: one line, status 2
"$cost" --build "$build" --lib "$lib" --workloads nosuch > /dev/null 2> "$work/err"
rc=$?
[ $rc = 2 ] && [ "$(wc -l < "$work/err")" = 1 ] && grep -q "unknown workload 'nosuch'" "$work/err" ||
  fail "unknown workload: exit $rc, $(cat "$work/err")"
"$cost" --build "$build" --lib "$work/none.so" > /dev/null 2> "$work/err"
rc=$?
[ $rc = 2 ] && grep -q "none.so: no such library" "$work/err" || fail "missing library: exit $rc, $(cat "$work/err")"
"$cost" --build "$build" --lib "$lib" --args churn > /dev/null 2> "$work/err"
rc=$?
[ $rc = 2 ] && grep -q "expected WORKLOAD=ARGS" "$work/err" || fail "--args without '=': exit $rc, $(cat "$work/err")"

"$cost" --build "$build" --lib "$lib" --timeout 0 > /dev/null 2> "$work/err"
rc=$?
[ $rc = 2 ] && grep -q "^cost: --timeout 0: must be more than 0 seconds$" "$work/err" || fail "--timeout 0: exit $rc, $(cat "$work/err")"

[ $fails = 0 ] && echo "bench/cost checks passed"
[ $fails = 0 ]
