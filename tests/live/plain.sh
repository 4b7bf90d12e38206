#!/bin/sh
# run --live with standard output not a terminal: plain text blocks, one
# per snapshot, with exact figures from tests/live/grow.c's `phases` (the
# first snapshot, at 0.5 s, sees phase 1; phase 2 comes at 2 s; the last
# block is the final snapshot); no escape sequences; --top cuts the list
# into "N other"; the program's status passes through; the last snapshot
# is kept where --out says and the live directory is removed. Then the
# usage errors of --live, --top, --by and --interval, --interval in
# fractions without --live, and check --live.
#   plain.sh SNAPMALLOC SRCDIR GROW
set -u
tool=$1 src=$2 grow=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
cd "$src" || exit 1
site() { echo "tests/live/grow.c:$(grep -n "SITE_$1 " tests/live/grow.c | cut -d: -f1)"; }
P1=$(site P1) P2=$(site P2) P3=$(site P3)

mkdir "$work/tmp"
TMPDIR="$work/tmp" "$tool" run --live --interval 0.5 --top 2 --out "$work/p.%p.%n.snap" -- "$grow" phases \
  > "$work/out" 2> "$work/err"
rc=$?
[ $rc = 0 ] || { fail "run --live: exit $rc"; cat "$work/err"; }
if grep -q "$(printf '\033')" "$work/out"; then fail "escape sequences in plain output"; fi

# one block per snapshot, numbered from 1; at least 6 in 4 s at 0.5 s
n=$(grep -c '^snapmalloc live: ' "$work/out")
[ "$n" -ge 6 ] || fail "$n blocks in 4 s at --interval 0.5"
grep '^snapmalloc live: ' "$work/out" | sed 's/.*, snapshot \([0-9]*\).*/\1/' > "$work/seq"
seq 1 "$n" | cmp -s - "$work/seq" || fail "blocks are not snapshots 1..$n: $(tr '\n' ' ' < "$work/seq")"
head -n 1 "$work/out" | grep -Eq "^snapmalloc live: $grow phases \(pid [0-9]+\), snapshot 1 at [0-9]+\.[0-9] s: traced 127 KiB \(peak 127 KiB\), RSS [0-9.]+ [KM]iB \(peak [0-9.]+ [KM]iB\), heap [0-9.]+ [KM]iB mapped, [0-9.]+ KiB in use$" ||
  fail "first header: $(head -n 1 "$work/out")"

# the first block: phase 1, no change yet
awk 'BEGIN { RS = "" } NR == 1' "$work/out" | tail -n +2 > "$work/first"
cat > "$work/want" <<EOF
$P1: size=97.7 KiB (+0 B), count=100 (+0), average=1000 B
$P2: size=29.3 KiB (+0 B), count=10 (+0), average=3000 B
EOF
cmp -s "$work/want" "$work/first" || { fail "first block"; diff "$work/want" "$work/first"; }

# the last block: the final snapshot, phase 2 against phase 1
awk -v n="$n" 'BEGIN { RS = "" } NR == n' "$work/out" > "$work/last"
head -n 1 "$work/last" | grep -Eq "snapshot $n \(final\) at [0-9.]+ s: traced 176 KiB \(peak 225 KiB\)" ||
  fail "last header: $(head -n 1 "$work/last")"
tail -n +2 "$work/last" > "$work/lastsites"
cat > "$work/want" <<EOF
$P3: size=97.7 KiB (+97.7 KiB), count=50 (+50), average=2000 B
$P1: size=48.8 KiB (-48.8 KiB), count=50 (-50), average=1000 B
1 other: 29.3 KiB (+0 B)
EOF
cmp -s "$work/want" "$work/lastsites" || { fail "last block"; diff "$work/want" "$work/lastsites"; }
pid=$(head -n 1 "$work/out" | sed 's/.*(pid \([0-9]*\)).*/\1/')
[ "$(tail -n 1 "$work/out")" = "$grow (pid $pid) exited with status 0" ] || fail "last line: $(tail -n 1 "$work/out")"

# run's end as without --live: the last snapshot kept under --out, listed,
# its top sites on stderr; the live directory gone
# (named by its own sequence number: the view may have skipped some of
# the snapshots on a busy machine, it reads the newest each time)
kept=$(ls "$work" | grep '^p\..*\.snap$')
[ "$(echo "$kept" | wc -w)" = 1 ] || fail "snapshots kept: $kept, not one"
echo "$kept" | grep -Eq "^p\.$pid\.[0-9]+\.snap\$" || fail "the kept snapshot is named $kept"
grep -q "^  $work/$kept\$" "$work/err" || fail "the kept snapshot is not listed"
grep -q "^$P3: size=97.7 KiB, count=50, average=2000 B\$" "$work/err" || fail "no top sites at exit on stderr"
[ -z "$(ls -A "$work/tmp")" ] || fail "the live directory was left: $(ls -A "$work/tmp")"
"$tool" top "$work/$kept" --limit 1 --format json | grep -q '"final": true' || fail "the kept snapshot is not the final one"
"$tool" top "$work/$kept" --limit 1 | grep -q "^$P3: size=97.7 KiB, count=50" ||
  fail "the kept snapshot does not hold the final figures"

