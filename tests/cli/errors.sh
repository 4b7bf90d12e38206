#!/bin/sh
# Bad input gets one clear line naming the file and the problem, and exit
# status 2: truncated, corrupt, future-version, missing and non-snapshot
# files, and bad options. Never a crash (a signal), never partial output.
#   errors.sh SNAPMALLOC BUILDDIR
set -u
tool=$1 build=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
"$tool" run --no-report --out "$work/good.snap" -- "$build/examples/phases" 100 >/dev/null || { echo "FAIL: no snapshot"; exit 1; }
good=$work/good.snap
size=$(stat -c %s "$good")

expect() { # NAME PATTERN, then the tool's arguments: exit 2, one stderr line matching PATTERN, no stdout
  name=$1 pattern=$2; shift 2
  "$tool" "$@" > "$work/out" 2> "$work/err"
  rc=$?
  lines=$(wc -l < "$work/err")
  if [ $rc != 2 ] || [ "$lines" != 1 ] || ! grep -q -- "$pattern" "$work/err" || [ -s "$work/out" ]; then
    echo "FAIL: $name: status $rc, $lines stderr lines, expected one matching '$pattern':"
    cat "$work/err" "$work/out"
    fails=$((fails + 1))
  fi
}

# byte surgery on copies of the good file
cut_to() { head -c "$1" "$good" > "$2"; }
poke() { # FILE OFFSET HEXBYTE: overwrite one byte
  printf "$(printf '\\%03o' "$3")" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

cut_to 20 "$work/short.snap"
expect short "short.snap: not a snapmalloc snapshot (only 20 bytes)" top "$work/short.snap"
cut_to $((size - 7)) "$work/trunc.snap"
expect truncated "trunc.snap: truncated (header promises" top "$work/trunc.snap"
cp "$good" "$work/long.snap"; printf 'xyz' >> "$work/long.snap"
expect trailing "long.snap: corrupt (3 unexpected bytes after the data)" top "$work/long.snap"
cp "$good" "$work/flip.snap"; poke "$work/flip.snap" $((size - 5)) 0x5a
expect checksum "flip.snap: corrupt (checksum mismatch)" top "$work/flip.snap"
cp "$good" "$work/magic.snap"; poke "$work/magic.snap" 0 0x58
expect magic "magic.snap: not a snapmalloc snapshot (bad magic)" top "$work/magic.snap"
cp "$good" "$work/future.snap"; poke "$work/future.snap" 8 9
expect future "future.snap: written by a newer snapmalloc (format version 9; this tool reads up to 3)" top "$work/future.snap"
printf 'hello world, not a snapshot at all!!\n' > "$work/text.snap"
expect text "text.snap: not a snapmalloc snapshot (bad magic)" top "$work/text.snap"
expect missing "nonexistent.snap: cannot open: No such file or directory" top "$work/nonexistent.snap"
expect diff-bad "trunc.snap: truncated" diff "$good" "$work/trunc.snap"
expect dir "cannot open\|read error" top "$work"

# a corrupt record behind a valid checksum: recompute the CRC after the poke
python3 - "$good" "$work/badidx.snap" <<'PY'
import struct, sys, zlib
data = bytearray(open(sys.argv[1], 'rb').read())
# find the FRAMES section and point its first frame at module 4000000
p = 32
while p < len(data):
    tag, count, nbytes = struct.unpack_from('<IIQ', data, p)
    if tag == 5 and count:
        struct.pack_into('<I', data, p + 16, 4000000)
        break
    p += 16 + nbytes
struct.pack_into('<I', data, 24, zlib.crc32(bytes(data[32:])) & 0xffffffff)
open(sys.argv[2], 'wb').write(data)
PY
expect badindex "badidx.snap: corrupt FRAMES section (frame 0 names module 4000000 of" top "$work/badidx.snap"

# leaks: a snapshot written before exit has no leak analysis
"$tool" run --no-report --out "$work/mid.%n.snap" -- "$build/examples/phases" 50 >/dev/null
expect noanalysis "mid.0.snap: no leak analysis in this snapshot" leaks "$work/mid.0.snap"
expect leaksshow "--show takes 'reachable', not 'everything'" leaks "$good" --show everything
expect leaksmin "--min-bytes takes a size in bytes, not 'lots'" leaks "$good" --min-bytes lots
expect leakssupp "nosuch.supp: cannot open" leaks "$good" --suppressions "$work/nosuch.supp"
expect checknocmd "needs a command to run after '--'" check --min-bytes 4

# usage errors
expect by "--by takes line, file, function or trace, not 'bogus'" top "$good" --by bogus
expect limit "--limit takes a whole number >= 0, not 'x'" top "$good" --limit x
expect format "--format takes text, json or folded, not 'xml'" top "$good" --format xml
expect cumtrace "--cumulative cannot be used with --by trace" top "$good" --by trace --cumulative
expect noargs "needs a snapshot file" top
expect diffone "needs two snapshot files" diff "$good"
expect unknown "unknown command 'frobnicate'" frobnicate
expect runnocmd "needs a command to run" run --depth 4
expect rundepth "--depth takes 1..128, not '0'" run --depth 0 -- true
expect runsample "--sample takes a size in bytes up to 1T (K/M/G/T suffixes), not '-4'" run --sample -4 -- true
expect exportfmt "--format takes pprof or folded, not 'svg'" export "$good" --format svg
expect exportnone "needs a snapshot file" export -o "$work/x.pb.gz"
expect exporttwo "takes one snapshot, not several" export "$good" "$good"
expect exportbad "trunc.snap: truncated" export "$work/trunc.snap" -o "$work/x.pb.gz"
[ -e "$work/x.pb.gz" ] && { echo "FAIL: export left an output file behind after bad input"; fails=$((fails + 1)); }
"$tool" --help > /dev/null || { echo "FAIL: --help"; fails=$((fails + 1)); }
for c in top diff run leaks check export; do "$tool" $c --help | grep -q "^usage: snapmalloc $c" || { echo "FAIL: $c --help"; fails=$((fails + 1)); }; done

[ $fails = 0 ] && echo "errors: all bad inputs rejected cleanly" || echo "errors: $fails cases failed"
[ $fails = 0 ]
