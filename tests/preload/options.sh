#!/bin/sh
# SNAPMALLOC_OPTIONS handling (DESIGN.md section 4): whatever the options,
# the program runs normally (exit 0, its own stdout untouched); each bad item
# (unknown key, bad value) gives exactly one stderr line starting
# "snapmalloc: warning:" that names the item; valid settings give none;
# verbose=1 prints "snapmalloc: option ..." lines before main and
# "snapmalloc: stats:" lines at exit.
# Usage: options.sh PATH-TO-opts_prog PATH-TO-libsnapmalloc.so
set -eu
prog=$1
lib=${2:-}
if [ -z "$lib" ]; then
  echo "options.sh: no library given: skipped"
  exit 77
fi
if [ ! -f "$lib" ]; then
  echo "options.sh: library $lib does not exist"
  exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/smopts.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failures=0
cases=0

fail() {
  echo "FAIL: $*"
  echo "---- stderr was:"
  cat "$tmp/err"
  echo "----"
  failures=$((failures + 1))
}

# run OPTIONS: runs the program with the preload and OPTIONS; sets $status.
run() {
  cases=$((cases + 1))
  status=0
  SNAPMALLOC_OPTIONS=$1 LD_PRELOAD=$lib "$prog" >"$tmp/out" 2>"$tmp/err" || status=$?
  if [ "$status" -ne 0 ]; then
    fail "SNAPMALLOC_OPTIONS='$1': exit status $status"
  fi
  if [ "$(cat "$tmp/out")" != "ok" ]; then
    fail "SNAPMALLOC_OPTIONS='$1': stdout is not just 'ok'"
  fi
  if grep -q '^snapmalloc: error' "$tmp/err"; then
    fail "SNAPMALLOC_OPTIONS='$1': an error line on stderr"
  fi
  if ! grep -q '^opts_prog: end (0 corrupt, 0 failed)$' "$tmp/err"; then
    fail "SNAPMALLOC_OPTIONS='$1': the program did not finish cleanly"
  fi
}

warnings() {
  grep -c '^snapmalloc: warning:' "$tmp/err" || true
}

# expect_warnings OPTIONS N [WORD...]: N warning lines, each WORD in one.
expect_warnings() {
  opts=$1
  want=$2
  shift 2
  run "$opts"
  got=$(warnings)
  if [ "$got" -ne "$want" ]; then
    fail "SNAPMALLOC_OPTIONS='$opts': $got warning lines, want $want"
  fi
  for word in "$@"; do
    if ! grep '^snapmalloc: warning:' "$tmp/err" | grep -q -- "$word"; then
      fail "SNAPMALLOC_OPTIONS='$opts': no warning names '$word'"
    fi
  done
}

# Sanity: the library is really loaded (ld.so only warns on a bad path).
if ! LD_PRELOAD=$lib grep -q snapmalloc /proc/self/maps; then
  echo "options.sh: $lib is not mapped in a preloaded process"
  exit 1
fi

# No options at all, and an empty variable.
cases=$((cases + 1))
status=0
env -u SNAPMALLOC_OPTIONS LD_PRELOAD="$lib" "$prog" >"$tmp/out" 2>"$tmp/err" || status=$?
[ "$status" -eq 0 ] || fail "no SNAPMALLOC_OPTIONS: exit status $status"
[ "$(warnings)" -eq 0 ] || fail "no SNAPMALLOC_OPTIONS: warnings printed"
expect_warnings '' 0

# Bad items: one warning line each, naming the item.
expect_warnings 'bogus=1' 1 bogus
expect_warnings 'depth=abc' 1 depth
expect_warnings 'increment=-5' 1 increment
expect_warnings 'policy=worst' 1 policy
expect_warnings 'depth=0' 1 depth
expect_warnings 'depth=129' 1 depth
expect_warnings 'bogus=1,depth=abc,policy=first' 2 bogus depth
expect_warnings 'policy=worst,increment=8M,another_bogus_key=7' 2 policy another_bogus_key

# Valid settings: no warning, normal run.
expect_warnings 'policy=first' 0
expect_warnings 'policy=next' 0
expect_warnings 'policy=best' 0
expect_warnings 'increment=8M' 0
expect_warnings 'policy=first,increment=8M' 0
expect_warnings 'policy=next,increment=16M' 0
expect_warnings 'depth=1' 0
expect_warnings 'depth=128' 0

# verbose=1: resolved options first, statistics at exit.
for opts in 'verbose=1' 'verbose=1,policy=next' 'policy=first,verbose=1'; do
  expect_warnings "$opts" 0
  first_option=$(grep -n '^snapmalloc: option ' "$tmp/err" | head -n 1 | cut -d: -f1)
  start=$(grep -n '^opts_prog: start$' "$tmp/err" | head -n 1 | cut -d: -f1)
  end=$(grep -n '^opts_prog: end' "$tmp/err" | head -n 1 | cut -d: -f1)
  last_stats=$(grep -n '^snapmalloc: stats:' "$tmp/err" | tail -n 1 | cut -d: -f1)
  if [ -z "$first_option" ]; then
    fail "SNAPMALLOC_OPTIONS='$opts': no 'snapmalloc: option ' line"
  elif [ -n "$start" ] && [ "$first_option" -gt "$start" ]; then
    fail "SNAPMALLOC_OPTIONS='$opts': options printed after main started"
  fi
  if [ -z "$last_stats" ]; then
    fail "SNAPMALLOC_OPTIONS='$opts': no 'snapmalloc: stats:' line"
  elif [ -n "$end" ] && [ "$last_stats" -lt "$end" ]; then
    fail "SNAPMALLOC_OPTIONS='$opts': statistics printed before the end of main"
  fi
  case $opts in
  *policy=next*)
    grep '^snapmalloc: option ' "$tmp/err" | grep -q 'next' ||
      fail "SNAPMALLOC_OPTIONS='$opts': the resolved options do not show policy next" ;;
  *policy=first*)
    grep '^snapmalloc: option ' "$tmp/err" | grep -q 'first' ||
      fail "SNAPMALLOC_OPTIONS='$opts': the resolved options do not show policy first" ;;
  esac
done
# verbose with a bad item still warns exactly once.
expect_warnings 'verbose=1,bogus=2' 1 bogus

echo "$cases cases, $failures failed"
[ "$failures" -eq 0 ]