# --by function groups by the sites' functions
"$tool" run --live --interval 0.5 --by function --no-report --out "$work/f.%p.%n.snap" -- "$grow" phases \
  > "$work/fout" 2> "$work/ferr" || fail "run --live --by function"
grep -q '^p3: size=97.7 KiB (+97.7 KiB), count=50 (+50), average=2000 B$' "$work/fout" ||
  { fail "--by function"; cat "$work/fout"; }
grep -q 'top 10' "$work/ferr" && fail "--no-report printed the top sites"

# a pipe that closes (| head): the view ends with one line and status 2,
# run still waits for the program and keeps its last snapshot
{ "$tool" run --live --interval 0.5 --no-report --out "$work/h.%p.%n.snap" -- "$grow" phases 2> "$work/herr"
  echo $? > "$work/hrc"; } | head -n 1 > /dev/null
[ "$(cat "$work/hrc")" = 2 ] || fail "run --live | head: exit $(cat "$work/hrc"), not 2"
grep -q '^snapmalloc run: cannot write to standard output: Broken pipe$' "$work/herr" || { fail "| head: no line"; cat "$work/herr"; }
grep -q '^snapmalloc: 1 snapshot written:$' "$work/herr" || fail "| head: the program's snapshot was not kept"

# tracing stopped from outside (snapmalloc stop PID, run arms control=1):
# no more periodic snapshots; the final block says tracing is off
rm -f "$work/stopfile"
"$tool" run --live --interval 0.5 --no-report --out "$work/o.%p.%n.snap" -- "$grow" "$work/stopfile" 24 > "$work/oout" 2> "$work/oerr" &
runpid=$!
i=0
while [ $i -lt 100 ] && ! grep -q '^snapmalloc live: ' "$work/oout" 2> /dev/null; do sleep 0.1; i=$((i + 1)); done
pid=$(head -n 1 "$work/oout" | sed 's/.*(pid \([0-9]*\)).*/\1/')
"$tool" stop "$pid" > /dev/null || fail "snapmalloc stop $pid"
touch "$work/stopfile"
wait $runpid || fail "run --live with a stop: exit $?"
grep '^snapmalloc live: ' "$work/oout" | tail -n 1 | grep -q ', tracing off, RSS ' ||
  fail "the last block does not say tracing is off: $(grep '^snapmalloc live: ' "$work/oout" | tail -n 1)"
grep '^snapmalloc live: ' "$work/oout" | head -n 1 | grep -q 'tracing off' && fail "the first block says tracing is off"

# check takes --live (run's option): the view on stdout, then the leak
# report of the kept final snapshot (P3's blocks are lost), status 1
"$tool" check --live --interval 0.5 --top 2 -- "$grow" phases > "$work/cout" 2> "$work/cerr"
rc=$?
[ $rc = 1 ] || fail "check --live: exit $rc, not 1"
grep -q "^$P3: size=97.7 KiB (+97.7 KiB), count=50 (+50), average=2000 B\$" "$work/cout" || fail "check --live: no view"
grep -q '^97.7 KiB in 50 blocks are definitely lost' "$work/cerr" || { fail "check --live: no leak report"; cat "$work/cerr"; }
grep -q 'still reachable: 78.1 KiB in 60 blocks' "$work/cerr" || fail "check --live: reachable blocks"

# usage errors: one line, status 2
usage() {
  want=$1
  shift
  "$tool" run "$@" > "$work/u.out" 2> "$work/u.err"
  rc=$?
  [ $rc = 2 ] || fail "run $*: exit $rc, not 2"
  [ "$(wc -l < "$work/u.err")" = 1 ] || fail "run $*: not one line: $(cat "$work/u.err")"
  grep -q -- "$want" "$work/u.err" || fail "run $*: '$(cat "$work/u.err")' does not say '$want'"
  [ -s "$work/u.out" ] && fail "run $*: wrote to stdout"
}
usage "'--top' goes with --live\|--top goes with --live" --top 3 -- true
usage "--by goes with --live" --by file -- true
usage "--live needs an --interval above 0" --live --interval 0 -- true
for bad in 0.0001 abc -1 1e3 .5 1. 86400.5 86401; do
  usage "--interval takes seconds from 0 to 86400, to the millisecond (0.5), not '$bad'" --interval "$bad" -- true
done
usage "--top takes 1..100000" --live --top 0 -- true
usage "--by takes line, file, function or trace, not 'site'" --live --by site -- true

# --interval in fractions without --live: the tracer takes them too
"$tool" run --no-report --interval 0.2 --out "$work/i.%n.snap" -- "$grow" phases > /dev/null 2>&1 || fail "run --interval 0.2"
n=$(ls "$work" | grep -c '^i\..*\.snap$')
[ "$n" -ge 12 ] || fail "--interval 0.2 over 4 s wrote $n snapshots"

[ $fails = 0 ] && echo "all plain live checks passed"
[ $fails = 0 ]
