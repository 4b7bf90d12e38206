#!/bin/sh
# The options of `snapmalloc run` and the report options not covered by the
# golden tests reach the traced program and the reports:
#   --depth limits the frames, --interval writes periodic snapshots,
#   --sample marks the snapshot as sampled, --out names the files,
#   SNAPMALLOC_OPTIONS from the environment is passed on, --full-paths keeps
#   absolute paths.
#   runopts.sh SNAPMALLOC SRCDIR BUILDDIR
set -u
tool=$1 src=$2 build=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
cd "$src" || exit 1

# --depth 3: every trace has at most 3 frames, and deep ones are marked truncated
"$tool" run --no-report --depth 3 --out "$work/d.%n.snap" -- "$build/examples/phases" 500 >/dev/null || fail "run --depth"
"$tool" top "$work/d.1.snap" --by trace --limit 1 --format json > "$work/d.json"
python3 - "$work/d.json" <<'PY' || fail "--depth 3 did not limit the traces"
import json, sys
stats = json.load(open(sys.argv[1]))["stats"]
assert stats and all(len(s["traceback"]) <= 3 for s in stats), stats
PY
python3 - "$work/d.1.snap" <<'PY' || fail "snapshot does not record depth 3"
import struct, sys
d = open(sys.argv[1], 'rb').read()
depth = struct.unpack_from('<I', d, 32 + 16 + 10 * 8)[0]
assert depth == 3, depth
PY

# --interval 1 on a program that runs ~2.5 s: periodic snapshots besides the final one
"$tool" run --no-report --interval 1 --out "$work/i.%n.snap" -- sh -c 'sleep 2.5' >/dev/null || fail "run --interval"
n=$(ls "$work"/i.*.snap 2>/dev/null | wc -l)
[ "$n" -ge 3 ] || fail "--interval 1 over 2.5 s wrote $n snapshots (sh and sleep each write a final one too)"

# --sample: the report says the figures are estimates
"$tool" run --no-report --sample 64K --out "$work/s.%n.snap" -- "$build/examples/phases" 2000 >/dev/null || fail "run --sample"
"$tool" top "$work/s.1.snap" --limit 1 | grep -q 'estimated from samples' || fail "--sample snapshot not marked as estimated"
# sizes take K/M/G/T, as the docs write the ranges: 1T is --sample's top, 2T is over it
"$tool" run --no-report --sample 1T --out "$work/t.%n.snap" -- "$build/examples/phases" 10 >/dev/null || fail "run --sample 1T refused"
"$tool" run --no-report --sample 2T -- "$build/examples/phases" 10 >/dev/null 2>"$work/t.err" && fail "run --sample 2T accepted"
grep -q "sample" "$work/t.err" || fail "run --sample 2T: no message naming --sample"

# SNAPMALLOC_OPTIONS from the environment reaches the program (depth=2), run's own options win (out)
SNAPMALLOC_OPTIONS=depth=2,out=/nonexistent/x.snap "$tool" run --no-report --out "$work/e.%n.snap" -- "$build/examples/phases" 100 >/dev/null || fail "run with SNAPMALLOC_OPTIONS"
[ -f "$work/e.1.snap" ] || fail "--out did not override SNAPMALLOC_OPTIONS' out"

# --full-paths: absolute source paths instead of paths relative to the current directory
"$tool" top "$work/d.1.snap" --limit 1 > "$work/rel.txt"
"$tool" top "$work/d.1.snap" --limit 1 --full-paths > "$work/abs.txt"
grep -q '^examples/phases.c:' "$work/rel.txt" || fail "paths not shortened by default"
grep -q "^$src/examples/phases.c:" "$work/abs.txt" || fail "--full-paths did not keep the absolute path"

# the report after run goes to stderr and names the final snapshot
"$tool" run --out "$work/r.%n.snap" -- "$build/examples/phases" 100 > "$work/r.out" 2> "$work/r.err" || fail "run with report"
grep -q '^records=100 ' "$work/r.out" || fail "the program's stdout was not kept apart"
grep -q "top 10 allocation sites at exit ($work/r.1.snap)" "$work/r.err" || fail "no top-10 report on stderr"
grep -q '^examples/phases.c:28: size=6400 B, count=100, average=64 B' "$work/r.err" || fail "top-10 report content"

# the library is found next to the tool, or in ../lib, without SNAPMALLOC_LIB
mkdir -p "$work/tree/bin" "$work/tree/lib" "$work/flat"
cp "$tool" "$work/tree/bin/snapmalloc"; cp "$SNAPMALLOC_LIB" "$work/tree/lib/"
cp "$tool" "$work/flat/snapmalloc"; cp "$SNAPMALLOC_LIB" "$work/flat/"
for t in "$work/tree/bin/snapmalloc" "$work/flat/snapmalloc"; do
  env -u SNAPMALLOC_LIB "$t" run --no-report --out "$work/l.%n.snap" -- "$build/examples/phases" 10 >/dev/null || fail "$t run"
  [ -f "$work/l.1.snap" ] || fail "$t did not find the library"
  rm -f "$work"/l.*.snap
done
mkdir -p "$work/nolib"; cp "$tool" "$work/nolib/snapmalloc"
env -u SNAPMALLOC_LIB "$work/nolib/snapmalloc" run -- true 2> "$work/nolib.err"; rc=$?
[ $rc = 2 ] && grep -q 'cannot find libsnapmalloc.so (set SNAPMALLOC_LIB)' "$work/nolib.err" || fail "missing library: exit $rc"

[ $fails = 0 ] && echo "runopts: all options took effect" || echo "runopts: $fails failures"
[ $fails = 0 ]
