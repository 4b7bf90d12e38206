#!/bin/sh
# The peak and flow views on real snapshots of examples/peaks (version 3):
# JSON carries every figure as an integer and the at-peak figures add up to
# the traced peak; the figures of the phases are the program's; run's
# report adds the sites at the peak when they tell more than those at exit;
# a version-1 snapshot (snapv1.py writes one from a version-3 file) reads
# the same at the end, has null peak and flow members in JSON, and is
# refused with one line and status 2 by the views that need version 2 or later;
# usage errors of --at, --old-at and --sort.
#   peak.sh SNAPMALLOC SRCDIR BUILDDIR
set -u
tool=$1 src=$2 build=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$src" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$tool" run --out "$work/peaks.%n.snap" -- "$build/examples/peaks" > /dev/null 2> "$work/run.err" ||
  { echo "FAIL: peaks did not run"; cat "$work/run.err"; exit 1; }
snap=$work/peaks.0.snap

# run's report: the sites at exit, then those at the peak (8 MiB in phase 1)
python3 - "$work/run.err" <<'PY' || fail "run's report of peaks lacks the sites at the peak"
import sys
err = open(sys.argv[1]).read().split('\n')
i = err.index('snapmalloc: top 10 allocation sites at the peak of traced memory (8192 KiB):')
assert err[i + 1].startswith('examples/peaks.c:28: size=8192 KiB, count=32, average=256 KiB'), err[i + 1]
j = [k for k, l in enumerate(err) if l.startswith('snapmalloc: top 10 allocation sites at exit (')][0]
assert j < i and err[j + 2].startswith('examples/peaks.c:58: size=938 KiB, count=20000'), err[j:j + 3]
PY
# ... not for phases, whose peak is its end but for stdio's buffer
"$tool" run --out "$work/phases.%n.snap" -- "$build/examples/phases" > /dev/null 2> "$work/phases.err" || fail "run phases"
grep -q 'allocation sites at exit' "$work/phases.err" || fail "run phases printed no report"
if grep -q 'at the peak of traced memory' "$work/phases.err"; then fail "run phases repeats its sites at the peak"; cat "$work/phases.err"; fi
# ... and when another site led at the peak, though the end is within 10% of it
"$tool" run --out "$work/close.%n.snap" -- "$build/examples/peaks" 140000 > /dev/null 2> "$work/close.err" || fail "run peaks 140000"
grep -A1 'at the peak of traced memory' "$work/close.err" | grep -q '^examples/peaks.c:28: size=8192 KiB' ||
  { fail "run peaks 140000: the site that led at the peak is not shown"; cat "$work/close.err"; }

# JSON: every figure an integer; at the peak they add up to the traced peak
"$tool" top "$snap" --format json --limit 0 --at peak > "$work/peak.json" || fail "top --at peak --format json"
"$tool" top "$snap" --format json --limit 0 --sort allocations > "$work/flow.json" || fail "top --sort allocations --format json"
"$tool" diff "$snap" "$snap" --old-at peak --format json --limit 0 > "$work/diff.json" || fail "diff --old-at peak --format json"
python3 - "$work/peak.json" "$work/flow.json" "$work/diff.json" <<'PY' || fail "JSON figures"
import json, sys
peak, flow, diff = (json.load(open(f)) for f in sys.argv[1:])
figs = ['size', 'count', 'peak_size', 'peak_count', 'allocations', 'allocated', 'temporary']
h = peak['header']
assert h['version'] == 3 and type(h['peak_rss']) is int and h['peak_rss'] >= h['rss'] > 0, h
assert peak['at'] == 'peak' and peak['sort'] == 'size' and flow['sort'] == 'allocations', (peak['at'], flow['sort'])
for doc in (peak, flow, diff):
    for e in doc['stats'] + [doc['totals']]:
        assert all(type(e[f]) is int for f in figs), e
# single thread: the at-peak figures add up to the traced peak, exactly
assert sum(e['peak_size'] for e in peak['stats']) == h['traced']['peak'] == peak['totals']['peak_size'], h
site = {'%s:%d' % (e['site']['file'], e['site']['line']): e for e in flow['stats']}
chunks, churn, kept = site['examples/peaks.c:28'], site['examples/peaks.c:47'], site['examples/peaks.c:58']
assert (chunks['peak_size'], chunks['peak_count'], chunks['size'], chunks['allocations']) == (32 << 18, 32, 0, 32), chunks
assert (churn['allocations'], churn['allocated'], churn['temporary'], churn['size']) == (100000, 4000000, 100000, 0), churn
assert (kept['size'], kept['count'], kept['peak_size'], kept['temporary']) == (960000, 20000, 0, 0), kept
# entries sorted on the flow figure
a = [e['allocations'] for e in flow['stats']]
assert a == sorted(a, reverse=True), a
# diff of the peak against the end: the changes between the two moments
d = {'%s:%d' % (e['site']['file'], e['site']['line']): e for e in diff['stats']}
assert diff['old_at'] == 'peak' and diff['at'] == 'end', diff['old_at']
assert (d['examples/peaks.c:28']['size_diff'], d['examples/peaks.c:28']['count_diff']) == (-(32 << 18), -32)
assert d['examples/peaks.c:58']['size_diff'] == 960000 and d['examples/peaks.c:58']['allocations_diff'] == 0
assert diff['totals']['size_diff'] == diff['new']['traced']['current'] - diff['old']['traced']['peak'], diff['totals']
PY

