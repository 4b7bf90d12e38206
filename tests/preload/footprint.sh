#!/bin/sh
# What loading the library costs a process that never traces: it brings no
# libm (the sampler's math is tracer/fmath.c's), so a program that does not
# use libm itself does not get it mapped.
# Usage: footprint.sh PATH-TO-libsnapmalloc.so
set -eu
lib=$1
if ! command -v readelf > /dev/null 2>&1; then
  echo "footprint.sh: readelf not found: skipped"
  exit 77
fi
failures=0
needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
echo "NEEDED: $needed"
case " $needed " in
*" libm.so"*)
  echo "FAIL: the library needs libm ($needed)"
  failures=$((failures + 1))
  ;;
esac
# cat(1) does not link libm: with the preload, no libm may be mapped either.
maps=$(LD_PRELOAD=$lib cat /proc/self/maps)
if ! printf '%s\n' "$maps" | grep -q "$(basename "$lib")"; then
  echo "FAIL: the library is not in the maps of a process it was preloaded into"
  failures=$((failures + 1))
fi
if printf '%s\n' "$maps" | grep -q '/libm\.so'; then
  echo "FAIL: libm is mapped into a preloaded cat:"
  printf '%s\n' "$maps" | grep '/libm\.so'
  failures=$((failures + 1))
fi
[ "$failures" -eq 0 ] && echo "ok: no libm" || exit 1
