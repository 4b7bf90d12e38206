#!/bin/sh
# verbose=1 says, at exit, when thp=auto declined huge pages because the
# host takes freed memory back (allocator/stats.c), and says nothing of the
# kind under thp=dense or on a host that keeps memory. Runs preload-thp's
# dense heap (384 MiB, past thp_min) and reads the host's balloon itself.
# Usage: thp_verbose.sh PATH-TO-preload-thp PATH-TO-libsnapmalloc.so
set -u
prog=$1 lib=$2
line="thp=auto asked for no huge pages: the host takes freed memory back"
reclaims=no
for f in /sys/bus/virtio/drivers/virtio_balloon/virtio*/features; do
  [ -r "$f" ] && [ "$(cut -c6 "$f")" = 1 ] && reclaims=yes
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/smthp.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
SNAPMALLOC_OPTIONS=verbose=1 LD_PRELOAD=$lib "$prog" dense host >"$tmp/out" 2>"$tmp/auto"
status=$?
[ $status -eq 77 ] && { cat "$tmp/out"; exit 77; }
[ $status -eq 0 ] || { echo "FAIL: preload-thp dense host exited $status"; cat "$tmp/out" "$tmp/auto"; exit 1; }
SNAPMALLOC_OPTIONS=verbose=1,thp=dense LD_PRELOAD=$lib "$prog" dense huge >/dev/null 2>"$tmp/dense" ||
  { echo "FAIL: preload-thp dense huge (thp=dense) failed"; cat "$tmp/dense"; exit 1; }
fails=0
if [ $reclaims = yes ]; then
  n=$(grep -c "^snapmalloc: stats: $line" "$tmp/auto")
  [ "$n" -ge 1 ] || { echo "FAIL: the host reclaims, but thp=auto's verbose output does not say huge pages were declined"; fails=1; }
else
  grep -q "$line" "$tmp/auto" && { echo "FAIL: the host keeps memory, yet verbose output says huge pages were declined"; fails=1; }
fi
grep -q "$line" "$tmp/dense" && { echo "FAIL: thp=dense's verbose output says huge pages were declined"; fails=1; }
[ $fails -eq 0 ] && echo "ok: host takes freed memory back: $reclaims; the verbose output says what it should"
exit $fails
