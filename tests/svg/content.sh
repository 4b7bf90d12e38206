#!/bin/sh
# What `snapmalloc flame` and `snapmalloc timeline` draw, checked on real
# runs of the example programs: well-formed SVG whose frames carry the
# report's functions, lines and bytes, red and blue where a diff grew and
# shrank, escaped C++ template names and odd program names, the report
# filters, timelines in time order with the snapshots' header values, and
# bad input refused with one line and exit status 2.
#   content.sh SNAPMALLOC SRCDIR BUILDDIR
set -u
tool=$1 src=$2 build=$3
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$src" || exit 1   # paths are shown relative to the source tree
. "$here/lib.sh"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { python3 "$here/svgcheck.py" "$@" || fails=$((fails + 1)); }
make_snapshots || exit 1

# one snapshot: every site of `top` drawn with its bytes; stdout is the default
"$tool" flame "$work/phases.1.snap" -o "$work/phases.svg" || fail "flame exit status $?"
"$tool" top "$work/phases.1.snap" --format json --limit 0 > "$work/phases.json"
check flame "$work/phases.svg" "$work/phases.json" --name load_record --name build_index --name cache_grow --name main
"$tool" flame "$work/phases.1.snap" > "$work/stdout.svg" || fail "flame to stdout"
cmp -s "$work/phases.svg" "$work/stdout.svg" || fail "flame -o FILE and flame > FILE differ"
"$tool" top "$work/phases.1.snap" > "$work/phases.txt"
total=$(sed -n 's/^Total allocated size: //p' "$work/phases.txt")
grep -q ">Live memory of phases (pid [0-9]*): $total in [0-9]* blocks<" "$work/phases.svg" ||
  fail "the title does not give top's total ($total)"
# the picture names no path of this machine: not the snapshot's, not the program's
if grep -q -e "$work" -e "$build" "$work/phases.svg"; then fail "flame embeds a temporary or build path"; fi

# two snapshots: widths from NEW, red where a site grew, blue where it shrank
"$tool" flame "$work/peak.snap" "$waves_last" -o "$work/waves-diff.svg" || fail "flame OLD NEW exit status"
"$tool" diff "$work/peak.snap" "$waves_last" --format json --limit 0 > "$work/waves-diff.json"
check flame "$work/waves-diff.svg" "$work/waves-diff.json" --diff --name cache_append --name new_buffer \
  --red cache_append --blue new_buffer --blue pool_fill
grep -q '>Change in live memory of waves' "$work/waves-diff.svg" || fail "the diff flame graph has no diff title"

# --at peak: widths are the live bytes at the traced peak, as top --at peak
# reports them; --old-at peak: what was freed since the peak is blue
"$tool" flame "$work/peaks.0.snap" --at peak -o "$work/peak.svg" || fail "flame --at peak exit status"
"$tool" top "$work/peaks.0.snap" --at peak --format json --limit 0 > "$work/peak.json"
check flame "$work/peak.svg" "$work/peak.json" --field peak_size --name load_chunks
grep -q '>Live memory of peaks (pid [0-9]*) at its traced peak: 8[0-9.]* [KM]iB in [0-9]* blocks<' "$work/peak.svg" ||
  fail "the title of flame --at peak does not say it is the peak"
if grep -q '>keep_results<' "$work/peak.svg"; then fail "flame --at peak draws phase 3, which came after the peak"; fi
grep -q '>peaks.0.snap, written [0-9-]* [0-9:]* UTC; width = live bytes at the peak,' "$work/peak.svg" ||
  fail "the subtitle of flame --at peak does not say the widths are the peak's"
