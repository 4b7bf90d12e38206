#!/bin/sh
# The options every report command shares (tools/cliopt.c), as
# docs/cli.md describes them:
#  - --alloc-fn is taken by export, flame and timeline as by top: the
#    function named is never the site, so its caller's stack ends there;
#  - a long option that lacks its value is named in the one error line
#    (top used to print a NUL byte for it);
#  - check takes every run option (here --interval) and hands it on.
#   options.sh SNAPMALLOC BUILDDIR
set -u
tool=$1 build=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
"$tool" run --no-report --out "$work/p.snap" -- "$build/examples/phases" 100 >/dev/null 2>&1 || { echo "FAIL: no snapshot"; exit 1; }
snap=$work/p.snap
"$tool" top "$snap" --by function --limit 0 | grep -q '^load_record: ' || fail "top: load_record is not a site of phases"

# --alloc-fn load_record: load_record's blocks are its caller's (main)
"$tool" export "$snap" --format folded -o "$work/a.folded" || fail "export --format folded"
grep -q 'load_record (' "$work/a.folded" || fail "export: no load_record frame without --alloc-fn"
"$tool" export "$snap" --format folded --alloc-fn load_record -o "$work/b.folded" || fail "export --alloc-fn"
grep -q 'load_record (' "$work/b.folded" && fail "export --alloc-fn load_record: load_record is still a frame"
"$tool" flame "$snap" -o "$work/a.svg" && grep -q 'load_record' "$work/a.svg" || fail "flame: no load_record frame"
"$tool" flame "$snap" --alloc-fn 'load_rec*' -o "$work/b.svg" || fail "flame --alloc-fn"
grep -q 'load_record' "$work/b.svg" && fail "flame --alloc-fn: load_record is still drawn"
"$tool" timeline "$snap" --sites 10 -o "$work/a.tl.svg" && grep -q 'load_record' "$work/a.tl.svg" ||
  fail "timeline: no load_record site"
"$tool" timeline "$snap" --sites 10 --alloc-fn load_record -o "$work/b.tl.svg" || fail "timeline --alloc-fn"
grep -q 'load_record' "$work/b.tl.svg" && fail "timeline --alloc-fn: load_record is still a site"

# a long option without its value is named, in one printable line, exit 2
for cmd in "top $snap --by" "diff $snap $snap --limit" "leaks $snap --format" "export $snap --format" \
           "flame $snap --width" "timeline $snap --rank" "run --depth"; do
  # shellcheck disable=SC2086
  "$tool" $cmd > /dev/null 2> "$work/err"; rc=$?
  opt=${cmd##* }
  [ $rc = 2 ] || fail "$cmd: exit $rc, not 2"
  grep -q "option '$opt' is unknown or lacks its value" "$work/err" || { fail "$cmd: the option is not named:"; cat -v "$work/err"; }
  tr -d '\n' < "$work/err" | LC_ALL=C grep -q '[^[:print:]]' && fail "$cmd: the message holds an unprintable byte"
done

# check takes run's --interval (hands it to run) and --no-report
"$tool" check --interval 0 --no-report -- "$build/examples/phases" 10 > /dev/null 2> "$work/chk"; rc=$?
[ $rc = 1 ] || { fail "check --interval 0 --no-report: exit $rc, not 1 (phases leaks)"; cat "$work/chk"; }
grep -q 'LEAK SUMMARY' "$work/chk" || fail "check --interval: no leak report"
"$tool" check --help | grep -q -- '--interval' || fail "check --help does not name run's --interval"

[ $fails = 0 ] && echo "all option checks passed"
exit $((fails != 0))
