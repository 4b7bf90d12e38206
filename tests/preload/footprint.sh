#!/bin/sh
# What loading the library costs a process that never traces: it links
# neither libm (the sampler's math is tracer/fmath.c's) nor libunwind (the
# tracer opens it when tracing starts: tracer/unwlib.c), so neither is
# mapped into a preloaded program that does not use them itself, and of
# the library's own code it maps one 64 KiB window. With trace=1,
# libunwind is there, loaded by the library's constructor.
# Usage: footprint.sh PATH-TO-libsnapmalloc.so
set -eu
lib=$1
if ! command -v readelf > /dev/null 2>&1; then
  echo "footprint.sh: readelf not found: skipped"
  exit 77
fi
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
echo "NEEDED: $needed"
case " $needed " in *" libm.so"*) fail "the library needs libm ($needed)" ;; esac
case " $needed " in *" libunwind"*) fail "the library needs libunwind ($needed)" ;; esac
# cat(1) links neither libm nor libunwind.
maps=$(SNAPMALLOC_OPTIONS= LD_PRELOAD=$lib cat /proc/self/maps)
printf '%s\n' "$maps" | grep -q "$(basename "$lib")" ||
  fail "the library is not in the maps of a process it was preloaded into"
for l in libm libunwind liblzma; do
  if printf '%s\n' "$maps" | grep -q "/$l\.so"; then
    fail "$l is mapped into a preloaded, untraced cat:"
    printf '%s\n' "$maps" | grep "/$l\.so"
  fi
done
# The code every process runs is kept in one 64 KiB window of the library
# (SM_RUNTIME, allocator/base.h; the kernel maps file pages 64 KiB at a time
# around a fault): an untraced cat maps no more of the library's code than
# that. Spread over the library, it mapped 128-136 KiB. The window holds
# only where the loader honours the segments' 64 KiB alignment (glibc 2.35
# and later) and pages are 4 KiB; elsewhere this part is skipped.
align=$(readelf -lW "$lib" | awk '$1 == "LOAD" { print $NF; exit }')
[ "$align" = 0x10000 ] || fail "the library's segments are aligned to $align, not 64 KiB (meson.build: max-page-size)"
smaps=$(SNAPMALLOC_OPTIONS= LD_PRELOAD=$lib cat /proc/self/smaps)
base=$(printf '%s\n' "$smaps" | awk -v lib="$(basename "$lib")" '/^[0-9a-f]+-[0-9a-f]+ / && index($0, lib) { split($1, a, "-"); print a[1]; exit }')
if [ "$(getconf PAGESIZE)" != 4096 ] || [ -z "$base" ] || [ $((0x$base % 65536)) -ne 0 ]; then
  echo "code residency not checked: pages of $(getconf PAGESIZE) bytes, library mapped at 0x$base"
else
  rss=$(printf '%s\n' "$smaps" | awk -v lib="$(basename "$lib")" \
    '/^[0-9a-f]+-[0-9a-f]+ / { x = ($2 ~ /x/ && index($0, lib)) } x && /^Rss:/ { s += $2 } END { print s + 0 }')
  echo "code of the library resident in an untraced cat: $rss KiB"
  [ "$rss" -gt 0 ] || fail "no resident code of the library found in /proc/self/smaps"
  [ "$rss" -le 64 ] || fail "an untraced cat has $rss KiB of the library's code resident (at most 64 expected)"
fi
maps=$(SNAPMALLOC_OPTIONS=trace=1,at_exit=0 LD_PRELOAD=$lib cat /proc/self/maps)
printf '%s\n' "$maps" | grep -q '/libunwind\.so' || fail "libunwind is not mapped into a cat traced with trace=1"
[ "$failures" -eq 0 ] && echo "ok: no libm; libunwind only when tracing; one window of code" || exit 1