"$tool" flame "$work/peaks.0.snap" "$work/peaks.0.snap" --old-at peak -o "$work/since-peak.svg" || fail "flame --old-at peak"
"$tool" diff "$work/peaks.0.snap" "$work/peaks.0.snap" --old-at peak --format json --limit 0 > "$work/since-peak.json"
check flame "$work/since-peak.svg" "$work/since-peak.json" --diff --name keep_results --red keep_results
grep -q 'peaks.0.snap at its peak ([0-9.]* [KM]iB) -&gt; peaks.0.snap' "$work/since-peak.svg" ||
  fail "the subtitle of flame --old-at peak does not name the peak"

# C++ templates (< > &) with --raw, where frames from <vector> remain
"$tool" flame "$work/sites.0.snap" --raw -o "$work/sites-raw.svg" || fail "flame --raw exit status"
"$tool" top "$work/sites.0.snap" --raw --format json --limit 0 > "$work/sites-raw.json"
check flame "$work/sites-raw.svg" "$work/sites-raw.json" --name 'make_list(int)'
grep -q 'std::vector&lt;int, std::allocator&lt;int&gt; &gt;' "$work/sites-raw.svg" || fail "template names not escaped"
python3 - "$work/sites-raw.svg" <<'PY' || fail "no frame of the vector's template code"
import sys, xml.etree.ElementTree as ET
titles = [t.text for t in ET.parse(sys.argv[1]).getroot().iter('{http://www.w3.org/2000/svg}title')]
assert any(t.startswith('std::vector<int, std::allocator<int> >::') for t in titles), titles
PY

# markup and a byte that is not UTF-8 in the program's name: XML-escaped, and
# the byte shown as \xff (the display form of docs/cli.md, "Untrusted snapshots")
odd="$work/$(printf 'ph<&>"\047\377ses')"
cp "$build/examples/phases" "$odd"
"$tool" run --no-report --out "$work/odd.%n.snap" -- "$odd" 100 >/dev/null 2>>"$work/run.err" || fail "odd name did not run"
"$tool" flame "$work/odd.1.snap" -o "$work/odd.svg" || fail "flame of the odd name"
"$tool" timeline "$work/odd.0.snap" "$work/odd.1.snap" -o "$work/odd-timeline.svg" || fail "timeline of the odd name"
python3 - "$work/odd.svg" "$work/odd-timeline.svg" <<'PY' || fail "odd program name not escaped"
import sys, xml.etree.ElementTree as ET
for f in sys.argv[1:]:
    title = ''.join(ET.parse(f).getroot().find(".//*[@id='title']").itertext())
    assert 'ph<&>"\'\\xffses (pid ' in title, title
PY

# --include keeps only the matching sites, as in top
"$tool" flame "$work/phases.1.snap" --include 'cache_grow' -o "$work/include.svg" || fail "flame --include"
"$tool" top "$work/phases.1.snap" --include 'cache_grow' --format json --limit 0 > "$work/include.json"
check flame "$work/include.svg" "$work/include.json" --name cache_grow
if grep -q '>load_record<' "$work/include.svg"; then fail "--include kept load_record"; fi

# timeline: sorted by time whatever the argument order, header values per point
set -- $(ls "$work"/waves.*.snap)
[ $# -ge 3 ] || fail "waves wrote only $# snapshots"
"$tool" timeline "$@" -o "$work/timeline.svg" || fail "timeline exit status"
"$tool" top "$waves_last" --format json --limit 5 > "$work/last.json"
check timeline "$work/timeline.svg" "$work/last.json" "$@"
rev=$(for f in "$@"; do echo "$f"; done | sort -r)
"$tool" timeline $rev > "$work/timeline-rev.svg" || fail "timeline (reversed) exit status"
cmp -s "$work/timeline.svg" "$work/timeline-rev.svg" || fail "timeline depends on the order of its arguments"
grep -q '>Memory of waves (pid [0-9]*) over' "$work/timeline.svg" || fail "timeline title"
"$tool" timeline "$@" --rank growth -o "$work/growth.svg" || fail "timeline --rank growth"
grep -q 'data-site="examples/waves.c:[0-9]*"' "$work/growth.svg" || fail "--rank growth drew no site"
# one snapshot still draws
"$tool" timeline "$waves_last" -o "$work/one.svg" || fail "timeline of one snapshot"
check timeline "$work/one.svg" "$work/last.json" "$waves_last"

# snapshots of two processes: one line, exit 2, no picture; --mixed draws them
"$tool" timeline "$work/phases.1.snap" "$waves_last" -o "$work/mixed.svg" > "$work/out" 2> "$work/err"
rc=$?
if [ $rc != 2 ] || [ "$(wc -l < "$work/err")" != 1 ] || ! grep -q 'not one run (--mixed' "$work/err" || [ -e "$work/mixed.svg" ]; then
  fail "mixed pids: status $rc, stderr: $(cat "$work/err")"
fi
"$tool" timeline "$work/phases.1.snap" "$waves_last" --mixed -o "$work/mixed.svg" || fail "timeline --mixed"
python3 -c 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])' "$work/mixed.svg" || fail "mixed timeline not XML"

