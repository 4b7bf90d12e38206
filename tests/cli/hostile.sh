#!/bin/sh
# Snapshots are untrusted input (docs/cli.md, "Untrusted snapshots"): a
# module path too long for any buffer, a module that is a FIFO or a device,
# a snapshot that is a device or a FIFO, sizes whose sums pass 2^63, strings
# with terminal escapes and bytes that are not UTF-8, and thousands of
# unreadable modules. Each gets output or one line and status 2, promptly;
# never a crash, a hang, a raw escape sequence or invalid JSON or XML.
#   hostile.sh SNAPMALLOC HOSTILE_PY
set -u
tool=$1 gen=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
mk() { python3 "$gen" "$@" || { echo "FAIL: hostile.py $*"; exit 1; }; }
# Runs the tool with a time and memory bound (a regression must not hang the
# test or take the machine's memory): status in $rc, output in out and err.
# A 4 GB address-space limit, so that a runaway read fails the test instead
# of taking the machine's memory; not under AddressSanitizer (the sanitizer
# stage of scripts/test.sh), whose shadow memory no such limit fits.
vlimit=4000000
[ -n "${ASAN_OPTIONS+set}" ] && vlimit=unlimited
t() { (ulimit -v $vlimit; timeout 20 "$tool" "$@" > "$work/out" 2> "$work/err"); rc=$?; }

expect_error() { # NAME PATTERN ARGS...: status 2, one stderr line matching PATTERN, nothing on stdout
  name=$1 pattern=$2; shift 2
  t "$@"
  if [ $rc != 2 ] || [ "$(wc -l < "$work/err")" != 1 ] || ! grep -q -- "$pattern" "$work/err" || [ -s "$work/out" ]; then
    fail "$name: status $rc, expected 2 and one line matching '$pattern':"
    head -c 600 "$work/err"
  fi
}

# A 100,000-byte module path (it overflowed a stack buffer), and one just
# too long for PATH_MAX: refused with one line by every command.
mk longpath "$work/long.snap" 100000
mk longpath "$work/long4096.snap" 4096
out() { case $1 in export|flame|timeline) echo "-o $work/x" ;; esac; }
for c in top leaks export flame timeline; do
  # shellcheck disable=SC2046
  expect_error "long-$c" "long.snap: corrupt MODULES section (module 0 has a path of 100000 bytes, at most 4095)" \
    $c "$work/long.snap" $(out $c)
done
expect_error long-diff "corrupt MODULES section (module 0 has a path of 100000 bytes" diff "$work/long.snap" "$work/long.snap"
expect_error long4096 "path of 4096 bytes, at most 4095" top "$work/long4096.snap"
# the longest path accepted is shown cut (1024 bytes, ending in ...)
mk longpath "$work/long4095.snap" 4095
t top "$work/long4095.snap" --by trace
[ $rc = 0 ] && grep -q '^<x\{1020\}\.\.\.+0x1234>:0:' "$work/out" || fail "long4095: status $rc, no cut module name"

# More modules or traces than the reader takes (the counts are checked
# before anything is allocated), and a file over 1 GiB (never read).
mk count "$work/mods65537.snap" 2 65537
expect_error modcap "mods65537.snap: too many modules (65537; this tool reads at most 65536)" top "$work/mods65537.snap"
mk count "$work/traces.snap" 3 4194305
expect_error tracecap "traces.snap: too many traces (4194305; this tool reads at most 4194304)" top "$work/traces.snap"
truncate -s 1073741825 "$work/huge.snap"
expect_error huge "huge.snap: too large (1073741825 bytes; this tool reads snapshots of at most 1073741824)" \
  top "$work/huge.snap"
rm -f "$work/huge.snap"

# Snapshots that are not regular files: refused at once, never read.
mkfifo "$work/fifo"
expect_error devzero "/dev/zero: cannot open: not a regular file (a character device)" top /dev/zero
expect_error fifo "fifo: cannot open: not a regular file (a FIFO)" top "$work/fifo"
expect_error dir "cannot open: not a regular file (a directory)" leaks "$work"

# Modules that are a FIFO or a device: never opened (export opened them,
# and blocked on the FIFO for ever), their frames shown as offsets.
for m in "$work/fifo" /dev/zero /dev/null; do
  mk module "$work/mod.snap" "$m"
  for c in "export $work/mod.snap -o $work/mod.pb.gz" "export $work/mod.snap --format folded" "top $work/mod.snap" \
           "flame $work/mod.snap -o $work/mod.svg"; do
    # shellcheck disable=SC2086
    t $c
    [ $rc = 0 ] && grep -q "$m: cannot read it" "$work/err" || { fail "module $m: $c: status $rc"; cat "$work/err"; }
  done
