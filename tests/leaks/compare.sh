#!/bin/sh
# Leak classes against valgrind's memcheck, and the `check` gate.
#   compare.sh SNAPMALLOC CORPUS LIBS CXX
# For every scenario of tests/leaks/corpus.c, the totals per class
# (definitely, indirectly, possibly lost, still reachable: bytes and blocks)
# of `snapmalloc check --format json` must equal those of
# `valgrind --leak-check=full --show-leak-kinds=all` on the same binary.
# One known difference is allowed: a thread's DTV (the C library's table of
# its thread-local blocks, which both tools call possibly lost) is 16 bytes
# longer per TLS module that libsnapmalloc.so and libunwind add.
set -u
tool=$1 corpus=$2 libs=$3 cxx=$4
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
have_valgrind=0
command -v valgrind >/dev/null 2>&1 && have_valgrind=1

ours() { # scenario -> "def_b def_n ind_b ind_n pos_b pos_n reach_b reach_n"
  "$tool" check --format json -- $prog "$1" 2>/dev/null | grep '^{"pid": ' | tail -n 1 | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())["totals"]
print(" ".join(str(d[k][f]) for k in ("definitely", "indirectly", "possibly", "reachable") for f in ("size", "count")))'
}

theirs() {
  valgrind --leak-check=full --show-leak-kinds=all $prog "$1" 2>&1 >/dev/null | python3 -c '
import re, sys
text = sys.stdin.read()
vals = {}
for k, name in (("def", "definitely lost"), ("ind", "indirectly lost"), ("pos", "possibly lost"), ("reach", "still reachable")):
    m = re.search(name + r": ([\d,]+) bytes in ([\d,]+) blocks", text)
    vals[k] = (m.group(1).replace(",", ""), m.group(2).replace(",", "")) if m else ("0", "0")
print(" ".join(" ".join(vals[k]) for k in ("def", "ind", "pos", "reach")))'
}

# "libs": a program whose libraries leak in their constructor (before
# libsnapmalloc's own constructor runs) and in their destructor (after it);
# "cxx": a C++ program (libstdc++'s emergency pool is freed at exit).
for s in clean lost tree cycle globals heap interior unaligned stale seccomp thread all libs cxx; do
  prog=$corpus
  [ $s = libs ] && prog=$libs
  [ $s = cxx ] && prog=$cxx
  a=$(ours $s)
  [ -n "$a" ] || { fail "$s: no JSON from snapmalloc check"; continue; }
  if [ $have_valgrind = 1 ]; then
    b=$(theirs $s)
    if [ $s = thread ]; then # the DTV: possibly lost bytes differ by 32
      a_pos=$(echo "$a" | cut -d' ' -f5); b_pos=$(echo "$b" | cut -d' ' -f5)
      [ $((a_pos - b_pos)) = 32 ] || fail "thread: possibly lost $a_pos bytes, valgrind $b_pos (+32 expected)"
      a=$(echo "$a" | cut -d' ' -f1-4,6-); b=$(echo "$b" | cut -d' ' -f1-4,6-)
    fi
    if [ "$a" = "$b" ]; then echo "ok   $s: $a"; else fail "$s: snapmalloc [$a] valgrind [$b]"; fi
  else
    echo "skip valgrind comparison for $s (valgrind not installed): $a"
  fi
done

# the gate's exit status
"$tool" check -- "$corpus" clean >/dev/null 2>&1; rc=$?
[ $rc = 0 ] || fail "check on a clean program: exit $rc, expected 0"
"$tool" check -- "$corpus" lost >/dev/null 2>&1; rc=$?
[ $rc = 1 ] || fail "check on a leaking program: exit $rc, expected 1"
"$tool" check -- "$corpus" fail >/dev/null 2>&1; rc=$?
[ $rc = 3 ] || fail "check on a failing program: exit $rc, expected its own 3"
"$tool" check -- "$corpus" globals >/dev/null 2>&1; rc=$?
[ $rc = 0 ] || fail "still reachable blocks are not leaks: exit $rc, expected 0"

