#!/bin/sh
# `snapmalloc export` read back by pprof itself (`go tool pprof`): real
# snapshots of the bundled example, exported, must give pprof the same
# totals of bytes and blocks as `snapmalloc top --format json`, live
# (inuse_*) and allocated (alloc_*; none from a version-1 snapshot), name the
# same top sites, carry the modules' build-ids, turn an inline chain into
# one location with several lines, and mark sampled snapshots as estimates.
# Also: --format folded, output to a pipe, and bad input.
#   pprof.sh SNAPMALLOC SRCDIR BUILDDIR INLINE_PROGRAM
set -u
tool=$1 src=$2 build=$3 inl=$4
if ! command -v go >/dev/null 2>&1; then
  echo "go is not installed (scripts/install-deps.sh installs golang-go): skipped"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
cd "$src" || exit 1
# pprof gets a home and caches of its own, and never a network symbolizer.
export HOME="$work/home" GOCACHE="$work/gocache" GOPATH="$work/gopath" PPROF_TMPDIR="$work/pprof"
mkdir -p "$HOME" "$PPROF_TMPDIR"
pprof() { go tool pprof -symbolize=none "$@"; }

# PROFILE SAMPLE_INDEX: pprof's total of that sample type
pprof_total() {
  unit=; case $2 in *_space) unit=B ;; esac
  pprof -top -sample_index="$2" ${unit:+-unit=B} "$1" 2>>"$work/pprof.err" |
    sed -n "s/^Showing nodes accounting for .* of \([0-9]*\)$unit total\$/\1/p"
}

# PROFILE SNAPSHOT: pprof's totals of the sample types equal the snapshot's
# (alloc_* from a version-2 snapshot only)
totals() {
  "$tool" top "$2" --format json --limit 0 > "$work/top.json" || { fail "top $2"; return; }
  want=$(python3 -c 'import json, sys
t = json.load(open(sys.argv[1]))["totals"]
print(t["size"], t["count"], *([t["allocated"], t["allocations"]] if t["allocations"] is not None else []))' "$work/top.json")
  got="$(pprof_total "$1" inuse_space) $(pprof_total "$1" inuse_objects)"
  case $want in *\ *\ *) got="$got $(pprof_total "$1" alloc_space) $(pprof_total "$1" alloc_objects)" ;; esac
  [ "$got" = "$want" ] ||
    { fail "$1: pprof totals '$got' (bytes, blocks, allocated), snapshot '$want'"; cat "$work/pprof.err"; }
}

# The example, every allocation traced.
"$tool" run --no-report --out "$work/p.%n.snap" -- "$build/examples/phases" 5000 >/dev/null 2>&1 || fail "run phases"
snap=$work/p.1.snap
"$tool" export "$snap" --format pprof -o "$work/p.pb.gz" || fail "export"
gzip -t "$work/p.pb.gz" || fail "the profile is not gzip-compressed"
totals "$work/p.pb.gz" "$snap"

# The top sites by function are the top entries of pprof (flat = the site).
pprof -top -sample_index=inuse_space -nodefraction=0 "$work/p.pb.gz" > "$work/top.txt" 2>&1 || fail "pprof -top"
for f in load_record build_index cache_grow main; do
  grep -q "%  *$f\$" "$work/top.txt" || { fail "pprof -top does not show $f"; cat "$work/top.txt"; }
done
"$tool" top "$snap" --by function --limit 1 --format json > "$work/f.json"
first=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["stats"][0]["site"]["function"])' "$work/f.json")
first_pprof=$(sed -n '/^ *flat /{n;p;q}' "$work/top.txt" | awk '{print $NF}')
[ "$first" = "$first_pprof" ] || fail "top site is $first, pprof's first entry is $first_pprof"
# blocks by site: 5000 records each from load_record's two lines
pprof -top -sample_index=inuse_objects -nodefraction=0 "$work/p.pb.gz" 2>/dev/null |
  grep -q '^ *10000 .* load_record$' || fail "pprof -sample_index=inuse_objects: load_record does not hold 10000 blocks"

# -raw: sample types, comments, the mapping of the program with its build-id
# (as readelf reads it from the file), and source lines in the locations.
pprof -raw "$work/p.pb.gz" > "$work/raw.txt" 2>&1 || fail "pprof -raw"
grep -q '^inuse_space/bytes\[dflt\] inuse_objects/count alloc_space/bytes alloc_objects/count$' "$work/raw.txt" ||
  fail "sample types"
grep -q '^Comment: snapmalloc snapshot 1 of .*phases (pid [0-9]*): live blocks (inuse_\*) and allocations since' \
  "$work/raw.txt" || fail "comment"
bid=$(readelf -n "$build/examples/phases" | sed -n 's/^ *Build ID: *//p')
[ -n "$bid" ] && grep -q "^1: 0x[0-9a-f]*/0x[0-9a-f]*/0x0 .*/examples/phases $bid \[FN\]\[FL\]\[LN\]\[IN\]$" "$work/raw.txt" ||
  { fail "mapping 1 is not the program with build-id $bid"; sed -n '/^Mappings/,$p' "$work/raw.txt"; }
grep -q ' M=1 load_record examples/phases.c:28 s=0$' "$work/raw.txt" || fail "no location for phases.c:28"
grep -q '/libc\.so\.6 [0-9a-f]\{40\} ' "$work/raw.txt" || fail "no mapping with a build-id for the C library"