# bad input: exit 2, one line on stderr, nothing on stdout, no picture
expect() { # NAME PATTERN, then the tool's arguments
  name=$1 pattern=$2; shift 2
  rm -f "$work/bad.svg"
  "$tool" "$@" > "$work/out" 2> "$work/err"
  rc=$?
  lines=$(wc -l < "$work/err")
  if [ $rc != 2 ] || [ "$lines" != 1 ] || ! grep -q -- "$pattern" "$work/err" || [ -s "$work/out" ] || [ -e "$work/bad.svg" ]; then
    fail "$name: status $rc, $lines stderr lines, expected one matching '$pattern': $(cat "$work/err")"
  fi
}
head -c 200 "$work/phases.1.snap" > "$work/trunc.snap"
expect flame-trunc "trunc.snap: truncated" flame "$work/trunc.snap" -o "$work/bad.svg"
expect flame-diff-trunc "trunc.snap: truncated" flame "$work/phases.0.snap" "$work/trunc.snap" -o "$work/bad.svg"
expect timeline-trunc "trunc.snap: truncated" timeline "$waves_last" "$work/trunc.snap" -o "$work/bad.svg"
expect flame-missing "nothere.snap: cannot open" flame "$work/nothere.snap" -o "$work/bad.svg"
expect flame-none "snapmalloc flame: needs a snapshot" flame -o "$work/bad.svg"
expect flame-three "takes one snapshot or two" flame "$work/phases.0.snap" "$work/phases.1.snap" "$work/phases.1.snap" -o "$work/bad.svg"
expect flame-option "option '--bogus' is unknown" flame "$work/phases.1.snap" --bogus -o "$work/bad.svg"
expect flame-width "--width takes" flame "$work/phases.1.snap" --width x -o "$work/bad.svg"
expect flame-at "--at takes end or peak, not 'top'" flame "$work/phases.1.snap" --at top -o "$work/bad.svg"
expect flame-old-at "--old-at is OLD's moment" flame "$work/phases.1.snap" --old-at peak -o "$work/bad.svg"
python3 "$src/tests/cli/snapv1.py" "$work/peaks.0.snap" "$work/v1.snap" || fail "snapv1.py"
expect flame-v1 "v1.snap: a version-1 snapshot has no figures at its peak" flame "$work/v1.snap" --at peak -o "$work/bad.svg"
expect flame-dir "nodir/x.svg: cannot create" flame "$work/phases.1.snap" -o "$work/nodir/x.svg"
expect timeline-none "snapmalloc timeline: needs one or more" timeline -o "$work/bad.svg"
expect timeline-sites "--sites takes" timeline "$waves_last" --sites 99 -o "$work/bad.svg"
expect timeline-rank "--rank takes" timeline "$waves_last" --rank size -o "$work/bad.svg"

[ $fails = 0 ] && echo "svg-content: all checks pass" || echo "svg-content: $fails checks failed"
[ $fails = 0 ]