# suppressions, LeakSanitizer's format
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '# comment\nleak:lose\nthread:whatever\n' > "$work/supp"
"$tool" check --suppressions "$work/supp" -- "$corpus" lost > /dev/null 2> "$work/err"; rc=$?
[ $rc = 0 ] || fail "leak:lose did not suppress (exit $rc)"
grep -q 'suppressed: 528 B in 11 blocks' "$work/err" || fail "suppressed totals missing"
printf 'leak:^lose$\n' > "$work/supp2"
"$tool" check --suppressions "$work/supp2" -- "$corpus" lost > /dev/null 2>&1 || fail "anchored pattern ^lose$ did not suppress"
printf 'leak:corpus.c\n' > "$work/supp3"
"$tool" check --suppressions "$work/supp3" -- "$corpus" tree > /dev/null 2>&1 || fail "a file pattern did not suppress"
printf 'leak:nothing_matches_this\n' > "$work/supp4"
"$tool" check --suppressions "$work/supp4" -- "$corpus" lost > /dev/null 2>&1 && fail "an unrelated pattern suppressed"
printf 'not a suppression\n' > "$work/supp5"
"$tool" check --suppressions "$work/supp5" -- sh -c 'echo ran > "$0"' "$work/ran" > /dev/null 2> "$work/err5"; rc=$?
[ $rc = 2 ] && grep -q 'supp5:1: not a suppression' "$work/err5" || fail "a bad suppression line: exit $rc"
[ -e "$work/ran" ] && fail "a bad suppression file: the command ran anyway"

# --min-bytes: a 528-byte leak under a 1000-byte threshold is not reported
"$tool" check --min-bytes 1000 -- "$corpus" lost > /dev/null 2>&1 || fail "--min-bytes 1000 still failed on 528 bytes"

# a forking program: the child's leak is reported under the child's pid
"$tool" check -- "$corpus" fork > /dev/null 2> "$work/fork"; rc=$?
[ $rc = 1 ] || fail "fork: exit $rc, expected 1 (the child leaked)"
n=$(grep -c '^== pid ' "$work/fork")
[ "$n" = 2 ] || fail "fork: $n process reports, expected 2"
grep -q '55 B in 1 block is definitely lost' "$work/fork" || fail "fork: the child's 55 bytes are missing"

# leaks on a snapshot without leak analysis, and the report's text form
"$tool" run --no-report --out "$work/noleak.snap" -- sh -c 'SNAPMALLOC_OPTIONS=leaks=0 true' >/dev/null 2>&1
"$tool" check --out "$work/x.%p.snap" -- "$corpus" lost >/dev/null 2>&1
snap=$(ls "$work"/x.*.snap | head -n 1)
"$tool" leaks "$snap" > "$work/text"; rc=$?
[ $rc = 1 ] || fail "leaks: exit $rc on a leaking snapshot"
grep -q '^  definitely lost: 528 B in 11 blocks$' "$work/text" || fail "leaks: no totals line"
grep -q '^    at lose (.*corpus.c:[0-9]*)$' "$work/text" || fail "leaks: no symbolized trace"

# blocks with no trace (the id-0 record) are reported and gated on, except
# with sampling, where the sampled traces already stand for them
python3 "$(dirname "$0")/untraced.py" "$work/u.snap" 4096 1
"$tool" leaks "$work/u.snap" > "$work/u.txt"; rc=$?
[ $rc = 1 ] || fail "untraced: exit $rc, expected 1"
grep -q '^4096 B in 1 block is definitely lost (allocated before tracing started: no stack trace)$' "$work/u.txt" ||
  fail "untraced: no line for the blocks without a trace"
python3 "$(dirname "$0")/untraced.py" "$work/u2.snap" 4096 1 sampled
"$tool" leaks "$work/u2.snap" > /dev/null || fail "untraced: sampled snapshot counted its unsampled blocks"