# alloc_*: what was allocated, freed or not (examples/peaks frees all of
# phase 1 and 2): churn allocated 100000 blocks of 40 bytes, none live
"$tool" run --no-report --out "$work/k.%n.snap" -- "$build/examples/peaks" >/dev/null 2>&1 || fail "run peaks"
"$tool" export "$work/k.0.snap" -o "$work/k.pb.gz" || fail "export peaks"
totals "$work/k.pb.gz" "$work/k.0.snap"
pprof -top -sample_index=alloc_objects -nodefraction=0 "$work/k.pb.gz" 2>/dev/null |
  grep -q '^ *100000 .* churn$' || fail "pprof -sample_index=alloc_objects: churn did not allocate 100000 blocks"
pprof -top -sample_index=alloc_space -unit=B -nodefraction=0 "$work/k.pb.gz" 2>/dev/null |
  grep -q '^ *4000000B .* churn$' || fail "pprof -sample_index=alloc_space: churn did not allocate 4000000 bytes"
if pprof -top -sample_index=inuse_space -nodefraction=0 "$work/k.pb.gz" 2>/dev/null | grep -q ' churn$'; then
  fail "churn holds live bytes in pprof"
fi
# a version-1 snapshot has no allocation counts: inuse_* only, and the comment says so
python3 "$src/tests/cli/snapv1.py" "$work/k.0.snap" "$work/k1.snap" || fail "snapv1.py"
"$tool" export "$work/k1.snap" -o "$work/k1.pb.gz" || fail "export version 1"
totals "$work/k1.pb.gz" "$work/k1.snap"
pprof -raw "$work/k1.pb.gz" > "$work/k1raw.txt" 2>&1
grep -q '^inuse_space/bytes\[dflt\] inuse_objects/count$' "$work/k1raw.txt" || fail "version 1: sample types"
grep -q '): live blocks only (format version 1), so inuse_\* and no alloc_\*$' "$work/k1raw.txt" || fail "version 1: comment"

# An inlined allocation site: one location, two lines, innermost first.
"$tool" run --no-report --out "$work/i.%n.snap" -- "$inl" >/dev/null 2>&1 || fail "run the inline program"
"$tool" export "$work/i.0.snap" -o "$work/i.pb.gz" || fail "export inline"
totals "$work/i.pb.gz" "$work/i.0.snap"
pprof -raw "$work/i.pb.gz" > "$work/iraw.txt" 2>&1
grep -A1 ' make_buffer tests/export/inline.c:11 s=0$' "$work/iraw.txt" | grep -q '^  *fill tests/export/inline.c:17 s=0$' ||
  { fail "the inline chain make_buffer <- fill is not one location"; sed -n '/^Locations/,/^Mappings/p' "$work/iraw.txt"; }

# A sampled snapshot: marked as estimates, the period is the sampling rate.
"$tool" run --no-report --sample 16K --out "$work/s.%n.snap" -- "$build/examples/phases" 5000 >/dev/null 2>&1 || fail "run --sample"
"$tool" export "$work/s.1.snap" -o "$work/s.pb.gz" || fail "export sampled"
totals "$work/s.pb.gz" "$work/s.1.snap"
pprof -raw "$work/s.pb.gz" > "$work/sraw.txt" 2>&1
grep -q '^Comment: sampled: one allocation traced per 16384 bytes on average; sizes and counts are estimates$' "$work/sraw.txt" ||
  fail "sampled snapshot not marked as estimates"
grep -q '^Period: 16384$' "$work/sraw.txt" || fail "sampled snapshot's period"

# To a pipe (no -o); and the gzip stream is the same profile.
"$tool" export "$snap" > "$work/stdout.pb.gz" || fail "export to stdout"
cmp -s "$work/stdout.pb.gz" "$work/p.pb.gz" || fail "export to stdout differs from -o"

# --format folded: the lines of top --by trace --format folded --limit 0
"$tool" export "$snap" --format folded -o "$work/f.txt" || fail "export --format folded"
"$tool" top "$snap" --by trace --format folded --limit 0 > "$work/f.top"
cmp -s "$work/f.txt" "$work/f.top" || fail "export --format folded differs from top --format folded"
sum=$(awk '{s += $NF} END {print s}' "$work/f.txt")
"$tool" top "$snap" --format json --limit 0 > "$work/top.json"
total=$(python3 -c 'import json, sys; print(sum(x["size"] for x in json.load(open(sys.argv[1]))["stats"]))' "$work/top.json")
[ "$sum" = "$total" ] || fail "folded stacks add up to $sum, not the snapshot's total"

# Bad input: one line on stderr, status 2, no output file left behind.
head -c 100 "$snap" > "$work/short.snap"
"$tool" export "$work/short.snap" -o "$work/bad.pb.gz" 2> "$work/err"; rc=$?
[ $rc = 2 ] && [ "$(wc -l < "$work/err")" = 1 ] && grep -q 'short.snap: truncated' "$work/err" && [ ! -e "$work/bad.pb.gz" ] ||
  { fail "truncated snapshot: status $rc"; cat "$work/err"; }
"$tool" export "$snap" -o "$work/nodir/x.pb.gz" 2> "$work/err"; rc=$?
[ $rc = 2 ] && [ "$(wc -l < "$work/err")" = 1 ] && grep -q 'nodir/x.pb.gz: cannot write: No such file or directory' "$work/err" ||
  { fail "unwritable output: status $rc"; cat "$work/err"; }

[ $fails = 0 ] && echo "export: pprof reads what we wrote, totals match" || echo "export: $fails failures"
[ $fails = 0 ]
