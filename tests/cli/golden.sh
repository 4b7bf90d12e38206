#!/bin/sh
# Golden tests of `snapmalloc top` and `diff`: traces the bundled examples,
# prints reports in every mode (and examples/peaks at its peak and by its
# flow) and compares them line by line with tests/cli/golden/*.expected.
# Header lines (pid, time, RSS; in JSON, those numbers, the peak RSS and the
# heap's) are dropped and
# build paths normalised to BUILD/; everything else must match exactly.
#   golden.sh SNAPMALLOC SRCDIR BUILDDIR [--update]
set -u
tool=$1 src=$2 build=$3 update=${4:-}
exp=$src/tests/cli/golden
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$src" || exit 1   # paths are shown relative to the source tree
fails=0

# The loader keeps the plugin's path in memory it allocates: load it from a
# path of fixed length (mktemp's), so that sizes do not depend on where the
# tree is checked out.
cp "$build/examples/libplugin.so" "$work/libplugin.so"
"$tool" run --no-report --out "$work/sites.%n.snap" -- "$build/examples/sites" "$work/libplugin.so" >/dev/null || { echo "FAIL: sites did not run"; exit 1; }
"$tool" run --no-report --out "$work/phases.%n.snap" -- "$build/examples/phases" >/dev/null || { echo "FAIL: phases did not run"; exit 1; }
"$tool" run --no-report --out "$work/peaks.%n.snap" -- "$build/examples/peaks" >/dev/null || { echo "FAIL: peaks did not run"; exit 1; }
sites=$work/sites.0.snap peaks=$work/peaks.0.snap

normalise() { # drop snapshot header lines and the header's changing numbers, name the build directory BUILD
  grep -v -e '(pid [0-9]*) at ' | sed -e "s|$build/|BUILD/|g" -e "s|$src/|SRC/|g" -e "s|$work/|WORK/|g" \
    -E -e 's/"(pid|time_ns|rss|peak_rss|mapped|in_use)": [0-9]+/"\1": N/g'
}

check() { # NAME, then the tool's arguments
  name=$1; shift
  "$tool" "$@" > "$work/$name.raw" 2> "$work/$name.err"
  rc=$?
  normalise < "$work/$name.raw" > "$work/$name.out"
  if [ $rc != 0 ]; then echo "FAIL: $name: exit status $rc"; cat "$work/$name.err"; fails=$((fails + 1)); return; fi
  if [ "$update" = --update ]; then cp "$work/$name.out" "$exp/$name.expected"; return; fi
  if ! diff -u "$exp/$name.expected" "$work/$name.out"; then echo "FAIL: $name"; fails=$((fails + 1)); fi
}

check top-line       top "$sites" --limit 0
check top-function   top "$sites" --by function --limit 8
check top-file       top "$sites" --by file --limit 0
check top-trace      top "$sites" --by trace --limit 4
check top-cumulative top "$sites" --by function --cumulative --limit 6
check top-include    top "$sites" --include '*plugin*'
check top-exclude    top "$sites" --exclude '*sites.cc' --exclude 'libstdc++*'
check top-json       top "$sites" --format json --limit 3
check top-folded     top "$sites" --format folded --limit 3
check diff-line      diff "$work/phases.0.snap" "$work/phases.1.snap"
check diff-trace     diff "$work/phases.0.snap" "$work/phases.1.snap" --by trace --limit 2
check diff-json      diff "$work/phases.0.snap" "$work/phases.1.snap" --format json --limit 4
check diff-folded    diff "$work/phases.0.snap" "$work/phases.1.snap" --format folded
check peak-line      top "$peaks" --at peak --limit 0
check peak-trace     top "$peaks" --at peak --by trace --limit 1
check peak-count     top "$peaks" --at peak --sort count --by function
check peak-json      top "$peaks" --at peak --format json --limit 2
check peak-diff      diff "$peaks" "$peaks" --old-at peak
check peak-diff-json diff "$peaks" "$peaks" --old-at peak --format json --limit 2
check flow-allocations top "$peaks" --sort allocations --limit 4
check flow-allocated top "$peaks" --sort allocated --by function --limit 0
check flow-temporary top "$peaks" --sort temporary --limit 2
check flow-trace     top "$peaks" --sort temporary --by trace --limit 1
check flow-json      top "$peaks" --sort temporary --format json --limit 2
check flow-folded    top "$peaks" --sort allocated --format folded --limit 3
check flow-diff      diff "$work/phases.0.snap" "$work/phases.1.snap" --sort allocations

# --raw: the site is the innermost frame, so strdup's blocks land in the C library.
"$tool" top "$sites" --raw --by function --limit 0 > "$work/raw" || fails=$((fails + 1))
grep -q '^strdup: size=19.5 KiB, count=2000' "$work/raw" || grep -q '^__strdup: size=19.5 KiB, count=2000' "$work/raw" ||
  { echo "FAIL: --raw does not charge strdup's blocks to strdup"; cat "$work/raw"; fails=$((fails + 1)); }

[ $fails = 0 ] && echo "golden: all reports match" || echo "golden: $fails reports differ"
[ $fails = 0 ]