# check reports its own run only, whatever --out matches, and a clean run
# passes after a leaking one with the same pattern
mkdir "$work/same"
"$tool" check --out "$work/same/s.%p.snap" -- "$corpus" lost >/dev/null 2>&1
"$tool" check --out "$work/same/s.%p.snap" -- "$corpus" clean >/dev/null 2>"$work/same.err"; rc=$?
[ $rc = 0 ] || fail "a clean run after a leaking one with the same --out: exit $rc: $(cat "$work/same.err")"
n=$(grep -c '^== pid ' "$work/same.err")
[ "$n" = 1 ] || fail "a clean run after a leaking one reported $n processes, expected 1"

# a process that puts options of its own before the run's is still the run's
"$tool" check -- sh -c 'SNAPMALLOC_OPTIONS="verbose=0,$SNAPMALLOC_OPTIONS" exec "$0" lost' "$corpus" > /dev/null 2>&1; rc=$?
[ $rc = 1 ] || fail "a child that prepends options: exit $rc, expected 1 (its leak)"

# -o FILE: the report goes there (JSON does not mix with the program's stdout)
"$tool" check --format json -o "$work/report.json" -- "$corpus" clean > "$work/stdout" 2>/dev/null; rc=$?
[ $rc = 0 ] || fail "check -o: exit $rc"
grep -q '^{"pid": ' "$work/report.json" || fail "check -o: no JSON in the report file"
grep -q '"pid"' "$work/stdout" && fail "check -o: JSON still on stdout"
[ "$(cat "$work/stdout")" = clean ] || fail "check -o: the program's own stdout was lost"

# check removes the directory it made for the snapshots
"$tool" check -- "$corpus" lost > /dev/null 2> "$work/dir.err"
d=$(sed -n 's|^  \(/tmp/snapmalloc-check\.[^/]*\)/.*|\1|p' "$work/dir.err" | head -n 1)
[ -n "$d" ] || fail "check: no snapshot directory named"
[ -n "$d" ] && [ -e "$d" ] && fail "check left its directory $d"

# --alloc-fn: the program's own wrapper is never the site (valgrind's option)
"$tool" check --out "$work/w.%p.snap" -- "$corpus" wrapped > /dev/null 2> "$work/w1"
grep -q '^    at my_xmalloc ' "$work/w1" || fail "wrapped: without --alloc-fn the wrapper is not the site"
"$tool" check --alloc-fn 'my_x*' -- "$corpus" wrapped > /dev/null 2> "$work/w2"
grep -q '^    at lose_wrapped ' "$work/w2" || fail "check --alloc-fn: the wrapper's caller is not the site"
wsnap=$(ls "$work"/w.*.snap | head -n 1)
"$tool" top "$wsnap" --alloc-fn my_xmalloc --limit 0 | grep -q 'lose_wrapped\|corpus.c:[0-9]*: size=66 B' ||
  fail "top --alloc-fn: the wrapper's caller is not the site"
"$tool" top "$wsnap" --by function --limit 0 | grep -q '^my_xmalloc: size=66 B' || fail "top: without --alloc-fn the wrapper is the site"
"$tool" top "$wsnap" --by function --alloc-fn my_xmalloc --limit 0 | grep -q '^lose_wrapped: size=66 B' ||
  fail "top --by function --alloc-fn: the caller is not the site"

# a program name with a terminal escape in it is shown escaped
esc=$(printf 'esc\033[31mred')
cp "$corpus" "$work/$esc"
"$tool" check -- "$work/$esc" lost > /dev/null 2> "$work/esc.err"
grep -q 'esc\\x1b\[31mred' "$work/esc.err" || fail "check: the program name's escape is not shown as \\x1b"
grep -q "$(printf '\033')" "$work/esc.err" && fail "check: a raw escape character reached the terminal"

# a command that ends without exit() leaves no analysis: the gate cannot
# vouch for it and says so
"$tool" check -- sh -c 'kill -9 $$' > /dev/null 2>&1; rc=$?
[ $rc = 137 ] || fail "check on a killed command: exit $rc, expected its own 137"
"$tool" check -- "$corpus" _exit > /dev/null 2> "$work/noexit"; rc=$?
[ $rc = 2 ] || fail "check on a command that left no analysis: exit $rc, expected 2"

[ $fails = 0 ] && echo "leaks: all checks passed" || echo "leaks: $fails failures"
[ $fails = 0 ]