done

# Sizes and counts whose sums pass 2^63: refused, not printed negative.
mk bigsizes "$work/big.snap"
for c in top leaks flame timeline export; do
  # shellcheck disable=SC2046
  expect_error "big-$c" "big.snap: corrupt TRACES section (sizes or counts up to trace 1 add up to 2^63 or more)" \
    $c "$work/big.snap" $(out $c)
done
[ -e "$work/x" ] && fail "an output file was left behind after bad input"

# Terminal escapes, bytes that are not UTF-8, XML metacharacters: escaped
# in text (ESC is \x1b, a byte 0xff is \xff, a backslash \\), valid UTF-8
# JSON, valid XML.
mk escape "$work/esc.snap"
noraw() { # NAME FILE: no control byte but newline, and valid UTF-8
  python3 - "$2" <<'PY' || fail "$1: raw control bytes or invalid UTF-8"
import sys
data = open(sys.argv[1], 'rb').read()
bad = [b for b in data if (b < 0x20 and b not in (0x0a,)) or b == 0x7f]
data.decode('utf-8')
sys.exit(1 if bad else 0)
PY
}
for c in "top --by trace" "top --by function" "top --by file --cumulative" "top --format folded" "leaks" \
         "leaks --show reachable" "export --format folded"; do
  set -- $c
  cmd=$1; shift
  t "$cmd" "$work/esc.snap" "$@"
  [ $rc -le 1 ] || fail "escape: $c: status $rc"
  noraw "escape: $c (stdout)" "$work/out"
  noraw "escape: $c (stderr)" "$work/err"
done
t top "$work/esc.snap" --by trace
grep -qF '<\x1b]0;pwned\x07\x1b[31mred\x1b[0m.so+0x10>:0: size=100 B' "$work/out" ||
  fail "escape: ESC and BEL not shown as \\x1b and \\x07"
grep -qF '<bad\xff\xfeutf8\xc3.so+0x11>' "$work/out" || fail "escape: bytes that are not UTF-8 not shown as \\xHH"
grep -qF '<new\x0aline\x0dcr\x09tab\x7fdel\u009bcsi.so+0x13>' "$work/out" || fail "escape: controls, DEL and C1 CSI"
head -1 "$work/out" | grep -qF '/bin/\x1b[2Jprog\xff (pid 4242)' || fail "escape: program in the header line"
grep -qF '4 modules cannot be read (/tmp/\x1b]0;pwned' "$work/err" || fail "escape: warning line"
for c in "top --by trace" "top --by line --cumulative" "diff" "leaks --show reachable"; do
  set -- $c
  cmd=$1; shift
  if [ "$cmd" = diff ]; then t diff "$work/esc.snap" "$work/esc.snap" --format json "$@"
  else t "$cmd" "$work/esc.snap" --format json "$@"; fi
  [ $rc -le 1 ] || fail "json: $c: status $rc"
  python3 -c 'import json, sys; json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))' "$work/out" ||
    fail "json: $c: not valid UTF-8 JSON"
  noraw "json: $c" "$work/out"
done
t flame "$work/esc.snap" -o "$work/esc.svg"
t timeline "$work/esc.snap" -o "$work/esctl.svg"
t flame "$work/esc.snap" "$work/esc.snap" -o "$work/escdiff.svg"
for f in esc.svg esctl.svg escdiff.svg; do
  python3 -c 'import sys, xml.dom.minidom; xml.dom.minidom.parseString(open(sys.argv[1], "rb").read())' \
    "$work/$f" || fail "svg: $f is not well-formed XML"
  noraw "svg: $f" "$work/$f"
done
grep -qF '&lt;tag attr=&quot;x&quot;&gt;&amp;amp;&apos;q&apos;.so' "$work/esc.svg" || fail "svg: XML metacharacters"

# 2,000 modules that cannot be read: one warning line, not 2,000.
mk modules "$work/mods.snap" 2000
t top "$work/mods.snap"
[ $rc = 0 ] || fail "modules: status $rc"
[ "$(wc -l < "$work/err")" = 1 ] && grep -q "warning: 2000 modules cannot be read (/nonexistent/hostile/d*/lib00000.so and 1999 more)" "$work/err" ||
  { fail "modules: expected one warning line:"; head -3 "$work/err"; }

[ $fails = 0 ] && echo "hostile: every hostile snapshot handled" || echo "hostile: $fails checks failed"
[ $fails = 0 ]