# the header line gives the peak RSS (VmHWM) of version 2, not of version 1
"$tool" top "$snap" --limit 1 | head -1 | grep -q ', RSS [0-9.]* [KMG]iB (peak [0-9.]* [KMG]iB), heap ' ||
  fail "version 2 header without the peak RSS: $("$tool" top "$snap" --limit 1 | head -1)"

# version 1: the same report at the end, null figures, refused views
python3 "$src/tests/cli/snapv1.py" "$snap" "$work/v1.snap" || fail "snapv1.py"
"$tool" top "$snap" --limit 0 | grep -v '(pid ' > "$work/v2.txt"
"$tool" top "$work/v1.snap" --limit 0 | grep -v '(pid ' > "$work/v1.txt"
cmp -s "$work/v1.txt" "$work/v2.txt" || { fail "top of version 1 and 2 differ at the end"; diff "$work/v1.txt" "$work/v2.txt"; }
if "$tool" top "$work/v1.snap" --limit 1 | head -1 | grep -q 'RSS [^,]*(peak'; then fail "version 1 header claims a peak RSS"; fi
"$tool" top "$work/v1.snap" --format json --limit 0 > "$work/v1.json" || fail "top version 1 --format json"
python3 - "$work/v1.json" <<'PY' || fail "version-1 JSON"
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc['header']['version'] == 1 and doc['header']['peak_rss'] is None, doc['header']
for e in doc['stats'] + [doc['totals']]:
    assert type(e['size']) is int and type(e['count']) is int, e
    assert all(e[f] is None for f in ['peak_size', 'peak_count', 'allocations', 'allocated', 'temporary']), e
PY
expect() { # NAME PATTERN, then the tool's arguments: status 2, one line, no output
  name=$1 pattern=$2; shift 2
  "$tool" "$@" > "$work/out" 2> "$work/err"
  rc=$?
  lines=$(wc -l < "$work/err")
  if [ $rc != 2 ] || [ "$lines" != 1 ] || ! grep -q -- "$pattern" "$work/err" || [ -s "$work/out" ]; then
    fail "$name: status $rc, $lines stderr lines, expected one matching '$pattern': $(cat "$work/err")"
  fi
}
nopeak="v1.snap: a version-1 snapshot has no figures at its peak; viewing it at the peak needs format version 2"
expect v1-top-peak "$nopeak" top "$work/v1.snap" --at peak
expect v1-top-sort "v1.snap: a version-1 snapshot has no allocation counts; --sort temporary needs format version 2" \
  top "$work/v1.snap" --sort temporary
expect v1-diff-old "$nopeak" diff "$work/v1.snap" "$snap" --old-at peak
expect v1-diff-new "v1.snap: .*--sort allocated needs" diff "$snap" "$work/v1.snap" --sort allocated
expect v1-diff-both "$nopeak" diff "$snap" "$work/v1.snap" --at peak
expect at-word "--at takes end or peak, not 'max'" top "$snap" --at max
expect sort-word "--sort takes size, count, allocations, allocated or temporary, not 'peak'" top "$snap" --sort peak
expect sort-at "--sort temporary counts since tracing started" top "$snap" --sort temporary --at peak
expect sort-old-at "--sort allocations counts since" diff "$snap" "$snap" --sort allocations --old-at peak
expect old-at-top "--old-at is OLD's moment" top "$snap" --old-at peak

# sampled: the flow figures are estimates, flagged as the others are
"$tool" run --no-report --sample 4K --out "$work/s.%n.snap" -- "$build/examples/peaks" > /dev/null 2>&1 || fail "run --sample"
"$tool" top "$work/s.0.snap" --sort temporary --limit 1 > "$work/s.txt" || fail "top --sort temporary, sampled"
grep -q ' estimated from samples, RSS ' "$work/s.txt" || fail "sampled header not flagged: $(head -1 "$work/s.txt")"
grep -qx 'Allocations since tracing started or the last peak reset, by temporary (estimated from samples):' "$work/s.txt" ||
  fail "sampled flow view not flagged: $(sed -n 2p "$work/s.txt")"
"$tool" top "$work/s.0.snap" --sort temporary --format json --limit 1 > "$work/s.json"
python3 - "$work/s.json" <<'PY' || fail "sampled estimates"
import json, sys
doc = json.load(open(sys.argv[1]))
e = doc['stats'][0]
assert doc['header']['sampled'] is True, doc['header']
assert e['site']['line'] == 47 and 80000 <= e['allocations'] <= 120000 and 80000 <= e['temporary'] <= 120000, e
PY

[ $fails = 0 ] && echo "peak: all checks pass" || echo "peak: $fails checks failed"
[ $fails = 0 ]
